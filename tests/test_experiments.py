"""Experiments travel: `dvc exp push` / `dvc exp pull` through a bare git origin and the default DVC remote,
and a queued lr sweep (`dvc exp run --queue` + `dvc queue start -j 1`), on the small configuration.

The small pipeline runs once per test session (repo_helpers.built_small_repo); each test works on its own copy.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from repo_helpers import cached_outputs, copy_built, run, sha256_files


def _experiments(repo: Path, **env: str) -> dict[str, dict]:
    """`dvc exp show --json` -> {experiment name: {"lr": .., "metrics": {file: data}, "state": ..}}."""
    rows = json.loads(run(["dvc", "exp", "show", "--json"], repo, **env).strip().splitlines()[-1])
    found = {}
    for baseline in rows:
        for group in baseline.get("experiments") or []:
            state = (group.get("executor") or {}).get("state", "success")
            for rev in group["revs"]:
                data = rev.get("data") or {}
                found[rev.get("name") or group.get("name") or rev["rev"]] = {
                    "lr": data.get("params", {}).get("params.yaml", {}).get("data", {}).get("lr"),
                    "metrics": {k: v.get("data", {}) for k, v in (data.get("metrics") or {}).items()},
                    "state": state,
                    "error": rev.get("error"),
                }
    return found


def _assert_numeric_metrics(exp: dict) -> None:
    sst2 = exp["metrics"]["metrics/sst2/finetuned.json"]["test"]
    squad = exp["metrics"]["metrics/squad_v2/finetuned.json"]["test"]
    assert 0 <= sst2["accuracy"] <= 1 and 0 <= sst2["f1"] <= 1
    assert 0 <= squad["exact"] <= 100 and 0 <= squad["f1"] <= 100


@pytest.fixture
def with_origin(tmp_path_factory, tmp_path) -> Path:
    """A copy of the small built repo whose `origin` is a local bare repository (main pushed)."""
    run(["git", "init", "-q", "--bare", "-b", "main", tmp_path / "origin.git"], tmp_path)
    repo = copy_built(tmp_path_factory, tmp_path / "repo")
    run(["git", "remote", "add", "origin", tmp_path / "origin.git"], repo)
    run(["git", "push", "-q", "origin", "main"], repo)
    return repo


def test_experiment_travels_through_git_origin_and_the_default_remote(with_origin, tmp_path):
    repo = with_origin
    home = {"HOME": str(tmp_path / "home")}  # the default remote is ~/.cache/tuneval/dvc-store
    store = tmp_path / "home" / ".cache" / "tuneval" / "dvc-store"

    out = run(["dvc", "exp", "run", "-n", "lr-hi", "-S", "lr=3e-4"], repo, **home)
    assert "Running stage 'train@sst2'" in out and "Running stage 'base_model'" not in out, out
    outputs = cached_outputs(repo)
    expected = sha256_files(repo, outputs)  # the workspace holds lr-hi's results after `dvc exp run`

    pushed = run(["dvc", "exp", "push", "origin", "lr-hi"], repo, **home)
    assert "Pushed experiment lr-hi" in pushed, pushed
    assert any(p.is_file() for p in (store / "files" / "md5").rglob("*")), "exp push sent no DVC cache"
    assert "refs/exps/" in run(["git", "ls-remote", tmp_path / "origin.git"], repo)

    clone = tmp_path / "elsewhere" / "clone"
    clone.parent.mkdir()
    run(["git", "clone", "-q", tmp_path / "origin.git", clone], tmp_path)
    assert "lr-hi" not in _experiments(clone, **home)
    pulled = run(["dvc", "exp", "pull", "origin", "lr-hi"], clone, **home)
    assert "Pulled experiment" in pulled and "lr-hi" in pulled, pulled

    exp = _experiments(clone, **home)["lr-hi"]
    assert exp["lr"] == 0.0003 and exp["error"] is None
    _assert_numeric_metrics(exp)

    # The outputs came with it: applying the experiment restores them from the pulled cache, bit-identical.
    run(["dvc", "exp", "apply", "lr-hi"], clone, **home)
    assert sha256_files(clone, outputs) == expected
    assert "Data and pipelines are up to date" in run(["dvc", "status"], clone, **home)


@pytest.mark.slow
def test_queued_lr_sweep_runs_three_experiments(tmp_path_factory, tmp_path):
    repo = copy_built(tmp_path_factory, tmp_path / "repo")
    queued = run(["dvc", "exp", "run", "--queue", "-S", "lr=1e-5,2e-5,3e-5"], repo)
    assert queued.count("Queued experiment") == 3, queued
    try:
        run(["dvc", "queue", "start", "-j", "1"], repo)
        deadline = time.monotonic() + 900
        while True:
            status = run(["dvc", "queue", "status"], repo, COLUMNS="1000")
            tasks = [line.split()[-1] for line in status.splitlines()
                     if line.split() and line.split()[-1] in ("Queued", "Running", "Success", "Failed")]
            if len(tasks) == 3 and all(t in ("Success", "Failed") for t in tasks):
                break
            assert time.monotonic() < deadline, f"queue did not finish in 15 min:\n{status}"
            time.sleep(3)
        assert tasks == ["Success"] * 3, status
    finally:
        run(["dvc", "queue", "stop"], repo, check=False)

    exps = _experiments(repo)
    assert sorted(e["lr"] for e in exps.values()) == [1e-05, 2e-05, 3e-05], exps.keys()
    for exp in exps.values():
        assert exp["state"] == "success" and exp["error"] is None
        _assert_numeric_metrics(exp)
