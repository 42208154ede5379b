"""scoring/metrics.py reaches into sacreBLEU's BLEU for per-example sufficient statistics (what makes a bootstrap
over questions, and one corpus BLEU from column sums, possible) through private methods. They are not part of
sacreBLEU's API, so pyproject.toml pins sacrebleu below the next minor release, and these tests fail loudly,
naming the method, when a release moves, renames or reshapes one of them."""

from __future__ import annotations

import importlib.metadata
import inspect
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
METRICS = REPO / "src/tuneval/scoring/metrics.py"
# method of sacrebleu.metrics.BLEU -> its parameters, as metrics.py calls it
PRIVATE = {
    "_extract_corpus_statistics": ["self", "hypotheses", "references"],
    "_compute_score_from_stats": ["self", "stats"],
}
VERSION = importlib.metadata.version("sacrebleu")


def test_metrics_calls_exactly_the_private_methods_checked_here():
    called = set(re.findall(r"_bleu\(\)\.(_\w+)\(", METRICS.read_text()))
    assert called == set(PRIVATE), (
        f"scoring/metrics.py calls BLEU private methods {sorted(called)}; this test checks {sorted(PRIVATE)}: "
        "keep PRIVATE in step with the code")


@pytest.mark.parametrize("name", sorted(PRIVATE))
def test_the_private_bleu_method_is_still_there_with_its_signature(name):
    from sacrebleu.metrics import BLEU

    method = getattr(BLEU, name, None)
    assert callable(method), (
        f"sacrebleu {VERSION}: BLEU.{name} no longer exists; tuneval.scoring.metrics (bleu_statistics / "
        f"bleu_from_statistics) calls it: adapt metrics.py, or pin sacrebleu to a release that has it")
    parameters = list(inspect.signature(method).parameters)
    assert parameters == PRIVATE[name], (
        f"sacrebleu {VERSION}: BLEU.{name}{inspect.signature(method)} changed its parameters (tuneval calls it as "
        f"({', '.join(PRIVATE[name])})): adapt tuneval.scoring.metrics, or pin sacrebleu to a release that matches")


def test_the_private_methods_still_give_what_metrics_reads():
    """Rows of 2 + 2 * max_ngram_order integers per hypothesis (reference streams padded with None), and a
    BLEUScore from their column sums equal to corpus_bleu."""
    import sacrebleu
    from sacrebleu.metrics import BLEU

    bleu = BLEU()
    hypotheses = ["the cat sat on the mat", "a dog barked"]
    streams = [["the cat sat on a mat", "a dog barked loudly"], ["a cat sat on the mat", None]]
    stats = bleu._extract_corpus_statistics(hypotheses, streams)
    assert len(stats) == 2 and all(len(row) == 2 + 2 * bleu.max_ngram_order for row in stats), (
        f"sacrebleu {VERSION}: BLEU._extract_corpus_statistics no longer returns one row of sufficient statistics "
        f"per hypothesis: {stats!r}")
    summed = [sum(column) for column in zip(*stats, strict=True)]
    score = bleu._compute_score_from_stats(summed).score
    expected = sacrebleu.corpus_bleu(hypotheses, [["the cat sat on a mat", "a dog barked loudly"],
                                                  ["a cat sat on the mat", None]]).score
    assert score == pytest.approx(expected, abs=1e-12), (
        f"sacrebleu {VERSION}: BLEU._compute_score_from_stats over summed statistics no longer equals corpus_bleu")


def test_sacrebleu_is_pinned_below_an_upper_bound_the_installed_version_meets():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (requirement,) = [Requirement(d) for d in dependencies if Requirement(d).name == "sacrebleu"]
    assert any(spec.operator in ("<", "<=", "==", "~=") for spec in requirement.specifier), (
        f"pyproject.toml: {requirement} has no upper bound, but tuneval calls private sacreBLEU methods")
    assert requirement.specifier.contains(VERSION), f"sacrebleu {VERSION} is installed, pyproject says {requirement}"
