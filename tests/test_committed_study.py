"""The committed default study is auditable from a clone: its per-example predictions are in git, the report
recomputes from them exactly, and the README's results are the report's, word for word."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tuneval import paths
from tuneval.config import PHASES, load_params
from tuneval.report.study import compare_phases
from tuneval.report.summary import README_END, README_START, labelled, summary_metrics
from tuneval.tasks import get_task

REPO = Path(__file__).resolve().parents[1]


def _block(text: str) -> str:
    return text[text.index(README_START): text.index(README_END) + len(README_END)]


def _close(a, b, where: str = "") -> None:
    """Recursive equality, floats to 1e-9."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(set(a) ^ set(b))}"
        for key in a:
            _close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, float) or isinstance(b, float):
        assert math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9), f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_readme_results_are_the_reports():
    """Every result in README.md's results block comes from report/summary.md (scripts/repro.sh copies it)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    summary = (REPO / paths.SUMMARY_MD).read_text(encoding="utf-8")
    assert _block(readme) == _block(summary), "README results differ from report/summary.md: run scripts/repro.sh"


def test_report_block_numbers_are_summary_json_numbers():
    """The table's zero-shot, fine-tuned and baseline cells are summary.json's values, as printed."""
    summary = json.loads((REPO / "report/summary.json").read_text())
    block = _block((REPO / paths.SUMMARY_MD).read_text(encoding="utf-8"))
    for task_name in load_params(REPO / "params.yaml").tasks:
        decimals = get_task(task_name).metrics.decimals
        for split, entry in summary[task_name].items():
            for metric, values in entry.items():
                if not isinstance(values, dict):
                    continue
                prefix = f"| {task_name} | {split} | {labelled(metric)} |"
                row = next(line for line in block.splitlines() if line.startswith(prefix))
                for key in ("zeroshot", "finetuned", "baseline"):
                    if key in values:
                        assert f"{values[key]:.{decimals}f}" in row, (task_name, split, metric, key)


def test_committed_report_recomputes_from_the_committed_predictions(monkeypatch):
    """predictions/ and metrics/ are in git: recomputing the report (values, cluster intervals, baselines,
    McNemar) from them gives report/summary.json exactly."""
    params = load_params(REPO / "params.yaml")
    for task_name in params.tasks:
        for phase in PHASES:
            for split in params.eval.splits:
                if not (REPO / paths.predictions(task_name, phase, split)).is_file():
                    pytest.fail(f"{paths.predictions(task_name, phase, split)} is not committed")
    monkeypatch.chdir(REPO)
    rows, facts = [], []
    for task_name in params.tasks:
        _, task_rows, task_facts = compare_phases(get_task(task_name), params.data.seed)
        rows += task_rows
        facts += task_facts
    recomputed = json.loads(json.dumps(summary_metrics(rows, facts, params.data.seed)))
    committed = json.loads((REPO / "report/summary.json").read_text())
    routes = committed.pop("routes")  # each phase's compute route, as its metrics file records it
    assert routes == {task: {phase: json.loads((REPO / paths.metrics_file(task, phase)).read_text())["run"]["route"]
                             for phase in PHASES} for task in params.tasks}
    assert all(route["bf16_route"] and route["device"] for phases in routes.values() for route in phases.values())
    _close(recomputed, committed, "summary")
