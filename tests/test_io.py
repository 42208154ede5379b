"""io helpers: JSONL reading errors name file and line; atomic writes leave no half-written or temp files."""

from __future__ import annotations

import gzip
import json

import pytest

from tuneval.io import DataError, atomic_path, read_json, read_jsonl, write_json, write_jsonl


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
