"""Small file helpers: JSONL reading with precise errors, and writes that are atomic (temp file + rename)."""

from __future__ import annotations

import codecs
import contextlib
import gzip
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tuneval.errors import DataError


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a .jsonl or .jsonl.gz file; every non-blank line must be one JSON object.

    Files as editors and other platforms write them are accepted: a UTF-8 byte-order mark, CRLF line ends, blank
    or whitespace-only lines (anywhere, e.g. trailing). Anything else is a DataError naming file, line, column and
    what was expected. Lines are split on b"\n" before decoding, so a bad byte is reported on its own line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    rows = []
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                row = _parse_jsonl_line(path, lineno, raw)
                if row is not None:
                    rows.append(row)
    except (OSError, EOFError) as err:  # a damaged or truncated .gz, an unreadable file
        raise DataError(f"{path}: cannot be read ({type(err).__name__}: {err}); is it a complete "
                        f"{'gzip-compressed ' if path.suffix == '.gz' else ''}JSONL file?") from err
    if not rows:
        raise DataError(f"{path}: file is empty (expected one JSON object per line)")
    return rows


def _parse_jsonl_line(path: Path, lineno: int, raw: bytes) -> dict[str, Any] | None:
    """One JSONL line -> its object; None for a blank line. Tolerates a leading BOM (line 1) and a CR before LF."""
    if lineno == 1:
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise DataError(f"{path}: the file is UTF-16 encoded; save it as UTF-8 (one JSON object per line)")
        raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}:{lineno}:{err.start + 1}: not UTF-8 text (byte {raw[err.start:err.start + 1]!r}); "
                        "save the file as UTF-8") from err
    if not line.strip():  # blank or whitespace-only (a CRLF file's blank lines are "\r\n")
        return None
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{lineno}:{err.colno}: malformed JSON at column {err.colno}: {err.msg} "
                        "(each line must hold one complete JSON object)") from err
    if not isinstance(row, dict):
        raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
    return row


_TEMP_SUFFIX = re.compile(r"[a-z0-9_]{8}")  # what tempfile.mkdtemp appends to the prefix


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path; on success it replaces `path` (file or directory) in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) / path.name
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def _remove_stale_temps(path: Path) -> None:
    """Temp dirs `.<name>.<8 chars>/` that a killed writer of `path` left behind (SIGKILL skips `finally`)."""
    prefix = f".{path.name}."
    for stale in path.parent.iterdir():
        if stale.name.startswith(prefix) and _TEMP_SUFFIX.fullmatch(stale.name[len(prefix):]) and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    """Deterministic JSON (sorted keys, fixed indent) so identical runs give identical bytes."""
    write_text(path, json.dumps(obj, indent=indent, sort_keys=True, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))  # -sig: a leading BOM is dropped, not an error
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: malformed JSON ({err.msg} at line {err.lineno})") from err
