"""SQuAD v2 abstention, measured the way SQuAD v2 systems measure it, by one rule for both phases.

A SQuAD v2 system abstains when its no-answer probability exceeds a threshold. The official script reports
``best_f1``: F1 at the threshold that maximises F1 *on the very questions it reports*, an in-sample upper bound
(:data:`IN_SAMPLE_NOTE`). Beside it this module reports what a threshold is worth on questions it never saw,
and how well the no-answer probability separates the two kinds of question at all:

- ``heldout_f1`` / ``heldout_exact``: cross-fitting over article folds. The scored set's articles (the task's
  coarsest cluster, e.g. SQuAD titles) are dealt into :data:`FOLDS` folds by a fixed seed (:data:`FOLD_SEED`);
  for each fold the official best-threshold sweep (:func:`tuneval.scoring.metrics.squad_v2_from_terms`'
  ``best_f1_thresh`` / ``best_exact_thresh``) runs on the *other* folds' questions, and the threshold it finds
  decides the fold's questions (abstain where the no-answer probability exceeds it, the official rule). The
  score is over all questions; ``heldout_f1_thresholds`` lists the folds' thresholds and ``heldout_rule`` says
  how they were chosen. Whole articles per fold, so no threshold is tuned on a question's own article.
- ``no_answer_auroc``: the area under the ROC curve of the no-answer score (the log-probability of answering
  "unanswerable", where the records hold it, else the probability: the same ranking) with unanswerable questions
  as positives, percent (0-100, like every SQuAD v2 score; 50 = chance). The reported value is
  :func:`sklearn.metrics.roc_auc_score`'s; :func:`auroc_from_terms` computes the same area from counts (the
  Mann-Whitney form, ties counted half) so the intervals can resample it, and the report checks the two agree.

Every value is a function of per-question terms and *counts* (:func:`abstention_from_terms`), so
:mod:`tuneval.scoring.stats` resamples it like any other metric: under a resample the thresholds are chosen
again, on the resample's other folds. Questions whose records carry no cluster field are dealt into folds one
by one, and ``heldout_rule`` then says "over questions".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuneval.scoring import metrics as M
from tuneval.tasks import Task

FOLDS = 5
FOLD_SEED = 0  # the fixed seed that deals articles into folds: both phases get the same folds
HELDOUT_KEYS = ("heldout_exact", "heldout_f1")
AUROC_KEY = "no_answer_auroc"
KEYS = (*HELDOUT_KEYS, AUROC_KEY)
IN_SAMPLE_KEYS = ("best_exact", "best_f1")
IN_SAMPLE_NOTE = ("in-sample upper bound: the no-answer threshold is chosen on the reported questions "
                  "themselves (official best-threshold sweep)")
IN_SAMPLE_LABEL = "in-sample upper bound"  # how tables label best_exact / best_f1
GREEDY_F1, ANSWER_RATE = "f1", "answered"  # score()'s greedy F1 (no threshold) and answer rate
# what reports show about abstention, in this order (where the task's headline has them): greedy F1, held-out
# threshold F1, the in-sample best_f1, the no-answer AUROC, the answer rate
REPORTED = (GREEDY_F1, HELDOUT_KEYS[1], IN_SAMPLE_KEYS[1], AUROC_KEY, ANSWER_RATE)


def labelled(key: str, name: str | None = None) -> str:
    """`name` (default: the key) plus ` (in-sample upper bound)` for best_exact / best_f1: how every report shows
    them."""
    name = key if name is None else name
    return f"{name} ({IN_SAMPLE_LABEL})" if key in IN_SAMPLE_KEYS and IN_SAMPLE_LABEL not in name else name


@dataclass(frozen=True)
class Folds:
    """The cross-fit's folds: `index[i]` is question i's fold (0..k-1), `unit` what a fold is dealt in."""

    index: np.ndarray
    k: int
    unit: str

    @property
    def rule(self) -> str:
        """`5-fold cross-fit over articles`: the heldout_rule of the metrics."""
        return f"{self.k}-fold cross-fit over {self.unit}s"


def deal_folds(groups: Sequence[str], unit: str, k: int = FOLDS, seed: int = FOLD_SEED) -> Folds | None:
    """Deal the distinct `groups` (sorted, then permuted by `seed`) round into min(k, groups) folds of as equal a
    number of groups as possible; every question goes with its group. None with fewer than 2 groups."""
    distinct = sorted(set(groups))
    if len(distinct) < 2:
        return None
    k = min(k, len(distinct))
    order = np.random.default_rng(seed).permutation(len(distinct))
    fold_of = {distinct[member]: fold for fold, members in enumerate(np.array_split(order, k)) for member in members}
    return Folds(np.array([fold_of[group] for group in groups], dtype=int), k, unit)


def task_folds(task: Task, records: Sequence[dict[str, Any]], k: int = FOLDS, seed: int = FOLD_SEED) -> Folds | None:
    """Folds of the task's coarsest cluster (SQuAD: articles) where every record carries it, else of questions."""
    if task.clusters:
        field, unit = next(iter(task.clusters.items()))
        groups = [str(record.get("cluster", {}).get(field, "")) for record in records]
        if all(groups):
            return deal_folds(groups, unit, k, seed)
    return deal_folds([str(record["id"]) for record in records], "question", k, seed)


def no_answer_scores(records: Sequence[dict[str, Any]]) -> np.ndarray:
    """The score the AUROC ranks: no_answer_logprob where every record has it (no underflow to 0), else
    no_answer_prob."""
    field = "no_answer_logprob" if all("no_answer_logprob" in r for r in records) else "no_answer_prob"
    return np.array([float(r[field]) for r in records])


@dataclass(frozen=True)
class AbstentionTerms:
    """Per-question terms of the abstention metrics (records' order)."""

    squad: M.SquadTerms  # the official terms: raw exact/F1, has_answer, no-answer probabilities, sweep order
    folds: Folds | None  # None: fewer than two groups, no cross-fit
    order: np.ndarray  # questions by increasing no-answer score
    tie_start: np.ndarray  # per sorted position: the first sorted position with the same score
    tie_end: np.ndarray  # per sorted position: the last sorted position with the same score


def abstention_terms(squad: M.SquadTerms, folds: Folds | None, scores: np.ndarray) -> AbstentionTerms:
    order = np.argsort(scores, kind="stable")
    ranked = scores[order]
    new = np.r_[True, ranked[1:] != ranked[:-1]]  # a tie group starts here
    starts = np.flatnonzero(new)
    group = np.cumsum(new) - 1
    ends = np.r_[starts[1:] - 1, len(ranked) - 1]
    return AbstentionTerms(squad=squad, folds=folds, order=order, tie_start=starts[group], tie_end=ends[group])


def terms_for(task: Task, records: Sequence[dict[str, Any]], squad: M.SquadTerms | None = None,
              folds: int = FOLDS, seed: int = FOLD_SEED) -> AbstentionTerms:
    """The abstention terms of prediction records ({id, prediction, no_answer_prob, gold, [no_answer_logprob],
    [cluster]}); `squad`: their official terms where the caller has them (same order, threshold 1.0)."""
    if squad is None:
        ids = [r["id"] for r in records]
        squad = M.squad_v2_terms({i: r["gold"] for i, r in zip(ids, records, strict=True)},
                                 {i: r["prediction"] for i, r in zip(ids, records, strict=True)},
                                 {i: float(r["no_answer_prob"]) for i, r in zip(ids, records, strict=True)})
    return abstention_terms(squad, task_folds(task, records, folds, seed), no_answer_scores(records))


# ---------------------------------------------------------------------------------------------- the metrics
def heldout_from_terms(terms: AbstentionTerms, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Per replicate: heldout_exact / heldout_f1 (percent) and their per-fold thresholds, `heldout_*_thresholds`
    of shape (replicates, k): each fold's threshold is the official sweep's on the other folds' counts. {} without
    folds."""
    if terms.folds is None:
        return {}
    squad, folds = terms.squad, terms.folds
    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    unanswerable = 1.0 - squad.has_answer
    values = {name: np.empty_like(counts) for name in ("exact", "f1")}
    thresholds = {name: np.empty((counts.shape[0], folds.k)) for name in ("exact", "f1")}
    for fold in range(folds.k):
        inside = folds.index == fold
        with np.errstate(invalid="ignore", divide="ignore"):  # a replicate without questions outside the fold
            swept = M.squad_v2_from_terms(squad, counts * ~inside)
        for name, raw in (("exact", squad.exact), ("f1", squad.f1)):
            threshold = swept[f"best_{name}_thresh"]
            thresholds[name][:, fold] = threshold
            abstains = squad.probs[inside][None, :] > threshold[:, None]
            values[name][:, inside] = np.where(abstains, unanswerable[inside][None, :], raw[inside][None, :])
    total = counts.sum(axis=1)
    result: dict[str, np.ndarray] = {}
    for name in ("exact", "f1"):
        result[f"heldout_{name}"] = 100.0 * M.ratio((counts * values[name]).sum(axis=1), total, undefined=np.nan)
        result[f"heldout_{name}_thresholds"] = thresholds[name]
    return result


def auroc_from_terms(terms: AbstentionTerms, counts: np.ndarray) -> np.ndarray:
    """Per replicate, 100 x P(score of an unanswerable question > score of an answerable one), ties counted half,
    every question weighted by its count (what roc_auc_score gives with sample_weight=counts); NaN where a
    replicate lacks either kind."""
    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    weights = counts[:, terms.order]
    positive = 1.0 - terms.squad.has_answer[terms.order]
    w_pos, w_neg = weights * positive, weights * (1.0 - positive)
    upto = np.cumsum(w_neg, axis=1)  # answerable weight at sorted positions <= k
    before = upto - w_neg  # ... < k
    below = before[:, terms.tie_start]  # answerable weight scored strictly lower than k
    tied = upto[:, terms.tie_end] - below  # answerable weight scored the same as k
    wins = (w_pos * (below + 0.5 * tied)).sum(axis=1)
    return 100.0 * M.ratio(wins, w_pos.sum(axis=1) * w_neg.sum(axis=1), undefined=np.nan)


def abstention_from_terms(terms: AbstentionTerms, counts: np.ndarray,
                          keys: Sequence[str] = KEYS) -> dict[str, np.ndarray]:
    """The abstention metrics among `keys` (heldout_exact, heldout_f1, no_answer_auroc), per replicate."""
    result: dict[str, np.ndarray] = {}
    if any(key in HELDOUT_KEYS for key in keys):
        result |= {key: value for key, value in heldout_from_terms(terms, counts).items() if key in keys}
    if AUROC_KEY in keys:
        result[AUROC_KEY] = auroc_from_terms(terms, counts)
    return result


def no_answer_auroc(records: Sequence[dict[str, Any]]) -> float | None:
    """sklearn's roc_auc_score of the no-answer score, unanswerable = positive, in percent; None with one kind."""
    from sklearn.metrics import roc_auc_score

    labels = np.array([not r["gold"] for r in records], dtype=int)
    if labels.min(initial=1) == labels.max(initial=0):
        return None
    return 100.0 * float(roc_auc_score(labels, no_answer_scores(records)))


def abstention_scores(task: Task, records: Sequence[dict[str, Any]], squad: M.SquadTerms | None = None
                      ) -> dict[str, Any]:
    """What score() reports: heldout_exact, heldout_f1, their per-fold thresholds (lists), heldout_rule, and
    no_answer_auroc (sklearn); keys whose metric is undefined (one article, one kind of question) are absent."""
    terms = terms_for(task, records, squad)
    result: dict[str, Any] = {}
    heldout = heldout_from_terms(terms, M.once(len(records)))
    if heldout:
        result |= {key: float(heldout[key][0]) for key in HELDOUT_KEYS}
        result |= {f"{key}_thresholds": [float(t) for t in heldout[f"{key}_thresholds"][0]] for key in HELDOUT_KEYS}
        result["heldout_rule"] = terms.folds.rule if terms.folds is not None else ""
    auroc = no_answer_auroc(records)
    if auroc is not None:
        result[AUROC_KEY] = auroc
    return result


# ------------------------------------------------------------------------------------- for the report's plot
def log10_no_answer(records: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """log10 of the no-answer probability per class ({"answerable": ..., "unanswerable": ...}); from
    no_answer_logprob where recorded (no underflow), else log10 of no_answer_prob (floored at 1e-300)."""
    values = np.array([float(r["no_answer_logprob"]) / math.log(10) if "no_answer_logprob" in r
                       else math.log10(max(float(r["no_answer_prob"]), 1e-300)) for r in records])
    unanswerable = np.array([not r["gold"] for r in records], dtype=bool)
    return {"answerable": values[~unanswerable], "unanswerable": values[unanswerable]}


def thresholds_text(thresholds: Sequence[float]) -> str:
    """`0.0012, 0.0031, ...` (3 significant digits) for a list of fold thresholds."""
    return ", ".join(f"{float(t):.3g}" for t in thresholds)
