"""tuneval.scoring.stats: the seeded percentile bootstrap (of examples or of whole clusters), the paired difference, its
standard error and minimum detectable effect, McNemar's exact test, and per-example statistics that reproduce the
engine's score() on the full set and on resamples."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest

from tuneval.errors import DataError
from tuneval.scoring.metrics import classification_metrics
from tuneval.scoring.scores import score
from tuneval.scoring.stats import (
    BOOTSTRAP,
    JACKKNIFE,
    MDE_FACTOR,
    MIN_CLUSTERS,
    MIN_JACKKNIFE_CLUSTERS,
    NO_INTERVAL,
    Interval,
    Paired,
    Resampling,
    align_by_id,
    classification_from_confusion,
    cluster_labels,
    iid_resampling,
    jackknife_counts,
    jackknife_se,
    mcnemar_exact,
    mde_factor,
    paired_bootstrap,
    paired_intervals,
    paired_jackknife,
    percentile_interval,
    phase_interval,
    prediction_statistic,
    resample_counts,
    resampling,
)
from tuneval.tasks import get_task

SST2, SQUAD = get_task("sst2"), get_task("squad_v2")
WORDS = ["the", "sun", "paris", "red", "car", "big", "city", "river", "old", "king", "blue"]


def sst2_records(n: int, right: float, seed: int = 0) -> list[dict]:
    """n SST-2 records, each right with probability `right`."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        actual = rng.choice(SST2.label_names)
        wrong = next(name for name in SST2.label_names if name != actual)
        records.append({"id": str(i), "actual": actual, "predicted": actual if rng.random() < right else wrong,
                        "loglik": {}})
    return records


def squad_records(n: int, seed: int = 0, per_article: int = 2, per_context: int = 1) -> list[dict]:
    """n SQuAD v2 records: about a third unanswerable, answers right, empty or wrong, tied probabilities too; with
    the engine's `cluster` keys: `per_article` consecutive questions share an article, `per_context` a context
    (per_article a multiple of per_context, so contexts nest in articles)."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        gold = [" ".join(rng.sample(WORDS, rng.randint(1, 3))) for _ in range(rng.choice([0, 1, 1, 2]))]
        prediction = rng.choice(["", gold[0] if gold else "", " ".join(rng.sample(WORDS, 2)), "the sun"])
        prob = 0.5 if rng.random() < 0.2 else rng.random()
        records.append({"id": f"q{i}", "generated": prediction, "prediction": prediction,
                        "no_answer_prob": prob, "gold": gold,
                        "cluster": {"title": f"article-{i // per_article:04d}",
                                    "context": f"{i // per_context:012x}"}})
    return records


def expand(records: list[dict], counts: np.ndarray) -> list[dict]:
    """The resample as records: each drawn as often as counted, ids made unique (score() keys by id)."""
    return [dict(records[i], id=f"{records[i]['id']}#{k}") for i, c in enumerate(counts) for k in range(int(c))]


def constant(values: dict[str, np.ndarray]):
    """A statistic: the mean of per-example values (for the generic bootstrap tests)."""
    return lambda counts: {key: counts @ v / counts.sum(axis=1) for key, v in values.items()}




# ----------------------------------------------------------------------------------------------- resampling
def test_resample_counts_are_seeded_resamples_of_n():
    first = np.concatenate(list(resample_counts(50, 250, seed=7)))
    again = np.concatenate(list(resample_counts(50, 250, seed=7)))
    other = np.concatenate(list(resample_counts(50, 250, seed=8)))
    assert first.shape == (250, 50)
    assert (first.sum(axis=1) == 50).all() and (first >= 0).all()
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert 0.55 < (first > 0).mean() < 0.71  # each example is in ~63% of resamples (1 - 1/e)
    with pytest.raises(ValueError):
        next(resample_counts(0, 10))


def test_one_cluster_per_example_is_the_iid_bootstrap_draw_for_draw():
    iid = np.concatenate(list(resample_counts(50, 250, seed=7)))
    labels = [f"example-{i:03d}" for i in range(50)]  # sorted like the examples
    clustered = np.concatenate(list(resample_counts(50, 250, seed=7, clusters=labels)))
    assert np.array_equal(clustered, iid)
    shuffled = random.Random(1).sample(labels, 50)  # any labels: the same draws, the columns in label order
    ranks = np.argsort(np.argsort(shuffled))
    assert np.array_equal(np.concatenate(list(resample_counts(50, 250, seed=7, clusters=shuffled))), iid[:, ranks])


def test_cluster_resamples_draw_whole_clusters():
    sizes = [1, 2, 3, 5, 8, 13]
    labels = [f"c{k}" for k, size in enumerate(sizes) for _ in range(size)]
    random.Random(0).shuffle(labels)  # a cluster's examples need not be adjacent
    counts = np.concatenate(list(resample_counts(len(labels), 300, seed=3, batch=70, clusters=labels)))
    again = np.concatenate(list(resample_counts(len(labels), 300, seed=3, batch=70, clusters=labels)))
    assert counts.shape == (300, len(labels)) and np.array_equal(counts, again)
    members = {c: [i for i, label in enumerate(labels) if label == c] for c in set(labels)}
    per_cluster = np.stack([counts[:, m[0]] for m in members.values()], axis=1)
    for index in members.values():
        assert (counts[:, index] == counts[:, index[:1]]).all()  # constant within a cluster, every resample
    assert (per_cluster.sum(axis=1) == len(sizes)).all()  # 6 clusters drawn with replacement
    assert len(set(counts.sum(axis=1))) > 1  # so the number of examples varies
    with pytest.raises(ValueError, match="cluster labels"):
        next(resample_counts(len(labels), 10, clusters=labels[:-1]))


def test_percentile_interval_drops_undefined_values():
    values = np.array([*range(101), np.nan, np.inf])
    interval = percentile_interval(values)
    assert (interval.low, interval.high) == pytest.approx((2.5, 97.5))
    assert percentile_interval(np.array([np.nan])) is None
    assert Interval(0.1, 0.2).excludes_zero() and Interval(-0.2, -0.1).excludes_zero()
    assert not Interval(0.0, 0.2).excludes_zero() and not Interval(-0.1, 0.1).excludes_zero()
    assert Interval(-0.1, 0.3).width == pytest.approx(0.4) and Interval(2.0, 2.0).width == 0.0


# ------------------------------------------------------------------------------------------ paired intervals
def test_identical_phases_give_a_zero_difference_interval():
    records = sst2_records(200, right=0.7)
    stat = prediction_statistic(SST2, records, SST2.metrics.headline)
    results = paired_bootstrap(stat, stat, len(records), seed=1)
    assert list(results) == SST2.metrics.headline
    for result in results.values():
        assert result.delta == 0 and result.delta_ci == Interval(0.0, 0.0)
        assert result.delta_se == 0.0 and result.mde == 0.0
        assert result.first_ci == result.second_ci and result.first_ci.low < result.first < result.first_ci.high


def test_a_clearly_better_phase_excludes_zero():
    worse, better = sst2_records(300, right=0.55, seed=1), sst2_records(300, right=0.9, seed=1)
    results = paired_bootstrap(prediction_statistic(SST2, worse, ["accuracy"]),
                               prediction_statistic(SST2, better, ["accuracy"]), 300, seed=1)
    accuracy = results["accuracy"]
    assert accuracy.delta > 0.25 and accuracy.delta_ci.excludes_zero() and accuracy.delta_ci.low > 0.2
    assert accuracy.delta_ci.low < accuracy.delta < accuracy.delta_ci.high


def test_both_phases_are_resampled_with_the_same_indices():
    """The phases differ on example 0 only: every paired difference is (times drawn) / n >= 0, so the interval
    starts at 0; independent resamples of the two phases would put half of it below 0."""
    n = 100
    worse = sst2_records(n, right=1.0)
    better = [dict(r) for r in worse]
    worse[0] = dict(worse[0], predicted=next(x for x in SST2.label_names if x != worse[0]["actual"]))
    results = paired_bootstrap(prediction_statistic(SST2, worse, ["accuracy"]),
                               prediction_statistic(SST2, better, ["accuracy"]), n, seed=3)
    accuracy = results["accuracy"]
    assert accuracy.delta == pytest.approx(1 / n)
    assert accuracy.delta_ci.low == 0.0 and 1 / n <= accuracy.delta_ci.high <= 4 / n
    assert accuracy.first_ci.high - accuracy.first_ci.low < 1e-9 + 4 / n  # spread from example 0 alone


def test_the_same_seed_gives_the_same_intervals():
    a, b = squad_records(120, seed=1), squad_records(120, seed=2)
    b = [dict(r, id=ra["id"], gold=ra["gold"]) for r, ra in zip(b, a, strict=True)]
    keys = ["exact", "f1", "best_f1", "HasAns_f1"]

    def run(seed):
        return paired_bootstrap(prediction_statistic(SQUAD, a, keys), prediction_statistic(SQUAD, b, keys), 120,
                                resamples=300, seed=seed)

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_generic_statistics_and_undefined_resamples():
    """Any statistic works; a metric undefined on some resamples (NaN) is left out of its percentiles."""
    values = np.zeros(10)
    values[0] = 1.0
    rare = lambda counts: {"rare": np.where(counts[:, 0] > 0, 1.0, np.nan)}  # noqa: E731
    results = paired_bootstrap(constant({"mean": values}), rare, 10, resamples=200, seed=0)
    assert results == {}  # no key both report
    results = paired_bootstrap(rare, rare, 10, resamples=200, seed=0)
    assert results["rare"].first_ci == Interval(1.0, 1.0)


# ---------------------------------------------------------------------------- the engine's metrics, resampled
def test_confusion_matrix_scores_equal_classification_metrics_for_three_classes():
    rng = random.Random(4)
    names = ["a", "b", "c"]
    labels = [rng.randrange(2) for _ in range(40)]  # class c never occurs: macro averages still count it
    predictions = [rng.randrange(3) for _ in range(40)]
    confusion = np.zeros((3, 3))
    for label, predicted in zip(labels, predictions, strict=True):
        confusion[label, predicted] += 1
    expected = classification_metrics(labels, predictions, names)
    found = classification_from_confusion(confusion, names)
    for key, value in found.items():
        assert value == pytest.approx(expected[key], abs=1e-12), key
    assert set(expected) - set(found) == {"n", "support_a", "support_b", "support_c"}


@pytest.mark.parametrize("records", [sst2_records(300, right=0.6), sst2_records(50, right=0.0)])
def test_sst2_statistic_reproduces_score_on_resamples(records):
    keys = sorted(score(SST2, records))
    statistic = prediction_statistic(SST2, records, keys)
    full = statistic(np.ones((1, len(records))))
    counts = np.concatenate([np.ones((1, len(records))), next(resample_counts(len(records), 4, seed=2))])
    resampled = statistic(counts)
    for row, row_counts in enumerate(counts):
        expected = score(SST2, expand(records, row_counts))
        for key, values in resampled.items():
            assert values[row] == pytest.approx(expected[key], abs=1e-12), (key, row)
    assert set(full) == set(keys) - {"n", "support_negative", "support_positive"}  # counts get no interval


def test_squad_statistic_reproduces_score_on_resamples(wordnet_ready):
    """Every key on every resample, except the held-out threshold F1 on resamples: its article folds are dealt once,
    on the scored set, and a resample keeps them (an expanded resample would deal its own: test_abstention checks
    the resampled cross-fit by brute force)."""
    records = squad_records(150, seed=3)
    keys = [*SQUAD.metrics.headline, "best_exact", "HasAns_exact", "NoAns_exact", "rouge1", "rouge2", "rougeLsum",
            "heldout_exact"]
    statistic = prediction_statistic(SQUAD, records, keys)
    counts = np.concatenate([np.ones((1, len(records))), next(resample_counts(len(records), 4, seed=2))])
    resampled = statistic(counts)
    assert set(resampled) == set(keys)
    for row, row_counts in enumerate(counts):
        expected = score(SQUAD, expand(records, row_counts))
        for key, values in resampled.items():
            if key.startswith("heldout_") and row > 0:
                continue
            assert values[row] == pytest.approx(expected[key], abs=1e-9), (key, row)


def test_squad_statistic_marks_resamples_without_answerable_questions_undefined():
    records = [{"id": "u", "prediction": "", "no_answer_prob": 0.9, "gold": []},
               {"id": "a", "prediction": "sun", "no_answer_prob": 0.1, "gold": ["sun"]}]
    statistic = prediction_statistic(SQUAD, records, ["exact", "HasAns_f1", "NoAns_f1", "bleu"])
    values = statistic(np.array([[2.0, 0.0], [1.0, 1.0]]))
    assert values["exact"].tolist() == [100.0, 100.0]
    assert np.isnan(values["HasAns_f1"][0]) and values["HasAns_f1"][1] == 100.0
    assert np.isnan(values["bleu"][0])
    assert "bleu" not in prediction_statistic(SQUAD, records[:1], ["bleu"])(np.ones((1, 1)))


def test_bootstrap_is_fast_enough_for_a_cpu_test_set(wordnet_ready):
    a, b = squad_records(1000, seed=1), squad_records(1000, seed=2)
    b = [dict(r, id=ra["id"], gold=ra["gold"]) for r, ra in zip(b, a, strict=True)]
    start = time.perf_counter()
    paired_bootstrap(prediction_statistic(SQUAD, a, SQUAD.metrics.headline),
                     prediction_statistic(SQUAD, b, SQUAD.metrics.headline), 1000, seed=1)
    assert time.perf_counter() - start < 15  # ~1 s here; the brief allows ~5 s per task


# ------------------------------------------------------------------------------------------- matching by id
def test_align_by_id_matches_records_and_refuses_different_examples():
    a = [{"id": "1", "x": 1}, {"id": "2", "x": 2}]
    b = [{"id": "2", "x": 20}, {"id": "1", "x": 10}]
    first, second = align_by_id(a, b)
    assert [r["x"] for r in second] == [10, 20] and first == a
    with pytest.raises(DataError, match="same examples"):
        align_by_id(a, [{"id": "1"}, {"id": "3"}])
    with pytest.raises(DataError):
        align_by_id(a, [*b, {"id": "1"}])


# ------------------------------------------------------------------------------- the unit and the method
def test_two_articles_give_no_honest_interval():
    """Two articles allow no interval (a cluster bootstrap has 3 possible resamples, a jackknife 1 df): none, and
    the report says why; the finer contexts are not resampled instead (they nest in the articles)."""
    records = squad_records(40, per_article=20, per_context=4)  # 2 articles, 10 contexts
    unit = resampling(SQUAD, records)
    assert (unit.unit, unit.labels, unit.method, unit.honest, unit.has_interval) == (
        "none", None, NO_INTERVAL, False, False)
    assert unit.counts == {"article": 2, "context": 10}
    assert unit.describe() == (f"no honest interval: 2 articles, 10 contexts, fewer than {MIN_JACKKNIFE_CLUSTERS} "
                               "clusters")
    assert unit.interval() == "no interval"
    with pytest.raises(DataError, match="no honest interval") as excinfo:
        cluster_labels(SQUAD, records)
    assert "squad_v2" in str(excinfo.value) and "40 examples" in str(excinfo.value)


@pytest.mark.parametrize("articles", [MIN_JACKKNIFE_CLUSTERS, 20, MIN_CLUSTERS - 1])
def test_fewer_than_30_articles_use_the_jackknife_of_articles_never_contexts(articles):
    records = squad_records(articles * 3, per_article=3, per_context=1)  # >= 30 contexts in most cases
    unit = resampling(SQUAD, records)
    assert (unit.unit, unit.method, unit.clusters, unit.df) == ("article", JACKKNIFE, articles, articles - 1)
    assert unit.labels == [r["cluster"]["title"] for r in records]
    assert unit.counts == {"article": articles, "context": articles * 3}
    assert not unit.honest and unit.has_interval  # a cluster bootstrap would be too narrow; the jackknife is not
    assert unit.describe() == f"whole articles ({articles} articles)"
    assert unit.interval() == f"cluster jackknife t, G−1 = {articles - 1} df"
    assert cluster_labels(SQUAD, records) == (unit.labels, "article")


def test_enough_articles_resample_articles():
    records = squad_records(120, per_article=4, per_context=2)  # 30 articles, 60 contexts
    unit = resampling(SQUAD, records)
    assert (unit.unit, unit.counts, unit.method) == ("article", {"article": 30, "context": 60}, BOOTSTRAP)
    assert unit.labels == [r["cluster"]["title"] for r in records]
    assert unit.describe() == "whole articles (30 articles)" and unit.honest and unit.df is None
    assert unit.interval() == "cluster bootstrap, 1000 resamples"
    assert resampling(SQUAD, records, resamples=250).interval() == "cluster bootstrap, 250 resamples"
    assert cluster_labels(SQUAD, records) == (unit.labels, "article")


@pytest.mark.parametrize(("n", "method", "interval"), [
    (MIN_CLUSTERS, BOOTSTRAP, "bootstrap, 1000 resamples"),
    (MIN_CLUSTERS - 1, JACKKNIFE, f"jackknife t, n−1 = {MIN_CLUSTERS - 2} df"),
    (MIN_JACKKNIFE_CLUSTERS - 1, NO_INTERVAL, "no interval")])
def test_independent_examples_are_their_own_clusters(n, method, interval):
    unit = resampling(SST2, sst2_records(n, right=0.5))
    assert (unit.unit, unit.labels, unit.method) == ("example", None, method)
    assert unit.clusters == n and unit.interval() == interval
    assert unit == iid_resampling(n)
    if method != NO_INTERVAL:
        assert unit.describe() == "examples (i.i.d.)"
        assert cluster_labels(SST2, sst2_records(n, 0.5)) == (None, "example")
    else:
        assert unit.describe().startswith("no honest interval")


def test_records_without_cluster_keys_are_refused():
    records = [{k: v for k, v in r.items() if k != "cluster"} for r in squad_records(40)]
    with pytest.raises(DataError, match="cluster field 'title'"):
        resampling(SQUAD, records)


def test_clustered_outcomes_widen_the_interval():
    """Questions of an article all right or all wrong together: resampling articles sees 40 outcomes, not 200, so
    its interval is wider than the i.i.d. one (which would overstate the evidence)."""
    rng = random.Random(5)
    labels = [f"a{i // 5:02d}" for i in range(200)]
    right = {label: rng.random() < 0.6 for label in set(labels)}
    worse = [{"id": str(i), "actual": "positive", "predicted": "negative", "loglik": {}} for i in range(200)]
    better = [dict(r, predicted="positive" if right[labels[i]] else "negative") for i, r in enumerate(worse)]
    stats = (prediction_statistic(SST2, worse, ["accuracy"]), prediction_statistic(SST2, better, ["accuracy"]))
    iid = paired_bootstrap(*stats, 200, seed=1)["accuracy"]
    clustered = paired_bootstrap(*stats, 200, seed=1, clusters=labels)["accuracy"]
    assert clustered.delta == iid.delta
    assert clustered.delta_ci.width > 1.5 * iid.delta_ci.width
    assert clustered.delta_se > 1.5 * iid.delta_se


# ---------------------------------------------------------------------------------------------- the jackknife
def test_jackknife_counts_delete_one_cluster_each():
    labels = ["b", "a", "c", "a", "b", "b"]
    counts = jackknife_counts(6, labels)
    assert counts.tolist() == [[1, 0, 1, 0, 1, 1], [0, 1, 1, 1, 0, 0], [1, 1, 0, 1, 1, 1]]  # a, b, c deleted
    assert jackknife_counts(3).tolist() == [[0, 1, 1], [1, 0, 1], [1, 1, 0]]
    with pytest.raises(ValueError, match="cluster labels"):
        jackknife_counts(5, labels)


def test_jackknife_se_of_a_mean_is_the_textbook_standard_error():
    """For the mean of equal-sized clusters the jackknife SE is exactly sd(cluster means) / sqrt(G), and with one
    example per cluster sd(examples) / sqrt(n)."""
    rng = np.random.default_rng(3)
    values = rng.normal(size=60)
    labels = [f"c{i // 6}" for i in range(60)]  # 10 clusters of 6
    mean = constant({"mean": values})
    replicates = mean(jackknife_counts(60, labels))["mean"]
    cluster_means = values.reshape(10, 6).mean(axis=1)
    assert jackknife_se(replicates) == pytest.approx(cluster_means.std(ddof=1) / np.sqrt(10), rel=1e-12)
    assert jackknife_se(mean(jackknife_counts(60))["mean"]) == pytest.approx(values.std(ddof=1) / np.sqrt(60),
                                                                             rel=1e-12)
    assert jackknife_se(np.array([1.0, np.nan, 2.0])) is None and jackknife_se(np.array([1.0])) is None


def test_few_clusters_get_a_t_interval_on_g_minus_1_df():
    from scipy.stats import t

    rng = np.random.default_rng(5)
    labels = [f"a{i // 8:02d}" for i in range(96)]  # 12 clusters
    effect = {label: rng.normal() for label in set(labels)}
    first = np.array([effect[label] + rng.normal() for label in labels])
    second = first + 0.3 + rng.normal(scale=0.5, size=96)
    stats = constant({"m": first}), constant({"m": second})
    unit = Resampling("article", labels, {"article": 12}, JACKKNIFE, 96)
    result = paired_intervals(*stats, 96, unit)["m"]
    assert result == paired_jackknife(*stats, 96, clusters=labels, method=unit.interval())["m"]
    assert (result.method, result.df) == ("cluster jackknife t, G−1 = 11 df", 11)
    deleted = jackknife_counts(96, labels)
    replicates = deleted @ second / deleted.sum(axis=1) - deleted @ first / deleted.sum(axis=1)
    se = np.sqrt(11 / 12 * ((replicates - replicates.mean()) ** 2).sum())
    half = t.ppf(0.975, 11) * se
    assert result.delta == pytest.approx(second.mean() - first.mean(), abs=1e-12)
    assert result.delta_se == pytest.approx(se, rel=1e-12)
    assert (result.delta_ci.low, result.delta_ci.high) == pytest.approx((result.delta - half, result.delta + half))
    assert result.first_ci.low < first.mean() < result.first_ci.high
    assert result.mde == pytest.approx((t.ppf(0.975, 11) + t.ppf(0.8, 11)) * se, rel=1e-9)
    assert mde_factor(11) > MDE_FACTOR and mde_factor(None) == MDE_FACTOR  # t quantiles are wider than z ones
    same = paired_intervals(stats[0], stats[0], 96, unit)["m"]
    assert (same.delta_ci, same.delta_se) == (Interval(0.0, 0.0), 0.0)


def test_the_method_follows_the_number_of_clusters():
    """>= 30 clusters: exactly paired_bootstrap over them; fewer: the jackknife; < MIN_JACKKNIFE_CLUSTERS: values,
    no intervals. Never examples as if independent."""
    values = np.random.default_rng(2).normal(size=(2, 120))
    stats = constant({"m": values[0]}), constant({"m": values[1]})
    labels30 = [f"a{i // 4:02d}" for i in range(120)]
    many = paired_intervals(*stats, 120, Resampling("article", labels30, {"article": 30}, BOOTSTRAP, 120), seed=3)
    assert many == paired_bootstrap(*stats, 120, seed=3, clusters=labels30, method="cluster bootstrap, 1000 resamples")
    assert many["m"].df is None and many["m"].method == "cluster bootstrap, 1000 resamples"
    labels6 = [f"a{i // 20}" for i in range(120)]
    few = paired_intervals(*stats, 120, Resampling("article", labels6, {"article": 6}, JACKKNIFE, 120))["m"]
    assert few.df == 5 and few.method == "cluster jackknife t, G−1 = 5 df"
    iid = paired_bootstrap(*stats, 120, seed=0)["m"]
    assert few.delta_ci != iid.delta_ci
    none = paired_intervals(*stats, 120, Resampling("none", None, {"article": 3}, NO_INTERVAL, 120))["m"]
    assert (none.first_ci, none.second_ci, none.delta_ci, none.mde, none.method) == (None, None, None, None, "")
    assert none.delta == pytest.approx(values[1].mean() - values[0].mean())


def test_an_undefined_jackknife_replicate_leaves_no_interval():
    """The only answerable questions lie in one article: deleting it leaves HasAns_f1 undefined, so no interval
    (rather than a G−2 replicate SE on G−1 df)."""
    records = squad_records(60, per_article=6, per_context=2)  # 10 articles
    records = [dict(r, gold=["the sun"] if i < 6 else []) for i, r in enumerate(records)]
    stat = prediction_statistic(SQUAD, records, ["HasAns_f1", "exact"])
    result = paired_intervals(stat, stat, 60, resampling(SQUAD, records))
    assert result["HasAns_f1"].first_ci is None and result["HasAns_f1"].delta_ci is None
    assert result["exact"].first_ci is not None


def test_jackknife_t_covers_where_a_few_cluster_bootstrap_does_not():
    """Monte Carlo (seeded) on 8 clusters of 10 strongly correlated outcomes: the jackknife t interval of the mean
    covers the true mean about 95% of the time; the percentile cluster bootstrap, too narrow with so few clusters,
    covers less often."""
    rng = np.random.default_rng(11)
    labels = [f"c{i // 10}" for i in range(80)]
    unit = Resampling("cluster", labels, {"cluster": 8}, JACKKNIFE, 80)
    jackknife = bootstrap = 0
    runs = 300
    for run in range(runs):
        values = np.repeat(rng.normal(size=8), 10) + rng.normal(scale=0.3, size=80)  # true mean 0
        stat = constant({"m": values})
        jackknife += paired_intervals(stat, stat, 80, unit)["m"].first_ci.excludes(0.0) is False
        boot = paired_bootstrap(stat, stat, 80, resamples=200, seed=run, clusters=labels)["m"].first_ci
        bootstrap += boot.excludes(0.0) is False
    assert jackknife / runs >= 0.91
    assert bootstrap / runs < jackknife / runs - 0.02


def test_phase_interval_is_the_first_ci_of_paired_intervals():
    records = squad_records(60, per_article=3, per_context=1)  # 20 articles: the jackknife
    stat = prediction_statistic(SQUAD, records, ["exact"])
    paired = paired_intervals(stat, stat, 60, resampling(SQUAD, records))["exact"]
    assert phase_interval(SQUAD, records, "exact") == paired.first_ci is not None
    many = sst2_records(200, right=0.7)
    unit = resampling(SST2, many)
    first = paired_intervals(prediction_statistic(SST2, many, ["accuracy"]),
                             prediction_statistic(SST2, many, ["accuracy"]), 200, unit, seed=4)["accuracy"].first_ci
    assert phase_interval(SST2, many, "accuracy", seed=4) == first
    assert phase_interval(SST2, many, "no_such_metric") is None


# ------------------------------------------------------------------------------------- SE, MDE and McNemar
def test_delta_se_is_the_resampled_differences_standard_deviation_and_mde_is_2_8_of_it():
    from scipy.stats import norm

    worse, better = sst2_records(300, right=0.55, seed=1), sst2_records(300, right=0.7, seed=1)
    first, second = prediction_statistic(SST2, worse, ["accuracy"]), prediction_statistic(SST2, better, ["accuracy"])
    result = paired_bootstrap(first, second, 300, resamples=400, seed=4)["accuracy"]
    counts = np.concatenate(list(resample_counts(300, 400, seed=4)))
    deltas = second(counts)["accuracy"] - first(counts)["accuracy"]
    assert result.delta_se == pytest.approx(deltas.std(ddof=1), rel=1e-12)
    assert result.mde == pytest.approx(2.8016 * result.delta_se, rel=1e-12)
    assert abs(MDE_FACTOR - (norm.ppf(0.975) + norm.ppf(0.8))) < 1e-4  # z_0.975 + z_0.80
    assert Paired(0.5, 0.6, None, None, None).mde is None  # no SE, no MDE


@pytest.mark.parametrize(("b", "c"), [(2, 10), (10, 2), (0, 5), (4, 4)])
def test_mcnemar_exact_is_the_two_sided_binomial_p_of_the_discordant_pairs(b, c):
    from math import comb

    from scipy.stats import binomtest

    first = [True] * b + [False] * c + [True] * 7 + [False] * 3  # 7 right in both, 3 wrong in both
    second = [False] * b + [True] * c + [True] * 7 + [False] * 3
    result = mcnemar_exact(first, second)
    exact = min(1.0, 2 * sum(comb(b + c, k) for k in range(min(b, c) + 1)) / 2 ** (b + c))
    assert result == {"only_first": b, "only_second": c, "p": pytest.approx(exact, rel=1e-9)}
    assert result["p"] == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-9)


def test_mcnemar_by_hand_and_without_discordant_pairs():
    first = [True, True] + [False] * 10 + [True] * 5
    second = [False, False] + [True] * 10 + [True] * 5
    assert mcnemar_exact(first, second)["p"] == pytest.approx(158 / 4096)  # 2 * (1 + 12 + 66) / 2^12
    assert mcnemar_exact([True, False, True], [True, False, True]) == {"only_first": 0, "only_second": 0, "p": 1.0}
    with pytest.raises(ValueError):
        mcnemar_exact([True], [True, False])


# -------------------------------------------------------------------------------------------------- answered
def test_answered_matches_answer_rate_and_score_on_the_full_set(wordnet_ready):
    from tuneval.scoring.metrics import answer_rate

    records = squad_records(80, seed=6)
    records[0] = dict(records[0], prediction="the sun", no_answer_prob=1.5)  # above the threshold: abstains
    records[1] = dict(records[1], prediction="", no_answer_prob=0.0)
    preds = {r["id"]: r["prediction"] for r in records}
    probs = {r["id"]: r["no_answer_prob"] for r in records}
    expected = 100.0 * sum(bool(r["prediction"]) and r["no_answer_prob"] <= 1.0 for r in records) / len(records)
    assert answer_rate(preds, probs) == pytest.approx(expected)
    full = prediction_statistic(SQUAD, records, ["answered"])(np.ones((1, len(records))))
    assert full["answered"][0] == pytest.approx(expected, abs=1e-9)
    scores = score(SQUAD, records)
    assert scores["answered"] == pytest.approx(expected, abs=1e-9)


def test_engine_cluster_keys_on_the_bundled_dev_sample_resample_articles(repo_root):
    """evaluation.predict records each row's cluster fields (a long context as a 12-hex digest); on the bundled
    SQuAD v2 dev set the intervals resample whole articles (by the bootstrap with 30 or more, the jackknife with
    fewer), never the contexts nested in them."""
    import hashlib

    from tuneval.io import read_jsonl
    from tuneval.scoring.engine import cluster_keys

    rows = read_jsonl(repo_root / "data" / "sample" / "squad_v2" / "validation.jsonl.gz")
    keys = [cluster_keys(SQUAD, row) for row in rows]
    assert keys[0] == {"title": rows[0]["title"],
                       "context": hashlib.sha256(rows[0]["context"].encode()).hexdigest()[:12]}
    assert cluster_keys(SQUAD, {"title": "Short", "context": "A short context."}) == {
        "title": "Short", "context": "A short context."}
    contexts, articles = len({r["context"] for r in rows}), len({r["title"] for r in rows})
    assert len({k["context"] for k in keys}) == contexts > articles > 1
    unit = resampling(SQUAD, [{"id": r["id"], "cluster": k} for r, k in zip(rows, keys, strict=True)])
    assert (unit.unit, unit.counts) == ("article", {"article": articles, "context": contexts})
    assert unit.method == (BOOTSTRAP if articles >= MIN_CLUSTERS else JACKKNIFE)
    assert unit.describe() == f"whole articles ({articles} articles)"
    assert cluster_keys(SST2, {"id": "1", "sentence": "x", "label": 0}) == {}
