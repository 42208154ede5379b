"""Is a change more than noise? 95% intervals by the percentile bootstrap over examples, paired between phases.

Method: draw the n evaluated examples with replacement, ``resamples`` times (1,000 by default; numpy
``default_rng(seed)``), recompute the metric on every resample, and report the 2.5th and 97.5th percentiles of
the resampled values (the percentile bootstrap; Efron & Tibshirani 1993, ch. 13). The zero-shot -> fine-tuned
difference is *paired*: each resample draws the same example indices for both phases, recomputes both metrics on
them and keeps the difference, so its interval reflects how the two models differ on the same examples, not how
hard the examples happen to be. A difference whose interval excludes 0 is unlikely to be resampling noise at the
5% level (per metric: nothing corrects for reading many metrics at once).

A resample is held as counts (how often each example was drawn), so a metric built from sums over examples (a
mean, a ratio of sums, a confusion matrix, BLEU's n-gram counts) is one matrix product per batch of resamples;
the SQuAD v2 threshold sweep (best_exact / best_f1) reruns on every resample. Resamples on which a metric is
undefined (e.g. no answerable question drawn, for HasAns_f1) are left out of its percentiles. The per-example
terms come from :mod:`tuneval.metrics`; tests check that on the full set and on resamples they reproduce
``tuneval.evaluation.score`` of the same records. Metrics without per-example terms get no interval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuneval import metrics as M
from tuneval.errors import DataError
from tuneval.tasks import Task

RESAMPLES = 1000
LEVEL = 0.95
BATCH = 100  # resamples drawn and scored at a time: bounds memory on an 11,873-question dev set
NO_ANSWER_THRESHOLD = 1.0  # squad_v2_scores' default, which the engine's score() uses

Statistic = Callable[[np.ndarray], dict[str, np.ndarray]]
"""counts of shape (resamples, n) -> {metric key: values of shape (resamples,)} (NaN where undefined)."""


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class Paired:
    """One metric of two phases on the same examples: full-set values and 95% intervals (None: undefined)."""

    first: float
    second: float
    first_ci: Interval | None
    second_ci: Interval | None
    delta_ci: Interval | None

    @property
    def delta(self) -> float:
        return self.second - self.first


# ------------------------------------------------------------------------------------------- the bootstrap
def resample_counts(n: int, resamples: int = RESAMPLES, seed: int = 0, batch: int = BATCH) -> Iterator[np.ndarray]:
    """Batches of bootstrap resamples of n examples, as float counts of shape (<= batch, n); seeded."""
    if n < 1 or resamples < 1:
        raise ValueError(f"need n >= 1 examples and resamples >= 1, got n={n}, resamples={resamples}")
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, batch):
        size = min(batch, resamples - start)
        draws = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
        yield np.bincount(draws.ravel(), minlength=size * n).reshape(size, n).astype(float)


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> Interval | None:
    """The central `level` percentile interval of the finite values; None if there are none."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return None
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(float(low), float(high))


def paired_bootstrap(first: Statistic, second: Statistic, n: int, resamples: int = RESAMPLES, seed: int = 0,
                     level: float = LEVEL) -> dict[str, Paired]:
    """Every metric both statistics report: full-set values, each phase's interval and the paired difference's
    interval, all from the same resampled example indices."""
    full = np.ones((1, n))
    first_full, second_full = first(full), second(full)
    keys = [key for key in first_full if key in second_full]
    draws: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {key: ([], []) for key in keys}
    for counts in resample_counts(n, resamples, seed):
        a, b = first(counts), second(counts)
        for key in keys:
            draws[key][0].append(a[key])
            draws[key][1].append(b[key])
    results = {}
    for key in keys:
        a, b = np.concatenate(draws[key][0]), np.concatenate(draws[key][1])
        results[key] = Paired(first=float(first_full[key][0]), second=float(second_full[key][0]),
                              first_ci=percentile_interval(a, level), second_ci=percentile_interval(b, level),
                              delta_ci=percentile_interval(b - a, level))
    return results


def align_by_id(first: Sequence[dict[str, Any]], second: Sequence[dict[str, Any]],
                what: str = "predictions") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Both phases' records in the first one's order; DataError unless they hold the same (unique) ids."""
    by_id = {record["id"]: record for record in second}
    ids = [record["id"] for record in first]
    if len(by_id) != len(second) or len(set(ids)) != len(ids) or set(ids) != set(by_id):
        only_first, only_second = sorted(set(ids) - set(by_id)), sorted(set(by_id) - set(ids))
        raise DataError(
            f"{what}: the two phases must score the same examples once each, but {len(ids)} vs {len(second)} "
            f"records differ (only in the first: {only_first[:5]}, only in the second: {only_second[:5]}); "
            "rerun both evaluations (dvc repro)"
        )
    return list(first), [by_id[i] for i in ids]


# ----------------------------------------------------------------------------- statistics of prediction files
def prediction_statistic(task: Task, records: Sequence[dict[str, Any]], keys: Sequence[str]) -> Statistic:
    """The `keys` (those with per-example terms) of the engine's score(task, records), on any resample.

    Records are the engine's prediction records: SST-2 style {id, actual, predicted, ...}, SQuAD v2 style
    {id, prediction, no_answer_prob, gold, ...}. Keys without per-example terms are absent from the result.
    """
    if task.kind == "multiple_choice":
        return _classification_statistic(task.label_names, records, keys)
    return _squad_statistic(records, keys)


def _ratio(numerator: np.ndarray, denominator: np.ndarray, undefined: float = 0.0) -> np.ndarray:
    """numerator / denominator elementwise, `undefined` where the denominator is 0."""
    out = np.full(np.broadcast(numerator, denominator).shape, undefined, dtype=float)
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


def classification_from_confusion(confusion: np.ndarray, label_names: Sequence[str]) -> dict[str, np.ndarray]:
    """classification_metrics' scores from confusion matrices of shape (..., k, k), rows actual, columns
    predicted, with its definitions (metrics.CONVENTIONS["classification"]); tests check they agree."""
    k = len(label_names)
    tp = np.diagonal(confusion, axis1=-2, axis2=-1)
    predicted, actual = confusion.sum(axis=-2), confusion.sum(axis=-1)
    precision, recall, f1 = _ratio(tp, predicted), _ratio(tp, actual), _ratio(2 * tp, predicted + actual)
    macro = {"precision": precision.mean(-1), "recall": recall.mean(-1), "f1": f1.mean(-1)}
    result = {"accuracy": tp.sum(-1) / confusion.sum(axis=(-2, -1))}
    for name, per_class in (("precision", precision), ("recall", recall), ("f1", f1)):
        result[name] = per_class[..., 1] if k == 2 else macro[name]
        result[f"macro_{name}"] = macro[name]
        for index, label in enumerate(label_names):
            result[f"{name}_{label}"] = per_class[..., index]
    return result


def _classification_statistic(label_names: Sequence[str], records: Sequence[dict[str, Any]],
                              keys: Sequence[str]) -> Statistic:
    index = {name: i for i, name in enumerate(label_names)}
    k = len(label_names)
    cells = np.array([index[r["actual"]] * k + index[r["predicted"]] for r in records])
    one_hot = np.zeros((len(records), k * k))
    one_hot[np.arange(len(records)), cells] = 1.0

    def statistic(counts: np.ndarray) -> dict[str, np.ndarray]:
        scores = classification_from_confusion((counts @ one_hot).reshape(-1, k, k), label_names)
        return {key: scores[key] for key in keys if key in scores}

    return statistic


def _squad_statistic(records: Sequence[dict[str, Any]], keys: Sequence[str]) -> Statistic:
    """SQuAD v2 (percent): exact/f1 and their HasAns/NoAns parts, best_* sweeps, BLEU, ROUGE, METEOR."""
    ratios, sweeps = _squad_terms(records, keys)
    ratios |= _generation_terms(records, keys)
    bleu = _bleu_terms(records) if "bleu" in keys and any(r["gold"] for r in records) else None
    wanted = [key for key in ratios if key in keys]
    numerators = np.stack([ratios[key][0] for key in wanted], axis=1) if wanted else None
    denominators = np.stack([ratios[key][1] for key in wanted], axis=1) if wanted else None

    def statistic(counts: np.ndarray) -> dict[str, np.ndarray]:
        result: dict[str, np.ndarray] = {}
        if wanted:
            values = 100.0 * _ratio(counts @ numerators, counts @ denominators, undefined=np.nan)
            result |= {key: values[:, i] for i, key in enumerate(wanted)}
        for key, (contributions, order, no_answer) in sweeps.items():
            if key in keys:
                result[key] = _best_sweep(counts, contributions, order, no_answer)
        if bleu is not None:
            statistics, has_answer = bleu
            summed, answerable = counts @ statistics, counts @ has_answer
            result["bleu"] = np.array([M.bleu_from_statistics(row) if drawn > 0 else np.nan
                                       for row, drawn in zip(summed, answerable, strict=True)])
        return result

    return statistic


def _squad_terms(records: Sequence[dict[str, Any]], keys: Sequence[str]) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """Per-question (numerator, denominator) pairs for exact/f1 (all, HasAns, NoAns), and best_* sweep terms."""
    gold = {r["id"]: r["gold"] for r in records}
    predictions = {r["id"]: r["prediction"] for r in records}
    raw_exact, raw_f1 = M.squad_v2_per_question(gold, predictions)
    ids = [r["id"] for r in records]
    has = np.array([bool(gold[i]) for i in ids], dtype=float)
    probs = np.array([float(r["no_answer_prob"]) for r in records])
    abstains = probs > NO_ANSWER_THRESHOLD
    ones = np.ones(len(records))
    order = np.argsort(probs, kind="stable")  # the official sweep's order (ties keep the records' order)
    answered = np.array([bool(predictions[i]) for i in ids], dtype=float)
    ratios, sweeps = {}, {}
    for name, raw in (("exact", raw_exact), ("f1", raw_f1)):
        raw_values = np.array([float(raw[i]) for i in ids])
        values = np.where(abstains, 1.0 - has, raw_values)
        ratios[name] = (values, ones)
        ratios[f"HasAns_{name}"] = (values * has, has)
        ratios[f"NoAns_{name}"] = (values * (1 - has), 1 - has)
        if f"best_{name}" in keys:
            sweeps[f"best_{name}"] = (np.where(has > 0, raw_values, -answered), order, 1 - has)
    return ratios, sweeps


def _best_sweep(counts: np.ndarray, contributions: np.ndarray, order: np.ndarray,
                no_answer: np.ndarray) -> np.ndarray:
    """The official no-answer threshold sweep on each resample: start from "abstain everywhere" (worth the
    unanswerable questions), admit questions by increasing no-answer probability, keep the best running total."""
    running = np.cumsum(counts[:, order] * contributions[order], axis=1)
    best = counts @ no_answer + np.maximum(running.max(axis=1), 0.0)
    return 100.0 * best / counts.sum(axis=1)


def _generation_terms(records: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, tuple]:
    """Per-question (numerator, denominator) for ROUGE and METEOR: mean over answerable questions."""
    answerable = [i for i, r in enumerate(records) if r["gold"]]
    wanted_rouge = [key for key in M.ROUGE_TYPES if key in keys]
    if not answerable or not (wanted_rouge or "meteor" in keys):
        return {}
    refs = [records[i]["gold"] for i in answerable]
    preds = [str(records[i]["prediction"]) for i in answerable]
    per_key: dict[str, list[float]] = {}
    if wanted_rouge:
        per_key |= {key: values for key, values in M.rouge_per_question(refs, preds).items() if key in keys}
    if "meteor" in keys:
        per_key["meteor"] = M.meteor_per_question(refs, preds)
    has = np.zeros(len(records))
    has[answerable] = 1.0
    terms = {}
    for key, values in per_key.items():
        full = np.zeros(len(records))
        full[answerable] = values
        terms[key] = (full, has)
    return terms


def _bleu_terms(records: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """sacreBLEU statistics per question (rows of zeros for unanswerable ones) and the answerable flags."""
    answerable = [i for i, r in enumerate(records) if r["gold"]]
    stats = np.array(M.bleu_statistics([records[i]["gold"] for i in answerable],
                                       [str(records[i]["prediction"]) for i in answerable]), dtype=float)
    full, has = np.zeros((len(records), stats.shape[1])), np.zeros(len(records))
    full[answerable], has[answerable] = stats, 1.0
    return full, has
