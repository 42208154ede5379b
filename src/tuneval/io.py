"""Small file helpers: JSONL reading with precise errors, and writes that are atomic (temp file + rename)."""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import errno
import functools
import gzip
import hashlib
import json
import os
import re
import shutil
import sys
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
    """Yield a temporary sibling path; on success it replaces `path` (file or directory) in one rename.

    Safe with other writers of the same path at once (several processes filling one cache, say): each writes in
    its own temp directory `.<name>.<8 chars>/`, which it holds an exclusive lock on (flock) while it lives, and
    only temp directories whose lock can be taken (their writer is gone: SIGKILL skips `finally`) are removed
    as stale. Readers never see `path` missing: a directory is swapped for the new one in one step where the
    filesystem can (Linux renameat2 RENAME_EXCHANGE; elsewhere two renames)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    scratch, lock = _claim_temp_dir(path)
    tmp = scratch / path.name
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            _replace_dir(tmp, path, scratch)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # still locked: no one else removes it meanwhile
        if lock is not None:
            os.close(lock)


def _claim_temp_dir(path: Path) -> tuple[Path, int | None]:
    """A new temp directory beside `path`, locked by this process (the lock's descriptor; None where the
    filesystem has no flock, and then no other writer can prove it stale either)."""
    while True:
        scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            fd = _lock_dir(scratch, wait=True)
        except FileNotFoundError:  # removed as stale between mkdtemp and the lock: take another
            continue
        if fd is None:
            return scratch, None
        try:
            if os.path.samestat(os.fstat(fd), os.lstat(scratch)):
                return scratch, fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _lock_dir(directory: Path, wait: bool) -> int | None:
    """An exclusive flock on `directory`, held by the returned descriptor; None if it is held by another process
    (with `wait=False`) or if the platform or filesystem cannot lock it. FileNotFoundError if it is gone."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no locks, so no temp directory can be proven stale
        return None
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held by its live writer (EWOULDBLOCK), or no flock here (some network filesystems)
        os.close(fd)
        return None
    return fd


def _remove_stale_temps(path: Path) -> None:
    """Temp dirs `.<name>.<8 chars>/` that a killed writer of `path` left behind. A temp dir is removed only when
    its lock can be taken (its writer is gone) and while it is held, so a live writer's is never touched."""
    prefix = f".{path.name}."
    for stale in path.parent.iterdir():
        if not (stale.name.startswith(prefix) and _TEMP_SUFFIX.fullmatch(stale.name[len(prefix):])):
            continue
        if stale.is_symlink() or not stale.is_dir():
            continue
        try:
            fd = _lock_dir(stale, wait=False)
        except OSError:  # gone already
            continue
        if fd is None:
            continue
        try:
            if os.path.samestat(os.fstat(fd), os.lstat(stale)):
                shutil.rmtree(stale, ignore_errors=True)
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)


def _replace_dir(new: Path, path: Path, scratch: Path) -> None:
    """Put directory `new` at `path`, an existing directory; the old tree ends up in `scratch` (then removed)."""
    if _exchange(new, path):  # one step: readers see the old tree or the new one, never nothing
        return
    old = scratch / f"{path.name}.previous"  # in our own locked temp dir: no other writer's name to clash with
    path.rename(old)
    try:
        new.rename(path)
    except BaseException:
        old.rename(path)
        raise


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap paths `a` and `b` atomically (Linux renameat2 with RENAME_EXCHANGE, which Python's os module does not
    expose); False where the system or filesystem cannot (then nothing was changed)."""
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):  # not on this kernel/filesystem
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


@functools.cache
def _renameat2():
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28, musl >= 1.2.5
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


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


def sha256_digest(path: str | Path) -> bytes:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks (hashlib.file_digest needs Python 3.11)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.digest()
