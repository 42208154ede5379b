"""Hand-computed checks of tuneval.scoring.metrics and the WordNet check (the arithmetic is in the comments)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneval.errors import WordNetMissingError
from tuneval.scoring import wordnet as wordnet_support
from tuneval.scoring.metrics import (
    CONVENTIONS,
    answer_rate,
    bleu_from_statistics,
    bleu_statistics,
    classification_metrics,
    compute_exact,
    compute_f1,
    generation_metrics,
    meteor_per_question,
    normalize_answer,
    rouge_per_question,
    squad_v2_per_question,
    squad_v2_scores,
)

# ---------------------------------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------------------------------


def test_binary_classification_by_hand() -> None:
    labels = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    predictions = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0]
    result = classification_metrics(labels, predictions, ["negative", "positive"])
    # positive: TP=3 (idx 0-2), FN=1 (idx 3), FP=2 (idx 4-5) -> P=3/5, R=3/4, F1=2*.6*.75/1.35=2/3
    # negative: TP=4 (idx 6-9), FN=2 (idx 4-5), FP=1 (idx 3)  -> P=4/5, R=4/6, F1=2*.8*(2/3)/(.8+2/3)=8/11
    # accuracy = (3+4)/10; macro = plain means of the two classes
    expected = {
        "accuracy": 0.7,
        "precision": 0.6,
        "recall": 0.75,
        "f1": 2 / 3,
        "macro_precision": (0.6 + 0.8) / 2,
        "macro_recall": (0.75 + 4 / 6) / 2,
        "macro_f1": (2 / 3 + 8 / 11) / 2,
        "precision_positive": 0.6,
        "recall_positive": 0.75,
        "f1_positive": 2 / 3,
        "precision_negative": 0.8,
        "recall_negative": 4 / 6,
        "f1_negative": 8 / 11,
        "support_positive": 4,
        "support_negative": 6,
        "n": 10,
    }
    assert set(result) == set(expected)
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-12), key
    assert isinstance(result["support_positive"], int) and isinstance(result["n"], int)
    assert all(type(v) is float for k, v in result.items() if not k.startswith("support_") and k != "n")
    json.dumps(result)  # plain Python numbers only


def test_multiclass_classification_uses_macro_and_zero_division() -> None:
    names = ["a", "b", "c", "never"]
    labels = [0, 0, 1, 1, 2, 2]
    predictions = [0, 1, 1, 1, 0, 2]
    result = classification_metrics(labels, predictions, names)
    # a: TP=1 FP=1 FN=1 -> P=R=F1=1/2;  b: TP=2 FP=1 FN=0 -> P=2/3 R=1 F1=0.8
    # c: TP=1 FP=0 FN=1 -> P=1 R=1/2 F1=2/3;  never: no support, never predicted -> 0 (zero_division=0)
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["f1_b"] == pytest.approx(0.8)
    assert result["precision_c"] == 1.0 and result["recall_c"] == 0.5
    assert result["precision_never"] == result["recall_never"] == result["f1_never"] == 0.0
    assert result["support_never"] == 0
    assert result["macro_precision"] == pytest.approx((0.5 + 2 / 3 + 1 + 0) / 4)
    assert result["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3 + 0) / 4)
    # more than two classes: the headline numbers are the macro averages
    assert (result["precision"], result["recall"], result["f1"]) == (
        result["macro_precision"],
        result["macro_recall"],
        result["macro_f1"],
    )


@pytest.mark.parametrize(
    ("labels", "predictions"),
    [([0, 1], [0]), ([], []), ([0, 2], [0, 1]), ([0, 1], [0, -1])],
)
def test_classification_rejects_bad_input(labels: list[int], predictions: list[int]) -> None:
    with pytest.raises(ValueError):
        classification_metrics(labels, predictions, ["neg", "pos"])


# ---------------------------------------------------------------------------------------------------
# SQuAD: normalisation, EM, F1 (each normalisation step has an assertion that depends on it)
# ---------------------------------------------------------------------------------------------------


def test_normalize_answer_steps() -> None:
    assert normalize_answer("PARIS") == "paris"  # lower-casing
    assert normalize_answer("Paris!?") == "paris"  # punctuation
    assert normalize_answer("x-ray") == "xray"  # punctuation is deleted, not replaced by a space
    assert normalize_answer("The Eiffel Tower") == "eiffel tower"  # articles
    assert normalize_answer("a  cat,  an\towl\nand THE dog") == "cat owl and dog"  # articles + whitespace
    assert normalize_answer("theory anthem Ann") == "theory anthem ann"  # only whole words are articles
    assert normalize_answer("the.") == ""  # punctuation goes first, so "the." is an article
    assert normalize_answer("l'an") == "lan"  # ... and "l'an" no longer contains the word "an"
    assert normalize_answer("Beyoncé, São Paulo") == "beyoncé são paulo"  # accents are not punctuation
    assert normalize_answer("«Straße»") == "«straße»"  # only string.punctuation (ASCII) is removed


def test_exact_match_depends_on_every_step() -> None:
    assert compute_exact("Paris", "PARIS") == 1  # needs lower-casing
    assert compute_exact("Paris", "Paris.") == 1  # needs punctuation removal
    assert compute_exact("the Eiffel Tower", "Eiffel Tower") == 1  # needs article removal
    assert compute_exact("New York", " New\t York ") == 1  # needs whitespace collapsing
    assert compute_exact("Paris", "Pariss") == 0
    assert compute_exact("São Paulo", "Sao Paulo") == 0  # accents are significant
    assert compute_exact("SÃO PAULO", "são paulo") == 1  # Unicode lower-casing


def test_f1_partial_overlap_by_hand() -> None:
    # gold "the Norman conquest of England" -> [norman, conquest, of, england]        (4 tokens)
    # pred "conquest of England in 1066"    -> [conquest, of, england, in, 1066]      (5 tokens)
    # common = {conquest, of, england} = 3 -> P = 3/5, R = 3/4, F1 = 2PR/(P+R) = 0.9/1.35 = 2/3.
    # (Keeping "the" would give R = 3/5 and F1 = 0.6; keeping the "." below would break "england".)
    assert compute_f1("the Norman conquest of England.", "conquest of England in 1066") == pytest.approx(
        2 / 3
    )
    # repeated tokens count with multiplicity: gold [new, york, new, york] vs pred [new, york]
    # common = 2 -> P = 1, R = 1/2, F1 = 2/3
    assert compute_f1("New York New York", "new york") == pytest.approx(2 / 3)
    assert compute_f1("Paris", "London") == 0.0


def test_f1_with_empty_sides() -> None:
    # official rule: if either token list is empty, F1 = 1 iff both are empty
    assert compute_f1("", "") == 1.0
    assert compute_f1("", "the .") == 1.0  # "the ." normalises to nothing
    assert compute_f1("", "Paris") == 0.0
    assert compute_f1("Paris", "the .") == 0.0
    assert compute_f1("Paris", "") == 0.0


def test_per_question_scores_by_hand() -> None:
    gold = {
        "several": ["France", "the French Republic", "Republic of France"],
        "unanswerable_empty": [],
        "unanswerable_abstain": [],
        "unanswerable_guess": [],
        "unanswerable_article": [],
        "article_only_pred": ["Paris"],
        "unicode": ["Beyoncé Knowles"],
        "empty_gold_texts": ["the", "."],  # every gold normalises to "" -> scored like an unanswerable one
    }
    predictions = {
        "several": "Republic of France!",  # exact on the 3rd gold
        "unanswerable_empty": "",
        "unanswerable_abstain": "",  # a model's "unanswerable", mapped to "" by the caller
        "unanswerable_guess": "Paris",
        "unanswerable_article": "the .",
        "article_only_pred": "the .",
        "unicode": "beyoncé",
        "empty_gold_texts": "",
        "not_a_question": "ignored",
    }
    exact, f1 = squad_v2_per_question(gold, predictions)
    assert exact == {
        "several": 1,
        "unanswerable_empty": 1,
        "unanswerable_abstain": 1,
        "unanswerable_guess": 0,
        "unanswerable_article": 1,
        "article_only_pred": 0,
        "unicode": 0,
        "empty_gold_texts": 1,
    }
    # "several": pred [republic, of, france] vs [france] -> common 1, P=1/3 R=1 F1=1/2;
    #            vs [french, republic] -> common 1, P=1/3 R=1/2 F1=0.4; vs the 3rd gold -> 1. Max = 1.
    # "unicode": [beyoncé] vs [beyoncé, knowles] -> P=1, R=1/2, F1=2/3
    assert f1["several"] == 1.0
    assert f1["unicode"] == pytest.approx(2 / 3)
    assert f1["unanswerable_abstain"] == 1.0 and f1["unanswerable_guess"] == 0.0
    assert f1["unanswerable_article"] == 1.0 and f1["article_only_pred"] == 0.0
    assert list(exact) == list(gold)  # keyed and ordered like the gold answers


def test_missing_predictions_raise() -> None:
    with pytest.raises(ValueError, match="q2"):
        squad_v2_scores({"q1": ["a b"], "q2": []}, {"q1": "b"})
    with pytest.raises(ValueError, match="no-answer probabilities"):
        squad_v2_scores({"q1": ["x"]}, {"q1": "x"}, {"other": 0.5})
    with pytest.raises(TypeError):
        squad_v2_per_question({"q1": "Paris"}, {"q1": "Paris"})  # type: ignore[dict-item]


# ---------------------------------------------------------------------------------------------------
# SQuAD: aggregation and the no-answer threshold sweep
# ---------------------------------------------------------------------------------------------------

FOUR_GOLD = {"q1": ["Paris"], "q2": ["London Bridge"], "q3": [], "q4": []}
FOUR_PREDS = {"q1": "Paris", "q2": "Tower Bridge", "q3": "", "q4": "Rome"}
# raw scores:  q1 EM 1 F1 1 | q2 EM 0, F1: [london, bridge] vs [tower, bridge] -> 1 common -> P=R=1/2 -> 0.5
#              q3 EM 1 F1 1 (empty vs unanswerable) | q4 EM 0 F1 0 (guess on unanswerable)
FOUR_PROBS = {"q1": 0.1, "q2": 0.6, "q3": 0.4, "q4": 0.3}


def test_four_question_scores_and_best_threshold_by_hand() -> None:
    result = squad_v2_scores(FOUR_GOLD, FOUR_PREDS, FOUR_PROBS)
    # threshold 1.0: nothing abstains -> exact = (1+0+1+0)/4, f1 = (1+0.5+1+0)/4
    assert result["exact"] == 50.0 and result["f1"] == 62.5 and result["total"] == 4
    assert (result["HasAns_exact"], result["HasAns_f1"], result["HasAns_total"]) == (50.0, 75.0, 2)
    assert (result["NoAns_exact"], result["NoAns_f1"], result["NoAns_total"]) == (50.0, 50.0, 2)
    # Sweep (EM): start "abstain everywhere" = #unanswerable = 2, best 2 at threshold 0.0.
    # In na_prob order: q1 (0.1) answerable +1 -> 3 > 2, best 3 at 0.1; q4 (0.3) unanswerable with a
    # non-empty prediction -1 -> 2; q3 (0.4) empty prediction 0 -> 2; q2 (0.6) +0 -> 2.
    # best_exact = 100 * 3/4 = 75 at 0.1 (answer only q1: q1 right, q2 wrong, q3 and q4 abstain correctly).
    assert result["best_exact"] == 75.0 and result["best_exact_thresh"] == 0.1
    # Sweep (F1): same, but q2 adds 0.5 at the end: 2.5 < 3 -> best_f1 = 75 at 0.1.
    assert result["best_f1"] == 75.0 and result["best_f1_thresh"] == 0.1


def test_threshold_turns_high_probabilities_into_abstentions() -> None:
    # threshold 0.2: q2 (0.6), q3 (0.4), q4 (0.3) abstain: q2 -> 0 (answerable), q3, q4 -> 1; q1 stays 1
    result = squad_v2_scores(FOUR_GOLD, FOUR_PREDS, FOUR_PROBS, no_answer_threshold=0.2)
    assert result["exact"] == 75.0 and result["f1"] == 75.0
    assert result["NoAns_exact"] == 100.0 and result["HasAns_f1"] == 50.0
    # a probability equal to the threshold does not abstain (strict ">")
    at_edge = squad_v2_scores(FOUR_GOLD, FOUR_PREDS, FOUR_PROBS, no_answer_threshold=0.3)
    assert at_edge["NoAns_exact"] == 50.0  # q4 (0.3) still answers "Rome"


def test_sweep_ties_follow_probability_insertion_order_like_the_official_script() -> None:
    # q1 and q4 tie at 0.3. Sorted stably, the order of the mapping decides who comes first.
    q1_first = {"q1": 0.3, "q4": 0.3, "q3": 0.4, "q2": 0.6}
    q4_first = {"q4": 0.3, "q1": 0.3, "q3": 0.4, "q2": 0.6}
    # q1 first: 2 -> 3 (best 3 at 0.3) -> 2 -> 2 -> 2 (EM)
    assert squad_v2_scores(FOUR_GOLD, FOUR_PREDS, q1_first)["best_exact"] == 75.0
    # q4 first: 2 -> 1 -> 2 (not > 2) -> 2 -> 2: the start value wins, threshold stays 0.0
    tied = squad_v2_scores(FOUR_GOLD, FOUR_PREDS, q4_first)
    assert (tied["best_exact"], tied["best_exact_thresh"]) == (50.0, 0.0)
    # F1: ... -> 2 -> 2.5 at q2 (0.6) > 2: best_f1 = 62.5 at 0.6
    assert (tied["best_f1"], tied["best_f1_thresh"]) == (62.5, 0.6)


def test_sweep_charges_any_non_empty_prediction_on_unanswerable_questions() -> None:
    # Official quirk: the sweep tests the raw prediction string, so "the ." (which scores 1 as an
    # abstention) still costs 1 there. Start 1 (one unanswerable); q1 +1 -> 2; qn -1 -> 1.
    gold = {"q1": ["Paris"], "qn": []}
    result = squad_v2_scores(gold, {"q1": "Paris", "qn": "the ."}, {"q1": 0.2, "qn": 0.7})
    assert result["exact"] == 100.0  # both right at threshold 1.0
    assert result["best_exact"] == 100.0 and result["best_exact_thresh"] == 0.2


def test_subset_keys_only_when_present() -> None:
    only_answerable = squad_v2_scores({"q1": ["Paris"]}, {"q1": "paris"})
    assert set(only_answerable) == {"exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total"}
    only_unanswerable = squad_v2_scores({"q1": []}, {"q1": ""})
    assert set(only_unanswerable) == {"exact", "f1", "total", "NoAns_exact", "NoAns_f1", "NoAns_total"}
    assert only_unanswerable["exact"] == 100.0


def test_answer_rate_by_hand() -> None:
    # FOUR_PREDS: q1, q2, q4 answer, q3 is empty -> 3/4 answered at the default threshold 1.0 (nothing abstains)
    assert answer_rate(FOUR_PREDS, FOUR_PROBS) == 75.0
    assert answer_rate(FOUR_PREDS) == 75.0  # no probabilities: the texts decide
    # threshold 0.2: q2 (0.6), q3 (0.4), q4 (0.3) abstain -> only q1 answers; at the threshold itself it answers
    assert answer_rate(FOUR_PREDS, FOUR_PROBS, no_answer_threshold=0.2) == 25.0
    assert answer_rate(FOUR_PREDS, FOUR_PROBS, no_answer_threshold=0.3) == 50.0
    # the raw string decides, as in the official sweep: "the ." is an answer (though it scores as an abstention)
    assert answer_rate({"q1": "the .", "q2": ""}) == 50.0
    with pytest.raises(ValueError, match="at least one"):
        answer_rate({})


# ---------------------------------------------------------------------------------------------------
# Generation metrics
# ---------------------------------------------------------------------------------------------------




def test_identical_answers(wordnet_ready: None) -> None:
    references = [["the Norman conquest of England"], ["Paris", "the city of Paris"], ["Tower of London"]]
    predictions = ["the Norman conquest of England", "the city of Paris", "Tower of London"]
    result = generation_metrics(references, predictions)
    assert result["bleu"] == pytest.approx(100.0)
    for rouge_type in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert result[rouge_type] == pytest.approx(100.0)
    # METEOR of an n-token exact match: P = R = 1 -> Fmean = PR / (0.9 P + 0.1 R) = 1; one chunk ->
    # fragmentation 1/n, penalty 0.5 * (1/n)^3, score 1 - penalty. n = 5, 4, 3 tokens here:
    expected = [1 - 0.5 / 5**3, 1 - 0.5 / 4**3, 1 - 0.5 / 3**3]
    assert result["meteor"] == pytest.approx(100.0 * sum(expected) / 3)
    assert set(result) == {"bleu", "rouge1", "rouge2", "rougeL", "rougeLsum", "meteor"}
    json.dumps(result)


def test_one_word_exact_match(wordnet_ready: None) -> None:
    result = generation_metrics([["Paris"]], ["paris"])
    # METEOR: 1 match, 1 chunk -> frag = 1, penalty = 0.5 * 1^3 = 0.5, Fmean = 1 -> 0.5
    assert result["meteor"] == pytest.approx(50.0)
    assert result["rouge1"] == pytest.approx(100.0)  # rouge-score lower-cases
    # corpus BLEU is cased and a one-word corpus has no 2/3/4-grams at all, so BLEU is 0 here
    assert result["bleu"] == 0.0


def test_disjoint_answers(wordnet_ready: None) -> None:
    result = generation_metrics([["Paris"], ["the Norman conquest"]], ["1066", "seventeen guitars"])
    assert result == {
        "bleu": 0.0,
        "rouge1": 0.0,
        "rouge2": 0.0,
        "rougeL": 0.0,
        "rougeLsum": 0.0,
        "meteor": 0.0,
    }


def test_best_of_several_references_and_variable_reference_counts(wordnet_ready: None) -> None:
    # Question 1 has one reference, question 2 three (two of them equal): sacreBLEU gets padded streams.
    references = [["the Norman conquest of England"], ["a b c d e", "Tower of London", "Tower of London"]]
    predictions = ["the Norman conquest of England", "Tower of London"]
    result = generation_metrics(references, predictions)
    assert result["bleu"] == pytest.approx(100.0)
    assert result["rougeL"] == pytest.approx(100.0)


def test_meteor_uses_wordnet_synonyms(wordnet_ready: None) -> None:
    # "car" and "auto" share a WordNet synset: one synonym match -> 0.5 as for a one-word exact match
    assert generation_metrics([["auto"]], ["car"])["meteor"] == pytest.approx(50.0)


def test_missing_wordnet_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_wordnet() -> int:
        raise LookupError("Resource 'wordnet' not found.")

    monkeypatch.setattr(wordnet_support, "_probe_wordnet", no_wordnet)
    with pytest.raises(WordNetMissingError) as caught:
        generation_metrics([["Paris"]], ["Paris"])
    message = str(caught.value)
    assert "python scripts/install_wordnet.py" in message and "nltk.downloader wordnet" in message
    assert isinstance(caught.value, RuntimeError)


def test_generation_input_checks() -> None:
    assert generation_metrics([], []) == {}
    with pytest.raises(ValueError):
        generation_metrics([["Paris"]], ["Paris", "London"])
    with pytest.raises(ValueError, match="no non-empty reference"):
        generation_metrics([["Paris"], []], ["Paris", ""])


def test_per_question_terms_give_the_generation_metrics(wordnet_ready: None) -> None:
    """The terms tuneval.scoring.stats resamples: their means (and BLEU's summed statistics) are generation_metrics'."""
    references = [["the sun", "sun"], ["Paris"], ["a big red car", "red car"], ["King Louis XIV"]]
    predictions = ["sun", "paris city", "the red car", ""]
    expected = generation_metrics(references, predictions)
    rouge = rouge_per_question(references, predictions)
    for rouge_type, values in rouge.items():
        assert 100 * sum(values) / len(values) == pytest.approx(expected[rouge_type], abs=1e-12)
    assert rouge["rougeL"][0] == 1.0 and rouge["rougeL"][3] == 0.0
    meteor = meteor_per_question(references, predictions)
    assert 100 * sum(meteor) / len(meteor) == pytest.approx(expected["meteor"], abs=1e-12)
    statistics = bleu_statistics(references, predictions)
    assert len(statistics) == 4 and all(len(row) == 10 for row in statistics)
    summed = [sum(column) for column in zip(*statistics, strict=True)]
    assert bleu_from_statistics(summed) == pytest.approx(expected["bleu"], abs=1e-12)


def test_bleu_statistics_of_a_subset_are_that_subset_s_corpus_bleu() -> None:
    references = [["the big red car"], ["a small blue boat on the lake"], ["green trees in the park"]]
    predictions = ["the big red car", "a small blue boat on a lake", "trees in the park"]
    import sacrebleu  # the reference: sacreBLEU's own corpus BLEU (one reference per question here)

    statistics = bleu_statistics(references, predictions)
    for subset in ([0, 1], [1, 2], [0, 1, 2], [1, 1, 2]):
        summed = [sum(statistics[i][k] for i in subset) for k in range(10)]
        corpus = sacrebleu.corpus_bleu([predictions[i] for i in subset], [[references[i][0] for i in subset]]).score
        assert corpus > 0 and bleu_from_statistics(summed) == pytest.approx(corpus, abs=1e-12)


def test_conventions_are_documented() -> None:
    assert {"classification", "squad_v2", "bleu", "rouge", "meteor"} <= set(CONVENTIONS)
    assert all(isinstance(text, str) and text for text in CONVENTIONS.values())
    json.dumps(CONVENTIONS)


def test_conventions_are_written_once() -> None:
    """CONVENTIONS is the one copy: the module docstring, other modules, the README and the docs point to it."""
    import tuneval.scoring.metrics as metrics_module

    repo = Path(__file__).resolve().parents[1]
    phrases = ["zero_division", "fragmentation penalty", "13a tokenizer", "HasAns when", "string.punctuation"]
    assert all(any(phrase in text for text in CONVENTIONS.values()) for phrase in phrases)
    assert "CONVENTIONS" in metrics_module.__doc__
    elsewhere = {"metrics.py docstring": metrics_module.__doc__, "README.md": (repo / "README.md").read_text()}
    elsewhere |= {f"docs/{path.name}": path.read_text() for path in (repo / "docs").glob("*.md")}
    elsewhere |= {path.name: path.read_text() for path in (repo / "src" / "tuneval").rglob("*.py")
                  if path.name != "metrics.py"}
    for name, text in elsewhere.items():
        for phrase in phrases:
            assert phrase not in text, f"{name} repeats the conventions ({phrase!r}); point to metrics.CONVENTIONS"
    assert "CONVENTIONS" in elsewhere["docs/reference.md"]  # the metric conventions section points there
