"""tuneval.stats: the seeded percentile bootstrap, the paired difference, and per-example statistics that
reproduce the engine's score() on the full set and on resamples."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest

from tuneval import wordnet as wordnet_support
from tuneval.errors import DataError
from tuneval.evaluation import score
from tuneval.metrics import classification_metrics
from tuneval.stats import (
    Interval,
    align_by_id,
    classification_from_confusion,
    paired_bootstrap,
    percentile_interval,
    prediction_statistic,
    resample_counts,
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


def squad_records(n: int, seed: int = 0) -> list[dict]:
    """n SQuAD v2 records: about a third unanswerable, answers right, empty or wrong, tied probabilities too."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        gold = [" ".join(rng.sample(WORDS, rng.randint(1, 3))) for _ in range(rng.choice([0, 1, 1, 2]))]
        prediction = rng.choice(["", gold[0] if gold else "", " ".join(rng.sample(WORDS, 2)), "the sun"])
        prob = 0.5 if rng.random() < 0.2 else rng.random()
        records.append({"id": f"q{i}", "generated": prediction, "prediction": prediction,
                        "no_answer_prob": prob, "gold": gold})
    return records


def expand(records: list[dict], counts: np.ndarray) -> list[dict]:
    """The resample as records: each drawn as often as counted, ids made unique (score() keys by id)."""
    return [dict(records[i], id=f"{records[i]['id']}#{k}") for i, c in enumerate(counts) for k in range(int(c))]


def constant(values: dict[str, np.ndarray]):
    """A statistic: the mean of per-example values (for the generic bootstrap tests)."""
    return lambda counts: {key: counts @ v / counts.sum(axis=1) for key, v in values.items()}


@pytest.fixture(scope="module")
def wordnet_ready() -> None:
    if not wordnet_support.wordnet_available():
        pytest.skip("WordNet is not installed for NLTK (METEOR); see scripts/install_wordnet.py")


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


def test_percentile_interval_drops_undefined_values():
    values = np.array([*range(101), np.nan, np.inf])
    interval = percentile_interval(values)
    assert (interval.low, interval.high) == pytest.approx((2.5, 97.5))
    assert percentile_interval(np.array([np.nan])) is None
    assert Interval(0.1, 0.2).excludes_zero() and Interval(-0.2, -0.1).excludes_zero()
    assert not Interval(0.0, 0.2).excludes_zero() and not Interval(-0.1, 0.1).excludes_zero()


# ------------------------------------------------------------------------------------------ paired intervals
def test_identical_phases_give_a_zero_difference_interval():
    records = sst2_records(200, right=0.7)
    stat = prediction_statistic(SST2, records, SST2.metrics.headline)
    results = paired_bootstrap(stat, stat, len(records), seed=1)
    assert list(results) == SST2.metrics.headline
    for result in results.values():
        assert result.delta == 0 and result.delta_ci == Interval(0.0, 0.0)
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
    records = squad_records(150, seed=3)
    keys = [*SQUAD.metrics.headline, "best_exact", "HasAns_exact", "NoAns_exact", "rouge1", "rouge2", "rougeLsum"]
    statistic = prediction_statistic(SQUAD, records, keys)
    counts = np.concatenate([np.ones((1, len(records))), next(resample_counts(len(records), 4, seed=2))])
    resampled = statistic(counts)
    assert set(resampled) == set(keys)
    for row, row_counts in enumerate(counts):
        expected = score(SQUAD, expand(records, row_counts))
        for key, values in resampled.items():
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
