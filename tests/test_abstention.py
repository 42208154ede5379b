"""tuneval.scoring.abstention: article folds, the cross-fit held-out threshold F1 (checked by brute force with the
official SQuAD v2 scores, and for leakage), the no-answer AUROC (checked against scikit-learn, with weights), and
what score() reports."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from test_stats import squad_records

from tuneval.scoring import abstention as A
from tuneval.scoring import metrics as M
from tuneval.scoring.scores import score
from tuneval.scoring.stats import paired_intervals, prediction_statistic, resample_counts, resampling
from tuneval.tasks import get_task

SQUAD = get_task("squad_v2")


def records_with_logprobs(n: int = 120, seed: int = 0, per_article: int = 6) -> list[dict]:
    """squad_records with no_answer_logprob = log(no_answer_prob), as the engine writes them."""
    return [dict(r, no_answer_logprob=float(np.log(r["no_answer_prob"])))
            for r in squad_records(n, seed=seed, per_article=per_article, per_context=2)]


# -------------------------------------------------------------------------------------------------- folds
def test_folds_deal_whole_groups_evenly_and_by_a_fixed_seed():
    groups = [f"article-{i % 13:02d}" for i in range(200)]
    random.Random(0).shuffle(groups)
    folds = A.deal_folds(groups, "article")
    assert folds.k == 5 and folds.rule == "5-fold cross-fit over articles"
    fold_of: dict[str, set[int]] = {}
    for group, fold in zip(groups, folds.index, strict=True):
        fold_of.setdefault(group, set()).add(int(fold))
    assert all(len(f) == 1 for f in fold_of.values())  # an article is never split between folds
    sizes = np.bincount([next(iter(f)) for f in fold_of.values()], minlength=5)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == 13  # 13 articles: 3, 3, 3, 2, 2
    assert np.array_equal(A.deal_folds(groups, "article").index, folds.index)
    assert not np.array_equal(A.deal_folds(groups, "article", seed=1).index, folds.index)
    assert A.deal_folds(["a", "b", "a"], "article").k == 2  # fewer groups than folds
    assert A.deal_folds(["a", "a"], "article") is None


def test_task_folds_use_articles_and_say_so_when_there_are_none():
    records = squad_records(60, per_article=6)
    folds = A.task_folds(SQUAD, records)
    titles = [r["cluster"]["title"] for r in records]
    assert folds.unit == "article"
    assert all(len({f for t, f in zip(titles, folds.index, strict=True) if t == title}) == 1 for title in titles)
    bare = [{k: v for k, v in r.items() if k != "cluster"} for r in records]
    assert A.task_folds(SQUAD, bare).rule == "5-fold cross-fit over questions"


# ------------------------------------------------------------------------------------------ held-out threshold
def brute_force_heldout(records: list[dict], folds: np.ndarray, key: str = "f1") -> tuple[float, list[float]]:
    """The cross-fit by hand with the official scores: each fold's threshold is squad_v2_scores' best_*_thresh on
    the other folds' questions; the fold is then scored at that threshold; the F1 is over all questions."""
    total, thresholds = 0.0, []
    for fold in sorted(set(folds.tolist())):
        train = [r for r, f in zip(records, folds, strict=True) if f != fold]
        test = [r for r, f in zip(records, folds, strict=True) if f == fold]
        swept = M.squad_v2_scores({r["id"]: r["gold"] for r in train}, {r["id"]: r["prediction"] for r in train},
                                  {r["id"]: r["no_answer_prob"] for r in train})
        threshold = swept[f"best_{key}_thresh"]
        thresholds.append(threshold)
        scored = M.squad_v2_scores({r["id"]: r["gold"] for r in test}, {r["id"]: r["prediction"] for r in test},
                                   {r["id"]: r["no_answer_prob"] for r in test}, no_answer_threshold=threshold)
        total += scored[key] * len(test)
    return total / len(records), thresholds


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_heldout_f1_is_the_official_sweep_cross_fitted_by_hand(seed):
    records = records_with_logprobs(150, seed=seed)
    folds = A.task_folds(SQUAD, records)
    found = A.abstention_scores(SQUAD, records)
    for key in ("f1", "exact"):
        value, thresholds = brute_force_heldout(records, folds.index, key)
        assert found[f"heldout_{key}"] == pytest.approx(value, abs=1e-9)
        assert found[f"heldout_{key}_thresholds"] == pytest.approx(thresholds, abs=0)
    assert found["heldout_rule"] == "5-fold cross-fit over articles"
    assert len(set(found["heldout_f1_thresholds"])) > 1  # the folds do choose their own thresholds


def test_resampled_heldout_f1_reruns_the_cross_fit_on_the_resample():
    """With counts, each fold's threshold is chosen on the resample's other folds (questions drawn twice count
    twice): the same as the brute force on the expanded resample with the scored set's folds."""
    records = records_with_logprobs(120, seed=4)
    folds = A.task_folds(SQUAD, records).index
    statistic = prediction_statistic(SQUAD, records, ["heldout_f1"])
    titles = [r["cluster"]["title"] for r in records]
    for counts in next(resample_counts(len(records), 3, seed=5, clusters=titles)):
        expanded = [dict(records[i], id=f"{records[i]['id']}#{k}") for i, c in enumerate(counts)
                    for k in range(int(c))]
        expanded_folds = np.array([folds[i] for i, c in enumerate(counts) for _ in range(int(c))])
        expected, _ = brute_force_heldout(expanded, expanded_folds)
        assert statistic(counts[None, :])["heldout_f1"][0] == pytest.approx(expected, abs=1e-9)


def test_a_fold_threshold_never_sees_the_fold_it_decides():
    """Change the no-answer probabilities of one fold's questions: that fold's threshold stays; the others'
    move (they were chosen with those questions)."""
    records = records_with_logprobs(150, seed=6)
    folds = A.task_folds(SQUAD, records).index
    before = A.abstention_scores(SQUAD, records)["heldout_f1_thresholds"]
    rng = np.random.default_rng(0)
    changed = [dict(r, no_answer_prob=float(rng.random())) if folds[i] == 0 else r for i, r in enumerate(records)]
    after = A.abstention_scores(SQUAD, changed)["heldout_f1_thresholds"]
    assert after[0] == before[0]
    assert after[1:] != before[1:]


def test_always_abstaining_scores_the_unanswerable_share_at_any_threshold():
    records = [dict(r, prediction="", no_answer_prob=1.0, no_answer_logprob=0.0,
                    gold=["paris red"] if r["gold"] else [])  # golds that do not normalise to "" (as "the" would)
               for r in records_with_logprobs()]
    share = 100 * sum(not r["gold"] for r in records) / len(records)
    found = A.abstention_scores(SQUAD, records)
    assert found["heldout_f1"] == pytest.approx(share) and found["no_answer_auroc"] == 50.0


def test_one_article_has_no_cross_fit():
    records = squad_records(20, per_article=20)
    assert set(A.abstention_scores(SQUAD, records)) == {"no_answer_auroc"}
    assert "heldout_f1" not in prediction_statistic(SQUAD, records, ["heldout_f1"])(np.ones((1, 20)))


# --------------------------------------------------------------------------------------------------- AUROC
def test_auroc_is_sklearns_with_and_without_weights():
    records = records_with_logprobs(200, seed=7)
    records[:20] = [dict(r, no_answer_logprob=-1.0, no_answer_prob=float(np.exp(-1.0))) for r in records[:20]]  # ties
    labels = np.array([not r["gold"] for r in records], dtype=int)
    scores = np.array([r["no_answer_logprob"] for r in records])
    terms = A.terms_for(SQUAD, records)
    assert A.no_answer_auroc(records) == pytest.approx(100 * roc_auc_score(labels, scores), abs=1e-12)
    assert A.auroc_from_terms(terms, np.ones((1, 200)))[0] == pytest.approx(A.no_answer_auroc(records), abs=1e-9)
    counts = np.concatenate(list(resample_counts(200, 50, seed=2)))
    expected = [100 * roc_auc_score(labels, scores, sample_weight=row) for row in counts]
    assert A.auroc_from_terms(terms, counts) == pytest.approx(expected, abs=1e-9)


def test_auroc_orientation_and_undefined_cases():
    gold = [["x"], ["y"], [], []]
    base = [{"id": str(i), "gold": g, "prediction": "", "no_answer_prob": p} for i, (g, p) in
            enumerate(zip(gold, [0.1, 0.2, 0.8, 0.9], strict=True))]
    assert A.no_answer_auroc(base) == 100.0  # unanswerable questions get the higher no-answer probability
    flipped = [dict(r, no_answer_prob=1 - r["no_answer_prob"]) for r in base]
    assert A.no_answer_auroc(flipped) == 0.0
    assert A.no_answer_auroc(base[:2]) is None  # one kind of question only
    terms = A.terms_for(SQUAD, base)
    assert np.isnan(A.auroc_from_terms(terms, np.array([[1.0, 1.0, 0.0, 0.0]]))[0])


def test_auroc_ranks_by_logprob_where_probabilities_underflow():
    records = [{"id": str(i), "gold": [] if i % 2 else ["x"], "prediction": "", "no_answer_prob": 0.0,
                "no_answer_logprob": -800.0 + (100 if i % 2 else 0) + i} for i in range(10)]
    assert A.no_answer_auroc(records) == 100.0  # every probability is 0.0: only the log-probabilities rank
    assert A.no_answer_auroc([{k: v for k, v in r.items() if k != "no_answer_logprob"} for r in records]) == 50.0


# -------------------------------------------------------------------------------------------- score() and CIs
def test_score_reports_the_abstention_metrics(wordnet_ready):
    records = records_with_logprobs(90, seed=8)
    scores = score(SQUAD, records)
    for key in ("heldout_f1", "heldout_exact", "heldout_f1_thresholds", "heldout_exact_thresholds", "heldout_rule",
                "no_answer_auroc", "best_f1", "f1", "answered"):
        assert key in scores, key
    assert scores == {**scores, **A.abstention_scores(SQUAD, records)}
    assert 0 <= scores["heldout_f1"] <= 100 and 0 <= scores["no_answer_auroc"] <= 100


def test_abstention_metrics_get_clustered_intervals():
    zeroshot, finetuned = records_with_logprobs(150, seed=9), records_with_logprobs(150, seed=10)
    finetuned = [dict(r, id=z["id"], gold=z["gold"], cluster=z["cluster"]) for r, z in zip(finetuned, zeroshot,
                                                                                           strict=True)]
    keys = ["heldout_f1", "no_answer_auroc"]
    unit = resampling(SQUAD, zeroshot)  # 25 articles: the jackknife
    paired = paired_intervals(prediction_statistic(SQUAD, zeroshot, keys), prediction_statistic(SQUAD, finetuned, keys),
                              150, unit)
    assert unit.df == 24
    for key in keys:
        result = paired[key]
        assert result.method == "cluster jackknife t, G−1 = 24 df"
        assert result.first_ci.low < result.first < result.first_ci.high
        assert result.first == pytest.approx(A.abstention_scores(SQUAD, zeroshot)[key], abs=1e-9)
