"""io helpers: JSONL reading errors name file and line; atomic writes leave no half-written or temp files."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest
from repo_helpers import REPO, env

from tuneval.errors import DataError
from tuneval.io import atomic_path, read_json, read_jsonl, write_json, write_jsonl


def test_read_jsonl_round_trip(tmp_path):
    rows = [{"a": 1, "text": "héllo"}, {"a": 2, "text": "wörld"}]
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, rows)
    assert read_jsonl(path) == rows


def test_read_jsonl_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    # blank line 2 is skipped but still counted: the broken object is on line 3
    path.write_text('{"a": 1}\n\n{"a": 2,\n{"a": 3}\n')
    with pytest.raises(DataError, match="malformed JSON") as excinfo:
        read_jsonl(path)
    assert f"{path}:3:" in str(excinfo.value)


def test_read_jsonl_non_object_line(tmp_path):
    path = tmp_path / "list.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(DataError) as excinfo:
        read_jsonl(path)
    assert f"{path}:2:" in str(excinfo.value)
    assert "list" in str(excinfo.value)


@pytest.mark.parametrize("content", ["", "\n  \n\n"])
def test_read_jsonl_empty_file(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match="empty") as excinfo:
        read_jsonl(path)
    assert str(path) in str(excinfo.value)


def test_read_jsonl_missing_file(tmp_path):
    path = tmp_path / "missing.jsonl"
    with pytest.raises(DataError, match="not found") as excinfo:
        read_jsonl(path)
    assert str(path) in str(excinfo.value)


def test_read_jsonl_gz(tmp_path):
    rows = [{"id": str(i), "x": i} for i in range(5)]
    path = tmp_path / "rows.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert read_jsonl(path) == rows


def test_read_jsonl_gz_malformed_line_names_line(tmp_path):
    path = tmp_path / "bad.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write('{"a": 1}\nnot json\n')
    with pytest.raises(DataError) as excinfo:
        read_jsonl(path)
    assert f"{path}:2:" in str(excinfo.value)


# ------------------------------------------------------------------- files as editors and platforms write them
REAL_WORLD_ROWS = [{"id": "1", "text": "héllo"}, {"id": "2", "text": "naïve “quotes”"}]
REAL_WORLD_FORMS = {  # name -> bytes of REAL_WORLD_ROWS as some tool writes them
    "utf8-bom": b"\xef\xbb\xbf" + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in REAL_WORLD_ROWS).encode(),
    "crlf": "".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in REAL_WORLD_ROWS).encode(),
    "bom-crlf-trailing-blanks": b"\xef\xbb\xbf"
    + "".join(json.dumps(r) + "\r\n" for r in REAL_WORLD_ROWS).encode() + b"\r\n\r\n  \n\n",
    "no-final-newline": "\n".join(json.dumps(r) for r in REAL_WORLD_ROWS).encode(),
    "blank-lines-between": "\n\n".join(json.dumps(r) for r in REAL_WORLD_ROWS).encode() + b"\n\t\n",
}


@pytest.mark.parametrize("form", sorted(REAL_WORLD_FORMS))
@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_read_jsonl_accepts_bom_crlf_and_blank_lines(tmp_path, form, suffix):
    data = REAL_WORLD_FORMS[form]
    path = tmp_path / f"rows{suffix}"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    assert read_jsonl(path) == REAL_WORLD_ROWS


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_read_jsonl_malformed_crlf_bom_file_names_file_line_column_and_expectation(tmp_path, suffix):
    """The BOM and the CRs are not counted as columns: the column is where the editor shows the mistake."""
    data = b'\xef\xbb\xbf{"id": "1"}\r\n\r\n{"id": "2" "text": "x"}\r\n'
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    with pytest.raises(DataError) as excinfo:
        read_jsonl(path)
    message = str(excinfo.value)
    assert message.startswith(f"{path}:3:12: malformed JSON at column 12: Expecting ',' delimiter"), message


def test_read_jsonl_bom_after_line_one_is_an_error(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'{"a": 1}\n\xef\xbb\xbf{"a": 2}\n')  # two files concatenated: not silently accepted
    with pytest.raises(DataError, match=rf"{path.name}:2:1: malformed JSON"):
        read_jsonl(path)


def test_read_jsonl_invalid_utf8_names_line_and_byte(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"a": "ok"}\n{"a": "café"}\n'.encode("latin-1"))
    with pytest.raises(DataError) as excinfo:
        read_jsonl(path)
    assert f"{path}:2:" in str(excinfo.value) and "not UTF-8" in str(excinfo.value) and "\\xe9" in str(excinfo.value)


def test_read_jsonl_utf16_file_says_so(tmp_path):
    path = tmp_path / "utf16.jsonl"
    path.write_bytes('{"a": 1}\r\n'.encode("utf-16"))  # what Windows tools call "Unicode"
    with pytest.raises(DataError, match="UTF-16 encoded; save it as UTF-8"):
        read_jsonl(path)


def test_read_jsonl_truncated_gzip_is_a_data_error(tmp_path):
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n' * 1000)[:60])
    with pytest.raises(DataError, match="cannot be read .*gzip-compressed") as excinfo:
        read_jsonl(path)
    assert str(path) in str(excinfo.value)


def test_read_json_accepts_a_bom(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n')
    assert read_json(path) == {"a": 1}


# ------------------------------------------------- the same files through the prepare stage and `tuneval eval`
SST2_RAW = [{"idx": i, "sentence": f"a {'good' if i % 2 else 'bad'} film, “number” {i}", "label": i % 2}
            for i in range(6)]


def _windows_jsonl(rows: list[dict]) -> bytes:
    """What a Windows tool writes: BOM, CRLF, blank lines at the end."""
    return b"\xef\xbb\xbf" + "".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows).encode() + b"\r\n\r\n"


def _sst2_data_dir(root, train: bytes, validation: bytes):
    """`root` in the shared-data layout (sst2/{train,validation}.jsonl) that data.source=local and --data-dir read."""
    (root / "sst2").mkdir(parents=True)
    (root / "sst2" / "train.jsonl").write_bytes(train)
    (root / "sst2" / "validation.jsonl").write_bytes(validation)
    return root


def _run_prepare(tmp_path, write_params, data_dir):
    """`python stages/prepare.py --task sst2` in `tmp_path` on data.source=local under `data_dir`."""
    files = {"sst2": {"train": "sst2/train.jsonl", "validation": "sst2/validation.jsonl"}}
    params = write_params(data={"source": "local", "local_dir": str(data_dir), "files": files})
    return subprocess.run([sys.executable, str(REPO / "stages/prepare.py"), "--task", "sst2", "--params", params],
                          cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120)


def test_prepare_stage_reads_bom_crlf_files(tmp_path, write_params):
    data_dir = _sst2_data_dir(tmp_path / "raw", _windows_jsonl(SST2_RAW), _windows_jsonl(SST2_RAW[:2]))
    proc = _run_prepare(tmp_path, write_params, data_dir)
    assert proc.returncode == 0, proc.stderr
    prepared = read_jsonl(tmp_path / "data/prepared/sst2/train.jsonl")
    assert [(r["id"], r["sentence"], r["label"]) for r in prepared] == [
        (str(r["idx"]), r["sentence"], r["label"]) for r in SST2_RAW]
    assert len(read_jsonl(tmp_path / "data/prepared/sst2/validation.jsonl")) == 2


def test_prepare_stage_names_file_line_and_column_of_a_malformed_crlf_line(tmp_path, write_params):
    bad = _windows_jsonl(SST2_RAW[:2]) + b'{"idx": 9, "sentence": "x" "label": 1}\r\n'  # line 5, after 2 blanks
    data_dir = _sst2_data_dir(tmp_path / "raw", bad, _windows_jsonl(SST2_RAW[:2]))
    proc = _run_prepare(tmp_path, write_params, data_dir)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr == (f"error: {data_dir / 'sst2/train.jsonl'}:5:28: malformed JSON at column 28: "
                           "Expecting ',' delimiter (each line must hold one complete JSON object)\n")
    assert not (tmp_path / "data").exists()


def test_eval_data_dir_reads_bom_crlf_files(tmp_path, params):
    """`tuneval eval --data-dir` reads its rows through cli._rows_for -> data.load_raw -> read_jsonl."""
    from tuneval import cli
    from tuneval.tasks import get_task

    data_dir = _sst2_data_dir(tmp_path, _windows_jsonl(SST2_RAW), _windows_jsonl(SST2_RAW[:3]))
    rows, train_rows, origin = cli._rows_for(get_task("sst2"), "validation", data_dir, params)
    assert [r["id"] for r in rows] == ["0", "1", "2"] and len(train_rows) == len(SST2_RAW)
    assert origin.endswith("every row") and str(data_dir) in origin
    assert rows[1]["sentence"] == SST2_RAW[1]["sentence"]


def test_eval_data_dir_malformed_file_is_one_error_line(tmp_path, repo_root, capsys):
    from tuneval import cli

    bad = b"\xef\xbb\xbf" + b'{"idx": 0, "sentence": "ok", "label": 0}\r\n{"idx": 1,, "label": 0}\r\n'
    data_dir = _sst2_data_dir(tmp_path, _windows_jsonl(SST2_RAW), bad)
    argv = ["eval", "--model", "unused", "--task", "sst2", "--data-dir", str(data_dir),
            "--params", str(repo_root / "params.yaml")]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {data_dir / 'sst2/validation.jsonl'}:2:11: malformed JSON at column 11: "
                          "Expecting property name"), err


def _siblings(directory):
    return sorted(p.name for p in directory.iterdir())


def test_atomic_path_writes_on_success(tmp_path):
    target = tmp_path / "out" / "file.txt"
    with atomic_path(target) as tmp:
        assert tmp != target
        assert tmp.name == target.name  # same name, so suffix-based writers behave the same
        tmp.write_text("done")
        assert not target.exists()  # nothing visible until the block finishes
    assert target.read_text() == "done"
    assert _siblings(target.parent) == ["file.txt"]


def test_atomic_path_leaves_nothing_on_exception(tmp_path):
    target = tmp_path / "file.txt"
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert not target.exists()
    assert _siblings(tmp_path) == []


def test_atomic_path_keeps_old_file_on_exception(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("new")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert _siblings(tmp_path) == ["file.txt"]


def test_atomic_path_replaces_existing_directory(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.bin").write_text("stale")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "fresh.bin").write_text("fresh")
    assert _siblings(target) == ["fresh.bin"]
    assert (target / "fresh.bin").read_text() == "fresh"
    assert _siblings(tmp_path) == ["model"]  # no `.model.old`, no temp dir


def test_atomic_path_keeps_old_directory_on_exception(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights.bin").write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "weights.bin").write_text("new")
        raise RuntimeError("boom")
    assert (target / "weights.bin").read_text() == "old"
    assert _siblings(tmp_path) == ["model"]


def test_write_json_is_byte_deterministic(tmp_path):
    first = {"b": 1, "a": {"y": [1, 2], "x": "é"}, "c": None}
    second = {}
    second["c"] = None
    second["a"] = {"x": "é", "y": [1, 2]}
    second["b"] = 1
    assert list(first) != list(second)  # same content, different insertion order
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    write_json(one, first)
    write_json(two, second)
    assert one.read_bytes() == two.read_bytes()
    text = one.read_text(encoding="utf-8")
    assert text.index('"a"') < text.index('"b"') < text.index('"c"')
    assert "é" in text  # not escaped
    assert text.endswith("\n")
    assert read_json(one) == first


def test_read_json_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{\n  'single': quotes\n}")
    with pytest.raises(DataError, match="line 2") as excinfo:
        read_json(bad)
    assert str(bad) in str(excinfo.value)


# ------------------------------------------------------------------------ atomic_path with writers side by side
SLOW_WRITER = """
import sys, time
from pathlib import Path
from tuneval.io import atomic_path

target, marker, go = map(Path, sys.argv[1:])
with atomic_path(target) as tmp:
    tmp.mkdir()
    (tmp / "weights").write_text("the slow writer's")
    marker.touch()
    deadline = time.monotonic() + 120
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
"""


def test_a_live_writer_s_temp_dir_survives_another_writer_of_the_same_path(tmp_path):
    """Process A is half way through writing `model/`; this process writes `model/` meanwhile. A's temp dir is
    not taken for a killed writer's: A finishes, and its tree is the last one in place."""
    import time

    target, marker, go = tmp_path / "out" / "model", tmp_path / "writing", tmp_path / "go"
    writer = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(target), str(marker), str(go)], cwd=REPO,
                              env=env(), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert writer.poll() is None, writer.stderr.read()
            assert time.monotonic() < deadline, "the slow writer did not start"
            time.sleep(0.05)
        (theirs,) = [p for p in target.parent.iterdir() if p.name.startswith(".model.")]
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "weights").write_text("ours")
        assert (target / "weights").read_text() == "ours"
        assert (theirs / "model" / "weights").read_text() == "the slow writer's", "a live writer's temp dir"
        go.touch()
        assert writer.wait(timeout=60) == 0, writer.stderr.read()
    finally:
        writer.kill()
        writer.wait()
    assert (target / "weights").read_text() == "the slow writer's"
    assert _siblings(target.parent) == ["model"]


def test_a_dead_writer_s_temp_dir_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "file.txt"
    debris = tmp_path / ".file.txt.k1ll3d_x"  # what mkdtemp made for a writer that was SIGKILLed (no lock held)
    debris.mkdir()
    (debris / "file.txt").write_text("half")
    unrelated = tmp_path / ".file.txt.lock"
    unrelated.write_text("")
    write_json(target, {"a": 1})
    assert _siblings(tmp_path) == [".file.txt.lock", "file.txt"]


def test_replacing_a_directory_never_leaves_the_path_missing(tmp_path):
    """A reader process stats `model/` in a tight loop while it is replaced 200 times: never a moment without
    it (the old tree and the new one are exchanged in one step)."""
    import time

    from tuneval.io import _exchange

    probe_a, probe_b = tmp_path / "a", tmp_path / "b"
    probe_a.mkdir()
    probe_b.mkdir()
    if not _exchange(probe_a, probe_b):
        pytest.skip("this filesystem cannot exchange two paths in one step (renameat2 RENAME_EXCHANGE)")
    target, stop = tmp_path / "model", tmp_path / "stop"
    target.mkdir()
    reader = subprocess.Popen([sys.executable, "-c", (
        "import os, sys\nmissing = checks = 0\n"
        "while not os.path.exists(sys.argv[2]):\n"
        "    checks += 1\n"
        "    missing += not os.path.isdir(sys.argv[1])\n"
        "print(missing, checks)\n"), str(target), str(stop)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.2)
        for i in range(200):
            with atomic_path(target) as tmp:
                tmp.mkdir()
                (tmp / "n").write_text(str(i))
        stop.touch()
        missing, checks = map(int, reader.communicate(timeout=60)[0].split())
    finally:
        reader.kill()
    assert checks > 0 and missing == 0, f"{missing} of {checks} checks found no {target.name}/"
    assert (target / "n").read_text() == "199" and _siblings(tmp_path) == ["a", "b", "model", "stop"]
