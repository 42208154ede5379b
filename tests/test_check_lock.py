"""scripts/check_lock.py: CI fails when dvc.lock does not describe a run of the committed code and params.

A tiny synthetic DVC repo (two stages, seconds to run) covers each case; one test uses the session's small copy
of this repository to show a real source edit being caught for exactly the stages that import the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from repo_helpers import copy_built, env, git_commit, run

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_lock.py"
MAKE = """import pathlib, yaml
n = yaml.safe_load(open("params.yaml"))["n"]
pathlib.Path("data/out").mkdir(parents=True, exist_ok=True)
pathlib.Path("data/out/x.txt").write_text(open("src/lib.py").read() + str(n))
"""
USE = 'import pathlib\npathlib.Path("result.txt").write_text(pathlib.Path("data/out/x.txt").read_text().upper())\n'
DVC_YAML = """stages:
  make:
    cmd: python stages/make.py
    deps: [stages/make.py, src/lib.py]
    params: [n]
    outs: [data/out]
  use:
    cmd: python stages/use.py
    deps: [stages/use.py, data/out]
    outs:
      - result.txt:
          cache: false
"""


def check(repo: Path) -> subprocess.CompletedProcess:
    """scripts/check_lock.py run in `repo`."""
    return subprocess.run([sys.executable, str(SCRIPT)], cwd=repo, env=env(), capture_output=True, text=True,
                          timeout=120)


def make_repo(repo: Path, dvc_yaml: str = DVC_YAML) -> Path:
    """Committed code, params and the dvc.lock of a run of them; data/out is DVC's, not git's."""
    for rel, text in {"stages/make.py": MAKE, "stages/use.py": USE, "src/lib.py": "X = 1\n",
                      "params.yaml": "n: 1\nunused: 2\n", "dvc.yaml": dvc_yaml}.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "repro"], repo)
    git_commit(repo, "a run of the committed code")
    return repo


@pytest.fixture
def tiny_repo(tmp_path) -> Path:
    return make_repo(tmp_path / "repo")


def test_fresh_lock_passes(tiny_repo):
    proc = check(tiny_repo)
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stdout


def test_edited_tracked_source_fails_naming_stage_and_file(tiny_repo):
    (tiny_repo / "src/lib.py").write_text("X = 2\n")
    git_commit(tiny_repo, "code changed, lock not rerun")
    proc = check(tiny_repo)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[1:] == ["  make: src/lib.py (modified)"]


def test_changed_param_fails_but_an_unread_one_does_not(tiny_repo):
    (tiny_repo / "params.yaml").write_text("n: 1\nunused: 3\n")
    assert check(tiny_repo).returncode == 0  # no stage reads `unused`
    (tiny_repo / "params.yaml").write_text("n: 5\nunused: 3\n")
    proc = check(tiny_repo)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[1:] == ["  make: param n in params.yaml (modified)"]


def test_dep_added_to_dvc_yaml_but_not_to_the_lock_fails(tiny_repo):
    (tiny_repo / "src/extra.py").write_text("Y = 1\n")
    (tiny_repo / "dvc.yaml").write_text(DVC_YAML.replace("src/lib.py]", "src/lib.py, src/extra.py]"))
    git_commit(tiny_repo, "a new dep")
    proc = check(tiny_repo)
    assert proc.returncode == 1 and "make: src/extra.py" in proc.stderr


def test_changed_command_fails(tiny_repo):
    (tiny_repo / "dvc.yaml").write_text(DVC_YAML.replace("python stages/make.py", "python stages/make.py --v2"))
    proc = check(tiny_repo)
    assert proc.returncode == 1 and "make: command changed" in proc.stderr


def test_missing_dvc_data_is_not_staleness(tiny_repo):
    """A clean clone has no data/out (DVC's, not git's) until `dvc pull`: changed outputs and data deps do not count."""
    run(["rm", "-rf", "data/out", "result.txt"], tiny_repo)
    assert "deleted" in run(["dvc", "status"], tiny_repo)
    proc = check(tiny_repo)
    assert proc.returncode == 0, proc.stderr


def test_outside_a_dvc_repo_is_an_error(tmp_path):
    run(["git", "init", "-q"], tmp_path)
    proc = check(tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: dvc status failed")


@pytest.mark.slow
def test_source_edit_in_the_small_repo_names_the_stages_that_import_it(tmp_path_factory, tmp_path):
    repo = copy_built(tmp_path_factory, tmp_path / "repo")
    assert check(repo).returncode == 0, check(repo).stderr
    reporting = repo / "src/tuneval/report/summary.py"
    reporting.write_text(reporting.read_text() + "\n# an edit\n")
    git_commit(repo, "edit reporting.py without rerunning")
    proc = check(repo)
    assert proc.returncode == 1
    stale = sorted(line.split(":")[0].strip() for line in proc.stderr.splitlines()[1:])
    assert "report" in stale and not any(s.startswith(("train@", "eval@", "prepare@")) for s in stale), stale


def test_a_dep_on_a_directory_holding_pipeline_outputs_is_data_not_source(tmp_path):
    """`use` depends on all of data/ (as base_model depends on data/split): DVC's tracked .gitignore lives there,
    but the directory is pipeline data; missing in a clean clone, it must not count as a stale source."""
    repo = make_repo(tmp_path / "repo", DVC_YAML.replace("deps: [stages/use.py, data/out]",
                                                          "deps: [stages/use.py, data]"))
    assert "data/.gitignore" in run(["git", "ls-files"], repo)
    run(["rm", "-rf", "data/out", "result.txt"], repo)  # a clean clone
    proc = check(repo)
    assert proc.returncode == 0, proc.stderr
