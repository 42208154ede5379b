"""Evaluation metrics: classification, SQuAD v2.0 (official semantics) and answer-generation overlap.

The conventions behind every number (scales, normalisation, tokenizers, what is averaged over what) are written
down once, in :data:`CONVENTIONS` below. ``evaluate_phase`` stores a copy with each run
(``predictions/<task>/<phase>/run.json``); the README and the function docstrings point here.

Besides the aggregate metrics, this module exposes the per-question terms they are built from
(:func:`squad_v2_per_question`, :func:`rouge_per_question`, :func:`meteor_per_question`,
:func:`bleu_statistics`), so :mod:`tuneval.stats` can recompute them on bootstrap resamples.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cache

from tuneval import wordnet as wordnet_support

CONVENTIONS: dict[str, str] = {  # the one copy of the metric conventions (see the module docstring)
    "classification": (
        "classification_metrics: scikit-learn, zero_division=0, fractions in [0, 1]. With two classes "
        "precision/recall/f1 are those of the positive class (label index 1); with more they equal the macro "
        "averages. Macro averages run over every name in label_names, including classes absent from both "
        "labels and predictions (which then contribute 0)."
    ),
    "squad_v2": (
        "squad_v2_scores: a re-implementation of the official evaluate-v2.0.py, percent scale (0-100) like "
        "the official script. Answers are normalised by lower-casing, deleting string.punctuation characters, "
        "deleting the whole words a/an/the and collapsing whitespace; EM and F1 are the maximum over the gold "
        "answers; gold answers that normalise to '' are dropped and a question with none left is scored "
        "against '' (so only an empty prediction is right). A question counts as HasAns when its raw gold "
        "list is non-empty (official bool(qa['answers'])). Abstentions must be passed as '' (a model's "
        "'unanswerable' is mapped to '' first). Missing predictions raise ValueError instead of being "
        "skipped. With no-answer probabilities (the model's probability of answering 'unanswerable'), a "
        "question whose probability exceeds no_answer_threshold counts as abstaining, and best_exact / "
        "best_f1 and their thresholds come from the official threshold sweep."
    ),
    "bleu": (
        "generation_metrics (answerable questions only), 0-100: sacreBLEU corpus BLEU (13a tokenizer, cased, "
        "exp smoothing) with every gold answer as a reference (variable counts padded with None, which "
        "sacreBLEU ignores). Corpus level because sentence BLEU on few-word answers is dominated by smoothing; "
        "n-grams are pooled over the corpus, so a corpus made only of one-word answers has no 2-4-grams and "
        "scores 0 even when every answer is exact."
    ),
    "rouge": (
        "generation_metrics (answerable questions only), 0-100: rouge1/rouge2/rougeL/rougeLsum are rouge-score "
        "F-measures with the Porter stemmer, best reference per question, averaged over questions; its "
        "tokenizer keeps only [a-z0-9] runs, so accented letters vanish ('Beyoncé' -> 'beyonc')."
    ),
    "meteor": (
        "generation_metrics (answerable questions only), 0-100: NLTK's METEOR (alpha 0.9, beta 3, gamma 0.5, "
        "WordNet 3.0) on lower-cased whitespace tokens, best reference per question, averaged. Its "
        "fragmentation penalty caps an n-word exact match at 100 * (1 - 0.5 / n**3), i.e. 50 for one word; "
        "its WordNet synonym stage sees Porter-stemmed words, so synonyms match only where stemming leaves "
        "both words intact ('car'/'auto' do, 'big'/'large' do not). Without WordNet METEOR raises "
        "WordNetMissingError, whose message says how to install WordNet; it is never reported as 0."
    ),
}

ROUGE_TYPES: tuple[str, ...] = ("rouge1", "rouge2", "rougeL", "rougeLsum")

# ---------------------------------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------------------------------


def _check_class_ids(values: Sequence[int], n_classes: int, what: str) -> None:
    """Reject class ids outside ``range(n_classes)``."""
    bad = sorted({int(v) for v in values if not 0 <= int(v) < n_classes})
    if bad:
        raise ValueError(f"{what} contain class ids {bad} outside 0..{n_classes - 1}")


def classification_metrics(
    labels: Sequence[int], predictions: Sequence[int], label_names: Sequence[str]
) -> dict:
    """Accuracy, positive-class and macro precision/recall/F1, per-class scores and supports.

    ``labels``/``predictions`` are class indices into ``label_names``. See ``CONVENTIONS["classification"]``
    for the choice of ``precision``/``recall``/``f1``.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    if len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} labels but {len(predictions)} predictions")
    if not labels:
        raise ValueError("classification_metrics needs at least one example")
    if len(label_names) < 2:
        raise ValueError("classification_metrics needs at least two label names")
    n_classes = len(label_names)
    _check_class_ids(labels, n_classes, "labels")
    _check_class_ids(predictions, n_classes, "predictions")
    class_ids = list(range(n_classes))
    y_true, y_pred = [int(v) for v in labels], [int(v) for v in predictions]

    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=class_ids, average=None, zero_division=0
    )
    macro_p, macro_r, macro_f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=class_ids, average="macro", zero_division=0
    )
    result: dict = {"accuracy": float(accuracy_score(y_true, y_pred))}
    if n_classes == 2:
        result.update(precision=float(precision[1]), recall=float(recall[1]), f1=float(f1[1]))
    else:
        result.update(precision=float(macro_p), recall=float(macro_r), f1=float(macro_f1))
    result.update(macro_precision=float(macro_p), macro_recall=float(macro_r), macro_f1=float(macro_f1))
    for index, name in enumerate(label_names):
        result[f"precision_{name}"] = float(precision[index])
        result[f"recall_{name}"] = float(recall[index])
        result[f"f1_{name}"] = float(f1[index])
        result[f"support_{name}"] = int(support[index])
    result["n"] = len(y_true)
    return result


# ---------------------------------------------------------------------------------------------------
# SQuAD v2.0 (official evaluate-v2.0.py semantics)
# ---------------------------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop ``string.punctuation``, drop the words a/an/the, collapse whitespace."""
    lowered = text.lower()
    without_punctuation = "".join(ch for ch in lowered if ch not in _PUNCTUATION)
    without_articles = _ARTICLES.sub(" ", without_punctuation)
    return " ".join(without_articles.split())


def _overlap_f1(gold_tokens: list[str], predicted_tokens: list[str]) -> float:
    """Token-overlap F1 of two normalised token lists; if either is empty, 1.0 iff both are."""
    if not gold_tokens or not predicted_tokens:
        return float(gold_tokens == predicted_tokens)
    overlap = sum((Counter(gold_tokens) & Counter(predicted_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(predicted_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def compute_exact(gold: str, prediction: str) -> int:
    """1 when both answers normalise to the same string, else 0."""
    return int(normalize_answer(gold) == normalize_answer(prediction))


def compute_f1(gold: str, prediction: str) -> float:
    """Token-overlap F1 of the normalised answers; if either is empty, 1.0 iff both are."""
    return _overlap_f1(normalize_answer(gold).split(), normalize_answer(prediction).split())


def _normalized_golds(answers: Sequence[str]) -> list[str]:
    """Normalised gold answers that are not empty, or ``[""]`` for an unanswerable question."""
    if isinstance(answers, str):
        raise TypeError(f"gold answers must be a sequence of strings, not the string {answers!r}")
    kept = [normalized for normalized in map(normalize_answer, answers) if normalized]
    return kept or [""]


def _best_over_golds(normalized_golds: list[str], prediction: str) -> tuple[int, float]:
    """``(max EM, max F1)`` of one prediction over already-normalised gold answers."""
    normalized = normalize_answer(prediction)
    predicted_tokens = normalized.split()
    exact = max(int(gold == normalized) for gold in normalized_golds)
    f1 = max(_overlap_f1(gold.split(), predicted_tokens) for gold in normalized_golds)
    return exact, f1


def _require_predictions(gold_answers: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> None:
    """Raise ValueError naming gold question ids that have no prediction."""
    missing = [qid for qid in gold_answers if qid not in predictions]
    if missing:
        shown = ", ".join(missing[:10]) + (f", ... ({len(missing)} in all)" if len(missing) > 10 else "")
        raise ValueError(f"missing predictions for {len(missing)} question(s): {shown}")


def squad_v2_per_question(
    gold_answers: Mapping[str, Sequence[str]], predictions: Mapping[str, str]
) -> tuple[dict[str, int], dict[str, float]]:
    """Raw per-question EM and F1 (fractions, before any no-answer threshold), keyed like ``gold_answers``.

    Each is the maximum over the question's gold answers (see :func:`compute_exact`, :func:`compute_f1`).
    Predictions for ids not in ``gold_answers`` are ignored; missing ones raise ``ValueError``.
    """
    _require_predictions(gold_answers, predictions)
    exact: dict[str, int] = {}
    f1: dict[str, float] = {}
    for qid, answers in gold_answers.items():
        exact[qid], f1[qid] = _best_over_golds(_normalized_golds(answers), predictions[qid])
    return exact, f1


def _has_answer(gold_answers: Mapping[str, Sequence[str]]) -> dict[str, bool]:
    """Official HasAns flag: the raw gold list is non-empty."""
    return {qid: bool(answers) for qid, answers in gold_answers.items()}


def _thresholded(
    scores: Mapping[str, float], probs: Mapping[str, float], has_answer: Mapping[str, bool], threshold: float
) -> dict[str, float]:
    """Scores after abstaining where the no-answer probability exceeds ``threshold``.

    An abstention is worth 1 on an unanswerable question and 0 on an answerable one.
    """
    return {
        qid: float(not has_answer[qid]) if probs[qid] > threshold else score for qid, score in scores.items()
    }


def _percent_summary(exact: Mapping[str, float], f1: Mapping[str, float], qids: Sequence[str]) -> dict:
    """``exact``/``f1`` in percent and ``total`` over ``qids``."""
    total = len(qids)
    return {
        "exact": 100.0 * sum(exact[qid] for qid in qids) / total,
        "f1": 100.0 * sum(f1[qid] for qid in qids) / total,
        "total": total,
    }


def _best_threshold(
    predictions: Mapping[str, str],
    scores: Mapping[str, float],
    probs: Mapping[str, float],
    has_answer: Mapping[str, bool],
) -> tuple[float, float]:
    """The official no-answer threshold sweep: ``(best score in percent, threshold reaching it)``.

    Starting from "abstain everywhere" (worth the number of unanswerable questions), questions are
    admitted in increasing no-answer probability (stable sort, so ties keep ``probs``' order): an
    answerable one adds its score, an unanswerable one costs 1 if its raw prediction is a non-empty string.
    The threshold moves only on a strict improvement.
    """
    running = best = sum(1 for flag in has_answer.values() if not flag)
    best_threshold = 0.0
    for qid in sorted(probs, key=lambda key: probs[key]):
        if qid not in scores:
            continue
        if has_answer[qid]:
            running += scores[qid]
        elif predictions[qid]:
            running -= 1
        if running > best:
            best, best_threshold = running, probs[qid]
    return 100.0 * best / len(scores), float(best_threshold)


def squad_v2_scores(
    gold_answers: Mapping[str, Sequence[str]],
    predictions: Mapping[str, str],
    no_answer_probs: Mapping[str, float] | None = None,
    no_answer_threshold: float = 1.0,
) -> dict:
    """SQuAD v2.0 scores with the keys and percent scale of the official ``evaluate-v2.0.py``.

    ``gold_answers`` maps question ids to their gold answer texts ([] for unanswerable questions);
    ``predictions`` maps ids to predicted texts ("" = abstain). ``no_answer_probs`` (optional) maps ids to
    the model's probability that the question is unanswerable; with it the result also has ``best_exact``,
    ``best_exact_thresh``, ``best_f1`` and ``best_f1_thresh``.
    """
    if not gold_answers:
        raise ValueError("squad_v2_scores needs at least one question")
    exact_raw, f1_raw = squad_v2_per_question(gold_answers, predictions)
    has_answer = _has_answer(gold_answers)
    if no_answer_probs is None:
        probs: Mapping[str, float] = {qid: 0.0 for qid in exact_raw}
    else:
        missing = [qid for qid in exact_raw if qid not in no_answer_probs]
        if missing:
            count = len(missing)
            raise ValueError(f"missing no-answer probabilities for {count} question(s): {missing[:10]}")
        probs = no_answer_probs
    exact = _thresholded(exact_raw, probs, has_answer, no_answer_threshold)
    f1 = _thresholded(f1_raw, probs, has_answer, no_answer_threshold)

    result = _percent_summary(exact, f1, list(exact))
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        subset = [qid for qid, flag in has_answer.items() if flag is wanted]
        if subset:
            summary = _percent_summary(exact, f1, subset)
            result.update({f"{prefix}_{key}": value for key, value in summary.items()})
    if no_answer_probs is not None:
        best_exact, best_exact_thresh = _best_threshold(predictions, exact_raw, probs, has_answer)
        best_f1, best_f1_thresh = _best_threshold(predictions, f1_raw, probs, has_answer)
        result.update(best_exact=best_exact, best_exact_thresh=best_exact_thresh)
        result.update(best_f1=best_f1, best_f1_thresh=best_f1_thresh)
    return result


# ---------------------------------------------------------------------------------------------------
# Generation overlap (answerable questions)
# ---------------------------------------------------------------------------------------------------


def _clean_references(references: Sequence[Sequence[str]]) -> list[list[str]]:
    """Per question: distinct non-blank references in their original order (at least one required)."""
    cleaned: list[list[str]] = []
    for index, refs in enumerate(references):
        if isinstance(refs, str):
            raise TypeError(f"references[{index}] must be a sequence of strings, not a string")
        kept = list(dict.fromkeys(ref for ref in refs if ref.strip()))
        if not kept:
            raise ValueError(f"references[{index}] has no non-empty reference; filter unanswerable questions")
        cleaned.append(kept)
    return cleaned


def _reference_streams(references: list[list[str]]) -> list[list[str | None]]:
    """Transpose per-question references into sacreBLEU reference streams, padding with ``None``."""
    depth = max(len(refs) for refs in references)
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(depth)]


def _corpus_bleu(references: list[list[str]], predictions: list[str]) -> float:
    """sacreBLEU corpus BLEU (0-100) against all references."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(predictions, _reference_streams(references)).score)


def rouge_per_question(references: Sequence[Sequence[str]], predictions: Sequence[str]) -> dict[str, list[float]]:
    """Per question, the best-reference ROUGE F-measures (fractions 0-1), one list per type in ROUGE_TYPES
    (answerable questions: every question needs a non-blank reference)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    per_type: dict[str, list[float]] = {rouge_type: [] for rouge_type in ROUGE_TYPES}
    for refs, predicted in zip(_clean_references(references), predictions, strict=True):
        per_reference = [scorer.score(ref, predicted) for ref in refs]
        for rouge_type in ROUGE_TYPES:
            per_type[rouge_type].append(max(scores[rouge_type].fmeasure for scores in per_reference))
    return per_type


def _mean_rouge(references: list[list[str]], predictions: list[str]) -> dict[str, float]:
    """Mean over questions of the best-reference ROUGE F-measures (0-100)."""
    per_type = rouge_per_question(references, predictions)
    return {rouge_type: 100.0 * sum(values) / len(predictions) for rouge_type, values in per_type.items()}


def _meteor_tokens(text: str) -> list[str]:
    """Lower-cased whitespace tokens, the pre-tokenised form NLTK's METEOR expects."""
    return text.lower().split()


def meteor_per_question(references: Sequence[Sequence[str]], predictions: Sequence[str]) -> list[float]:
    """Per question, NLTK's multi-reference METEOR (fraction 0-1; answerable questions); requires WordNet."""
    wordnet_support.require_wordnet()
    from nltk.translate.meteor_score import meteor_score

    return [
        meteor_score([_meteor_tokens(ref) for ref in refs], _meteor_tokens(predicted))
        for refs, predicted in zip(_clean_references(references), predictions, strict=True)
    ]


def _mean_meteor(references: list[list[str]], predictions: list[str]) -> float:
    """Mean over questions of NLTK's multi-reference METEOR (0-100); requires WordNet."""
    return 100.0 * sum(meteor_per_question(references, predictions)) / len(predictions)


def bleu_statistics(references: Sequence[Sequence[str]], predictions: Sequence[str]) -> list[list[int]]:
    """Per question, sacreBLEU's sufficient statistics (hypothesis length, closest reference length, matching
    and total 1-4-grams). Their column sums give the corpus BLEU of any subset (:func:`bleu_from_statistics`),
    which is how sacreBLEU bootstraps; the full-set result equals :func:`generation_metrics`' ``bleu``."""
    refs = _clean_references(references)
    stats = _bleu()._extract_corpus_statistics([str(p) for p in predictions], _reference_streams(refs))
    return [[int(value) for value in row] for row in stats]


def bleu_from_statistics(summed: Sequence[float]) -> float:
    """Corpus BLEU (0-100) from column sums of :func:`bleu_statistics` (the defaults of ``corpus_bleu``)."""
    return float(_bleu()._compute_score_from_stats(list(summed)).score)


@cache
def _bleu():
    """sacreBLEU's BLEU with corpus_bleu's defaults (13a, cased, exp smoothing); one instance, reused."""
    from sacrebleu.metrics import BLEU

    return BLEU()


def generation_metrics(references: Sequence[Sequence[str]], predictions: Sequence[str]) -> dict:
    """BLEU, ROUGE-1/2/L/Lsum and METEOR (0-100) of predicted answers against gold answers.

    ``references[i]`` holds the gold answers of question i (answerable questions only); returns ``{}``
    when there are no questions. The keys are ``bleu``, ``rouge1``, ``rouge2``, ``rougeL``, ``rougeLsum``
    and ``meteor`` (no count: callers merge this into the SQuAD dict, whose ``HasAns_total`` is it).
    Raises ``WordNetMissingError`` when METEOR cannot run.
    """
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} reference lists but {len(predictions)} predictions")
    if not predictions:
        return {}
    refs = _clean_references(references)
    preds = [str(prediction) for prediction in predictions]
    meteor = _mean_meteor(refs, preds)  # first, so a missing WordNet fails before the slower metrics
    result: dict = {"bleu": _corpus_bleu(refs, preds)}
    result.update(_mean_rouge(refs, preds))
    result["meteor"] = meteor
    return result
