"""``squad_v2_scores`` against a packaged copy of the official SQuAD v2.0 evaluation logic.

Reference: ``official/nlp/tools/squad_evaluate_v2_0.py`` from TensorFlow Model Garden's PyPI package
``tf-models-official``, whose functions are the official ``evaluate-v2.0.py`` ones with a leading
underscore (and absl logging instead of print). Only that file is used, so the package is installed
without its (TensorFlow) dependencies. It is found, in this order, via:

* ``TUNEVAL_SQUAD_REFERENCE``: a path to that ``.py`` file or to a ``tf_models_official-*.whl``;
* the importable module, after ``pip install --no-deps tf-models-official==2.20.0``.

Without either, the tests skip with that instruction. The glue below (:func:`official_main`) chains the
reference's functions exactly as the official script's ``main()`` does; all scoring is the reference's.
"""

from __future__ import annotations

import gzip
import importlib
import json
import os
import random
import types
import zipfile
from pathlib import Path

import pytest

from tuneval.scoring.metrics import normalize_answer, squad_v2_scores

REFERENCE_MEMBER = "official/nlp/tools/squad_evaluate_v2_0.py"
REFERENCE_MODULE = REFERENCE_MEMBER.removesuffix(".py").replace("/", ".")
REFERENCE_ENV = "TUNEVAL_SQUAD_REFERENCE"
INSTALL_HINT = (
    "official SQuAD v2.0 reference not available: `pip install --no-deps tf-models-official==2.20.0` "
    f"(ships {REFERENCE_MEMBER}) or set {REFERENCE_ENV} to that file or to the tf_models_official wheel"
)
DEV_SET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "squad_v2" / "dev-v2.0.json.gz"
RESULT_KEYS = ("exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total")
RESULT_KEYS += ("NoAns_exact", "NoAns_f1", "NoAns_total")


# ---------------------------------------------------------------------------------------------------
# Locating the reference
# ---------------------------------------------------------------------------------------------------


def _module_from_source(source: str, origin: str) -> types.ModuleType:
    """Execute reference source text as a fresh module."""
    module = types.ModuleType("squad_evaluate_v2_0_reference")
    module.__file__ = origin
    exec(compile(source, origin, "exec"), module.__dict__)  # noqa: S102 - trusted, packaged reference
    return module


def _reference_from_path(path: Path) -> types.ModuleType:
    """Load the reference from a ``.py`` file or from the member of a wheel."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            source = wheel.read(REFERENCE_MEMBER).decode("utf-8")
        return _module_from_source(source, f"{path}!/{REFERENCE_MEMBER}")
    return _module_from_source(path.read_text(encoding="utf-8"), str(path))


def _load_reference() -> types.ModuleType | None:
    """The official-logic module, or None when it is not available here."""
    configured = os.environ.get(REFERENCE_ENV)
    if configured:
        return _reference_from_path(Path(configured))
    try:
        return importlib.import_module(REFERENCE_MODULE)
    except ImportError:
        return None


@pytest.fixture(scope="module")
def reference() -> types.ModuleType:
    module = _load_reference()
    if module is None:
        pytest.skip(INSTALL_HINT)
    return module


# ---------------------------------------------------------------------------------------------------
# The official main(), built from the reference's functions
# ---------------------------------------------------------------------------------------------------


Config = tuple[dict | None, float]  # (na_probs or None, na_prob_thresh)


def official_main(ref: types.ModuleType, dataset: list, preds: dict, configs: list[Config]) -> list[dict]:
    """What ``evaluate-v2.0.py --na-prob-thresh T [--na-prob-file]`` prints, as dicts, per (probs, T).

    The raw scores are computed once; the rest follows the official ``main()`` step by step.
    """
    qid_to_has_ans = ref._make_qid_to_has_ans(dataset)
    has_ans_qids = [k for k, v in qid_to_has_ans.items() if v]
    no_ans_qids = [k for k, v in qid_to_has_ans.items() if not v]
    exact_raw, f1_raw = ref._get_raw_scores(dataset, preds)
    results = []
    for na_probs, thresh in configs:
        probs = na_probs if na_probs is not None else {k: 0.0 for k in preds}
        exact_thresh = ref._apply_no_ans_threshold(exact_raw, probs, qid_to_has_ans, thresh)
        f1_thresh = ref._apply_no_ans_threshold(f1_raw, probs, qid_to_has_ans, thresh)
        out = ref._make_eval_dict(exact_thresh, f1_thresh)
        for prefix, qid_list in (("HasAns", has_ans_qids), ("NoAns", no_ans_qids)):
            if qid_list:
                ref._merge_eval(out, ref._make_eval_dict(exact_thresh, f1_thresh, qid_list=qid_list), prefix)
        if na_probs is not None:
            ref._find_all_best_thresh(out, preds, exact_raw, f1_raw, na_probs, qid_to_has_ans)
        # This port names the sweep's results final_* where the official script says best_*.
        results.append({key.replace("final_", "best_"): value for key, value in out.items()})
    return results


def gold_from_dataset(dataset: list) -> dict[str, list[str]]:
    """Official-format articles -> {question id: gold answer texts}."""
    return {
        qa["id"]: [answer["text"] for answer in qa["answers"]]
        for article in dataset
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    }


def dataset_from_gold(gold: dict[str, list[str]]) -> list:
    """{question id: gold texts} -> one official-format article."""
    qas = [
        {"id": qid, "answers": [{"text": t, "answer_start": 0} for t in texts]} for qid, texts in gold.items()
    ]
    return [{"title": "synthetic", "paragraphs": [{"context": "", "qas": qas}]}]


def assert_same_as_official(
    ref: types.ModuleType, dataset: list, preds: dict, configs: list[Config] | None = None
) -> list[dict]:
    """Compare ours with the reference for each (na_probs, thresh); default: no probabilities, T=1.0."""
    configs = configs if configs is not None else [(None, 1.0)]
    gold = gold_from_dataset(dataset)
    results = []
    expectations = official_main(ref, dataset, preds, configs)
    for (na_probs, thresh), expected in zip(configs, expectations, strict=True):
        actual = squad_v2_scores(gold, preds, na_probs, thresh)
        assert set(actual) == set(expected)
        for key, value in expected.items():
            assert actual[key] == pytest.approx(value, abs=1e-9), (key, thresh)
            assert type(actual[key]) is (int if key.endswith("total") else float), key
        results.append(actual)
    return results


# ---------------------------------------------------------------------------------------------------
# Hand-made and randomized cases
# ---------------------------------------------------------------------------------------------------

HAND_GOLD = {
    "q_france": ["France", "France", "the French Republic"],
    "q_article": ["The Eiffel Tower"],
    "q_unicode": ["Beyoncé Knowles", "São Paulo, Brazil"],
    "q_partial": ["the Norman conquest of England"],
    "q_none_1": [],
    "q_none_2": [],
    "q_none_3": [],
    "q_only_article": ["the", "A."],  # answerable by the raw list, but every gold normalises to ""
}
HAND_PREDS = {
    "q_france": "france!",
    "q_article": "eiffel tower",
    "q_unicode": "Beyonce",
    "q_partial": "conquest of England in 1066",
    "q_none_1": "",
    "q_none_2": "the .",  # normalises to "" (right) but is a non-empty string for the sweep (costs 1)
    "q_none_3": "Paris",
    "q_only_article": "",
    "q_extra": "ignored: not a gold question",
}


def test_hand_made_without_probabilities(reference: types.ModuleType) -> None:
    configs: list[Config] = [(None, thresh) for thresh in (1.0, 0.5, 0.0, -1.0)]
    assert_same_as_official(reference, dataset_from_gold(HAND_GOLD), HAND_PREDS, configs)


def test_hand_made_with_tied_probabilities(reference: types.ModuleType) -> None:
    # Ties at 0.3 and 0.5 mix answerable and unanswerable questions; "q_extra" is not a gold id.
    probs = {
        "q_none_3": 0.3,
        "q_france": 0.3,
        "q_extra": 0.1,
        "q_article": 0.5,
        "q_none_2": 0.5,
        "q_unicode": 0.5,
        "q_partial": 0.2,
        "q_none_1": 0.9,
        "q_only_article": 0.3,
    }
    # The insertion order of tied probabilities matters to the official sweep; so it must to ours.
    reordered = dict(reversed(list(probs.items())))
    configs: list[Config] = [(p, thresh) for p in (probs, reordered) for thresh in (1.0, 0.5, 0.3, 0.0)]
    results = assert_same_as_official(reference, dataset_from_gold(HAND_GOLD), HAND_PREDS, configs)
    assert all({"best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"} <= set(r) for r in results)


# Articles in all guises, punctuation inside and around words, non-ASCII letters and a ligature.
_VOCAB = [
    "the",
    "a",
    "an",
    "The",
    "AN",
    "Paris",
    "paris,",
    "Norman",
    "conquest",
    "of",
    "England",
    "1066",
    "São",
    "Beyoncé",
    "x-ray",
    "U.S.",
    "(b)",
    "ann",
    "theory",
    "an.",
    "--",
    "ﬁ",
    "Straße",
    "ПРИВЕТ",
    "1,000",
    "'s",
]


def _random_text(rng: random.Random, max_words: int = 5) -> str:
    return " ".join(rng.choice(_VOCAB) for _ in range(rng.randint(1, max_words)))


def _random_prediction(rng: random.Random, golds: list[str]) -> str:
    kind = rng.random()
    if kind < 0.2:
        return ""
    if kind < 0.45 and golds:
        return rng.choice(golds)
    if kind < 0.6 and golds:
        words = rng.choice(golds).split()
        start = rng.randrange(len(words))
        return " ".join(words[start : start + rng.randint(1, len(words))])
    if kind < 0.65:
        return rng.choice(["the", " . ", "a an", "!!"])
    return _random_text(rng)


def _random_case(seed: int) -> tuple[dict[str, list[str]], dict[str, str], dict[str, float]]:
    rng = random.Random(seed)
    gold: dict[str, list[str]] = {}
    for index in range(rng.randint(1, 60)):
        answerable = rng.random() < 0.55
        gold[f"q{seed}_{index}"] = [_random_text(rng) for _ in range(rng.randint(1, 3))] if answerable else []
    preds = {qid: _random_prediction(rng, golds) for qid, golds in gold.items()}
    ids = list(gold)
    rng.shuffle(ids)
    probs = {qid: rng.choice([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 1.0, rng.random()]) for qid in ids}
    return gold, preds, probs


@pytest.mark.parametrize("seed", range(40))
def test_randomized_cases(reference: types.ModuleType, seed: int) -> None:
    gold, preds, probs = _random_case(seed)
    configs: list[Config] = [(p, thresh) for p in (None, probs) for thresh in (1.0, 0.5, 0.1)]
    assert_same_as_official(reference, dataset_from_gold(gold), preds, configs)


def test_normalization_matches_reference(reference: types.ModuleType) -> None:
    rng = random.Random(0)
    samples = [_random_text(rng, 8) for _ in range(300)]
    samples += ["", "  ", "A", "the the", "anthem", "l'an", "Ça\tva", "a\u00a0b", "THE\nEnd"]
    for text in samples:
        assert normalize_answer(text) == reference._normalize_answer(text), repr(text)


# ---------------------------------------------------------------------------------------------------
# The real dev set
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dev_set() -> list:
    if not DEV_SET.is_file():
        pytest.skip(f"SQuAD v2.0 dev set not found at {DEV_SET}")
    with gzip.open(DEV_SET, "rt", encoding="utf-8") as handle:
        return json.load(handle)["data"]


def _synthetic_dev_predictions(dataset: list) -> tuple[dict[str, str], dict[str, float]]:
    """First gold answer for every 3rd question, a random chunk of a gold or context for some, "" else."""
    rng = random.Random(0)
    preds: dict[str, str] = {}
    probs: dict[str, float] = {}
    index = 0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            context_words = paragraph["context"].split()
            for qa in paragraph["qas"]:
                golds = [answer["text"] for answer in qa["answers"]]
                if index % 3 == 0 and golds:
                    preds[qa["id"]] = golds[0]
                elif index % 5 == 1:
                    start = rng.randrange(len(context_words))
                    preds[qa["id"]] = " ".join(context_words[start : start + rng.randint(1, 6)])
                elif index % 7 == 2 and golds:
                    words = golds[-1].split()
                    preds[qa["id"]] = " ".join(words[rng.randrange(len(words)) :])
                else:
                    preds[qa["id"]] = ""
                probs[qa["id"]] = round(rng.random(), 2)  # two decimals: plenty of ties
                index += 1
    return preds, probs


def test_dev_set_synthetic_predictions(reference: types.ModuleType, dev_set: list) -> None:
    preds, probs = _synthetic_dev_predictions(dev_set)
    plain, *_ = assert_same_as_official(reference, dev_set, preds, [(None, 1.0), (probs, 1.0), (probs, 0.5)])
    assert plain["total"] == 11873 and plain["HasAns_total"] == 5928 and plain["NoAns_total"] == 5945


def test_dev_set_trivial_predictions(reference: types.ModuleType, dev_set: list) -> None:
    gold = gold_from_dataset(dev_set)
    all_empty = dict.fromkeys(gold, "")
    (result,) = assert_same_as_official(reference, dev_set, all_empty)
    assert result["exact"] == pytest.approx(100.0 * 5945 / 11873)  # only the unanswerable ones are right
    first_gold = {qid: (golds[0] if golds else "") for qid, golds in gold.items()}
    perfect = squad_v2_scores(gold, first_gold)  # sanity check of ours alone
    assert perfect["exact"] == pytest.approx(100.0) and perfect["f1"] == pytest.approx(100.0)


# ---------------------------------------------------------------------------------------------------
# The tiny model on the full dev set (benchmarks/results, written by `tuneval eval ... --data-dir`)
# ---------------------------------------------------------------------------------------------------

SAVED_DEV = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "squad_v2_dev_tiny.json"


def test_saved_full_dev_metrics_equal_the_official_script(reference: types.ModuleType, dev_set: list) -> None:
    """The committed metrics of the tiny model on all 11,873 dev questions, recomputed from the committed
    predictions and no-answer probabilities by the official algorithm."""
    if not SAVED_DEV.is_file():
        pytest.skip(f"{SAVED_DEV} not present (see benchmarks/README.md for the command that writes it)")
    saved = json.loads(SAVED_DEV.read_text())["validation"]
    records = json.loads(SAVED_DEV.with_suffix(".predictions.json").read_text())
    preds = {r["id"]: r["prediction"] for r in records}
    probs = {r["id"]: r["no_answer_prob"] for r in records}
    assert len(preds) == 11873 and set(preds) == set(gold_from_dataset(dev_set))
    (expected,) = official_main(reference, dev_set, preds, [(probs, 1.0)])
    for key in ("exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total", "NoAns_exact", "NoAns_f1",
                "NoAns_total", "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"):
        assert saved[key] == pytest.approx(expected[key], abs=1e-9), key
