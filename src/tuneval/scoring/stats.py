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
undefined (e.g. no answerable question drawn, for HasAns_f1) are left out of its percentiles. The metric
functions are :mod:`tuneval.scoring.metrics`' own (each metric is written once, over per-example terms and counts), so
the bootstrap recomputes exactly what ``tuneval.scoring.engine.score`` reports.

**Clusters.** SQuAD questions are not independent draws: an article (and each of its paragraphs) sets the topic,
the difficulty and, in SQuAD v2, most of the unanswerable questions. The dev set was sampled article by article,
so the resampling unit is the article: a cluster bootstrap draws whole articles with replacement (Field & Welsh
2007; Miller 2024, "Adding error bars to evals", recommends clustered errors for exactly this case). A cluster
bootstrap needs many clusters to be honest: with 2 articles it has 3 possible resamples and its interval is
degenerate, narrower than the i.i.d. one. :func:`cluster_labels` therefore takes the coarsest unit a task declares
(`clusters:` in its YAML: article, then context) that has at least :data:`MIN_CLUSTERS` distinct values, and
says so when none has, in which case no interval is reported. Tasks whose examples are independent (SST-2
sentences) resample examples. The i.i.d. width is computed beside the clustered one for comparison.

**Paired tests.** Beside the bootstrap, a classification task gets McNemar's exact test on the paired
correct/incorrect outcomes (:func:`mcnemar_exact`), and every Δ its minimum detectable effect: the smallest
difference this sample detects with 80% power at the 5% level, (z_0.975 + z_0.8) x the bootstrap SE of Δ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuneval.errors import DataError
from tuneval.scoring import metrics as M
from tuneval.scoring.metrics import classification_from_confusion  # noqa: F401  (re-exported: tests, callers)
from tuneval.tasks import Task

RESAMPLES = 1000
LEVEL = 0.95
BATCH = 100  # resamples drawn and scored at a time: bounds memory on an 11,873-question dev set
NO_ANSWER_THRESHOLD = 1.0  # squad_v2_scores' default, which the engine's score() uses
MIN_CLUSTERS = 30  # fewer clusters than this and a cluster bootstrap's interval is too narrow to trust
MDE_FACTOR = 2.8016  # z_0.975 + z_0.80: a difference of MDE_FACTOR standard errors is detected 80% of the time

Statistic = Callable[[np.ndarray], dict[str, np.ndarray]]
"""counts of shape (resamples, n) -> {metric key: values of shape (resamples,)} (NaN where undefined)."""


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


    @property
    def width(self) -> float:
        return self.high - self.low


@dataclass(frozen=True)
class Paired:
    """One metric of two phases on the same examples: full-set values, 95% intervals (None: undefined) and the
    bootstrap standard error of the difference (None: undefined)."""

    first: float
    second: float
    first_ci: Interval | None
    second_ci: Interval | None
    delta_ci: Interval | None
    delta_se: float | None = None

    @property
    def mde(self) -> float | None:
        """Minimum detectable effect (80% power, 5% level, two-sided) of this sample, from the Δ's SE."""
        return None if self.delta_se is None else MDE_FACTOR * self.delta_se

    @property
    def delta(self) -> float:
        return self.second - self.first


# ------------------------------------------------------------------------------------------- the bootstrap
def resample_counts(n: int, resamples: int = RESAMPLES, seed: int = 0, batch: int = BATCH,
                    clusters: Sequence[Any] | None = None) -> Iterator[np.ndarray]:
    """Batches of bootstrap resamples of n examples, as float counts of shape (<= batch, n); seeded.

    With `clusters` (one label per example) whole clusters are drawn with replacement and every example counts
    as often as its cluster was drawn; with one cluster per example this is the i.i.d. bootstrap (draw for draw
    when the labels sort in the examples' order, else the same draws with the columns permuted).
    """
    if n < 1 or resamples < 1:
        raise ValueError(f"need n >= 1 examples and resamples >= 1, got n={n}, resamples={resamples}")
    if clusters is None:
        codes, k = np.arange(n), n
    else:
        if len(clusters) != n:
            raise ValueError(f"{len(clusters)} cluster labels for {n} examples")
        _, codes = np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)
        k = int(codes.max()) + 1
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, batch):
        size = min(batch, resamples - start)
        draws = rng.integers(0, k, size=(size, k)) + k * np.arange(size)[:, None]
        drawn = np.bincount(draws.ravel(), minlength=size * k).reshape(size, k).astype(float)
        yield drawn[:, codes]


@dataclass(frozen=True)
class Resampling:
    """What a bootstrap over some records resamples: `unit` (a task's cluster name, e.g. "article", or "example"),
    one label per record (None: examples are drawn), and the distinct values of each declared unit."""

    unit: str
    labels: list[str] | None
    counts: dict[str, int]

    @property
    def honest(self) -> bool:
        """False when the task clusters its examples but no declared unit has >= MIN_CLUSTERS values."""
        return self.unit != "none"

    def describe(self) -> str:
        if self.unit == "example":
            return "examples (i.i.d.)"
        sizes = ", ".join(f"{count:,} {unit}s" for unit, count in self.counts.items())
        if not self.honest:
            return f"no honest interval: {sizes}, fewer than {MIN_CLUSTERS} clusters"
        return f"whole {self.unit}s ({sizes})"


def resampling(task: Task, records: Sequence[dict[str, Any]]) -> Resampling:
    """The bootstrap unit for `records`: the coarsest of the task's `clusters` (field -> unit name, coarsest first)
    with >= MIN_CLUSTERS distinct values; unit "none" when even the finest has fewer; "example" for tasks whose
    examples are independent."""
    if not task.clusters:
        return Resampling("example", None, {})
    counts: dict[str, int] = {}
    for field, unit in task.clusters.items():
        labels = [str(record.get("cluster", {}).get(field, "")) for record in records]
        if any(label == "" for label in labels):
            raise DataError(f"{task.name}: prediction records lack the cluster field {field!r} (records written "
                            "before clusters were recorded: rerun the evaluation, dvc repro)")
        counts[unit] = len(set(labels))
        if counts[unit] >= MIN_CLUSTERS:
            return Resampling(unit, labels, counts)
    return Resampling("none", None, counts)


def cluster_labels(task: Task, records: Sequence[dict[str, Any]]) -> tuple[list[str] | None, str]:
    """(one cluster label per record or None for i.i.d. examples, the unit's name); DataError when the records fall
    into too few clusters for an honest interval (see resampling)."""
    unit = resampling(task, records)
    if not unit.honest:
        raise DataError(f"{task.name}: {len(records)} examples: {unit.describe()}")
    return unit.labels, unit.unit


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
                     level: float = LEVEL, clusters: Sequence[Any] | None = None) -> dict[str, Paired]:
    """Every metric both statistics report: full-set values, each phase's interval and the paired difference's
    interval and SE, all from the same resamples (of examples, or of whole `clusters`: see resample_counts)."""
    full = np.ones((1, n))
    first_full, second_full = first(full), second(full)
    keys = [key for key in first_full if key in second_full]
    draws: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {key: ([], []) for key in keys}
    for counts in resample_counts(n, resamples, seed, clusters=clusters):
        a, b = first(counts), second(counts)
        for key in keys:
            draws[key][0].append(a[key])
            draws[key][1].append(b[key])
    results = {}
    for key in keys:
        a, b = np.concatenate(draws[key][0]), np.concatenate(draws[key][1])
        delta = (b - a)[np.isfinite(b - a)]
        results[key] = Paired(first=float(first_full[key][0]), second=float(second_full[key][0]),
                              first_ci=percentile_interval(a, level), second_ci=percentile_interval(b, level),
                              delta_ci=percentile_interval(b - a, level),
                              delta_se=float(delta.std(ddof=1)) if delta.size > 1 else None)
    return results


def mcnemar_exact(first_correct: Sequence[bool], second_correct: Sequence[bool]) -> dict[str, float]:
    """McNemar's exact test on paired outcomes: b = right only in the first, c = right only in the second; the
    two-sided binomial p-value of min(b, c) out of b + c discordant pairs at 1/2 (1.0 when there are none)."""
    from scipy.stats import binomtest

    if len(first_correct) != len(second_correct):
        raise ValueError(f"{len(first_correct)} vs {len(second_correct)} paired outcomes")
    first, second = np.asarray(first_correct, dtype=bool), np.asarray(second_correct, dtype=bool)
    b, c = int((first & ~second).sum()), int((~first & second).sum())
    p = 1.0 if b + c == 0 else float(binomtest(min(b, c), b + c, 0.5).pvalue)
    return {"only_first": b, "only_second": c, "p": p}


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
    """The `keys` of the engine's score(task, records), on any resample: the metric functions of
    :mod:`tuneval.scoring.metrics` themselves, called with the resample's counts (one implementation per metric).

    Records are the engine's prediction records: SST-2 style {id, actual, predicted, ...}, SQuAD v2 style
    {id, prediction, no_answer_prob, gold, ...}. Keys the metrics do not define are absent from the result.
    """
    if task.kind == "multiple_choice":
        index = {name: i for i, name in enumerate(task.label_names)}
        cells = M.confusion_cells([index[r["actual"]] for r in records], [index[r["predicted"]] for r in records],
                                  len(task.label_names))
        return _only(keys, lambda counts: M.classification_scores(cells, task.label_names, counts))
    ids = [r["id"] for r in records]
    terms = M.squad_v2_terms({i: r["gold"] for i, r in zip(ids, records, strict=True)},
                             {i: r["prediction"] for i, r in zip(ids, records, strict=True)},
                             {i: float(r["no_answer_prob"]) for i, r in zip(ids, records, strict=True)},
                             NO_ANSWER_THRESHOLD)
    wanted = [key for key in M.GENERATION_KEYS if key in keys]
    generation = M.generation_terms([r["gold"] for r in records], [r["prediction"] for r in records], wanted)
    return _only(keys, lambda counts: M.squad_v2_from_terms(terms, counts)
                 | M.generation_from_terms(generation, counts))


def _only(keys: Sequence[str], statistic: Statistic) -> Statistic:
    """`statistic` restricted to `keys`."""
    return lambda counts: {key: value for key, value in statistic(counts).items() if key in keys}
