"""Data-parallel evaluation: `eval.num_processes` processes score one split together, one per GPU (or, on a CPU
host, each with its share of the cores).

The engine plans its batches exactly as one process would (the same length-sorted batches, the same prefix groups
and decoding batches: every SQuAD context's questions stay in one batch, so prefixes are still shared), then each
process runs every `num_processes`-th batch. A batch's numbers do not depend on which process runs it, so the
gathered predictions and metrics are byte-identical to a single-process run (tests/test_parallel_eval.py).

This process is rank 0: it starts ranks 1..N-1 as `python -m tuneval.scoring.parallel <spec> <rank>` (each loads
the model itself), scores its own share meanwhile, then gathers the others' raw outputs, in the original order.
The ranks are supervised as the training launcher's processes are (tuneval.supervise): a rank that fails ends the
run at once (rank 0 is interrupted mid-share) with that rank's error; SIGTERM or SIGINT to this process stops every
rank; `timeout_s` (default a day, `tuneval eval --timeout`) bounds one split's evaluation; nothing is left running.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from tuneval.errors import ConfigError, LaunchError, TunevalError, redact
from tuneval.io import read_json, write_json
from tuneval.scoring.engine import EvalSettings, Shard, merge_raw, predict_raw, records_from
from tuneval.supervise import ChildFailed, SupervisionTimeout, Supervisor, error_summary, exit_with_parent
from tuneval.tasks import Task, get_task

DEFAULT_TIMEOUT_S = 86400.0  # one split's evaluation, all processes together: a day (a hang, not a slow model)


def predict_parallel(task: Task, model, tokenizer, model_path: str | Path, dtype: str, rows: Sequence[dict],
                     train_rows: Sequence[dict], settings: EvalSettings, num_processes: int,
                     timeout_s: float | None = DEFAULT_TIMEOUT_S) -> list[dict[str, Any]]:
    """engine.predict over `num_processes` processes (1: in this process alone); `model` is `model_path` loaded
    with `dtype`, and each other process loads the same.

    LaunchError as soon as a process fails (naming it and its error), or when the split takes longer than
    `timeout_s` seconds (None: no limit); either way every other process is stopped first."""
    what = f"evaluating {len(rows):,} {task.name} examples in {num_processes} process(es)"
    if num_processes == 1:
        try:
            with Supervisor(what, timeout_s=timeout_s):  # no child: the timeout alone
                raw = predict_raw(task, model, tokenizer, rows, train_rows, settings, Shard())
        except SupervisionTimeout as err:
            raise _timed_out(err) from None
        return records_from(task, rows, raw)
    devices = _devices(num_processes)
    with tempfile.TemporaryDirectory(prefix="tuneval-eval-") as tmp:
        spec = Path(tmp) / "spec.json"
        write_json(spec, {"task": task.name, "model": str(model_path), "dtype": dtype, "settings": asdict(settings),
                          "num_processes": num_processes, "rows": list(rows), "train_rows": list(train_rows)},
                   indent=None)
        names = {_rank_name(rank, num_processes): rank for rank in range(1, num_processes)}
        try:
            with Supervisor(what, timeout_s=timeout_s) as watch:
                for name, rank in names.items():
                    watch.start(name, _rank_command(spec, rank), env=_rank_env(rank, devices))
                with _cpu_share(num_processes):
                    raws = [predict_raw(task, model, tokenizer, rows, train_rows, settings, Shard(0, num_processes))]
                watch.wait()
                raws += [read_json(Path(tmp) / f"rank-{rank}.json") for rank in range(1, num_processes)]
        except ChildFailed as err:
            why = error_summary(_error_file(spec, names[err.name]))
            raise LaunchError(f"{err}{': ' + why if why else ''} (its output is above; every other evaluation "
                              "process was stopped); eval.num_processes: 1 runs everything in one process") from None
        except SupervisionTimeout as err:
            raise _timed_out(err) from None
    print(f"{task.name}: scored {len(rows):,} examples in {num_processes} processes")
    return records_from(task, rows, merge_raw(raws))


def _timed_out(err: SupervisionTimeout) -> LaunchError:
    return LaunchError(f"{err} (timeout_s = {err.timeout_s:g}: `tuneval eval --timeout SECONDS` sets another)")


def _rank_name(rank: int, num_processes: int) -> str:
    return f"evaluation process {rank} of {num_processes}"


def _rank_command(spec: Path, rank: int) -> list[str]:
    return [sys.executable, "-m", __name__, str(spec), str(rank)]


def _error_file(spec: Path, rank: int) -> Path:
    return spec.parent / f"rank-{rank}.error"


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
    exit_with_parent()  # rank 0 gone without stopping us (SIGKILL): stop too
    try:
        _run_rank(Path(spec_file), int(rank))
    except Exception as err:  # noqa: BLE001 - the traceback, minus any secret it may quote; rank 0 reports it
        error = redact(traceback.format_exc())
        with suppress(OSError):  # what rank 0 quotes: our one paragraph, or a bug's last traceback line
            summary = redact(str(err)) if isinstance(err, TunevalError) else error.strip().splitlines()[-1]
            _error_file(Path(spec_file), int(rank)).write_text(summary + "\n")
        print(f"[evaluation rank {rank}] " + error, end="", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
