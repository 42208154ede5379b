"""A change reruns only what it touches: in a copy of the small built study, `dvc status` after an edit names
exactly the stages downstream of the edited code or param, and nothing upstream (dvc.yaml's deps are each stage's
own import closure; metrics come from predictions in the score stage; zero-shot never reads the training draw)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from repo_helpers import copy_built, run

TASKS = ("sst2", "squad_v2")


def _stale(repo: Path) -> set[str]:
    """Stages `dvc status` reports as changed (foreach stages as name@task)."""
    return set(json.loads(run(["dvc", "status", "--json"], repo).strip().splitlines()[-1]))


def _per_task(*names: str) -> set[str]:
    return {f"{name}@{task}" for name in names for task in TASKS}


@pytest.fixture
def repo(tmp_path_factory, tmp_path) -> Path:
    built = copy_built(tmp_path_factory, tmp_path / "repo")
    assert _stale(built) == set(), "the built study should be up to date"
    return built


def _touch(repo: Path, module: str) -> None:
    path = repo / "src" / "tuneval" / module
    path.write_text(path.read_text() + "\n# an edit\n")


def test_a_metric_edit_reruns_scoring_publish_and_report_only(repo):
    _touch(repo, "scoring/metrics.py")
    assert _stale(repo) == _per_task("score", "publish") | {"report"}


def test_a_training_edit_leaves_data_base_model_and_zero_shot_alone(repo):
    _touch(repo, "train/trainer.py")
    stale = _stale(repo)
    assert stale == _per_task("train")  # dvc status names the stages whose own deps changed
    assert not stale & (_per_task("prepare", "split", "zeroshot_eval") | {"base_model"})


def test_resizing_the_training_draw_never_rescores_zero_shot(repo):
    """After the split reruns for a new data.train_examples, the pool (demonstrations) is unchanged, so
    zeroshot_eval stays up to date while train and everything after it reruns."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"]["train_examples"]["sst2"] -= 10
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    reads_the_param = {"publish@sst2", "publish@squad_v2", "report"}  # cards and report state the sizes
    splits = {"split@sst2", "split@squad_v2"}  # both read data.train_examples (a mapping); squad_v2's is unchanged
    assert _stale(repo) == splits | reads_the_param
    run(["dvc", "repro", *splits], repo)
    # pool.jsonl kept its hash: zero-shot is up to date; the new draw reaches training and what follows it
    assert _stale(repo) == {"train@sst2", "eval@sst2"} | reads_the_param
