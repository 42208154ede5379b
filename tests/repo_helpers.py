"""Throwaway git + DVC copies of this repository with small params, for tests that run the pipeline; and the
helpers of the tests that signal or kill processes (`running`, `signal_exit`, `gone`).

`copy_repo(dest)` copies the tracked (and untracked, not ignored) files without outputs, lock or metrics,
writes a small params.yaml, and commits it in a fresh git repo; `built_small_repo(tmp_path_factory)` does that
once per test session and runs `dvc repro` (with fake secrets in its environment, so tests/test_secrets.py can
search everything it left), so test modules can copy the built repo instead of rerunning the pipeline.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import random
import shutil
import signal
import socket
import string
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SMALL = {  # seconds per stage: the tiny model (not the default Gemma), few examples, one epoch, both splits
    "epochs": 1,
    "lr": 2.0e-5,
    "model": {"name": "tiny-llama", "dtype": "float32",
              "tiny": {"vocab_size": 512, "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                       "num_kv_heads": 1, "intermediate_size": 64, "max_position_embeddings": 512}},
    "data": {"train_examples": {"sst2": 60, "squad_v2": 60}, "test_examples": 40,
             "validation_examples": {"sst2": 60, "squad_v2": 60}},
    "train": {"method": "full", "max_length": 288, "log_points": 2, "eval_examples": 8},
    "eval": {"limit": 12, "max_prompt_tokens": 256, "max_new_tokens": 4, "splits": ["test", "validation"]},
}


def _fake(prefix: str, length: int) -> str:
    """A fresh random value per test session: nothing can contain it by chance."""
    return prefix + "".join(random.choices(string.ascii_letters + string.digits, k=length - len(prefix)))


SECRETS = {  # in the environment of the shared pipeline run and of test_secrets' push; never in a file
    "HF_TOKEN": _fake("hf_", 37),
    "MY_SERVICE_TOKEN": _fake("svc-", 32),
    "AWS_SECRET_ACCESS_KEY": _fake("", 40),
}
GIT_ID = ["-c", "user.email=test@tuneval.local", "-c", "user.name=tuneval tests"]


def sst2_like_rows(n: int) -> list[dict]:
    """`n` SST-2-shaped rows (id, sentence, label) for tiny-model training tests, alternating labels."""
    words = ["good", "bad", "great", "awful", "fine", "dull", "moving", "boring"]
    return [{"id": str(i), "sentence": f"a {words[i % 8]} film , {words[(i * 3) % 8]} end ", "label": i % 2}
            for i in range(n)]


def merge(base: dict, over: dict) -> dict:
    """A copy of `base` with `over` merged in: nested mappings merge key by key, others replace."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def env(**extra: str) -> dict[str, str]:
    """The environment for git / dvc subprocesses: the venv's `python` and `dvc` first, no analytics, and
    `PYTHONPATH=src` so stages import the copy's own src/ (the one dvc.lock hashes), not the editable install of
    the original checkout; relative, so it also holds in the temp workspaces of queued experiments."""
    pythonpath = os.pathsep.join(p for p in ("src", os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": pythonpath,
            "GIT_AUTHOR_NAME": "tuneval tests", "GIT_AUTHOR_EMAIL": "test@tuneval.local",
            "GIT_COMMITTER_NAME": "tuneval tests", "GIT_COMMITTER_EMAIL": "test@tuneval.local", **extra}


def run(cmd: list[str | Path], cwd: Path, check: bool = True, timeout: float = 900, **extra_env: str) -> str:
    """Run `cmd` in `cwd`; stdout + stderr. `dvc` resolves to the venv's. Fails with the output's tail."""
    cmd = [str(c) for c in cmd]
    if cmd[0] == "dvc":
        cmd[0] = str(VENV_BIN / "dvc")
    proc = subprocess.run(cmd, cwd=cwd, env=env(**extra_env), capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    if check:
        assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-4000:]}"
    return out


def git_commit(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", *GIT_ID, "commit", "-qm", message], repo)


def copy_repo(dest: Path, overrides: dict | None = None) -> Path:
    """`dest` <- the repo's files (no dvc.lock, metrics/, dvclive/, predictions/, outputs), small params, one git
    commit."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for rel in files:
        if rel == "dvc.lock" or rel.startswith(("metrics/", "dvclive/", "predictions/")) or not (REPO / rel).is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest / rel)
    params = merge(yaml.safe_load((REPO / "params.yaml").read_text()), SMALL if overrides is None else overrides)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "config", "user.email", "test@tuneval.local"], dest)
    run(["git", "config", "user.name", "tuneval tests"], dest)
    git_commit(dest, "init")
    return dest


_BUILT: dict[str, object] = {}


def built_small_repo(tmp_path_factory) -> Path:
    """Once per session: a small copy after `dvc repro`, with dvc.lock and metrics committed. Do not modify it;
    `copy_built` gives each test its own copy (git history, workspace and DVC cache).

    The run has SECRETS in its environment and its HF_HOME / matplotlib caches beside the repo, so everything
    it wrote lies under `built_small_repo(...).parent`; its console output is `built_console()`."""
    if "repo" not in _BUILT:
        root = tmp_path_factory.mktemp("built")
        repo = copy_repo(root / "repo")
        caches = {"HF_HOME": str(root / "hf_home"), "MPLCONFIGDIR": str(root / "mpl")}
        _BUILT["console"] = run(["dvc", "repro"], repo, **SECRETS, **caches)
        git_commit(repo, "small run: dvc.lock and metrics")
        _BUILT["repo"] = repo
    return _BUILT["repo"]


def built_console() -> str:
    """stdout + stderr of the shared `dvc repro` (after `built_small_repo` ran)."""
    return str(_BUILT["console"])


def copy_built(tmp_path_factory, dest: Path) -> Path:
    """A full copy of `built_small_repo` at `dest` (cache included, hardlinks kept out: a plain copy)."""
    shutil.copytree(built_small_repo(tmp_path_factory), dest, symlinks=True)
    return dest


def cached_outputs(repo: Path) -> list[str]:
    """The DVC-cached outputs (`cache: true`) that dvc.yaml declares, relative to `repo`."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        return sorted({Path(out.fs_path).relative_to(repo.resolve()).as_posix()
                       for stage in dvc.index.stages for out in stage.outs if out.use_cache})


def sha256_files(repo: Path, outputs: list[str]) -> dict[str, str]:
    """relative path -> sha256 for every file under `outputs` (files or directories) of `repo`."""
    digests = {}
    for out in outputs:
        root = repo / out
        for path in sorted(root.rglob("*")) if root.is_dir() else [root]:
            if path.is_file():
                digests[path.relative_to(repo).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------------------ processes
PROMPT_S = 10  # "at once": well under this, even on a loaded 2-core CI machine


def gone(proc: psutil.Process) -> bool:
    """The process has exited (a zombie awaiting its reaper counts as exited)."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@contextlib.contextmanager
def running(cmd: list[str], **popen) -> Iterator[subprocess.Popen]:
    """`cmd` started with its stderr captured as text; killed on the way out if still running."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, **popen)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def signal_exit(proc: subprocess.Popen, signum: int) -> None:
    """Send `signum` and check the process ends within PROMPT_S + 10 s the way that signal asks: SIGTERM's handler
    exits 128 + 15, SIGINT ends the interpreter by the signal itself."""
    proc.send_signal(signum)
    returncode = proc.wait(timeout=PROMPT_S + 10)
    expected = 128 + signal.SIGTERM if signum == signal.SIGTERM else -signal.SIGINT
    assert returncode == expected, proc.stderr.read()
