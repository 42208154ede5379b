"""report/summary.{md,png,json}: zero-shot vs fine-tuned per task, split and headline metric, with 95% intervals.

Which metrics, in which order and on which scale is each task's own choice (`metrics` in tasks/<task>.yaml).
The point values are the metrics files' (what `dvc metrics show` shows); the intervals come from
:mod:`tuneval.stats`, recomputed from the per-example predictions, and must reproduce those values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneval.config import Params
from tuneval.errors import DataError
from tuneval.io import atomic_path, write_json, write_text
from tuneval.stats import LEVEL, RESAMPLES, Interval, align_by_id, paired_bootstrap, prediction_statistic
from tuneval.tasks import SCALES, Task

PHASES = ("zeroshot", "finetuned")
PHASE_NAMES = {"zeroshot": "zero-shot", "finetuned": "fine-tuned"}
README_START, README_END = "<!-- summary:start -->", "<!-- summary:end -->"  # the README copy of the table
RUN_FACTS = {"num_fewshot": "{}-shot", "chat_template": "chat template {}", "prompt_sha": "prompt `{}`",
             "dtype": "dtype {}"}  # how the `run` entry of a metrics file reads in the report (bools: on / off)


@dataclass(frozen=True)
class Row:
    """One headline metric of one task and split, both phases, with 95% intervals (None: no interval)."""

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

    @property
    def delta(self) -> float:
        return self.finetuned - self.zeroshot

    @property
    def significant(self) -> bool:
        """The paired interval of the change excludes 0."""
        return self.delta_ci is not None and self.delta_ci.excludes_zero()


# ---------------------------------------------------------------------------------------------- the numbers
def compare_split(task: Task, split: str, scores: Mapping[str, Mapping[str, Any]],
                  predictions: Mapping[str, Sequence[dict[str, Any]]], seed: int,
                  resamples: int = RESAMPLES) -> list[Row]:
    """Rows for the task's headline metrics that both phases report on `split`.

    `scores` and `predictions` map each phase to its metrics-file entry for the split and its prediction
    records; the records are matched by id (the same ids, or DataError).
    """
    zeroshot, finetuned = align_by_id(predictions["zeroshot"], predictions["finetuned"], f"{task.name} {split}")
    keys = [key for key in task.metrics.headline if all(_is_number(scores[p].get(key)) for p in PHASES)]
    paired = paired_bootstrap(prediction_statistic(task, zeroshot, keys), prediction_statistic(task, finetuned, keys),
                              len(zeroshot), resamples=resamples, seed=seed)
    _check_recomputed(task, split, scores, paired)
    rows = []
    for key in keys:
        result = paired.get(key)
        rows.append(Row(task=task.name, split=split, n=len(zeroshot), metric=key, scale=task.metrics.scale,
                        zeroshot=float(scores["zeroshot"][key]), finetuned=float(scores["finetuned"][key]),
                        zeroshot_ci=result.first_ci if result else None,
                        finetuned_ci=result.second_ci if result else None,
                        delta_ci=result.delta_ci if result else None))
    return rows


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
                    "(run `dvc repro`), or tuneval.stats no longer scores like tuneval.evaluation.score"
                )


def summary_metrics(rows: Sequence[Row], seed: int, resamples: int = RESAMPLES) -> dict[str, Any]:
    """report/summary.json: {task: {split: {n, metric: {zeroshot, zeroshot_low, ..., delta_high}}}} + method."""
    summary: dict[str, Any] = {"bootstrap": {"resamples": resamples, "level": LEVEL, "seed": seed}}
    for row in rows:
        entry = summary.setdefault(row.task, {}).setdefault(row.split, {"n": row.n})
        values: dict[str, float] = {}
        for name, value, ci in (("zeroshot", row.zeroshot, row.zeroshot_ci),
                                ("finetuned", row.finetuned, row.finetuned_ci), ("delta", row.delta, row.delta_ci)):
            values[name] = value
            if ci is not None:
                values[f"{name}_low"], values[f"{name}_high"] = ci.low, ci.high
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


def table_lines(rows: Sequence[Row], with_task: bool = True, metric_label: Callable[[str], str] = str) -> list[str]:
    """Markdown table: [task |] split | metric | zero-shot [95% CI] | fine-tuned [95% CI] | Δ [paired 95% CI] | n."""
    head = ["task"] if with_task else []
    lines = [
        "| " + " | ".join([*head, "split", "metric", "zero-shot [95% CI]", "fine-tuned [95% CI]",
                          "Δ [paired 95% CI]", "n"]) + " |",
        "| " + " | ".join([*(["---"] if with_task else []), "---", "---", "---:", "---:", "---:", "---:"]) + " |",
    ]
    for r in rows:
        decimals = SCALES[r.scale]
        cells = [*([r.task] if with_task else []), r.split, metric_label(r.metric),
                 _cell(r.zeroshot, r.zeroshot_ci, decimals), _cell(r.finetuned, r.finetuned_ci, decimals),
                 _cell(r.delta, r.delta_ci, decimals, signed=True, bold=r.significant), str(r.n)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def readme_block(rows: Sequence[Row]) -> str:
    """The results table between the README markers, exactly as README.md holds it."""
    return "\n".join([README_START, *table_lines(rows), README_END])


def method_note(rows: Sequence[Row], resamples: int = RESAMPLES) -> str:
    """How to read the intervals (and which metrics have none)."""
    note = (f"Brackets: {LEVEL:.0%} percentile-bootstrap intervals over the evaluated examples ({resamples:,} "
            "seeded resamples); the Δ interval is paired (the same resampled examples for both phases). A **bold** "
            "Δ: its interval excludes 0. Method: `src/tuneval/stats.py`; metric conventions: "
            "`CONVENTIONS` in `src/tuneval/metrics.py`.")
    without = sorted({f"{r.task} {r.metric}" for r in rows if r.delta_ci is None})
    return note + (f" No interval (no per-example terms): {', '.join(without)}." if without else "")


def _fact(value: Any) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def run_facts(runs: Mapping[str, Mapping[str, Any]]) -> str:
    """`0-shot, chat template off, prompt `ab12..`, dtype float32` from both phases' `run` entries (a / b where
    the phases differ)."""
    facts = []
    for key, template in RUN_FACTS.items():
        values = [_fact(runs[phase].get(key)) for phase in PHASES]
        shown = values[0] if values[0] == values[1] else " / ".join(
            f"{value} ({PHASE_NAMES[phase]})" for phase, value in zip(PHASES, values, strict=True))
        facts.append(template.format(shown))
    return ", ".join(facts)


def run_line(task: Task, runs: Mapping[str, Mapping[str, Any]]) -> str:
    """`- `sst2` (fraction): <run_facts>`, a line of the report's header."""
    return f"- `{task.name}` ({task.metrics.scale}): {run_facts(runs)}"


# ------------------------------------------------------------------------------------------------ the files
def write_report(rows: Sequence[Row], tasks: Sequence[Task], runs: Mapping[str, Mapping[str, Mapping[str, Any]]],
                 params: Params, md_path: Path, png_path: Path, json_path: Path) -> None:
    """summary.md (header, per-task run facts, the README block), summary.png and summary.json.

    `runs` maps task name -> phase -> the `run` entry of that metrics file.
    """
    lines = [
        f"# tuneval summary: {params.model.name}",
        "",
        f"lr {params.lr}, {params.epochs} epochs, batch size {params.batch_size}, seed {params.seed}, "
        f"data `{params.data.source}`. Evaluation, per task:",
        "",
        *(run_line(task, runs[task.name]) for task in tasks),
        "",
        method_note(rows),
        "",
        readme_block(rows),
    ]
    write_text(md_path, "\n".join(lines) + "\n")
    write_json(json_path, summary_metrics(rows, params.seed))
    _plot(rows, png_path)


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
