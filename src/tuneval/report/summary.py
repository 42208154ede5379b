"""report/summary.{md,png,json}: zero-shot vs fine-tuned per task, split and headline metric, with 95% intervals.

Which metrics, in which order and on which scale is each task's own choice (`metrics` in tasks/<task>.yaml).
The point values are the metrics files' (what `dvc metrics show` shows); the intervals come from
:mod:`tuneval.scoring.stats`, recomputed from the per-example predictions, and must reproduce those values.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tuneval.config import PHASES, Params
from tuneval.errors import DataError
from tuneval.io import atomic_path, write_json, write_text
from tuneval.scoring.stats import (
    LEVEL,
    RESAMPLES,
    Interval,
    align_by_id,
    mcnemar_exact,
    paired_bootstrap,
    prediction_statistic,
    resampling,
)
from tuneval.tasks import SCALES, Task

PHASE_NAMES = {"zeroshot": "zero-shot", "finetuned": "fine-tuned"}
README_START, README_END = "<!-- summary:start -->", "<!-- summary:end -->"  # the README copy of the table
RUN_FACTS = {"num_fewshot": "{}-shot", "chat_template": "chat template {}", "prompt_sha": "prompt `{}`",
             "dtype": "dtype {}"}  # how the `run` entry of a metrics file reads in the report (bools: on / off)


@dataclass(frozen=True)
class Row:
    """One headline metric of one task and split, both phases and the trivial baseline, with 95% intervals (None:
    no interval), the i.i.d. width of the Δ interval (for comparison with the clustered one) and the Δ this sample
    can detect (80% power, 5% level)."""

    task: str
    split: str
    n: int
    metric: str
    scale: str
    zeroshot: float
    finetuned: float
    zeroshot_ci: Interval | None = None
    finetuned_ci: Interval | None = None
    delta_ci: Interval | None = None
    baseline: float | None = None
    delta_iid_width: float | None = None
    mde: float | None = None

    @property
    def delta(self) -> float:
        return self.finetuned - self.zeroshot

    @property
    def significant(self) -> bool:
        """The paired interval of the change excludes 0."""
        return self.delta_ci is not None and self.delta_ci.excludes_zero()


@dataclass(frozen=True)
class SplitFacts:
    """What one evaluated split is: size, composition, the bootstrap's unit, and split-level tests."""

    task: str
    split: str
    n: int
    composition: str
    resampling: str  # e.g. "whole articles (35 articles)" or "examples (i.i.d.)"
    baseline: str  # e.g. "always abstain" or "majority class (`positive`) of the training split"
    mcnemar: dict[str, float] | None = None  # classification: McNemar's exact test on correct/incorrect


# ---------------------------------------------------------------------------------------------- the numbers
def compare_split(task: Task, split: str, scores: Mapping[str, Mapping[str, Any]],
                  predictions: Mapping[str, Sequence[dict[str, Any]]], seed: int,
                  train_label_counts: Mapping[str, int] | None = None,
                  resamples: int = RESAMPLES) -> tuple[list[Row], SplitFacts]:
    """Rows for the task's headline metrics that both phases report on `split`, and the split's facts.

    `scores` and `predictions` map each phase to its metrics-file entry for the split and its prediction
    records; the records are matched by id (the same ids, or DataError). `train_label_counts` (label value as a
    string -> count in the training split) give a classification task's majority class.
    """
    zeroshot, finetuned = align_by_id(predictions["zeroshot"], predictions["finetuned"], f"{task.name} {split}")
    keys = [key for key in task.metrics.headline if all(_is_number(scores[p].get(key)) for p in PHASES)]
    first, second = prediction_statistic(task, zeroshot, keys), prediction_statistic(task, finetuned, keys)
    unit = resampling(task, zeroshot)
    paired = paired_bootstrap(first, second, len(zeroshot), resamples=resamples, seed=seed, clusters=unit.labels)
    _check_recomputed(task, split, scores, paired)
    iid = paired if unit.labels is None else paired_bootstrap(first, second, len(zeroshot), resamples, seed)
    baseline_records, baseline_name = trivial_baseline(task, finetuned, train_label_counts or {})
    baseline = prediction_statistic(task, baseline_records, keys)(np.ones((1, len(finetuned)))) if keys else {}
    rows = []
    for key in keys:
        result = paired.get(key) if unit.honest else None
        iid_ci = iid[key].delta_ci if key in iid else None
        rows.append(Row(task=task.name, split=split, n=len(zeroshot), metric=key, scale=task.metrics.scale,
                        zeroshot=float(scores["zeroshot"][key]), finetuned=float(scores["finetuned"][key]),
                        zeroshot_ci=result.first_ci if result else None,
                        finetuned_ci=result.second_ci if result else None,
                        delta_ci=result.delta_ci if result else None,
                        baseline=float(baseline[key][0]) if key in baseline else None,
                        delta_iid_width=iid_ci.width if iid_ci else None,
                        mde=result.mde if result else None))
    mcnemar = None
    if task.kind == "multiple_choice":
        mcnemar = mcnemar_exact([r["actual"] == r["predicted"] for r in zeroshot],
                                [r["actual"] == r["predicted"] for r in finetuned])
    facts = SplitFacts(task=task.name, split=split, n=len(zeroshot), composition=record_composition(task, zeroshot),
                       resampling=unit.describe(), baseline=baseline_name, mcnemar=mcnemar)
    return rows, facts


def trivial_baseline(task: Task, records: Sequence[dict[str, Any]],
                     train_label_counts: Mapping[str, int]) -> tuple[list[dict[str, Any]], str]:
    """The task's trivial predictor (tasks/<task>.yaml `baseline`) as prediction records for `records`' examples,
    and its name: majority_class predicts the training split's most frequent label everywhere (DataError without
    the counts); always_abstain answers nothing, so its F1 is the unanswerable share."""
    if task.baseline == "majority_class":
        if not train_label_counts:
            raise DataError(f"{task.name}: no training label counts for the majority-class baseline (run.json of "
                            "the fine-tuned predictions lacks train_label_counts: rerun the evaluation, dvc repro)")
        label = max(task.labels, key=lambda value: train_label_counts.get(str(value), 0))
        name = task.label_names[task.labels.index(label)]
        return ([{**r, "predicted": name} for r in records],
                f"majority class of the training split (always `{name}`)")
    if task.baseline == "always_abstain":
        return [{**r, "prediction": "", "no_answer_prob": 1.0} for r in records], "always abstain"
    return [], "none"


def record_composition(task: Task, records: Sequence[dict[str, Any]]) -> str:
    """`560 questions: 35 articles, 452 contexts, 50.5% unanswerable` from prediction records."""
    parts = [f"{len({r['cluster'][field] for r in records}):,} {unit}s" for field, unit in task.clusters.items()
             if all("cluster" in r for r in records)]
    if task.abstain is not None:
        parts.append(f"{100 * sum(not r['gold'] for r in records) / len(records):.1f}% unanswerable")
    if task.label_names and records and "actual" in records[0]:
        counts = Counter(r["actual"] for r in records)
        parts += [f"{100 * counts[name] / len(records):.1f}% {name}" for name in task.label_names]
    return ", ".join(parts)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_recomputed(task: Task, split: str, scores: Mapping[str, Mapping[str, Any]], paired: Mapping) -> None:
    """The bootstrap's full-set values must be the metrics files' values, or its intervals are of something else."""
    for key, result in paired.items():
        for phase, value in zip(PHASES, (result.first, result.second), strict=True):
            recorded = float(scores[phase][key])
            if not math.isclose(value, recorded, rel_tol=1e-9, abs_tol=1e-9):
                raise DataError(
                    f"{task.name} {split} {phase}: {key} recomputed from the predictions is {value!r}, but the "
                    f"metrics file says {recorded!r}. Either the predictions and metrics files are out of step "
                    "(run `dvc repro`), or tuneval.scoring.stats no longer scores like tuneval.scoring.engine.score"
                )


def summary_metrics(rows: Sequence[Row], facts: Sequence[SplitFacts], seed: int,
                    resamples: int = RESAMPLES) -> dict[str, Any]:
    """report/summary.json: {task: {split: {n, composition, resampling, baseline, [mcnemar_p], metric: {zeroshot,
    zeroshot_low, ..., delta_high, delta_iid_width, mde, baseline}}}} + the bootstrap's settings."""
    summary: dict[str, Any] = {"bootstrap": {"resamples": resamples, "level": LEVEL, "seed": seed}}
    for fact in facts:
        entry = summary.setdefault(fact.task, {}).setdefault(fact.split, {})
        entry.update(n=fact.n, composition=fact.composition, resampling=fact.resampling, baseline=fact.baseline)
        if fact.mcnemar is not None:
            entry.update(mcnemar_p=fact.mcnemar["p"], mcnemar_only_zeroshot=fact.mcnemar["only_first"],
                         mcnemar_only_finetuned=fact.mcnemar["only_second"])
    for row in rows:
        entry = summary.setdefault(row.task, {}).setdefault(row.split, {"n": row.n})
        values: dict[str, float] = {}
        for name, value, ci in (("zeroshot", row.zeroshot, row.zeroshot_ci),
                                ("finetuned", row.finetuned, row.finetuned_ci), ("delta", row.delta, row.delta_ci)):
            values[name] = value
            if ci is not None:
                values[f"{name}_low"], values[f"{name}_high"] = ci.low, ci.high
        for name in ("delta_iid_width", "mde", "baseline"):
            if getattr(row, name) is not None:
                values[name] = getattr(row, name)
        entry[row.metric] = values
    return summary


# ------------------------------------------------------------------------------------------------ the table
def _number(value: float, decimals: int, signed: bool = False) -> str:
    return f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"


def _cell(value: float, ci: Interval | None, decimals: int, signed: bool = False, bold: bool = False) -> str:
    """`0.6120 [0.5810, 0.6420]`; bold value if asked; no brackets without an interval."""
    text = _number(value, decimals, signed)
    text = f"**{text}**" if bold else text
    if ci is None:
        return text
    return f"{text} [{_number(ci.low, decimals, signed)}, {_number(ci.high, decimals, signed)}]"


def _optional(value: float | None, decimals: int) -> str:
    return "–" if value is None else _number(value, decimals)


TABLE_HEAD = ["split", "metric", "baseline", "zero-shot [95% CI]", "fine-tuned [95% CI]", "Δ [paired 95% CI]",
              "Δ CI width: clustered / i.i.d.", "MDE", "n"]


def table_lines(rows: Sequence[Row], with_task: bool = True, metric_label: Callable[[str], str] = str) -> list[str]:
    """Markdown table: [task |] split | metric | baseline | zero-shot | fine-tuned | Δ | widths | MDE | n."""
    head = (["task"] if with_task else []) + TABLE_HEAD
    align = ["---"] * (len(head) - 7) + ["---:"] * 7
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    for r in rows:
        decimals = SCALES[r.scale]
        width = _optional(r.delta_ci.width if r.delta_ci else None, decimals)
        cells = [*([r.task] if with_task else []), r.split, metric_label(r.metric), _optional(r.baseline, decimals),
                 _cell(r.zeroshot, r.zeroshot_ci, decimals), _cell(r.finetuned, r.finetuned_ci, decimals),
                 _cell(r.delta, r.delta_ci, decimals, signed=True, bold=r.significant),
                 f"{width} / {_optional(r.delta_iid_width, decimals)}", _optional(r.mde, decimals), f"{r.n:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def split_lines(facts: Sequence[SplitFacts]) -> list[str]:
    """One bullet per evaluated split: its size and make-up, the bootstrap's unit, the baseline, McNemar."""
    lines = []
    for f in facts:
        line = (f"- `{f.task}` {f.split}: {f.n:,} examples ({f.composition}); intervals resample "
                f"{f.resampling}; baseline: {f.baseline}")
        if f.mcnemar is not None:
            line += (f"; McNemar exact p = {f.mcnemar['p']:.3g} ({f.mcnemar['only_first']} right only zero-shot, "
                     f"{f.mcnemar['only_second']} right only fine-tuned)")
        lines.append(line + ".")
    return lines


def findings(rows: Sequence[Row], facts: Sequence[SplitFacts]) -> list[str]:
    """Result sentences, generated from the numbers (so the README never states what the report does not): per
    split, the first headline metric against the baseline in both phases, and whether the change is resolved."""
    sentences = []
    for f in facts:
        first = next((r for r in rows if (r.task, r.split) == (f.task, f.split)), None)
        if first is None:
            continue
        d = SCALES[first.scale]
        text = (f"- `{f.task}` {f.split} ({first.metric}): zero-shot {_number(first.zeroshot, d)}, fine-tuned "
                f"{_number(first.finetuned, d)}")
        if first.baseline is not None:
            text += (f"; the baseline ({f.baseline}) scores {_number(first.baseline, d)}, so zero-shot is "
                     f"{_relation(first.zeroshot, first.baseline)} it and fine-tuned "
                     f"{_relation(first.finetuned, first.baseline)} it")
        if first.delta_ci is None:
            text += f". Δ {_number(first.delta, d, signed=True)}: {f.resampling}."
        elif first.significant:
            text += (f". The change, {_number(first.delta, d, signed=True)} [{_number(first.delta_ci.low, d, True)}, "
                     f"{_number(first.delta_ci.high, d, True)}], is more than resampling noise.")
        else:
            text += (f". The change, {_number(first.delta, d, signed=True)} [{_number(first.delta_ci.low, d, True)}, "
                     f"{_number(first.delta_ci.high, d, True)}], is within resampling noise: this sample detects "
                     f"changes of about {_optional(first.mde, d)} or more.")
        answered = next((r for r in rows if (r.task, r.split, r.metric) == (f.task, f.split, "answered")), None)
        if answered is not None:  # how often the model abstains, beside how often it should (the split line)
            text += (f" It answers {answered.finetuned:.{d}f}% of the questions fine-tuned and "
                     f"{answered.zeroshot:.{d}f}% zero-shot ({f.composition}).")
        sentences.append(text)
    return sentences


def _relation(value: float, baseline: float) -> str:
    return "above" if value > baseline else "below" if value < baseline else "level with"


def readme_block(rows: Sequence[Row], facts: Sequence[SplitFacts] = ()) -> str:
    """The results between the README markers, exactly as README.md holds them: splits, table, findings."""
    parts = [README_START, *split_lines(facts), "", *table_lines(rows)]
    if facts:
        parts += ["", *findings(rows, facts)]
    return "\n".join([*parts, README_END])


def sync_readme(readme: Path, summary_md: Path) -> bool:
    """Copy the results block of `summary_md` (between README_START and README_END) into `readme`; True if the
    README changed. The README's results are never typed by hand: `scripts/repro.sh` calls this after a run."""
    def block(text: str, where: Path) -> tuple[int, int]:
        start, end = text.find(README_START), text.find(README_END)
        if start < 0 or end < start:
            raise DataError(f"{where}: no results block (expected {README_START} ... {README_END})")
        return start, end + len(README_END)

    source = summary_md.read_text(encoding="utf-8")
    start, end = block(source, summary_md)
    text = readme.read_text(encoding="utf-8")
    r_start, r_end = block(text, readme)
    updated = text[:r_start] + source[start:end] + text[r_end:]
    if updated != text:
        write_text(readme, updated)
    return updated != text


def method_note(rows: Sequence[Row], resamples: int = RESAMPLES) -> str:
    """How to read the intervals (and which metrics have none)."""
    note = (f"Brackets: {LEVEL:.0%} percentile-bootstrap intervals ({resamples:,} seeded resamples) of the unit "
            "each split names below (whole articles for SQuAD v2: its questions cluster in articles); the Δ interval "
            "is paired (the same resamples for both phases). A **bold** Δ: its interval excludes 0. The i.i.d. "
            "width (examples resampled as if independent) is beside the clustered one; MDE is the smallest Δ this "
            "sample detects with 80% power at the 5% level (2.8 bootstrap SEs of Δ). Baseline: the task's trivial "
            "predictor. The intervals hold the trained model fixed: they cover which examples were scored, not "
            "training variance (another training seed trains another model: `dvc exp run -S seed=2`, then "
            "`tuneval compare`). Method: `src/tuneval/scoring/stats.py`; metric conventions: `CONVENTIONS` in "
            "`src/tuneval/scoring/metrics.py`.")
    without = sorted({f"{r.task} {r.metric}" for r in rows if r.delta_ci is None})
    return note + (f" No interval: {', '.join(without)}." if without else "")


def _fact(value: Any) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def check_same_run(task: str, runs: Mapping[str, Mapping[str, Any]], files: Mapping[str, Path]) -> None:
    """Refuse phases scored with different run settings: their difference would not be fine-tuning's alone. With
    `model.dtype: auto` the dtype is this machine's choice, which DVC cannot see: zero-shot metrics from a machine
    without native bf16 look up to date on one with it, while the fine-tuned model is scored in bf16 there."""
    differ = [f"{key} {runs[PHASES[0]].get(key)} vs {runs[PHASES[1]].get(key)}" for key in RUN_FACTS
              if runs[PHASES[0]].get(key) != runs[PHASES[1]].get(key)]
    if differ:
        first, second = (files[phase] for phase in PHASES)
        raise DataError(
            f"{first} and {second} were scored with different settings ({', '.join(differ)}), so the change "
            f"between them is not fine-tuning's alone. Score both phases here: dvc repro -f zeroshot_eval@{task} "
            f"eval@{task} (and pin model.dtype in params.yaml if it is `auto`).")


def run_facts(runs: Mapping[str, Mapping[str, Any]]) -> str:
    """`0-shot, chat template off, prompt `ab12..`, dtype float32` from the phases' `run` entries (the same for
    both: check_same_run)."""
    return ", ".join(template.format(_fact(runs[PHASES[0]].get(key))) for key, template in RUN_FACTS.items())


def run_line(task: Task, runs: Mapping[str, Mapping[str, Any]]) -> str:
    """`- `sst2` (fraction): <run_facts>`, a line of the report's header."""
    return f"- `{task.name}` ({task.metrics.scale}): {run_facts(runs)}"


# ------------------------------------------------------------------------------------------------ the files
def write_report(rows: Sequence[Row], facts: Sequence[SplitFacts], tasks: Sequence[Task],
                 runs: Mapping[str, Mapping[str, Mapping[str, Any]]], params: Params, md_path: Path, png_path: Path,
                 json_path: Path) -> None:
    """summary.md (header, per-task run facts, the README block), summary.png and summary.json.

    `runs` maps task name -> phase -> the `run` entry of that metrics file.
    """
    lines = [
        f"# tuneval summary: {params.model.name}",
        "",
        f"lr {params.lr}, {params.epochs} epochs, batch size {params.batch_size}, training seed {params.seed}, "
        f"training examples {_per_task({t: params.data.train_examples[t] for t in params.tasks})}, data "
        f"`{params.data.source}` (data.seed "
        f"{params.data.seed}). Evaluation, per task:",
        "",
        *(run_line(task, runs[task.name]) for task in tasks),
        "",
        method_note(rows),
        "",
        readme_block(rows, facts),
    ]
    write_text(md_path, "\n".join(lines) + "\n")
    write_json(json_path, summary_metrics(rows, facts, params.data.seed))
    _plot(rows, png_path)


def _per_task(counts: Mapping[str, int | None]) -> str:
    """`sst2 400, squad_v2 200` (`all` for null)."""
    return ", ".join(f"{task} {'all' if n is None else n}" for task, n in counts.items())


def _error_bars(values: Sequence[float], cis: Sequence[Interval | None]) -> list[list[float]]:
    """matplotlib yerr (below, above) from intervals; 0 where there is none."""
    below = [max(v - ci.low, 0.0) if ci else 0.0 for v, ci in zip(values, cis, strict=True)]
    above = [max(ci.high - v, 0.0) if ci else 0.0 for v, ci in zip(values, cis, strict=True)]
    return [below, above]


def _plot(rows: Sequence[Row], png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys((r.task, r.split) for r in rows))
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5.5 * max(len(panels), 1), 4), squeeze=False)
    for ax, (task, split) in zip(axes[0], panels, strict=False):
        sub = [r for r in rows if r.task == task and r.split == split]
        xs = range(len(sub))
        for offset, phase, color in ((-0.2, "zeroshot", "#9aa5b1"), (0.2, "finetuned", "#2f6fb0")):
            values = [getattr(r, phase) for r in sub]
            ax.bar([x + offset for x in xs], values, 0.4, label=PHASE_NAMES[phase], color=color,
                   yerr=_error_bars(values, [getattr(r, f"{phase}_ci") for r in sub]), capsize=2,
                   error_kw={"elinewidth": 0.8})
        ax.set_xticks(list(xs), [r.metric for r in sub], rotation=35, ha="right")
        ax.set_title(f"{task} ({split}, n={sub[0].n:,})")
        ax.set_ylabel(sub[0].scale)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
