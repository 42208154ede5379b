"""Secrets never persist: a whole `dvc repro` + `dvc push` with fake secrets in the environment, then every byte
the run left behind (workspace, git, DVC cache and remote, DVC's site cache, HF_HOME, console output) is searched.
The pipeline run is the session's shared one (repo_helpers.built_small_repo runs it with SECRETS in its env).
Plus errors.redact: error messages and tracebacks printed by a stage never show a *_TOKEN / *_KEY / *SECRET* value.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import yaml
from repo_helpers import SECRETS, built_console, built_small_repo, copy_built, env, merge, run

from tuneval.errors import DataError, redact
from tuneval.stage import run_stage


def find_secrets(data: bytes, where: str, secrets: dict[str, str] = SECRETS) -> list[str]:
    """'<where>: <NAME>' for each secret whose value (or its first 16 characters: a cut-off copy) is in `data`."""
    return [f"{where}: {name}" for name, value in secrets.items()
            if value.encode() in data or value[:16].encode() in data]


def _readable_forms(path: Path, data: bytes) -> list[bytes]:
    """The bytes, plus their decompressed form for gzip files and git's zlib-compressed loose objects."""
    forms = [data]
    try:
        if data[:2] == b"\x1f\x8b":
            forms.append(gzip.decompress(data))
        elif ".git/objects/" in path.as_posix() and path.parent.name != "pack":
            forms.append(zlib.decompress(data))
    except (OSError, zlib.error, EOFError):
        pass
    return forms


def scan_tree(root: Path, secrets: dict[str, str] = SECRETS) -> tuple[list[str], int]:
    """(leaks, number of files read) over every regular file under `root`, hidden ones and .git included."""
    leaks, count = [], 0
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            count += 1
            for data in _readable_forms(path, path.read_bytes()):
                leaks += find_secrets(data, str(path.relative_to(root)), secrets)
    return leaks, count


@pytest.fixture(scope="module")
def secret_run(tmp_path_factory):
    """(roots, repo, console): the shared small run (secrets in its env), copied, pushed and scanned. `roots`
    holds everything either wrote: the built repo with its HF_HOME and caches, and the copy with its remote."""
    built = built_small_repo(tmp_path_factory)
    root = tmp_path_factory.mktemp("secrets")
    repo = copy_built(tmp_path_factory, root / "repo")
    run(["dvc", "remote", "add", "--local", "--default", "store", str(root / "store")], repo)  # not the user's
    console = built_console() + run(["dvc", "push"], repo, **SECRETS)
    console += run(["dvc", "metrics", "show"], repo, **SECRETS)
    return [built.parent, root], repo, console


def test_scanner_finds_planted_secrets(tmp_path):
    """The control: plain, gzip-compressed, zlib-compressed (as git stores objects) and cut-off copies are found."""
    token = SECRETS["HF_TOKEN"]
    (tmp_path / "plain.txt").write_text(f"token: {token}\n")
    (tmp_path / "cut.log").write_text(f"Authorization: Bearer {token[:20]}...\n")
    (tmp_path / "data.json.gz").write_bytes(gzip.compress(SECRETS["MY_SERVICE_TOKEN"].encode()))
    (tmp_path / ".git/objects/ab").mkdir(parents=True)
    git_object = zlib.compress(f"blob 40\0{SECRETS['AWS_SECRET_ACCESS_KEY']}".encode())
    (tmp_path / ".git/objects/ab/cdef").write_bytes(git_object)
    (tmp_path / "clean.txt").write_text("nothing to see")
    leaks, count = scan_tree(tmp_path)
    assert count == 5
    assert sorted(leaks) == sorted(["plain.txt: HF_TOKEN", "cut.log: HF_TOKEN", "data.json.gz: MY_SERVICE_TOKEN",
                                    ".git/objects/ab/cdef: AWS_SECRET_ACCESS_KEY"])


@pytest.mark.slow
def test_no_secret_in_any_file_the_pipeline_left(secret_run):
    roots, repo, _ = secret_run
    for must_exist in ["dvc.lock", ".dvc/cache/files/md5", "dvclive/sst2/params.yaml", "models/sst2/config.json",
                       "publish/sst2/README.md", "predictions/squad_v2/finetuned/test.json", "report/summary.md",
                       ".git/index"]:
        assert (repo / must_exist).exists(), f"{must_exist} missing: the scan would prove little"
    assert len(list((roots[1] / "store").rglob("*"))) > 20, "the push did not reach the remote inside the scan"
    for root in roots:
        leaks, count = scan_tree(root)
        assert count > 200
        assert leaks == []


@pytest.mark.slow
def test_no_secret_in_dvc_site_cache(secret_run):
    """DVC keeps its state and remote indexes outside the repo (site_cache_dir): scanned too."""
    from dvc.repo import Repo

    _, repo, _ = secret_run
    with Repo(str(repo)) as dvc:
        site = Path(dvc.site_cache_dir)
    if not site.is_dir():
        pytest.skip(f"no DVC site cache at {site}")
    leaks, _ = scan_tree(site)
    assert leaks == []


@pytest.mark.slow
def test_no_secret_in_console_output(secret_run):
    _, _, console = secret_run
    assert "Running stage 'train@sst2'" in console  # really captured the run
    assert find_secrets(console.encode(), "console") == []


@pytest.mark.slow
def test_push_without_token_stops_the_publish_stage_before_uploading(secret_run, tmp_path):
    """publish.push: true and no HF_TOKEN: exit 1 with one line saying nothing was uploaded (no network needed)."""
    _, repo, _ = secret_run
    params = merge(yaml.safe_load((repo / "params.yaml").read_text()), {"publish": {"push": True}})
    (tmp_path / "push.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    environ = {k: v for k, v in env().items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    cmd = [sys.executable, "stages/publish.py", "--task", "sst2", "--params", str(tmp_path / "push.yaml")]
    proc = subprocess.run(cmd, cwd=repo, env={**environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: publish.push is true but HF_TOKEN is not set, so nothing was uploaded"), line


# -------------------------------------------------------------------------------------------- errors.redact
def test_redact_replaces_values_of_secret_looking_variables():
    environ = {**SECRETS, "DB_PASSWORD": "correct horse battery", "OPENAI_API_KEY": "sk-abcdefghijklmnop",
               "HOME": "/home/someone", "SHORT_TOKEN": "1", "PATH": "/usr/bin"}
    text = (f"token={SECRETS['HF_TOKEN']} svc={SECRETS['MY_SERVICE_TOKEN']} aws={SECRETS['AWS_SECRET_ACCESS_KEY']} "
            "pw=correct horse battery key=sk-abcdefghijklmnop home=/home/someone n=1 path=/usr/bin")
    out = redact(text, environ)
    assert find_secrets(out.encode(), "out") == []
    assert "correct horse" not in out and "sk-abc" not in out
    assert "token=<HF_TOKEN redacted>" in out and "aws=<AWS_SECRET_ACCESS_KEY redacted>" in out
    assert "home=/home/someone n=1 path=/usr/bin" in out  # not secrets; too-short values are left alone


def test_redact_replaces_the_longest_value_first():
    environ = {"A_TOKEN": "abcdefgh", "B_TOKEN": "abcdefgh-and-more"}
    assert redact("x abcdefgh-and-more y abcdefgh", environ) == "x <B_TOKEN redacted> y <A_TOKEN redacted>"


def test_redact_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", SECRETS["MY_SERVICE_TOKEN"])
    assert redact(f"got {SECRETS['MY_SERVICE_TOKEN']}") == "got <MY_SERVICE_TOKEN redacted>"


def _run_stage_raising(err: Exception, monkeypatch, capsys) -> str:
    """run_stage on a stage function that raises `err`; returns stderr after asserting exit code 1."""
    def stage_fn(task, params):
        raise err

    monkeypatch.setattr(sys, "argv", ["stage.py", "--task", "sst2", "--params",
                                      str(Path(__file__).resolve().parents[1] / "params.yaml")])
    with pytest.raises(SystemExit) as excinfo:
        run_stage(stage_fn)
    assert excinfo.value.code == 1
    return capsys.readouterr().err


def test_stage_error_message_is_redacted(monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", SECRETS["HF_TOKEN"])
    err = _run_stage_raising(DataError(f"https://user:{SECRETS['HF_TOKEN']}@example.org/x.jsonl: file not found"),
                             monkeypatch, capsys)
    assert err == "error: https://user:<HF_TOKEN redacted>@example.org/x.jsonl: file not found\n"


def test_stage_traceback_of_an_unexpected_error_is_kept_but_redacted(monkeypatch, capsys):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRETS["AWS_SECRET_ACCESS_KEY"])
    err = _run_stage_raising(RuntimeError(f"boom {SECRETS['AWS_SECRET_ACCESS_KEY']}"), monkeypatch, capsys)
    assert err.startswith("Traceback (most recent call last):")  # a bug keeps its traceback
    assert err.rstrip().endswith("RuntimeError: boom <AWS_SECRET_ACCESS_KEY redacted>")
    assert find_secrets(err.encode(), "stderr") == []
