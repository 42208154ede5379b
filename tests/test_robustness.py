"""Robustness at the stage level: bad params or data stop a stage with one line and write nothing; a killed
evaluation leaves no half-written file; Hub failures name the model, the cause and the fix; a corrupted DVC cache
and an interrupted `dvc push` are repaired with plain DVC commands.

Stage scripts run as real subprocesses (exit code, stderr). Only the kill test runs a model (small params).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from repo_helpers import SMALL, copy_repo, env, git_commit, merge, run

from tuneval.config import load_params
from tuneval.models.base import base_model
from tuneval.models.loading import ModelLoadError, load_model, load_tokenizer

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def stage(script: str, *args: str, cwd: Path, timeout: float = 120, **extra_env: str) -> subprocess.CompletedProcess:
    """`python stages/<script> ...` with `cwd` as the repository root (outputs land under `cwd`)."""
    return subprocess.run([sys.executable, str(REPO / "stages" / script), *args], cwd=cwd, env=env(**extra_env),
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *must_contain: str) -> str:
    assert proc.returncode == 1, f"exit code {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for text in must_contain:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"
    return lines[0]


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


# ------------------------------------------------------------------------------------ 1. params, before work
@pytest.mark.parametrize(("override", "must_name"), [
    ({"split": {"tset_size": 0.2}}, ["unknown key split.tset_size = 0.2", "did you mean split.test_size?"]),
    ({"split": {"test_size": 1.5}}, ["split.test_size = 1.5", "(0, 1)"]),
], ids=["misspelled-key", "test-size-out-of-range"])
def test_bad_params_stop_the_stage_with_one_line_and_write_nothing(tmp_path, override, must_name):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(merge(PARAMS, override), sort_keys=False))
    proc = stage("prepare.py", "--task", "sst2", "--params", "bad.yaml", cwd=tmp_path)
    assert_one_line_error(proc, "bad.yaml", *must_name)
    assert files_under(tmp_path) == ["bad.yaml"], "a rejected params file must not let the stage write anything"


# -------------------------------------------------------------------------------- 2. data, file and line named
SST2_ROWS = [{"idx": i, "sentence": f"a {'good' if i % 2 else 'bad'} film number {i}", "label": i % 2}
             for i in range(8)]
CONTEXT = "Solar power is energy from the sun. Panels convert it to electricity."
SQUAD_ROWS = [
    {"id": "q1", "title": "Solar", "context": CONTEXT, "question": "From where?",
     "answers": {"text": ["the sun"], "answer_start": [27]}},
    {"id": "q2", "title": "Solar", "context": CONTEXT, "question": "Who is king?",
     "answers": {"text": [], "answer_start": []}},
]


def jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def local_data(tmp_path: Path, task: str, train: str, validation: str) -> Path:
    """Raw files under tmp_path/raw/<task>/ and a params file pointing `data.source: local` at them."""
    raw = tmp_path / "raw"
    (raw / task).mkdir(parents=True)
    (raw / task / "train.jsonl").write_text(train)
    (raw / task / "validation.jsonl").write_text(validation)
    files = {task: {"train": f"{task}/train.jsonl", "validation": f"{task}/validation.jsonl"}}
    params = merge(PARAMS, {"data": {"source": "local", "local_dir": str(raw), "files": files,  # the official
                                     "reserved_articles": {"sst2": None, "squad_v2": None}}})  # protocol: reads train
    (tmp_path / "local.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return raw / task


def _missing_sentence(rows):
    del rows[1]["sentence"]
    return rows


def _bad_label(rows):
    rows[2]["label"] = 7
    return rows


def _duplicate_id(rows):
    rows[3]["idx"] = rows[0]["idx"]
    return rows


BAD_TRAIN = {  # name -> (task, train file text, what the one-line message must contain besides the path)
    "malformed-json": ("sst2", jsonl(SST2_ROWS[:2]) + '{"idx": 2, "sentence": "oops", \n' + jsonl(SST2_ROWS[3:]),
                       ["train.jsonl:3:", "malformed JSON"]),
    "missing-column": ("sst2", jsonl(_missing_sentence([dict(r) for r in SST2_ROWS])),
                       ["row 2", "missing column 'sentence'"]),
    "bad-label": ("sst2", jsonl(_bad_label([dict(r) for r in SST2_ROWS])), ["row 3", "label = 7", "[0, 1]"]),
    "duplicate-id": ("sst2", jsonl(_duplicate_id([dict(r) for r in SST2_ROWS])),
                     ["row 4", "duplicate idx 0", "first seen in row 1"]),
    "bad-answer-start": ("squad_v2", jsonl([{**SQUAD_ROWS[0], "answers": {"text": ["the sun"], "answer_start": [3]}},
                                            SQUAD_ROWS[1]]), ["row 1", "'the sun'", "answer_start 3"]),
    "empty-file": ("sst2", "\n\n", ["file is empty"]),
}


@pytest.mark.parametrize("case", list(BAD_TRAIN))
def test_bad_raw_data_stops_prepare_naming_file_and_line_and_writes_nothing(tmp_path, case):
    task, train_text, must_name = BAD_TRAIN[case]
    good = jsonl(SST2_ROWS if task == "sst2" else SQUAD_ROWS)
    raw = local_data(tmp_path, task, train_text, good)
    proc = stage("prepare.py", "--task", task, "--params", "local.yaml", cwd=tmp_path)
    assert_one_line_error(proc, str(raw / "train.jsonl"), *must_name)
    assert not (tmp_path / "data").exists(), files_under(tmp_path / "data")


def test_good_local_data_is_prepared(tmp_path):
    """The control for the cases above: the same files, unbroken, prepare fine."""
    local_data(tmp_path, "sst2", jsonl(SST2_ROWS), jsonl(SST2_ROWS[:4]))
    proc = stage("prepare.py", "--task", "sst2", "--params", "local.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert files_under(tmp_path / "data/prepared") == ["sst2", "sst2/train.jsonl", "sst2/validation.jsonl"]


def test_bad_validation_file_leaves_no_prepared_train_behind(tmp_path):
    raw = local_data(tmp_path, "sst2", jsonl(SST2_ROWS), jsonl(_bad_label([dict(r) for r in SST2_ROWS])))
    proc = stage("prepare.py", "--task", "sst2", "--params", "local.yaml", cwd=tmp_path)
    assert_one_line_error(proc, str(raw / "validation.jsonl"), "row 3", "label = 7")
    assert not (tmp_path / "data/prepared/sst2").exists(), files_under(tmp_path / "data/prepared")


# ---------------------------------------------------------------------------- 3. a killed stage: nothing half
# `python -c PAUSE_IN_WRITE <stage script> <stage args...>`: runs the stage unchanged, except that the write of
# $PAUSE_TARGET stops half way through its bytes (inside the real io.atomic_path), touches $PAUSE_MARKER and waits
# to be killed: a deterministic "killed while writing its output".
PAUSE_IN_WRITE = """
import os, runpy, sys, time
from pathlib import Path
import tuneval.io as io

real_write_text = io.write_text

def write_text(path, text):
    if Path(path).as_posix() != os.environ["PAUSE_TARGET"]:
        return real_write_text(path, text)
    with io.atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text[: len(text) // 2])
        f.flush()
        Path(os.environ["PAUSE_MARKER"]).touch()
        time.sleep(600)

io.write_text = write_text
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_until_paused_then_kill(cmd: list[str], cwd: Path, target: str, tmp_path: Path) -> str:
    """Start `python -c PAUSE_IN_WRITE *cmd`, SIGKILL it once it is half way through writing `target`; its log."""
    marker, log = tmp_path / "paused", tmp_path / "stage.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-c", PAUSE_IN_WRITE, *cmd], cwd=cwd, stdout=out,
                                stderr=subprocess.STDOUT, env=env(PAUSE_TARGET=target, PAUSE_MARKER=str(marker)))
        try:
            deadline = time.monotonic() + 300
            while not marker.exists():
                assert proc.poll() is None, f"ended before writing {target}:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"did not reach the write of {target} within 300 s"
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return log.read_text()


def test_atomic_write_killed_half_way_keeps_the_previous_file_and_the_next_write_cleans_up(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text('{"old": 1}\n')
    script = tmp_path / "writer.py"
    script.write_text(f"from tuneval.io import write_json\nwrite_json({str(target)!r}, {{'new': 'x' * 1000}})\n")
    run_until_paused_then_kill([str(script)], tmp_path, target.as_posix(), tmp_path)
    assert target.read_text() == '{"old": 1}\n', "a killed write must leave the previous version"
    (debris,) = [p for p in tmp_path.iterdir() if p.name.startswith(".metrics.json.")]  # SIGKILL skips cleanup
    assert len((debris / "metrics.json").read_text()) < 1000, "the kill really landed half way through"

    from tuneval.io import write_json

    write_json(target, {"new": 1})
    assert json.loads(target.read_text()) == {"new": 1}
    assert not debris.exists(), "the next write of the same file removes a killed writer's temp dir"


@pytest.mark.slow
def test_killed_evaluation_leaves_no_half_written_file_and_a_rerun_completes(tmp_path):
    """SIGKILL zeroshot_eval@squad_v2 half way through writing its run record (its last file); then rerun it
    through DVC."""
    repo = copy_repo(tmp_path / "repo", merge(SMALL, {"eval": {"limit": 6}}))
    run(["dvc", "repro", "base_model", "split@squad_v2"], repo)
    preds = repo / "predictions/squad_v2/zeroshot"
    record = preds / "run.json"
    previous = b'{\n  "num_fewshot": 0\n}\n'  # an earlier complete run
    preds.mkdir(parents=True)
    record.write_bytes(previous)

    run_until_paused_then_kill(["stages/zeroshot_eval.py", "--task", "squad_v2"], repo,
                               "predictions/squad_v2/zeroshot/run.json", tmp_path)
    assert record.read_bytes() == previous, "the run record must still be the previous complete version"
    assert [p.name.startswith(".run.json.") for p in preds.iterdir()].count(True) == 1, (
        "the killed write leaves exactly one hidden temp dir (SIGKILL skips cleanup)")
    written = sorted(p for p in preds.iterdir() if not p.name.startswith("."))
    assert [p.name for p in written] == ["run.json", "test.json", "validation.json"]
    for path in written:
        json.loads(path.read_text())  # written before the kill: complete

    run(["dvc", "repro", "zeroshot_eval@squad_v2"], repo)
    rerun = json.loads(record.read_text())
    assert rerun["num_fewshot"] == 0 and rerun["route"]["bf16_route"], rerun
    assert len(json.loads((preds / "test.json").read_text())) == 6
    assert files_under(preds) == ["run.json", "test.json", "validation.json"], "the temp dir must be gone"
    assert "up to date" in run(["dvc", "status", "zeroshot_eval@squad_v2"], repo)


# ----------------------------------------------------------------------------------- 4. Hub failures explained
HUB_MODEL = "meta-llama/Llama-3.2-1B"
LOGIN = "HF_TOKEN"


@pytest.fixture
def fake_hub():
    """install(handler): every huggingface_hub request (HfApi and transformers downloads) goes to `handler`."""
    import httpx2
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils._http import default_client_factory, hf_request_event_hook

    def install(handler):
        set_client_factory(lambda: httpx2.Client(
            transport=httpx2.MockTransport(handler), event_hooks={"request": [hf_request_event_hook]},
            follow_redirects=True,
        ))

    yield install
    set_client_factory(default_client_factory)


def _answer(status: int, **headers: str):
    import httpx2

    return lambda request: httpx2.Response(status, headers=headers, request=request)


def _unreachable(request):
    import httpx2

    raise httpx2.ConnectError("[Errno -3] Temporary failure in name resolution", request=request)


HUB_FAILURES = {  # case -> (hub answer, words the message must contain: cause, then fix)
    "not-found": (_answer(404, **{"X-Error-Code": "RepoNotFound"}), ["no model called", "spelling of model.name"]),
    "private-or-missing-401": (_answer(401, **{"X-Error-Code": "RepoNotFound"}), ["no model called", LOGIN]),
    "gated-no-token-401": (_answer(401, **{"X-Error-Code": "GatedRepo"}),
                           ["gated model", "Accept its license", LOGIN]),
    "gated-not-granted-403": (_answer(403, **{"X-Error-Code": "GatedRepo"}),
                              ["gated model", f"https://huggingface.co/{HUB_MODEL}", "license", LOGIN]),
    "bad-token-401": (_answer(401, **{"X-Error-Message": "Invalid credentials in Authorization header"}),
                      ["rejected the token", LOGIN]),
    "token-without-permission-403": (_answer(403, **{"X-Error-Message": "no access"}),
                                     ["no permission", "token with read access"]),
    "no-network": (_unreachable, ["could not be reached", "network access", "tiny-llama"]),
}


@pytest.mark.parametrize("case", list(HUB_FAILURES))
def test_hub_failure_when_pinning_the_base_model_names_model_cause_and_fix(tmp_path, fake_hub, case, monkeypatch):
    """The base_model stage checks a hub model before it writes anything: models/base never appears."""
    handler, words = HUB_FAILURES[case]
    fake_hub(handler)
    params = load_params(REPO / "params.yaml")
    params = dataclasses.replace(params, model=dataclasses.replace(params.model, name=HUB_MODEL))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError) as excinfo:
        base_model(params)
    message = str(excinfo.value)
    assert message.startswith(f"Could not load model {HUB_MODEL!r}: ")
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("case", ["not-found", "gated-no-token-401", "gated-not-granted-403", "bad-token-401"])
@pytest.mark.parametrize("loader", [load_model, load_tokenizer], ids=["model", "tokenizer"])
def test_hub_failure_through_from_pretrained_is_classified_the_same(fake_hub, case, loader):
    """transformers wraps hub errors in OSError (`raise OSError(...) from err`): same cause, same fix."""
    handler, words = HUB_FAILURES[case]
    fake_hub(handler)
    with pytest.raises(ModelLoadError) as excinfo:
        loader(HUB_MODEL)
    assert "(underlying error: OSError" in str(excinfo.value)  # really went through transformers' wrapper
    for word in words:
        assert word in str(excinfo.value)


def test_hub_offline_mode_through_from_pretrained(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError) as excinfo:
        load_model(HUB_MODEL)
    assert "could not be reached" in str(excinfo.value) and "HF_HUB_OFFLINE" in str(excinfo.value)


def test_base_model_stage_offline_fails_with_one_error_and_no_traceback(tmp_path):
    (tmp_path / "hub.yaml").write_text(yaml.safe_dump(merge(PARAMS, {"model": {"name": HUB_MODEL}})))
    proc = stage("base_model.py", "--params", "hub.yaml", cwd=tmp_path, HF_HUB_OFFLINE="1")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: Could not load model {HUB_MODEL!r}: the Hugging Face Hub could not be "
                                  "reached"), proc.stderr
    assert files_under(tmp_path / "models") == [], "nothing (not even a temp dir) may be left in models/"


# ------------------------------------------------------------------------------------------- 7. DVC faults
def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _cache_object(repo: Path, path: Path) -> Path:
    digest = _md5(path)
    return repo / ".dvc/cache/files/md5" / digest[:2] / digest[2:]


@pytest.fixture(scope="module")
def pushed_data(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """Once: <root>/repo, a git + DVC repo whose `data/` (a few files, `dvc add`-ed) is pushed to <root>/store, a
    local-directory remote named by a relative path, so a copy of <root> is a self-contained repo + remote."""
    root = tmp_path_factory.mktemp("dvc-data")
    repo = root / "repo"
    (repo / "data").mkdir(parents=True)
    files = {f"data/part{i}.bin": os.urandom(3000 + i) for i in range(4)} | {"data/notes.txt": b"hello dvc\n"}
    for rel, content in files.items():
        (repo / rel).write_bytes(content)
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "add", "-q", "data"], repo)
    run(["dvc", "remote", "add", "-d", "store", "../store"], repo)  # relative: the copies keep their own store
    git_commit(repo, "data")
    run(["dvc", "push", "-q"], repo)
    return root, files


@pytest.fixture
def data_repo(pushed_data, tmp_path) -> tuple[Path, Path, dict[str, bytes]]:
    """(repo, store, files): this test's own copy of `pushed_data`."""
    root, files = pushed_data
    shutil.copytree(root, tmp_path / "copy", symlinks=True)
    return tmp_path / "copy/repo", tmp_path / "copy/store", files


def _assert_workspace(repo: Path, files: dict[str, bytes]) -> None:
    for rel, content in files.items():
        assert (repo / rel).read_bytes() == content, f"{rel} differs from what was added"


def test_corrupted_cache_objects_are_detected_and_restored_from_the_remote(data_repo):
    """The repair for the README: chmod -R u+w .dvc/cache/files; find .dvc/cache/files -type f -exec touch {} +;
    dvc fetch; dvc checkout --relink --force."""
    repo, _, files = data_repo
    loud = _cache_object(repo, repo / "data/notes.txt")
    silent = _cache_object(repo, repo / "data/part0.bin")
    assert loud.is_file() and silent.is_file()
    # (1) bit rot: same size, read-only mode and mtime kept. DVC trusts read-only cache files without re-hashing,
    # so checking the file out again copies the bad bytes into the workspace.
    stat = silent.stat()
    silent.chmod(0o644)
    silent.write_bytes(bytes(b ^ 0xFF for b in silent.read_bytes()))
    silent.chmod(stat.st_mode)
    os.utime(silent, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (repo / "data/part0.bin").unlink()
    run(["dvc", "checkout"], repo)
    # (2) overwritten with garbage (mode and size change): DVC re-hashes it, sees the mismatch and drops it
    loud.chmod(0o644)
    loud.write_bytes(b"garbage, not the original bytes")
    (repo / "data/notes.txt").unlink()
    assert "not in cache" in run(["dvc", "status"], repo)
    assert not loud.exists(), "DVC deletes a cache object whose content does not match its hash"

    # the repair: make DVC distrust every cache object (it skips hashing read-only files, and files whose inode,
    # mtime and size match its state database), then fetch drops and re-downloads the bad ones
    run(["chmod", "-R", "u+w", ".dvc/cache/files"], repo)
    run(["find", ".dvc/cache/files", "-type", "f", "-exec", "touch", "{}", "+"], repo)
    run(["dvc", "fetch"], repo)
    run(["dvc", "checkout", "--relink", "--force"], repo)  # --force: the bad workspace copy differs from .dvc

    _assert_workspace(repo, files)
    for rel in files:
        obj = _cache_object(repo, repo / rel)
        assert _md5(obj) == obj.parent.name + obj.name, f"cache object of {rel} still corrupt"
    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo)
    assert "in sync" in run(["dvc", "status", "--cloud"], repo)


def test_interrupted_push_is_completed_by_pushing_again(data_repo):
    repo, store, files = data_repo
    pushed = sorted(p for p in store.rglob("*") if p.is_file())
    assert len(pushed) == len(files) + 1  # one object per file + the .dir listing
    # A push killed half way: DVC uploads a directory's .dir listing only after all its files arrived, so what
    # remains is some of the file objects and no .dir.
    dir_objects = [p for p in pushed if p.name.endswith(".dir")]
    assert len(dir_objects) == 1
    for obj in dir_objects + [p for p in pushed if not p.name.endswith(".dir")][::2]:
        obj.unlink()

    status = run(["dvc", "status", "--cloud"], repo)
    assert "in sync" not in status and "new:" in status, status
    run(["dvc", "push"], repo)
    assert sorted(p for p in store.rglob("*") if p.is_file()) == pushed
    assert "in sync" in run(["dvc", "status", "--cloud"], repo)

    clone = repo.parent / "clone"  # beside repo: the relative remote URL points at the same store
    run(["git", "clone", "-q", str(repo), str(clone)], repo.parent)
    assert not (clone / "data").exists()
    run(["dvc", "pull"], clone)
    _assert_workspace(clone, files)


def test_truncated_remote_object_is_refused_by_pull_with_verify(data_repo):
    """A remote object cut short (upload killed on a non-atomic remote) passes `dvc status -c` and, by default,
    `dvc pull`; with `dvc remote modify <remote> verify true` the pull checks hashes and refuses it."""
    repo, store, files = data_repo
    obj = store / "files/md5" / _md5(repo / "data/part1.bin")[:2] / _md5(repo / "data/part1.bin")[2:]
    obj.chmod(0o644)
    with obj.open("r+b") as f:
        f.truncate(100)
    clone = repo.parent / "clone"  # beside repo: the relative remote URL points at the same store
    run(["git", "clone", "-q", str(repo), str(clone)], repo.parent)
    run(["dvc", "remote", "modify", "--local", "store", "verify", "true"], clone)
    out = run(["dvc", "pull"], clone, check=False)
    assert "failed to pull" in out.lower() or "checkout failed" in out.lower(), out
    assert not (clone / "data/part1.bin").exists()

    # The repair, from a repo whose cache is good: drop the bad object and its directory's .dir listing from the
    # remote (while the .dir is there DVC takes the whole directory as present and pushes nothing), push again.
    obj.unlink()
    for listing in store.rglob("*.dir"):
        listing.unlink()
    assert "2 files pushed" in run(["dvc", "push"], repo)  # the object and the .dir
    run(["dvc", "pull"], clone)
    _assert_workspace(clone, files)
