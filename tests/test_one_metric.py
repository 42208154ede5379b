"""One implementation per metric: the value a metrics file reports and its bootstrap interval come from the same
function in tuneval.scoring.metrics, so changing a metric's definition in that one place changes both."""

from __future__ import annotations

import numpy as np
import pytest

from tuneval.scoring import metrics as M
from tuneval.scoring.stats import paired_bootstrap, prediction_statistic
from tuneval.tasks import get_task

SST2, SQUAD = get_task("sst2"), get_task("squad_v2")


def _sst2_records(seed: int, n: int = 60) -> list[dict]:
    rng = np.random.default_rng(seed)
    names = SST2.label_names
    return [{"id": str(i), "actual": names[rng.integers(2)], "predicted": names[rng.integers(2)]} for i in range(n)]


def _squad_records(seed: int, n: int = 40) -> list[dict]:
    rng = np.random.default_rng(seed)
    words = ["red car", "paris", "the king", "old river", ""]
    return [{"id": str(i), "gold": [] if i % 3 == 0 else [words[i % 4]], "prediction": words[rng.integers(5)],
             "no_answer_prob": float(rng.random())} for i in range(n)]


def test_classification_agrees_with_scikit_learn():
    """The confusion-matrix formulas against an independent implementation (scikit-learn, zero_division=0)."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    rng = np.random.default_rng(0)
    for k in (2, 3):
        names = [f"c{i}" for i in range(k)]
        labels, predictions = rng.integers(k, size=50).tolist(), rng.integers(k, size=50).tolist()
        ours = M.classification_metrics(labels, predictions, names)
        p, r, f, support = precision_recall_fscore_support(labels, predictions, labels=list(range(k)),
                                                           zero_division=0)
        macro = precision_recall_fscore_support(labels, predictions, labels=list(range(k)), average="macro",
                                                zero_division=0)
        assert ours["accuracy"] == pytest.approx(accuracy_score(labels, predictions))
        assert ours["macro_f1"] == pytest.approx(macro[2]) and ours["macro_precision"] == pytest.approx(macro[0])
        for i, name in enumerate(names):
            assert (ours[f"precision_{name}"], ours[f"recall_{name}"], ours[f"f1_{name}"]) == pytest.approx(
                (p[i], r[i], f[i]))
            assert ours[f"support_{name}"] == support[i]


def test_changing_the_classification_formula_changes_value_and_interval(monkeypatch):
    records = _sst2_records(1)
    labels = [SST2.label_names.index(r["actual"]) for r in records]
    predicted = [SST2.label_names.index(r["predicted"]) for r in records]

    def run():
        value = M.classification_metrics(labels, predicted, SST2.label_names)["accuracy"]
        stat = prediction_statistic(SST2, records, ["accuracy"])
        paired = paired_bootstrap(stat, stat, len(records), resamples=200, seed=3)["accuracy"]
        return value, paired.first, paired.first_ci

    before = run()
    original = M.classification_from_confusion

    def halved(confusion, label_names):
        scores = original(confusion, label_names)
        return {**scores, "accuracy": scores["accuracy"] / 2}

    monkeypatch.setattr(M, "classification_from_confusion", halved)
    after = run()
    assert after[0] == pytest.approx(before[0] / 2) and after[1] == pytest.approx(before[1] / 2)
    assert after[2].low == pytest.approx(before[2].low / 2) and after[2].high == pytest.approx(before[2].high / 2)


def test_changing_the_squad_f1_changes_value_and_interval(monkeypatch):
    records = _squad_records(2)
    gold = {r["id"]: r["gold"] for r in records}
    preds = {r["id"]: r["prediction"] for r in records}
    probs = {r["id"]: r["no_answer_prob"] for r in records}

    def run():
        value = M.squad_v2_scores(gold, preds, probs)
        stat = prediction_statistic(SQUAD, records, ["f1", "best_f1"])
        paired = paired_bootstrap(stat, stat, len(records), resamples=200, seed=3)
        return value, paired

    before_value, before = run()
    monkeypatch.setattr(M, "_overlap_f1", lambda gold_tokens, predicted_tokens: 1.0)  # every answer "right"
    after_value, after = run()
    assert after_value["f1"] > before_value["f1"] and after_value["best_f1"] >= before_value["best_f1"]
    assert after["f1"].first == pytest.approx(after_value["f1"])  # the interval's full-set value is the new value
    assert after["f1"].first_ci != before["f1"].first_ci
