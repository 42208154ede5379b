"""Resumable training: what a checkpoint was made from, which one to resume, and dvclive logs to match."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import struct
from pathlib import Path

from tuneval.config import Params
from tuneval.io import sha256_digest
from tuneval.train.job import TrainJob

WHOLE_FILE_LIMIT = 32 << 20  # base-model files up to this size are hashed whole (configs, tokenizers, tiny models)
SAMPLE_BLOCKS, SAMPLE_BYTES = 256, 64 << 10  # a larger file: this many blocks, spread evenly (16 MiB in all)


def fingerprint(params: Params, job: TrainJob) -> str:
    """What a checkpoint was trained from: resuming is only safe when all of it is unchanged.

    Cheap, since it runs on every training run and on every machine of one (and machines compare theirs): the
    params that shape the run, the train and eval files hashed whole, and the base model by content, never by
    path or mtime (machines must agree). Its small files (config, tokenizer, tuneval_model.json, the GGUF record
    with the GGUF's sha256) are hashed whole; a weight file larger than WHOLE_FILE_LIMIT by its size, its
    safetensors header (every tensor's name, dtype, shape and offsets) and SAMPLE_BLOCKS blocks spread evenly from
    its first byte to its last: about 16 MiB of a 1 GB model instead of all of it. Another checkpoint, dtype,
    quantization or conversion changes every block; dvc.lock's hash of models/base is what sees any byte."""
    digest = hashlib.sha256()
    digest.update(json.dumps([params.lr, params.epochs, params.batch_size, params.seed, params.model.dtype,
                              dataclasses.asdict(params.train)], sort_keys=True).encode())
    for path in [job.train_file, job.eval_file] if job.eval_file else [job.train_file]:
        digest.update(Path(path).name.encode())
        digest.update(_hash_whole(Path(path)))
    base = Path(job.base_model)
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        digest.update(path.relative_to(base).as_posix().encode())
        size = path.stat().st_size
        digest.update(_hash_whole(path) if size <= WHOLE_FILE_LIMIT else _sampled(path, size))
    return digest.hexdigest()


def _hash_whole(path: Path) -> bytes:
    return sha256_digest(path)


def _sampled(path: Path, size: int) -> bytes:
    """A large file's key: size, safetensors header (if it is one) and SAMPLE_BLOCKS evenly spread blocks."""
    digest = hashlib.sha256(str(size).encode())
    fd = os.open(path, os.O_RDONLY)
    try:
        if path.suffix == ".safetensors":
            (length,) = struct.unpack("<Q", os.pread(fd, 8, 0))
            digest.update(os.pread(fd, min(length, size - 8), 8))
        span = size - SAMPLE_BYTES
        for i in range(SAMPLE_BLOCKS):
            digest.update(os.pread(fd, SAMPLE_BYTES, span * i // (SAMPLE_BLOCKS - 1)))
    finally:
        os.close(fd)
    return digest.digest()


def resumable_checkpoint(checkpoint_dir: Path, print_fn=print) -> str | None:
    """The newest `checkpoint-N` in `checkpoint_dir`, or None (the caller has checked the fingerprint)."""
    found = sorted(checkpoint_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    complete = [p for p in found if (p / "trainer_state.json").is_file()]  # a kill mid-save leaves no state
    if complete:
        print_fn(f"resuming from {complete[-1]}")
        return str(complete[-1])
    return None


def prepare_checkpoints(checkpoint_dir: Path, stamp: str) -> bool:
    """Keep checkpoints only if they were made from the same fingerprint. Returns True if resuming."""
    stamp_file = checkpoint_dir / "fingerprint.txt"
    if stamp_file.is_file() and stamp_file.read_text().strip() == stamp and any(checkpoint_dir.glob("checkpoint-*")):
        return True
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    checkpoint_dir.mkdir(parents=True)
    stamp_file.write_text(stamp + "\n")
    return False


def trim_live_logs(live_dir: Path, last_step: int) -> None:
    """Drop dvclive points after `last_step`: a resumed run logs those steps again (else they would repeat).
    A line cut short by the kill (too few fields) goes too."""
    for tsv in (live_dir / "plots" / "metrics").rglob("*.tsv"):
        header, *rows = tsv.read_text().splitlines() or [""]
        names = header.split("\t")
        if "step" not in names:  # empty or cut inside the header: dvclive writes it again
            tsv.unlink()
            continue
        column = names.index("step")
        kept = [row for row in rows if len(row.split("\t")) == len(names) and _step_of(row, column) <= last_step]
        tsv.write_text("\n".join([header, *kept]) + "\n")


def _step_of(row: str, column: int) -> float:
    try:
        return int(row.split("\t")[column])
    except ValueError:
        return float("inf")
