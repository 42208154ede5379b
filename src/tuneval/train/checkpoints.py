"""Resumable training: what a checkpoint was made from, which one to resume, and dvclive logs to match."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

from tuneval.config import Params
from tuneval.train.job import TrainJob


def fingerprint(params: Params, job: TrainJob) -> str:
    """What a checkpoint was trained from: resuming is only safe when all of it is unchanged."""
    digest = hashlib.sha256()
    digest.update(json.dumps([params.lr, params.epochs, params.batch_size, params.seed, params.model.dtype,
                              dataclasses.asdict(params.train)], sort_keys=True).encode())
    inputs = [job.train_file, job.eval_file] if job.eval_file else [job.train_file]
    for path in [*inputs, *sorted(p for p in Path(job.base_model).rglob("*") if p.is_file())]:
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


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
