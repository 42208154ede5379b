"""Evaluation metrics: classification, SQuAD v2.0 (official semantics) and answer-generation overlap.

The conventions behind every number (scales, normalisation, tokenizers, what is averaged over what) are written
down once, in :data:`CONVENTIONS` below. ``evaluate_phase`` stores a copy with each run
(``predictions/<task>/<phase>/run.json``); the README and the function docstrings point here.

**One implementation per metric.** Each metric is written once, as a function of per-example *terms* and of
*counts*: an array of shape (resamples, n) saying how often each example is drawn. The plain metric is that
function with counts of one (`ONCE`); :mod:`tuneval.scoring.stats` calls the very same function with bootstrap counts
for intervals. So a change to a metric's definition changes its value and its interval together.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from tuneval.scoring import wordnet as wordnet_support

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
GENERATION_KEYS: tuple[str, ...] = ("bleu", *ROUGE_TYPES, "meteor")


def once(n: int) -> np.ndarray:
    """Counts that draw each of n examples once: the plain (not resampled) metric."""
    return np.ones((1, n))


def ratio(numerator: np.ndarray, denominator: np.ndarray, undefined: float = 0.0) -> np.ndarray:
    """numerator / denominator elementwise, `undefined` where the denominator is 0."""
    out = np.full(np.broadcast(numerator, denominator).shape, undefined, dtype=float)
    return np.divide(numerator, denominator, out=out, where=denominator > 0)

# ---------------------------------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------------------------------


def _check_class_ids(values: Sequence[int], n_classes: int, what: str) -> None:
    """Reject class ids outside ``range(n_classes)``."""
    bad = sorted({int(v) for v in values if not 0 <= int(v) < n_classes})
    if bad:
        raise ValueError(f"{what} contain class ids {bad} outside 0..{n_classes - 1}")


def confusion_cells(labels: Sequence[int], predictions: Sequence[int], n_classes: int) -> np.ndarray:
    """Per example, its cell of the confusion matrix (row actual, column predicted) as a one-hot row of k*k."""
    cells = np.zeros((len(labels), n_classes * n_classes))
    cells[np.arange(len(labels)), np.asarray(labels, int) * n_classes + np.asarray(predictions, int)] = 1.0
    return cells


def classification_from_confusion(confusion: np.ndarray, label_names: Sequence[str]) -> dict[str, np.ndarray]:
    """The classification scores (see CONVENTIONS["classification"]) of confusion matrices of shape (..., k, k),
    rows actual, columns predicted: accuracy, precision/recall/f1 (positive class for two labels, else macro),
    their macro averages and per-class values."""
    k = len(label_names)
    tp = np.diagonal(confusion, axis1=-2, axis2=-1)
    predicted, actual = confusion.sum(axis=-2), confusion.sum(axis=-1)
    precision, recall, f1 = ratio(tp, predicted), ratio(tp, actual), ratio(2 * tp, predicted + actual)
    macro = {"precision": precision.mean(-1), "recall": recall.mean(-1), "f1": f1.mean(-1)}
    result = {"accuracy": tp.sum(-1) / confusion.sum(axis=(-2, -1))}
    for name, per_class in (("precision", precision), ("recall", recall), ("f1", f1)):
        result[name] = per_class[..., 1] if k == 2 else macro[name]
        result[f"macro_{name}"] = macro[name]
        for index, label in enumerate(label_names):
            result[f"{name}_{label}"] = per_class[..., index]
    return result


def classification_scores(cells: np.ndarray, label_names: Sequence[str], counts: np.ndarray) -> dict[str, np.ndarray]:
    """classification_from_confusion of each resample's confusion matrix (`counts` @ confusion_cells)."""
    k = len(label_names)
    return classification_from_confusion((counts @ cells).reshape(-1, k, k), label_names)


def classification_metrics(
    labels: Sequence[int], predictions: Sequence[int], label_names: Sequence[str]
) -> dict:
    """Accuracy, positive-class and macro precision/recall/F1, per-class scores and supports.

    ``labels``/``predictions`` are class indices into ``label_names``. See ``CONVENTIONS["classification"]``
    for the choice of ``precision``/``recall``/``f1``.
    """
    if len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} labels but {len(predictions)} predictions")
    if not labels:
        raise ValueError("classification_metrics needs at least one example")
    if len(label_names) < 2:
        raise ValueError("classification_metrics needs at least two label names")
    n_classes = len(label_names)
    _check_class_ids(labels, n_classes, "labels")
    _check_class_ids(predictions, n_classes, "predictions")
    scores = classification_scores(confusion_cells(labels, predictions, n_classes), label_names, once(len(labels)))
    result = {key: float(value[0]) for key, value in scores.items()}
    supports = Counter(int(label) for label in labels)
    result |= {f"support_{name}": supports[index] for index, name in enumerate(label_names)}
    result["n"] = len(labels)
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


@dataclass(frozen=True)
class SquadTerms:
    """Per-question terms of the SQuAD v2 scores, in the order of the gold questions."""

    exact: np.ndarray  # raw EM (before any no-answer threshold)
    f1: np.ndarray  # raw F1
    has_answer: np.ndarray  # 1.0 where the raw gold list is non-empty (official bool(qa['answers']))
    answered: np.ndarray  # 1.0 where the raw prediction is a non-empty string
    probs: np.ndarray  # no-answer probabilities (0 when none were given)
    abstains: np.ndarray  # probability above the threshold: the question counts as abstained
    with_probs: bool  # probabilities were given: the best_* threshold sweep is defined
    sweep_order: np.ndarray  # question indices by increasing probability, ties in the probabilities' own order


def squad_v2_terms(
    gold_answers: Mapping[str, Sequence[str]],
    predictions: Mapping[str, str],
    no_answer_probs: Mapping[str, float] | None = None,
    no_answer_threshold: float = 1.0,
) -> SquadTerms:
    """The per-question terms every SQuAD v2 score is built from (see squad_v2_from_terms)."""
    if not gold_answers:
        raise ValueError("squad_v2_scores needs at least one question")
    exact_raw, f1_raw = squad_v2_per_question(gold_answers, predictions)
    ids = list(gold_answers)
    if no_answer_probs is not None:
        missing = [qid for qid in ids if qid not in no_answer_probs]
        if missing:
            raise ValueError(f"missing no-answer probabilities for {len(missing)} question(s): {missing[:10]}")
    probs = np.array([float(no_answer_probs[qid]) if no_answer_probs is not None else 0.0 for qid in ids])
    position = {qid: i for i, qid in enumerate(no_answer_probs or ids)}  # the official sort is stable over it
    sweep_order = np.array(sorted(range(len(ids)), key=lambda j: (probs[j], position[ids[j]])), dtype=int)
    return SquadTerms(exact=np.array([float(exact_raw[qid]) for qid in ids]),
                      f1=np.array([f1_raw[qid] for qid in ids]),
                      has_answer=np.array([float(bool(gold_answers[qid])) for qid in ids]),
                      answered=np.array([float(bool(predictions[qid])) for qid in ids]),
                      probs=probs, abstains=probs > no_answer_threshold, with_probs=no_answer_probs is not None,
                      sweep_order=sweep_order)


def squad_v2_from_terms(terms: SquadTerms, counts: np.ndarray) -> dict[str, np.ndarray]:
    """The SQuAD v2 scores (percent) of each resample, the official evaluate-v2.0.py's definitions:

    exact/f1 after the threshold (an abstention is worth 1 on an unanswerable question, 0 on an answerable one)
    over all questions, HasAns_* and NoAns_* over each kind (NaN where a resample has none), their *_total
    counts, `answered` (percent given a non-empty answer after the threshold), and, with probabilities, the
    official best_* threshold sweep and its thresholds."""
    has, ones = terms.has_answer, np.ones_like(terms.has_answer)
    result: dict[str, np.ndarray] = {"total": counts @ ones, "HasAns_total": counts @ has,
                                      "NoAns_total": counts @ (1 - has)}
    for name, raw in (("exact", terms.exact), ("f1", terms.f1)):
        values = np.where(terms.abstains, 1.0 - has, raw)
        result[name] = 100.0 * ratio(counts @ values, counts @ ones, undefined=np.nan)
        result[f"HasAns_{name}"] = 100.0 * ratio(counts @ (values * has), counts @ has, undefined=np.nan)
        result[f"NoAns_{name}"] = 100.0 * ratio(counts @ (values * (1 - has)), counts @ (1 - has), undefined=np.nan)
        if terms.with_probs:
            # the sweep starts from "abstain everywhere" (worth the unanswerable questions) and admits questions by
            # increasing no-answer probability: an answerable one adds its raw score, an unanswerable one costs 1
            # if its raw prediction is a non-empty string; the threshold moves only on a strict improvement
            result[f"best_{name}"], result[f"best_{name}_thresh"] = _best_sweep(
                counts, np.where(has > 0, raw, -terms.answered), terms.probs, terms.sweep_order, 1 - has)
    result["answered"] = 100.0 * ratio(counts @ (terms.answered * ~terms.abstains), counts @ ones, undefined=np.nan)
    return result


def _best_sweep(counts: np.ndarray, contributions: np.ndarray, probs: np.ndarray, order: np.ndarray,
                no_answer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(best score in percent, threshold reaching it) of the official sweep in `order`, per resample."""
    running = np.cumsum(counts[:, order] * contributions[order], axis=1)
    peak, where = running.max(axis=1), running.argmax(axis=1)  # argmax: the first (strict) improvement
    best = counts @ no_answer + np.maximum(peak, 0.0)
    return 100.0 * best / counts.sum(axis=1), np.where(peak > 0, probs[order][where], 0.0)


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
    terms = squad_v2_terms(gold_answers, predictions, no_answer_probs, no_answer_threshold)
    scores = squad_v2_from_terms(terms, once(len(terms.exact)))
    keys = ["exact", "f1", "total"]
    for prefix, present in (("HasAns", terms.has_answer.any()), ("NoAns", (terms.has_answer == 0).any())):
        keys += [f"{prefix}_exact", f"{prefix}_f1", f"{prefix}_total"] if present else []
    if terms.with_probs:
        keys += ["best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"]
    return {key: int(scores[key][0]) if key.endswith("total") else float(scores[key][0]) for key in keys}


def answer_rate(predictions: Mapping[str, str], no_answer_probs: Mapping[str, float] | None = None,
                no_answer_threshold: float = 1.0) -> float:
    """Percent of questions given a non-empty answer after the no-answer threshold (squad_v2_from_terms'
    `answered`): the model's answering rate, to read beside the gold answerable share."""
    if not predictions:
        raise ValueError("answer_rate needs at least one prediction")
    gold = {qid: [] for qid in predictions}  # the answer rate reads predictions only
    terms = squad_v2_terms(gold, predictions, no_answer_probs, no_answer_threshold)
    return float(squad_v2_from_terms(terms, once(len(gold)))["answered"][0])


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


def bleu_statistics(references: Sequence[Sequence[str]], predictions: Sequence[str]) -> list[list[int]]:
    """Per question, sacreBLEU's sufficient statistics (hypothesis length, closest reference length, matching
    and total 1-4-grams). Their column sums give the corpus BLEU of any subset (:func:`bleu_from_statistics`),
    which is how sacreBLEU bootstraps, and how :func:`generation_metrics` computes ``bleu``."""
    refs = _clean_references(references)
    stats = _bleu()._extract_corpus_statistics([str(p) for p in predictions], _reference_streams(refs))
    return [[int(value) for value in row] for row in stats]


def bleu_from_statistics(summed: Sequence[float]) -> float:
    """Corpus BLEU (0-100) from column sums of :func:`bleu_statistics` (the defaults of ``corpus_bleu``)."""
    return float(_bleu()._compute_score_from_stats(list(summed)).score)


@cache
def _bleu():
    """sacreBLEU's BLEU with corpus_bleu's defaults (13a, cased, exp smoothing); one instance, reused.

    Its private `_extract_corpus_statistics` / `_compute_score_from_stats` are not sacreBLEU's API: pyproject.toml
    bounds sacrebleu above, and tests/test_sacrebleu_private_api.py names the method a release moves."""
    from sacrebleu.metrics import BLEU

    return BLEU()


@dataclass(frozen=True)
class GenerationTerms:
    """Per-question terms of BLEU, ROUGE and METEOR over a question list in which unanswerable questions (no
    reference) take part with zero weight."""

    answerable: np.ndarray  # 1.0 where the question has a reference
    means: dict[str, np.ndarray]  # ROUGE types and METEOR: per-question fractions (0 where unanswerable)
    bleu: np.ndarray | None  # sacreBLEU sufficient statistics per question (rows of 0 where unanswerable)


def generation_terms(references: Sequence[Sequence[str]], predictions: Sequence[str],
                     keys: Sequence[str] = GENERATION_KEYS) -> GenerationTerms:
    """The terms of the generation metrics in `keys`; `references[i]` == [] marks an unanswerable question.
    METEOR first, so a missing WordNet fails before the slower metrics."""
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} reference lists but {len(predictions)} predictions")
    answerable = [i for i, refs in enumerate(references) if refs]
    refs = [references[i] for i in answerable]
    preds = [str(predictions[i]) for i in answerable]
    per_question: dict[str, list[float]] = {}
    if "meteor" in keys and answerable:
        per_question["meteor"] = meteor_per_question(refs, preds)
    if any(key in ROUGE_TYPES for key in keys) and answerable:
        per_question |= {k: v for k, v in rouge_per_question(refs, preds).items() if k in keys}
    flags = np.zeros(len(predictions))
    flags[answerable] = 1.0
    means = {}
    for key, values in per_question.items():
        means[key] = np.zeros(len(predictions))
        means[key][answerable] = values
    bleu = None
    if "bleu" in keys and answerable:
        bleu = np.zeros((len(predictions), 10))
        bleu[answerable] = bleu_statistics(refs, preds)
    return GenerationTerms(answerable=flags, means=means, bleu=bleu)


def generation_from_terms(terms: GenerationTerms, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Per resample (0-100): ROUGE and METEOR means over the answerable questions drawn, and the corpus BLEU of
    their summed statistics (how sacreBLEU bootstraps); NaN where a resample drew no answerable question."""
    drawn = counts @ terms.answerable
    result = {key: 100.0 * ratio(counts @ values, drawn, undefined=np.nan) for key, values in terms.means.items()}
    if terms.bleu is not None:
        summed = counts @ terms.bleu
        result["bleu"] = np.array([bleu_from_statistics(row) if n > 0 else np.nan
                                   for row, n in zip(summed, drawn, strict=True)])
    return result


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
    _clean_references(references)  # every question needs a non-blank reference here
    scores = generation_from_terms(generation_terms(references, predictions), once(len(predictions)))
    return {key: float(scores[key][0]) for key in GENERATION_KEYS}
