"""report/summary.{md,png,json} and report/abstention.png: zero-shot vs fine-tuned per task, split and headline
metric, with 95% intervals.

Which metrics, in which order and on which scale is each task's own choice (`metrics` in tasks/<task>.yaml).
The point values are the metrics files' (what `dvc metrics show` shows); the intervals come from
:mod:`tuneval.scoring.stats` (:func:`~tuneval.scoring.stats.paired_intervals`: the cluster bootstrap with 30 or
more clusters, the cluster jackknife t with fewer), recomputed from the per-example predictions, which must
reproduce those values. Every interval is labelled with the method that gave it. A task that abstains (SQuAD
v2) also gets the abstention facts of :mod:`tuneval.scoring.abstention`: the held-out-threshold F1 and its
folds' thresholds, the no-answer AUROC, the in-sample best_f1 labelled as such, and report/abstention.png.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tuneval.config import PHASES, Params
from tuneval.errors import DataError
from tuneval.io import atomic_path, write_json, write_text
from tuneval.scoring import abstention as A
from tuneval.scoring.abstention import labelled
from tuneval.scoring.stats import (
    LEVEL,
    MIN_CLUSTERS,
    MIN_JACKKNIFE_CLUSTERS,
    RESAMPLES,
    Interval,
    Paired,
    Resampling,
    align_by_id,
    check_recomputed,
    iid_resampling,
    mcnemar_exact,
    paired_intervals,
    prediction_statistic,
    resampling,
)
from tuneval.tasks import SCALES, Task

PHASE_NAMES = {"zeroshot": "zero-shot", "finetuned": "fine-tuned"}
README_START, README_END = "<!-- summary:start -->", "<!-- summary:end -->"  # the README copy of the table
RUN_FACTS = {"num_fewshot": "{}-shot", "chat_template": "chat template {}", "prompt_sha": "prompt `{}`",
             "dtype": "dtype {}"}  # how the `run` entry of a metrics file reads in the report (bools: on / off)
ABSTENTION_PNG = "abstention.png"  # beside summary.md: the no-answer probability per class, both phases
MIXED_ROUTES = "phases scored on different compute routes"  # how a pairing allowed by report.allow_mixed_routes reads
CHANCE_AUROC = 50.0  # no_answer_auroc is in percent (tuneval.scoring.abstention)


@dataclass(frozen=True)
class Row:
    """One headline metric of one task and split, both phases and the trivial baseline, with 95% intervals (None:
    no interval) and the method that gave them (`interval`, e.g. "cluster jackknife t, G−1 = 19 df"), the i.i.d.
    width of the Δ interval and its method (for comparison with the clustered one), the Δ this sample can detect
    (80% power, 5% level), and a note on how the metric is defined where a reader needs one (best_f1: in-sample)."""

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
    interval: str = ""
    iid_interval: str = ""
    note: str = ""

    @property
    def delta(self) -> float:
        return self.finetuned - self.zeroshot

    @property
    def significant(self) -> bool:
        """The paired interval of the change excludes 0."""
        return self.delta_ci is not None and self.delta_ci.excludes_zero()

    @property
    def label(self) -> str:
        """The metric as tables show it: best_f1 / best_exact labelled as in-sample upper bounds."""
        return labelled(self.metric)


@dataclass(frozen=True)
class AbstentionFacts:
    """How a split's abstention was measured and what it shows, beyond the table rows: the cross-fit's rule and
    each phase's fold thresholds (heldout_f1 / heldout_exact), the in-sample best thresholds, the always-abstain
    F1, each phase's held-out F1 against always abstaining (paired: Δ = phase − abstain), and log10 of the
    no-answer probability per class (the plot; not written to summary.json)."""

    rule: str
    folds: int
    thresholds: dict[str, dict[str, list[float]]]  # phase -> heldout_f1 / heldout_exact -> one per fold
    best_thresholds: dict[str, float]  # phase -> best_f1_thresh (in-sample)
    abstain_f1: float
    versus_abstain: dict[str, Paired] = field(default_factory=dict)  # phase -> heldout_f1: abstain (first) vs phase
    log10_p: dict[str, dict[str, list[float]]] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class SplitFacts:
    """What one evaluated split is: size, composition, the intervals' unit and method, and split-level tests."""

    task: str
    split: str
    n: int
    composition: str
    resampling: str  # e.g. "whole articles (35 articles)" or "examples (i.i.d.)"
    baseline: str  # e.g. "always abstain" or "majority class (`positive`) of the training split"
    mcnemar: dict[str, float] | None = None  # classification: McNemar's exact test on correct/incorrect
    interval: str = ""  # e.g. "cluster bootstrap, 1000 resamples" or "cluster jackknife t, G−1 = 19 df"
    iid_interval: str = ""  # the i.i.d. comparison width's method
    abstention: AbstentionFacts | None = None


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
    n = len(zeroshot)
    keys = [key for key in task.metrics.headline if all(is_number(scores[p].get(key)) for p in PHASES)]
    first, second = prediction_statistic(task, zeroshot, keys), prediction_statistic(task, finetuned, keys)
    unit = resampling(task, zeroshot, resamples)
    paired = paired_intervals(first, second, n, unit, seed)
    for phase, values in zip(PHASES, ({k: p.first for k, p in paired.items()},
                                      {k: p.second for k, p in paired.items()}), strict=True):
        check_recomputed(values, scores[phase], f"{task.name} {split} {phase}:", "the predictions",
                         "the metrics file", "either the predictions and metrics files are out of step (run `dvc "
                         "repro`), or tuneval.scoring.stats no longer scores like tuneval.scoring.scores.score")
    iid_unit = iid_resampling(n, resamples)
    iid = paired if unit.unit == "example" else paired_intervals(first, second, n, iid_unit, seed)
    baseline_records, baseline_name = trivial_baseline(task, finetuned, train_label_counts or {})
    baseline = prediction_statistic(task, baseline_records, keys)(np.ones((1, n))) if keys else {}
    abstention = abstention_facts(task, zeroshot, finetuned, baseline_records, unit, seed) if task.abstain else None
    rows = []
    for key in keys:
        result = paired.get(key)
        iid_ci = iid[key].delta_ci if key in iid else None
        has_interval = result is not None and any(ci is not None for ci in (result.first_ci, result.second_ci,
                                                                              result.delta_ci))
        rows.append(Row(task=task.name, split=split, n=n, metric=key, scale=task.metrics.scale,
                        zeroshot=float(scores["zeroshot"][key]), finetuned=float(scores["finetuned"][key]),
                        zeroshot_ci=result.first_ci if result else None,
                        finetuned_ci=result.second_ci if result else None,
                        delta_ci=result.delta_ci if result else None,
                        baseline=float(baseline[key][0]) if key in baseline else None,
                        delta_iid_width=iid_ci.width if iid_ci else None,
                        mde=result.mde if result else None,
                        interval=result.method if has_interval and result else "",
                        iid_interval=iid[key].method if iid_ci else "",
                        note=metric_note(key, abstention)))
    mcnemar = None
    if task.kind == "multiple_choice":
        mcnemar = mcnemar_exact([r["actual"] == r["predicted"] for r in zeroshot],
                                [r["actual"] == r["predicted"] for r in finetuned])
    facts = SplitFacts(task=task.name, split=split, n=n, composition=record_composition(task, zeroshot),
                       resampling=unit.describe(), baseline=baseline_name, mcnemar=mcnemar,
                       interval=unit.interval(), iid_interval=iid_unit.interval(), abstention=abstention)
    return rows, facts


def abstention_facts(task: Task, zeroshot: Sequence[dict[str, Any]], finetuned: Sequence[dict[str, Any]],
                     abstain_records: Sequence[dict[str, Any]], unit: Resampling,
                     seed: int) -> AbstentionFacts | None:
    """The split's AbstentionFacts from both phases' (aligned) records and the always-abstain records; None when
    the cross-fit is undefined (fewer than two articles)."""
    records = {"zeroshot": zeroshot, "finetuned": finetuned}
    computed = {phase: A.abstention_scores(task, phase_records) for phase, phase_records in records.items()}
    if not all("heldout_rule" in values for values in computed.values()):
        return None
    n = len(zeroshot)
    best = {phase: float(prediction_statistic(task, phase_records, ["best_f1_thresh"])(np.ones((1, n)))
                         ["best_f1_thresh"][0]) for phase, phase_records in records.items()}
    abstain = prediction_statistic(task, abstain_records, ["heldout_f1"])
    versus = {}
    for phase, phase_records in records.items():
        result = paired_intervals(abstain, prediction_statistic(task, phase_records, ["heldout_f1"]), n, unit,
                                  seed).get("heldout_f1")
        if result is not None:
            versus[phase] = result
    return AbstentionFacts(
        rule=computed["zeroshot"]["heldout_rule"], folds=len(computed["zeroshot"]["heldout_f1_thresholds"]),
        thresholds={phase: {key: list(values[f"{key}_thresholds"]) for key in A.HELDOUT_KEYS}
                    for phase, values in computed.items()},
        best_thresholds=best, abstain_f1=float(abstain(np.ones((1, n)))["heldout_f1"][0]), versus_abstain=versus,
        log10_p={phase: {kind: [float(v) for v in values] for kind, values in A.log10_no_answer(phase_records).items()}
                 for phase, phase_records in records.items()})


def metric_note(key: str, abstention: AbstentionFacts | None) -> str:
    """How to read a metric whose definition matters: best_* (in-sample), heldout_* (cross-fit), the AUROC."""
    if key in A.IN_SAMPLE_KEYS:
        return A.IN_SAMPLE_NOTE
    if key in A.HELDOUT_KEYS and abstention is not None:
        folds = "; ".join(f"{PHASE_NAMES[phase]} {A.thresholds_text(values[key])}"
                          for phase, values in abstention.thresholds.items())
        return (f"no-answer threshold of each fold chosen on the other folds by the official best-threshold sweep "
                f"({abstention.rule}); fold thresholds: {folds}")
    if key == A.AUROC_KEY:
        return "AUROC x 100 of the no-answer probability, unanswerable = positive: 50 = chance"
    return ""


def trivial_baseline(task: Task, records: Sequence[dict[str, Any]],
                     train_label_counts: Mapping[str, int]) -> tuple[list[dict[str, Any]], str]:
    """The task's trivial predictor (tasks/<task>.yaml `baseline`) as prediction records for `records`' examples,
    and its name: majority_class predicts the training split's most frequent label everywhere (DataError without
    the counts); always_abstain answers nothing, with the same no-answer probability (1) everywhere, so its F1 is
    the unanswerable share and its no-answer AUROC 50."""
    if task.baseline == "majority_class":
        if not train_label_counts:
            raise DataError(f"{task.name}: no training label counts for the majority-class baseline (run.json of "
                            "the fine-tuned predictions lacks train_label_counts: rerun the evaluation, dvc repro)")
        label = max(task.labels, key=lambda value: train_label_counts.get(str(value), 0))
        name = task.label_names[task.labels.index(label)]
        return ([{**r, "predicted": name} for r in records],
                f"majority class of the training split (always `{name}`)")
    if task.baseline == "always_abstain":
        return ([{**r, "prediction": "", "no_answer_prob": 1.0, "no_answer_logprob": 0.0} for r in records],
                "always abstain")
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


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bounds(prefix: str, ci: Interval | None) -> dict[str, float]:
    return {} if ci is None else {f"{prefix}_low": ci.low, f"{prefix}_high": ci.high}


def summary_metrics(rows: Sequence[Row], facts: Sequence[SplitFacts], seed: int,
                    resamples: int = RESAMPLES) -> dict[str, Any]:
    """report/summary.json: {task: {split: {n, composition, resampling, interval, iid_interval, baseline,
    [mcnemar_p], metric: {zeroshot, zeroshot_low, ..., delta_high, delta_iid_width, mde, baseline, interval,
    [note]}}}}, the abstention facts {abstention: {task: {split: ...}}} and the interval methods' settings."""
    summary: dict[str, Any] = {
        "bootstrap": {"resamples": resamples, "level": LEVEL, "seed": seed},
        "intervals": {"cluster bootstrap": f"percentile, from {MIN_CLUSTERS} clusters up",
                      "cluster jackknife t": (f"delete-one-cluster jackknife SE x t quantile on G−1 df, "
                                              f"{MIN_JACKKNIFE_CLUSTERS} to {MIN_CLUSTERS - 1} clusters"),
                      "none": f"fewer than {MIN_JACKKNIFE_CLUSTERS} clusters"},
    }
    for fact in facts:
        entry = summary.setdefault(fact.task, {}).setdefault(fact.split, {})
        entry.update(n=fact.n, composition=fact.composition, resampling=fact.resampling, interval=fact.interval,
                     iid_interval=fact.iid_interval, baseline=fact.baseline)
        if fact.mcnemar is not None:
            entry.update(mcnemar_p=fact.mcnemar["p"], mcnemar_only_zeroshot=fact.mcnemar["only_first"],
                         mcnemar_only_finetuned=fact.mcnemar["only_second"])
        if fact.abstention is not None:
            summary.setdefault("abstention", {}).setdefault(fact.task, {})[fact.split] = _abstention_json(
                fact.abstention, [r for r in rows if (r.task, r.split) == (fact.task, fact.split)])
    for row in rows:
        entry = summary.setdefault(row.task, {}).setdefault(row.split, {"n": row.n})
        values: dict[str, Any] = {}
        for name, value, ci in (("zeroshot", row.zeroshot, row.zeroshot_ci),
                                ("finetuned", row.finetuned, row.finetuned_ci), ("delta", row.delta, row.delta_ci)):
            values[name] = value
            values.update(_bounds(name, ci))
        for name in ("delta_iid_width", "mde", "baseline"):
            if getattr(row, name) is not None:
                values[name] = getattr(row, name)
        values["interval"] = row.interval or "no interval"
        if row.note:
            values["note"] = row.note
        entry[row.metric] = values
    return summary


def _abstention_json(facts: AbstentionFacts, rows: Sequence[Row]) -> dict[str, Any]:
    """One split's abstention entry: the rule and, per phase, greedy F1, held-out F1 (with its thresholds and its
    difference from always abstaining), best_f1 (labelled in-sample), AUROC and answer rate, each with its
    interval and the interval's method, where the report has the row."""
    by_metric = {row.metric: row for row in rows}
    out: dict[str, Any] = {"heldout_rule": facts.rule, "folds": facts.folds, "fold_seed": A.FOLD_SEED,
                           "always_abstain_f1": facts.abstain_f1, "best_f1_note": A.IN_SAMPLE_NOTE}
    shown = {"greedy_f1": A.GREEDY_F1, **{key: key for key in A.HELDOUT_KEYS},
             f"{A.IN_SAMPLE_KEYS[1]}_in_sample": A.IN_SAMPLE_KEYS[1], A.AUROC_KEY: A.AUROC_KEY,
             A.ANSWER_RATE: A.ANSWER_RATE}
    for phase in PHASES:
        entry: dict[str, Any] = {}
        for name, key in shown.items():
            if key in by_metric:
                row = by_metric[key]
                entry[name] = getattr(row, phase)
                entry.update(_bounds(name, getattr(row, f"{phase}_ci")))
                entry[f"{name}_interval"] = row.interval or "no interval"
        for key in A.HELDOUT_KEYS:
            entry[f"{key}_thresholds"] = facts.thresholds[phase][key]
        entry["best_f1_thresh_in_sample"] = facts.best_thresholds[phase]
        versus = facts.versus_abstain.get(phase)
        if versus is not None:
            entry["heldout_f1_minus_always_abstain"] = versus.delta
            entry.update(_bounds("heldout_f1_minus_always_abstain", versus.delta_ci))
        out[phase] = entry
    return out


# ------------------------------------------------------------------------------------------------ the table
def _number(value: float, decimals: int, signed: bool = False) -> str:
    value = round(value, decimals) or 0.0  # a tiny negative prints 0.00, not -0.00
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


def _bracket(ci: Interval | None, decimals: int, signed: bool = False) -> str:
    return "" if ci is None else f" [{_number(ci.low, decimals, signed)}, {_number(ci.high, decimals, signed)}]"


TABLE_HEAD = ["split", "metric", "baseline", "zero-shot [95% CI]", "fine-tuned [95% CI]", "Δ [paired 95% CI]",
              "Δ CI width: clustered / i.i.d.", "MDE", "n"]


def table_lines(rows: Sequence[Row], with_task: bool = True, metric_label: Callable[[str], str] = str) -> list[str]:
    """Markdown table: [task |] split | metric | baseline | zero-shot | fine-tuned | Δ | widths | MDE | n. A metric
    whose threshold is chosen in-sample (best_f1) is labelled so, whatever `metric_label` calls it."""
    head = (["task"] if with_task else []) + TABLE_HEAD
    align = ["---"] * (len(head) - 7) + ["---:"] * 7
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    for r in rows:
        decimals = SCALES[r.scale]
        width = _optional(r.delta_ci.width if r.delta_ci else None, decimals)
        label = labelled(r.metric, metric_label(r.metric))
        cells = [*([r.task] if with_task else []), r.split, label, _optional(r.baseline, decimals),
                 _cell(r.zeroshot, r.zeroshot_ci, decimals), _cell(r.finetuned, r.finetuned_ci, decimals),
                 _cell(r.delta, r.delta_ci, decimals, signed=True, bold=r.significant),
                 f"{width} / {_optional(r.delta_iid_width, decimals)}", _optional(r.mde, decimals), f"{r.n:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def split_lines(facts: Sequence[SplitFacts]) -> list[str]:
    """One bullet per evaluated split: its size and make-up, the intervals' unit and method, the baseline,
    McNemar."""
    lines = []
    for f in facts:
        if f.interval and f.interval != "no interval" and f.interval != f.iid_interval:
            intervals = f"intervals: {f.interval} over {f.resampling}; i.i.d. widths: {f.iid_interval}"
        elif f.interval and f.interval != "no interval":  # examples are the units: one method for both widths
            intervals = f"intervals: {f.interval} over {f.resampling}"
        else:
            intervals = f"intervals: {f.resampling}"
        line = f"- `{f.task}` {f.split}: {f.n:,} examples ({f.composition}); {intervals}; baseline: {f.baseline}"
        if f.mcnemar is not None:
            line += (f"; McNemar exact p = {f.mcnemar['p']:.3g} ({f.mcnemar['only_first']} right only zero-shot, "
                     f"{f.mcnemar['only_second']} right only fine-tuned)")
        lines.append(line + ".")
    return lines


def findings(rows: Sequence[Row], facts: Sequence[SplitFacts], extra: Sequence[str] = ()) -> list[str]:
    """Result sentences, generated from the numbers (so the README never states what the report does not): per
    split, the first headline metric against the baseline in both phases and whether the change is resolved,
    then what the abstention numbers show (tasks that abstain); then `extra`, finding lines other sections
    generate (e.g. a learning curve), as given."""
    sentences = []
    for f in facts:
        split_rows = [r for r in rows if (r.task, r.split) == (f.task, f.split)]
        if not split_rows:
            continue
        sentences.append(_headline_finding(f, split_rows))
        if f.abstention is not None:
            sentences.append(abstention_finding(f, split_rows))
    return [*sentences, *extra]


def _headline_finding(f: SplitFacts, rows: Sequence[Row]) -> str:
    first = rows[0]
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
    answered = next((r for r in rows if r.metric == "answered"), None)
    if answered is not None:  # how often the model abstains, beside how often it should (the split line)
        text += (f" It answers {answered.finetuned:.{d}f}% of the questions fine-tuned and "
                 f"{answered.zeroshot:.{d}f}% zero-shot ({f.composition}).")
    return text


def _against(ci: Interval | None, value: float, reference: float, what: str) -> str:
    """`above X beyond resampling noise` / `below X beyond ...` / `not distinguishable from X` by an interval of
    value − reference (None: the sign alone, said to have no interval; `the same score as X in every resample`
    when the difference is 0 throughout, as when a held-out threshold abstains on every question)."""
    if ci is None:
        return f"{_relation(value, reference)} {what} (no interval)"
    if ci.low == ci.high == 0 and value == reference:
        return f"the same score as {what} in every resample"
    if ci.low > 0:
        return f"above {what} beyond resampling noise"
    if ci.high < 0:
        return f"below {what} beyond resampling noise"
    return f"not distinguishable from {what}"


def abstention_finding(f: SplitFacts, rows: Sequence[Row]) -> str:
    """What the split's abstention numbers show, from the numbers: whether each phase's no-answer AUROC interval
    excludes chance, whether its held-out-threshold F1 beats always abstaining (paired interval of the
    difference), how far the in-sample best_f1 lies from the held-out F1, and how often greedy decoding answers."""
    assert f.abstention is not None
    by_metric = {r.metric: r for r in rows}
    d = SCALES[rows[0].scale]
    order = ("finetuned", "zeroshot")
    sentences = []
    auroc = by_metric.get(A.AUROC_KEY)
    if auroc is not None:
        said = []
        for phase in order:
            value, ci = getattr(auroc, phase), getattr(auroc, f"{phase}_ci")
            verdict = ("no interval" if ci is None else
                       "excludes chance" if ci.excludes(CHANCE_AUROC) else "includes chance")
            said.append(f"{PHASE_NAMES[phase]} {_number(value, d)}{_bracket(ci, d)} ({verdict})")
        text = f"No-answer AUROC ({CHANCE_AUROC:g} = chance): " + ", ".join(said)
        if auroc.delta_ci is not None:
            text += (f"; Δ {_number(auroc.delta, d, True)}{_bracket(auroc.delta_ci, d, True)}, "
                     f"{'more than' if auroc.significant else 'within'} resampling noise")
        sentences.append(text)
    heldout = by_metric.get("heldout_f1")
    if heldout is not None:
        said = []
        for phase in order:
            versus = f.abstention.versus_abstain.get(phase)
            value = getattr(heldout, phase)
            verdict = _against(versus.delta_ci if versus else None, value, f.abstention.abstain_f1,
                               "always abstaining")
            delta = "" if versus is None else (
                f", Δ {_number(versus.delta, d, True)}{_bracket(versus.delta_ci, d, True)}")
            said.append(f"{PHASE_NAMES[phase]} {_number(value, d)} ({verdict}{delta})")
        sentences.append(f"F1 with a held-out no-answer threshold ({f.abstention.rule}): "
                         + ", ".join(said) + f"; always abstaining: {_number(f.abstention.abstain_f1, d)}")
        best = by_metric.get("best_f1")
        if best is not None:
            gaps = ", ".join(f"{_number(getattr(best, p) - getattr(heldout, p), d, True)} {PHASE_NAMES[p]}"
                             for p in order)
            sentences.append(f"best_f1 ({A.IN_SAMPLE_LABEL}) lies {gaps} from it")
    greedy, answered = by_metric.get("f1"), by_metric.get("answered")
    if greedy is not None and answered is not None:
        sentences.append(f"Greedy answers (no threshold): {_number(answered.finetuned, d)}% answered fine-tuned, "
                         f"{_number(answered.zeroshot, d)}% zero-shot")
    text = ". ".join(sentences) if sentences else "no abstention metric is in the task's headline"
    return f"- `{f.task}` {f.split} abstention: {text}."


def _relation(value: float, baseline: float) -> str:
    return "above" if value > baseline else "below" if value < baseline else "level with"


def readme_block(rows: Sequence[Row], facts: Sequence[SplitFacts] = (), extra_findings: Sequence[str] = ()) -> str:
    """The results between the README markers, exactly as README.md holds them: splits, table, findings."""
    parts = [README_START, *split_lines(facts), "", *table_lines(rows)]
    if facts or extra_findings:
        parts += ["", *findings(rows, facts, extra_findings)]
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
    """How to read the intervals: the methods, which one each task and split used, and which metrics have none."""
    used = dict.fromkeys((r.task, r.split, r.interval, r.iid_interval) for r in rows if r.interval)
    per_split = "; ".join(f"`{task}` {split}: {interval} (i.i.d. widths: {iid or 'none'})"
                          for task, split, interval, iid in used)
    note = (f"Brackets: {LEVEL:.0%} intervals over the unit each split names below (whole articles for SQuAD v2: "
            f"its questions cluster in articles; examples for SST-2). With {MIN_CLUSTERS} or more units they are "
            f"percentile-bootstrap intervals ({resamples:,} seeded resamples of whole units); with "
            f"{MIN_JACKKNIFE_CLUSTERS} to {MIN_CLUSTERS - 1} units, where a bootstrap is too narrow, the estimate "
            "± a t quantile on G−1 degrees of freedom x the delete-one-cluster jackknife SE (G units); with fewer, "
            "none. " + (f"Used here: {per_split}. " if per_split else "")
            + "The Δ interval is paired (both phases recomputed on the same resamples or deletions). A **bold** Δ: "
            "its interval excludes 0. The i.i.d. width (examples as if independent) is beside the clustered one; "
            "MDE is the smallest Δ this sample detects with 80% power at the 5% level ((z_0.975 + z_0.8) = 2.8 "
            "bootstrap SEs of Δ, or (t_0.975 + t_0.8 on G−1 df) jackknife SEs). best_f1 / best_exact are "
            f"{A.IN_SAMPLE_LABEL}s: their no-answer threshold is chosen on the reported questions themselves. "
            "Baseline: the task's trivial predictor. The intervals hold the trained model fixed: they cover which "
            "examples were scored, not training variance (another training seed trains another model: `dvc exp "
            "run -S seed=2`, then `tuneval compare`). Method: `src/tuneval/scoring/stats.py`; metric conventions: "
            "`CONVENTIONS` in `src/tuneval/scoring/metrics.py`.")
    without = sorted({f"{r.task} {r.metric}" for r in rows if r.delta_ci is None})
    return note + (f" No interval: {', '.join(without)}." if without else "")


def abstention_lines(rows: Sequence[Row], label: Callable[[str], str] = str) -> list[str]:
    """The abstention numbers of every split that has them, one bullet each: greedy F1, held-out-threshold F1
    (how the thresholds were chosen, and the thresholds), best_f1 labelled in-sample, no-answer AUROC, answer
    rate, each phase with its interval and the interval's method. `label` names metrics (the card: display
    names)."""
    lines = []
    for key in dict.fromkeys((r.task, r.split) for r in rows):
        split_rows = {r.metric: r for r in rows if (r.task, r.split) == key}
        shown = [m for m in A.REPORTED if m in split_rows]
        if not any(m in split_rows for m in (*A.KEYS, *A.IN_SAMPLE_KEYS)):
            continue
        lines.append(f"- `{key[0]}` {key[1]}:")
        for metric in shown:
            row = split_rows[metric]
            d = SCALES[row.scale]
            how = {A.GREEDY_F1: "Greedy answers, no threshold.",
                   A.ANSWER_RATE: "Greedy decoding's answer rate, percent."}.get(metric) or (
                f"{row.note[:1].upper()}{row.note[1:]}.")
            cells = ", ".join(f"{PHASE_NAMES[p]} {_number(getattr(row, p), d)}{_bracket(getattr(row, f'{p}_ci'), d)}"
                              for p in PHASES)
            lines.append(f"  - {labelled(metric, label(metric))}: {cells}; Δ {_number(row.delta, d, True)}"
                         f"{_bracket(row.delta_ci, d, True)} ({row.interval or 'no interval'}). {how}".rstrip())
    return lines


def _fact(value: Any) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def check_same_run(task: str, runs: Mapping[str, Mapping[str, Any]], files: Mapping[str, Path],
                   allow_mixed_routes: bool = False) -> str | None:
    """Refuse phases scored with different run settings: their difference would not be fine-tuning's alone. With
    `model.dtype: auto` the dtype is this machine's choice, which DVC cannot see: zero-shot metrics from a machine
    without native bf16 look up to date on one with it, while the fine-tuned model is scored in bf16 there.

    Phases that both record a compute route (`run.route`) must also share it (tuneval.route.route_difference:
    device kind, bf16 route, CPU flags or GPU capability, torch major.minor), unless `allow_mixed_routes`
    (params report.allow_mixed_routes): then they are paired and the returned line labels the pairing
    ("phases scored on different compute routes: ..."). None when nothing needs saying; runs without a route
    (older files) are accepted."""
    differ = [f"{key} {runs[PHASES[0]].get(key)} vs {runs[PHASES[1]].get(key)}" for key in RUN_FACTS
              if runs[PHASES[0]].get(key) != runs[PHASES[1]].get(key)]
    first, second = (files[phase] for phase in PHASES)
    if differ:
        raise DataError(
            f"{first} and {second} were scored with different settings ({', '.join(differ)}), so the change "
            f"between them is not fine-tuning's alone. Score both phases here: dvc repro -f zeroshot_eval@{task} "
            f"eval@{task} (and pin model.dtype in params.yaml if it is `auto`).")
    reason = route_note(runs)
    if reason is None:
        return None
    if not allow_mixed_routes:
        from tuneval.route import route_line

        raise DataError(
            f"{first} and {second} were scored on different compute routes ({reason}; zero-shot: "
            f"{route_line(runs[PHASES[0]].get('route'))}; fine-tuned: {route_line(runs[PHASES[1]].get('route'))}), "
            "which move borderline predictions, so the change between them is not fine-tuning's alone. Score both "
            f"phases on one machine: dvc repro -f zeroshot_eval@{task} eval@{task}; or set "
            "report.allow_mixed_routes: true to pair them anyway (the report labels the pairing).")
    return f"{MIXED_ROUTES}: {reason}"


def route_note(runs: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Why the phases' recorded compute routes would not give the same predictions (tuneval.route's
    route_difference); None when they would, or when either phase records none."""
    routes = [runs[phase].get("route") for phase in PHASES]
    if not all(routes):
        return None
    from tuneval.route import route_difference

    return route_difference(routes[0], routes[1])


def route_text(runs: Mapping[str, Mapping[str, Any]]) -> str:
    """`cpu AMD EPYC (avx2), bf16 as fp32 GEMMs, ... (both phases)`, or each phase's route (tuneval.route's
    route_line: device and bf16 route first; "unrecorded" for older runs), with the mixed-route label where the
    routes differ."""
    from tuneval.route import route_line as describe

    lines = {phase: describe(runs[phase].get("route")) for phase in PHASES}
    if lines[PHASES[0]] == lines[PHASES[1]]:
        text = f"{lines[PHASES[0]]} (both phases)"
    else:
        text = "; ".join(f"{PHASE_NAMES[phase]} {line}" for phase, line in lines.items())
    reason = route_note(runs)
    return text + (f". **{MIXED_ROUTES}**: {reason}" if reason else "")


def compute_route_line(task: Task, runs: Mapping[str, Mapping[str, Any]]) -> str:
    """`- `sst2` compute route: <route_text>`: a line of the report's header, one per task."""
    return f"- `{task.name}` compute route: {route_text(runs)}"


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
                 json_path: Path, abstention_png: Path | None = None, extra_findings: Sequence[str] = (),
                 protocol_lines: Sequence[str] = (), curve_lines: Sequence[str] = ()) -> None:
    """summary.md (header, per-task run facts and compute routes, the README block, the abstention section),
    summary.png, summary.json and the abstention plot (default: abstention.png beside summary.md).

    `runs` maps task name -> phase -> the `run` entry of that metrics file; `extra_findings` are finding lines
    other sections generate, appended to the findings; `protocol_lines` say, per task, which data protocol produced
    the results and why; `curve_lines` (findings of the committed learning curves) get a section of their own.
    """
    abstention_png = md_path.with_name(ABSTENTION_PNG) if abstention_png is None else abstention_png
    lines = [
        f"# tuneval summary: {params.model.name}",
        "",
        f"lr {params.lr}, {params.epochs} epochs, batch size {params.batch_size}, training seed {params.seed}, "
        f"training examples {_per_task({t: params.data.train_examples[t] for t in params.tasks})}, data "
        f"`{params.data.source}` (data.seed "
        f"{params.data.seed}). Evaluation, per task:",
        "",
        *(run_line(task, runs[task.name]) for task in tasks),
        *(compute_route_line(task, runs[task.name]) for task in tasks),
        *protocol_lines,
        "",
        method_note(rows),
        "",
        readme_block(rows, facts, extra_findings),
    ]
    abstaining = abstention_lines(rows)
    if abstaining or any(f.abstention for f in facts):
        lines += ["", "## Abstention", "",
                  "SQuAD v2 abstention by one rule for both phases: F1 of the greedy answers; F1 with a no-answer "
                  "threshold that never saw the questions it decides (cross-fit over article folds); the official "
                  f"best_f1 ({A.IN_SAMPLE_LABEL}); the no-answer probability's AUROC (50 = chance); the answer "
                  "rate.", "", *abstaining, "",
                  f"![no-answer probability per class, zero-shot and fine-tuned]({_relative(abstention_png, md_path)})"]
    if curve_lines:
        lines += ["", "## Learning curves", "",
                  "Fine-tuned score against training size, from the committed DVC experiment sweeps (`tuneval curve`, "
                  "report/curves/<task>/): each point is the mean over training seeds (each seed also redraws the "
                  "training examples).", "", *curve_lines]
    write_text(md_path, "\n".join(lines) + "\n")
    summary = summary_metrics(rows, facts, params.data.seed)
    summary["routes"] = {task.name: {phase: run.get("route") for phase, run in runs[task.name].items()}
                         for task in tasks}  # the compute route of every phase (null: unrecorded)
    write_json(json_path, summary)
    _plot(rows, png_path)
    plot_abstention(facts, abstention_png)


def _relative(path: Path, md_path: Path) -> str:
    """`path` as summary.md links it: relative to its folder where it lies under it, else as given."""
    try:
        return path.resolve().relative_to(md_path.resolve().parent).as_posix()
    except ValueError:
        return path.as_posix()


def _per_task(counts: Mapping[str, int | None]) -> str:
    """`sst2 400, squad_v2 200` (`all` for null)."""
    return ", ".join(f"{task} {'all' if n is None else n}" for task, n in counts.items())


def _error_bars(values: Sequence[float], cis: Sequence[Interval | None]) -> list[list[float]]:
    """matplotlib yerr (below, above) from intervals; 0 where there is none."""
    below = [max(v - ci.low, 0.0) if ci else 0.0 for v, ci in zip(values, cis, strict=True)]
    above = [max(ci.high - v, 0.0) if ci else 0.0 for v, ci in zip(values, cis, strict=True)]
    return [below, above]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})


def _plot(rows: Sequence[Row], png_path: Path) -> None:
    plt = _pyplot()
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
        ax.set_xticks(list(xs), [r.label.replace(" (", "\n(") for r in sub], rotation=35, ha="right")
        ax.set_title(f"{task} ({split}, n={sub[0].n:,})")
        ax.set_ylabel(sub[0].scale)
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, png_path)
    plt.close(fig)


def plot_abstention(facts: Sequence[SplitFacts], png_path: Path) -> None:
    """report/abstention.png: per split that abstains, one panel per phase: histograms (shared bins) of log10 of
    the no-answer probability for answerable and unanswerable questions, with the held-out F1 thresholds of the
    folds as dashed lines. A figure that says so when no split abstains (the stage's output always exists)."""
    plt = _pyplot()
    splits = [f for f in facts if f.abstention is not None and f.abstention.log10_p]
    fig, axes = plt.subplots(max(len(splits), 1), len(PHASES), figsize=(5.5 * len(PHASES), 3.6 * max(len(splits), 1)),
                             squeeze=False)
    if not splits:
        for ax in axes[0]:
            ax.axis("off")
        axes[0][0].text(0.5, 0.5, "no task in this report abstains", ha="center", va="center",
                        transform=axes[0][0].transAxes)
    for row, f in zip(axes, splits, strict=False):
        assert f.abstention is not None
        every = np.concatenate([np.asarray(v, dtype=float) for per_class in f.abstention.log10_p.values()
                                for v in per_class.values()] or [np.zeros(1)])
        every = every[np.isfinite(every)]
        low = float(every.min()) if every.size else 0.0
        bins = np.linspace(low, max(float(every.max()) if every.size else 0.0, low + 1e-6), 41)
        for ax, phase in zip(row, PHASES, strict=True):
            for kind, color in (("answerable", "#2f6fb0"), ("unanswerable", "#d9822b")):
                values = np.asarray(f.abstention.log10_p[phase][kind], dtype=float)
                ax.hist(values[np.isfinite(values)], bins=bins, alpha=0.55, color=color,
                        label=f"{kind} ({values.size:,})")
            for threshold in f.abstention.thresholds[phase]["heldout_f1"]:
                if threshold > 0:
                    ax.axvline(np.log10(threshold), color="#444444", linestyle="--", linewidth=0.8)
            ax.set_title(f"{f.task} {f.split}: {PHASE_NAMES[phase]}")
            ax.set_xlabel("log10 P(no answer)  (dashed: held-out F1 thresholds)")
            ax.set_ylabel("questions")
            ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, png_path)
    plt.close(fig)
