"""Data-parallel evaluation: `eval.num_processes` processes score one split together, one per GPU (or, on a CPU
host, each with its share of the cores).

The engine plans its batches exactly as one process would (the same length-sorted batches, the same prefix groups
and decoding batches: every SQuAD context's questions stay in one batch, so prefixes are still shared), then each
process runs every `num_processes`-th batch. A batch's numbers do not depend on which process runs it, so the
gathered predictions and metrics are byte-identical to a single-process run (tests/test_parallel_eval.py).

This process is rank 0: it starts ranks 1..N-1 as `python -m tuneval.scoring.parallel <spec> <rank>` (each loads
the model itself), scores its own share meanwhile, then gathers the others' raw outputs, in the original order.
A rank that fails stops the others; nothing is left running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from tuneval.errors import ConfigError, LaunchError, redact
from tuneval.io import read_json, write_json
from tuneval.scoring.engine import EvalSettings, Shard, merge_raw, predict_raw, records_from
from tuneval.tasks import Task, get_task


def predict_parallel(task: Task, model, tokenizer, model_path: str | Path, dtype: str, rows: Sequence[dict],
                     train_rows: Sequence[dict], settings: EvalSettings, num_processes: int) -> list[dict[str, Any]]:
    """engine.predict over `num_processes` processes (1: in this process alone); `model` is `model_path` loaded
    with `dtype`, and each other process loads the same."""
    if num_processes == 1:
        return records_from(task, rows, predict_raw(task, model, tokenizer, rows, train_rows, settings, Shard()))
    devices = _devices(num_processes)
    with tempfile.TemporaryDirectory(prefix="tuneval-eval-") as tmp:
        spec = Path(tmp) / "spec.json"
        write_json(spec, {"task": task.name, "model": str(model_path), "dtype": dtype, "settings": asdict(settings),
                          "num_processes": num_processes, "rows": list(rows), "train_rows": list(train_rows)},
                   indent=None)
        procs = [subprocess.Popen([sys.executable, "-m", __name__, str(spec), str(rank)],
                                  env=_rank_env(rank, devices)) for rank in range(1, num_processes)]
        try:
            with _cpu_share(num_processes):
                raws = [predict_raw(task, model, tokenizer, rows, train_rows, settings, Shard(0, num_processes))]
            for rank, proc in enumerate(procs, start=1):
                if proc.wait() != 0:
                    raise LaunchError(f"evaluation process {rank} of {num_processes} exited with status "
                                      f"{proc.returncode} (its output is above); eval.num_processes: 1 runs "
                                      "everything in one process")
                raws.append(read_json(Path(tmp) / f"rank-{rank}.json"))
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    print(f"{task.name}: scored {len(rows):,} examples in {num_processes} processes")
    return records_from(task, rows, merge_raw(raws))


def check_processes(num_processes: int, key: str = "eval.num_processes") -> None:
    """Refuse, before any model loads, more evaluation processes than this machine runs side by side: one per
    GPU, or on a CPU host one per core (processes sharing cores slow each other down about 10x)."""
    if num_processes > 1:
        _devices(num_processes, key)
        cores = os.cpu_count() or 1
        if not torch.cuda.is_available() and num_processes > cores:
            raise ConfigError(f"{key} = {num_processes} but this CPU host has {cores} core(s): use at most {cores} "
                              "evaluation processes (each needs a core of its own)")


def _devices(num_processes: int, key: str = "eval.num_processes") -> list[str] | None:
    """The GPU each rank uses (CUDA_VISIBLE_DEVICES values), or None on a CPU host."""
    if not torch.cuda.is_available():
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [d.strip() for d in visible.split(",")] if visible else [str(i) for i in range(torch.cuda.device_count())]
    if len(ids) < num_processes:
        raise ConfigError(f"{key} = {num_processes} but this machine has {len(ids)} GPU(s): use at most one "
                          "evaluation process per GPU")
    return ids


def _rank_env(rank: int, devices: list[str] | None) -> dict[str, str]:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    if devices is not None:  # rank r sees its one GPU as cuda:0 (rank 0, this process, uses the first)
        env["CUDA_VISIBLE_DEVICES"] = devices[rank]
    return env


@contextmanager
def _cpu_share(num_processes: int):
    """On a CPU host, each of the processes gets its share of the cores (two 2-thread processes on 2 cores slow
    each other down about 10x); GPUs are left alone."""
    before = torch.get_num_threads()
    if not torch.cuda.is_available():
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // num_processes))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_rank(spec_file: Path, rank: int) -> None:
    from tuneval.models.loading import load_model, load_tokenizer

    spec = json.loads(spec_file.read_text())
    task, rows, train_rows = get_task(spec["task"]), spec["rows"], spec["train_rows"]
    settings = EvalSettings(**spec["settings"])
    tokenizer = load_tokenizer(spec["model"])
    model = load_model(spec["model"], dtype=spec["dtype"])
    with _cpu_share(spec["num_processes"]):
        raw = predict_raw(task, model, tokenizer, rows, train_rows, settings, Shard(rank, spec["num_processes"]))
    write_json(spec_file.parent / f"rank-{rank}.json", raw, indent=None)


def main(argv: list[str] | None = None) -> None:
    spec_file, rank = sys.argv[1:] if argv is None else argv
    try:
        _run_rank(Path(spec_file), int(rank))
    except Exception:  # noqa: BLE001 - the traceback, minus any secret it may quote; rank 0 reports the failure
        print(f"[evaluation rank {rank}] " + redact(traceback.format_exc()), end="", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
