"""Is a change more than noise? 95% intervals from resampling the scored examples, paired between phases.

**Two interval methods, one framework.** Every metric is a function of per-example *counts* (how often each
example is drawn: :mod:`tuneval.scoring.metrics`), so any resampling scheme is a matrix of counts:

- the **percentile bootstrap** (Efron & Tibshirani 1993, ch. 13): draw the examples, or whole clusters of them,
  with replacement ``resamples`` times (1,000 by default; numpy ``default_rng(seed)``), recompute the metric on
  every resample and report the 2.5th and 97.5th percentiles;
- the **delete-one-cluster jackknife** with a t interval: G replicates, replicate g being the counts with
  cluster g zeroed (the metrics normalise by the counts they are given, so a zeroed cluster is simply absent);
  SE² = (G−1)/G · Σ_g (θ_(g) − θ̄)², and the interval is θ ± t_{0.975, G−1} · SE, centred on the full-set value.

Which one a split gets is decided by its number of clusters G (:func:`resampling`): G >= :data:`MIN_CLUSTERS`
(30) uses the cluster bootstrap; with fewer a cluster bootstrap is too narrow (with 2 articles it has 3 possible
resamples), so :data:`MIN_JACKKNIFE_CLUSTERS` <= G < 30 uses the jackknife t on G−1 degrees of freedom, the
standard small-G correction (Cameron & Miller 2015, "A practitioner's guide to cluster-robust inference", §VI);
below that no interval is reported, and the report says why. Nothing ever falls back to resampling questions as
if independent. The jackknife, like any delta-method SE, assumes the statistic is smooth in the weights; the
threshold sweep (best_f1), the held-out threshold F1 and AUROC are only piecewise smooth, which matters little
when a deleted cluster holds many questions. A jackknife replicate on which a metric is undefined (e.g. the
deleted article held every unanswerable question) leaves that metric without an interval.

The zero-shot -> fine-tuned difference is *paired*: both phases are recomputed on the same counts (the same
resample, or the same deleted cluster) and the difference is kept, so its interval reflects how the two models
differ on the same examples, not how hard the examples happen to be. A difference whose interval excludes 0 is
unlikely to be resampling noise at the 5% level (per metric: nothing corrects for reading many metrics at once).

A bootstrap batch is one matrix product for a metric built from sums over examples (a mean, a ratio of sums, a
confusion matrix, BLEU's n-gram counts); the SQuAD v2 threshold sweeps (best_f1, the held-out threshold F1)
rerun on every replicate. Bootstrap resamples on which a metric is undefined (e.g. no answerable question drawn,
for HasAns_f1) are left out of its percentiles. The metric functions are :mod:`tuneval.scoring.metrics`' and
:mod:`tuneval.scoring.abstention`'s own, so the intervals recompute exactly what
``tuneval.scoring.scores.score`` reports.

**Clusters.** SQuAD questions are not independent draws: an article (and each of its paragraphs) sets the topic,
the difficulty and, in SQuAD v2, most of the unanswerable questions. The dev set was sampled article by article,
so the resampling unit is the article, the coarsest unit the task declares (`clusters:` in its YAML; contexts
nest in articles, so resampling contexts would treat correlated questions as independent). Field & Welsh 2007;
Miller 2024, "Adding error bars to evals", recommends clustered errors for exactly this case. Tasks whose
examples are independent (SST-2 sentences) use each example as its own cluster (G = n). The i.i.d. width is
computed beside the clustered one for comparison.

**Paired tests.** A classification task also gets McNemar's exact test on the paired correct/incorrect outcomes
(:func:`mcnemar_exact`), and every Δ its minimum detectable effect: the smallest difference this sample detects
with 80% power at the 5% level, (z_0.975 + z_0.8) x the bootstrap SE of Δ, or (t_0.975 + t_0.8 on G−1 df) x the
jackknife SE.

Both the report (:mod:`tuneval.report.summary`) and ``tuneval compare`` get their paired intervals from
:func:`paired_intervals` here, and check recomputed values with :func:`check_recomputed`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from tuneval.errors import DataError
from tuneval.scoring import abstention as A
from tuneval.scoring import metrics as M
from tuneval.scoring.metrics import classification_from_confusion  # noqa: F401  (re-exported: tests, callers)
from tuneval.tasks import Task

RESAMPLES = 1000
LEVEL = 0.95
BATCH = 100  # resamples drawn and scored at a time: bounds memory on an 11,873-question dev set
NO_ANSWER_THRESHOLD = 1.0  # squad_v2_scores' default, which score() uses
MIN_CLUSTERS = 30  # fewer clusters than this and a cluster bootstrap's interval is too narrow to trust
MIN_JACKKNIFE_CLUSTERS = 5  # fewer than this and even the jackknife t (<= 3 df) says next to nothing: no interval
MDE_FACTOR = 2.8016  # z_0.975 + z_0.80: a difference of MDE_FACTOR standard errors is detected 80% of the time
BOOTSTRAP, JACKKNIFE, NO_INTERVAL = "bootstrap", "jackknife", "none"  # Resampling.method

Statistic = Callable[[np.ndarray], dict[str, np.ndarray]]
"""counts of shape (replicates, n) -> {metric key: values of shape (replicates,)} (NaN where undefined)."""


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def excludes(self, value: float) -> bool:
        return self.low > value or self.high < value

    @property
    def width(self) -> float:
        return self.high - self.low


@cache
def t_quantile(q: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(q, df))


def mde_factor(df: int | None) -> float:
    """(critical value at 5% two-sided) + (quantile of 80% power): z-based for the bootstrap (df None), t on
    `df` degrees of freedom for the jackknife."""
    return MDE_FACTOR if df is None else t_quantile(0.975, df) + t_quantile(0.8, df)


@dataclass(frozen=True)
class Paired:
    """One metric of two phases on the same examples: full-set values, 95% intervals (None: undefined), the
    standard error of the difference (None: undefined), the interval method that gave them (`method`, e.g.
    "cluster jackknife t, G−1 = 19 df"; "" for none) and the t degrees of freedom (jackknife; None: bootstrap)."""

    first: float
    second: float
    first_ci: Interval | None
    second_ci: Interval | None
    delta_ci: Interval | None
    delta_se: float | None = None
    method: str = ""
    df: int | None = None

    @property
    def mde(self) -> float | None:
        """Minimum detectable effect (80% power, 5% level, two-sided) of this sample, from the Δ's SE."""
        return None if self.delta_se is None else mde_factor(self.df) * self.delta_se

    @property
    def delta(self) -> float:
        return self.second - self.first


# ------------------------------------------------------------------------------------------ the replicates
def _cluster_codes(n: int, clusters: Sequence[Any] | None) -> tuple[np.ndarray, int]:
    """(cluster index of every example, number of clusters): the labels' sorted order; None = one per example."""
    if clusters is None:
        return np.arange(n), n
    if len(clusters) != n:
        raise ValueError(f"{len(clusters)} cluster labels for {n} examples")
    _, codes = np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)
    return codes.reshape(-1), int(codes.max()) + 1


def resample_counts(n: int, resamples: int = RESAMPLES, seed: int = 0, batch: int = BATCH,
                    clusters: Sequence[Any] | None = None) -> Iterator[np.ndarray]:
    """Batches of bootstrap resamples of n examples, as float counts of shape (<= batch, n); seeded.

    With `clusters` (one label per example) whole clusters are drawn with replacement and every example counts
    as often as its cluster was drawn; with one cluster per example this is the i.i.d. bootstrap (draw for draw
    when the labels sort in the examples' order, else the same draws with the columns permuted).
    """
    if n < 1 or resamples < 1:
        raise ValueError(f"need n >= 1 examples and resamples >= 1, got n={n}, resamples={resamples}")
    codes, k = _cluster_codes(n, clusters)
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, batch):
        size = min(batch, resamples - start)
        draws = rng.integers(0, k, size=(size, k)) + k * np.arange(size)[:, None]
        drawn = np.bincount(draws.ravel(), minlength=size * k).reshape(size, k).astype(float)
        yield drawn[:, codes]


def jackknife_counts(n: int, clusters: Sequence[Any] | None = None) -> np.ndarray:
    """The delete-one-cluster jackknife as counts of shape (G, n): replicate g counts every example once except
    those of cluster g (clusters in their labels' sorted order; None: one cluster per example)."""
    if n < 1:
        raise ValueError(f"need n >= 1 examples, got {n}")
    codes, k = _cluster_codes(n, clusters)
    return (codes[None, :] != np.arange(k)[:, None]).astype(float)


def jackknife_se(replicates: np.ndarray) -> float | None:
    """sqrt((G−1)/G · Σ (θ_(g) − θ̄)²) of the G leave-one-cluster-out values; None if any is undefined or G < 2."""
    values = np.asarray(replicates, dtype=float)
    if values.size < 2 or not np.isfinite(values).all():
        return None
    g = values.size
    return float(math.sqrt((g - 1) / g * float(((values - values.mean()) ** 2).sum())))


def jackknife_interval(full: float, replicates: np.ndarray, level: float = LEVEL) -> tuple[Interval | None,
                                                                                           float | None]:
    """(full ± t_{(1+level)/2, G−1} · jackknife SE, the SE); (None, None) where undefined."""
    se = jackknife_se(replicates)
    if se is None or not math.isfinite(full):
        return None, None
    half = t_quantile(0.5 + level / 2, np.asarray(replicates).size - 1) * se
    return Interval(full - half, full + half), se


# ------------------------------------------------------------------------------ the unit and the method
@dataclass(frozen=True)
class Resampling:
    """What the intervals of some records resample and how.

    `unit`: the task's coarsest cluster name (e.g. "article"), "example" for independent examples, or "none"
    when there are too few clusters for any interval; `labels`: one cluster label per record (None: each
    example is its own cluster, or no interval); `counts`: the distinct values of each declared unit; `method`:
    BOOTSTRAP (G >= MIN_CLUSTERS), JACKKNIFE (MIN_JACKKNIFE_CLUSTERS <= G < MIN_CLUSTERS) or NO_INTERVAL;
    `n`: the number of records; `resamples`: the bootstrap's."""

    unit: str
    labels: list[str] | None
    counts: dict[str, int]
    method: str = BOOTSTRAP
    n: int = 0
    resamples: int = RESAMPLES

    @property
    def clusters(self) -> int:
        """G: the number of independent units (the examples themselves for unclustered tasks)."""
        return self.counts.get(self.unit, self.n) if self.unit != "example" else self.n

    @property
    def honest(self) -> bool:
        """A (cluster) bootstrap of this unit is honest: >= MIN_CLUSTERS clusters. With fewer, `method` is the
        jackknife (or none): resample_counts(..., clusters=labels) would be too narrow, use paired_intervals."""
        return self.method == BOOTSTRAP

    @property
    def has_interval(self) -> bool:
        return self.method != NO_INTERVAL

    @property
    def df(self) -> int | None:
        """The jackknife t's degrees of freedom, G − 1; None for the bootstrap and without an interval."""
        return self.clusters - 1 if self.method == JACKKNIFE else None

    def describe(self) -> str:
        """What is resampled: `whole articles (35 articles)`, `examples (i.i.d.)`, or why there is no interval."""
        if self.method == NO_INTERVAL:
            sizes = ", ".join(f"{count:,} {unit}s" for unit, count in self.counts.items()) or f"{self.n:,} examples"
            return f"no honest interval: {sizes}, fewer than {MIN_JACKKNIFE_CLUSTERS} clusters"
        if self.unit == "example":
            return "examples (i.i.d.)"
        return f"whole {self.unit}s ({self.clusters:,} {self.unit}s)"

    def interval(self) -> str:
        """The interval method, as every report states it: `cluster bootstrap, 1000 resamples`, `cluster
        jackknife t, G−1 = 19 df`, `bootstrap, 1000 resamples` / `jackknife t, n−1 = 19 df` (examples)."""
        clustered = self.unit != "example"
        if self.method == BOOTSTRAP:
            return f"{'cluster bootstrap' if clustered else 'bootstrap'}, {self.resamples} resamples"
        if self.method == JACKKNIFE:
            return f"{'cluster jackknife t, G' if clustered else 'jackknife t, n'}−1 = {self.df} df"
        return "no interval"


def _method(clusters: int) -> str:
    return BOOTSTRAP if clusters >= MIN_CLUSTERS else JACKKNIFE if clusters >= MIN_JACKKNIFE_CLUSTERS else NO_INTERVAL


def iid_resampling(n: int, resamples: int = RESAMPLES) -> Resampling:
    """Examples as independent draws (G = n): the task's own unit for unclustered tasks, the comparison width
    for clustered ones."""
    return Resampling("example", None, {}, _method(n), n, resamples)


def resampling(task: Task, records: Sequence[dict[str, Any]], resamples: int = RESAMPLES) -> Resampling:
    """The intervals' unit and method for `records`: the coarsest of the task's `clusters` (field -> unit name,
    coarsest first), by the bootstrap with >= MIN_CLUSTERS of them, the jackknife t with fewer, none below
    MIN_JACKKNIFE_CLUSTERS; examples (G = n) for tasks whose examples are independent. DataError when the records
    lack a cluster field."""
    if not task.clusters:
        return iid_resampling(len(records), resamples)
    counts: dict[str, int] = {}
    coarsest: list[str] | None = None
    for field, unit in task.clusters.items():
        labels = [str(record.get("cluster", {}).get(field, "")) for record in records]
        if any(label == "" for label in labels):
            raise DataError(f"{task.name}: prediction records lack the cluster field {field!r} (records written "
                            "before clusters were recorded: rerun the evaluation, dvc repro)")
        counts[unit] = len(set(labels))
        coarsest = labels if coarsest is None else coarsest
    unit = next(iter(task.clusters.values()))
    method = _method(counts[unit])
    if method == NO_INTERVAL:
        return Resampling("none", None, counts, NO_INTERVAL, len(records), resamples)
    return Resampling(unit, coarsest, counts, method, len(records), resamples)


def cluster_labels(task: Task, records: Sequence[dict[str, Any]]) -> tuple[list[str] | None, str]:
    """(one cluster label per record or None for i.i.d. examples, the unit's name); DataError when the records fall
    into too few clusters for any interval (see resampling). Bootstrap these labels only where
    resampling(...).honest; paired_intervals picks the method itself."""
    unit = resampling(task, records)
    if not unit.has_interval:
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


# ------------------------------------------------------------------------------------------- the intervals
def _replicates(statistics: Sequence[Statistic], n: int, counts: Iterator[np.ndarray] | Sequence[np.ndarray],
                ) -> tuple[list[str], list[dict[str, float]], list[dict[str, np.ndarray]]]:
    """(the keys every statistic reports, each statistic's full-set values, each one's values on every batch of
    `counts`, concatenated), all from the same counts."""
    full = [statistic(np.ones((1, n))) for statistic in statistics]
    keys = [key for key in full[0] if all(key in values for values in full[1:])]
    draws: list[dict[str, list[np.ndarray]]] = [{key: [] for key in keys} for _ in statistics]
    for batch in counts:
        for statistic, store in zip(statistics, draws, strict=True):
            values = statistic(batch)
            for key in keys:
                store[key].append(np.asarray(values[key], dtype=float))
    return (keys, [{key: float(values[key][0]) for key in keys} for values in full],
            [{key: np.concatenate(store[key]) if store[key] else np.empty(0) for key in keys} for store in draws])


def paired_bootstrap(first: Statistic, second: Statistic, n: int, resamples: int = RESAMPLES, seed: int = 0,
                     level: float = LEVEL, clusters: Sequence[Any] | None = None,
                     method: str = "") -> dict[str, Paired]:
    """Every metric both statistics report: full-set values, each phase's percentile interval and the paired
    difference's interval and SE, all from the same resamples (of examples, or of whole `clusters`: see
    resample_counts). Honest only with >= MIN_CLUSTERS clusters: paired_intervals chooses for you."""
    keys, (full_a, full_b), (draws_a, draws_b) = _replicates(
        [first, second], n, resample_counts(n, resamples, seed, clusters=clusters))
    results = {}
    for key in keys:
        a, b = draws_a[key], draws_b[key]
        delta = (b - a)[np.isfinite(b - a)]
        results[key] = Paired(first=full_a[key], second=full_b[key],
                              first_ci=percentile_interval(a, level), second_ci=percentile_interval(b, level),
                              delta_ci=percentile_interval(b - a, level),
                              delta_se=float(delta.std(ddof=1)) if delta.size > 1 else None, method=method)
    return results


def paired_jackknife(first: Statistic, second: Statistic, n: int, level: float = LEVEL,
                     clusters: Sequence[Any] | None = None, method: str = "") -> dict[str, Paired]:
    """Every metric both statistics report: full-set values and delete-one-cluster jackknife t intervals (G−1 df)
    of each phase and of the paired difference (both phases recomputed without the same cluster)."""
    counts = jackknife_counts(n, clusters)
    keys, (full_a, full_b), (reps_a, reps_b) = _replicates([first, second], n, [counts])
    df = counts.shape[0] - 1
    results = {}
    for key in keys:
        first_ci, _ = jackknife_interval(full_a[key], reps_a[key], level)
        second_ci, _ = jackknife_interval(full_b[key], reps_b[key], level)
        delta_ci, delta_se = jackknife_interval(full_b[key] - full_a[key], reps_b[key] - reps_a[key], level)
        results[key] = Paired(first=full_a[key], second=full_b[key], first_ci=first_ci, second_ci=second_ci,
                              delta_ci=delta_ci, delta_se=delta_se, method=method, df=df)
    return results


def paired_intervals(first: Statistic, second: Statistic, n: int, unit: Resampling, seed: int = 0,
                     level: float = LEVEL) -> dict[str, Paired]:
    """The one implementation of paired statistics (the report's phases, `tuneval compare`'s experiments):
    every metric both statistics report, with intervals by `unit`'s method (see resampling): the cluster
    bootstrap with >= MIN_CLUSTERS clusters, the delete-one-cluster jackknife t with fewer, full-set values only
    (no intervals) below MIN_JACKKNIFE_CLUSTERS. Each Paired names the method in `method`."""
    if unit.n not in (0, n):
        raise ValueError(f"resampling of {unit.n} records for {n} examples")
    if unit.method == BOOTSTRAP:
        return paired_bootstrap(first, second, n, unit.resamples, seed, level, clusters=unit.labels,
                                method=unit.interval())
    if unit.method == JACKKNIFE:
        return paired_jackknife(first, second, n, level, clusters=unit.labels, method=unit.interval())
    keys, (full_a, full_b), _ = _replicates([first, second], n, [])
    return {key: Paired(full_a[key], full_b[key], None, None, None) for key in keys}


def phase_interval(task: Task, records: Sequence[dict[str, Any]], metric: str, resamples: int = RESAMPLES,
                   seed: int = 0, level: float = LEVEL) -> Interval | None:
    """One phase's interval of `metric` on `records`, by the method resampling(task, records) picks (the
    `first_ci` paired_intervals reports with the same seed); None without an interval or per-example terms."""
    unit = resampling(task, records, resamples)
    statistic = prediction_statistic(task, records, [metric])
    result = paired_intervals(statistic, statistic, len(records), unit, seed, level).get(metric)
    return None if result is None else result.first_ci


def check_recomputed(recomputed: Mapping[str, float], recorded: Mapping[str, Any], where: str, source: str,
                     target: str, fix: str) -> None:
    """DataError unless every recomputed value equals the recorded one (1e-9): the intervals would be of something
    else. The message reads `{where} {key} recomputed from {source} is X, but {target} says Y: {fix}`."""
    for key, value in recomputed.items():
        stored = recorded.get(key)
        same = (isinstance(stored, int | float) and not isinstance(stored, bool)
                and (math.isclose(value, float(stored), rel_tol=1e-9, abs_tol=1e-9)
                     or (math.isnan(value) and math.isnan(float(stored)))))
        if not same:
            raise DataError(f"{where} {key} recomputed from {source} is {value!r}, but {target} says {stored!r}: "
                            f"{fix}")


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
    """The `keys` of score(task, records), on any counts: the metric functions of :mod:`tuneval.scoring.metrics`
    and :mod:`tuneval.scoring.abstention` themselves, called with the counts (one implementation per metric).

    Records are the engine's prediction records: SST-2 style {id, actual, predicted, ...}, SQuAD v2 style
    {id, prediction, no_answer_prob, gold, [no_answer_logprob], [cluster], ...}. Keys the metrics do not define
    are absent from the result.
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
    abstaining = [key for key in A.KEYS if key in keys]
    abstention = A.terms_for(task, records, terms) if abstaining else None

    def statistic(counts: np.ndarray) -> dict[str, np.ndarray]:
        values = M.squad_v2_from_terms(terms, counts) | M.generation_from_terms(generation, counts)
        return values | (A.abstention_from_terms(abstention, counts, abstaining) if abstention else {})

    return _only(keys, statistic)


def _only(keys: Sequence[str], statistic: Statistic) -> Statistic:
    """`statistic` restricted to `keys`."""
    return lambda counts: {key: value for key, value in statistic(counts).items() if key in keys}
