"""The report's learning-curve findings: generated from report/curves/<task>/curve.json's numbers, and only for a
curve that scored this study's examples."""

from __future__ import annotations

import pytest

from tuneval.io import write_json
from tuneval.report.curve import ids_digest
from tuneval.report.study import curve_findings
from tuneval.tasks import get_task

SQUAD = get_task("squad_v2")


def _curve(records, means, sds=(0.5, 0.4, 0.3), zeroshot=10.0, baseline=50.0) -> dict:
    points = [{"value": v, "runs": 3, "mean": m, "sd": sd, "min": m - 1, "max": m + 1, "low": m - 4, "high": m + 4,
               "delta_zeroshot": m - zeroshot, "experiments": []}
              for v, m, sd in zip((25, 100, 400), means, sds, strict=True)]
    return {"task": "squad_v2", "split": "validation", "metric": "f1", "scale": "percent",
            "param": "data.train_examples.squad_v2", "examples": {"n": len(records), "ids_sha256": ids_digest(records)},
            "reference": {"zeroshot": {"value": zeroshot}, "baseline": {"name": "always abstain", "value": baseline}},
            "points": points}


@pytest.fixture
def study(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    records = [{"id": f"q{i}"} for i in range(6)]
    write_json(tmp_path / "predictions/squad_v2/finetuned/validation.json", records)
    return tmp_path, records


def test_a_curve_of_this_studys_examples_is_described_from_its_numbers(study):
    root, records = study
    write_json(root / "report/curves/squad_v2/curve.json", _curve(records, (12.0, 20.5, 31.25)))
    (line,) = curve_findings([SQUAD])
    assert line.startswith("- `squad_v2` learning curve (data.train_examples.squad_v2, 3 runs per point, 3 values)")
    assert ("f1 goes from 12.00 at 25 to 31.25 at 400, rising at every step (largest step +10.75, from 100 to 400); "
            "seed sd up to 0.50") in line
    assert "intervals 8.00-8.00 wide" in line
    assert "above zero-shot (10.00) and below the baseline (50.00)" in line
    write_json(root / "report/curves/squad_v2/curve.json", _curve(records, (12.0, 9.0, 31.25), zeroshot=40.0))
    (line,) = curve_findings([SQUAD])
    assert "not monotone" in line and "below zero-shot (40.00)" in line


def test_a_curve_of_other_examples_is_named_stale(study):
    root, records = study
    write_json(root / "report/curves/squad_v2/curve.json", _curve(records[:5], (12.0, 20.5, 31.25)))
    (line,) = curve_findings([SQUAD])
    assert "scored other examples than this study" in line and "goes from" not in line


def test_no_curve_no_finding(study):
    assert curve_findings([SQUAD]) == []


def test_curves_of_other_metrics_follow_the_headline_curve(study):
    root, records = study
    write_json(root / "report/curves/squad_v2/curve.json", _curve(records, (12.0, 20.5, 31.25)))
    answered = dict(_curve(records, (95.0, 97.0, 70.0), zeroshot=97.9, baseline=0.0), metric="answered")
    write_json(root / "report/curves/squad_v2/answered/curve.json", answered)
    stale = dict(_curve(records[:5], (1.0, 2.0, 30.0)), metric="NoAns_f1")
    write_json(root / "report/curves/squad_v2/NoAns_f1/curve.json", stale)
    headline, no_answer, answer_rate = curve_findings([SQUAD])  # the headline, then by directory name
    assert "f1 goes from 12.00 at 25 to 31.25 at 400" in headline
    assert "NoAns_f1/curve.json): scored other examples than this study" in no_answer
    assert ("answered goes from 95.00 at 25 to 70.00 at 400, not monotone (largest step -27.00, from 100 to 400)"
            in answer_rate)
    assert "below zero-shot (97.90) and above the baseline (0.00)" in answer_rate
