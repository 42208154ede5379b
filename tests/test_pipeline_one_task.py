"""`tasks: [sst2]` end to end: no stage names another task's files, so a one-task study runs with `dvc repro` in a
fresh copy (tiny model, few examples, one epoch) and ends up to date, its report holding that task alone."""

from __future__ import annotations

import json

import pytest
from repo_helpers import SMALL, copy_repo, merge, run

ONE_TASK = merge(SMALL, {"tasks": ["sst2"], "data": {"train_examples": {"sst2": 40}},
                         "eval": {"limit": 6, "splits": ["test"]}, "train": {"eval_examples": 4}})


@pytest.mark.slow
def test_one_task_pipeline_runs_end_to_end(tmp_path):
    repo = copy_repo(tmp_path / "repo", ONE_TASK)
    out = run(["dvc", "repro"], repo, HF_HOME=str(tmp_path / "hf_home"), MPLCONFIGDIR=str(tmp_path / "mpl"))
    assert "squad_v2" not in out, "a stage of the task that is not in `tasks` ran"
    assert not (repo / "data/split/squad_v2").exists() and not (repo / "metrics/squad_v2").exists()
    summary = (repo / "report/summary.md").read_text()
    assert "| sst2 | test | accuracy |" in summary and "squad_v2" not in summary
    assert 0 <= json.loads((repo / "metrics/sst2/finetuned.json").read_text())["test"]["accuracy"] <= 1
    assert "Data and pipelines are up to date" in run(["dvc", "repro"], repo)
