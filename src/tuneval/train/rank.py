"""What each rank that `accelerate launch` starts runs: `python -m tuneval.train.rank <checkpoint_dir>/launch.json`
(or --from-rank-0 on machines > 0). Global rank 0 reads the launch file and hands the job to every other rank over
the process group; all ranks check they have the same inputs, then run `tuneval.train.trainer.fit`.

Its own module (not launch.py) so that the launcher never imports the trainer: the launcher starts processes,
this module is what they run, and the import graph stays acyclic.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from datetime import timedelta
from pathlib import Path

import torch

from tuneval.config import params_from_dict
from tuneval.errors import LaunchError, TunevalError, redact
from tuneval.train.job import DDP_TIMEOUT_S, ENV_WORKER_STATE, LAUNCH_FILE, STATUS_FILE, TrainJob


def _inputs_message(spec: dict, gathered: list) -> str | None:
    """Why the machines cannot train together (different inputs or checkpoints), or None."""
    bad = sorted({m for m, fp, _ in gathered if fp is not None and fp != spec["fingerprint"]})
    if bad:
        details = "; ".join(f"machine {m}: {fp}" for m, fp, _ in gathered if m in bad and fp.startswith("missing"))
        return (f"machine(s) {', '.join(map(str, bad))} do not have machine 0's train inputs (base model, train and "
                f"eval files) or params: every machine needs the same commit and `dvc pull` (or a shared filesystem) "
                f"before it trains{'; ' + details if details else ''}")
    checkpoints = {ckpt for _, _, ckpt in gathered}
    if len(checkpoints) > 1:
        return (f"the machines would resume from different checkpoints ({', '.join(sorted(map(str, checkpoints)))}): "
                "resuming a multi-machine run needs the checkpoint directory on a filesystem all machines share; "
                "without one, delete the checkpoint directory on machine 0 to start over")
    return None


def _run_rank(launch_file: str) -> None:
    import torch.distributed as dist
    from accelerate import PartialState

    from tuneval.train.checkpoints import fingerprint, resumable_checkpoint
    from tuneval.train.trainer import _quiet, fit

    state = PartialState(cpu=not torch.cuda.is_available(), timeout=timedelta(seconds=DDP_TIMEOUT_S))
    rank = state.process_index
    machine, local = int(os.environ.get("GROUP_RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")  # objects travel on CPUs
    report_file = os.environ.get(ENV_WORKER_STATE) if local == 0 else None

    def report(**fields) -> None:
        if report_file:  # node-local temp file of a worker machine
            Path(report_file).write_text(json.dumps(fields))

    box = [json.loads(Path(launch_file).read_text()) if rank == 0 else None]
    dist.broadcast_object_list(box, src=0, group=group)  # every rank has joined once this returns
    spec = box[0]
    status_file = Path(launch_file).with_name(STATUS_FILE) if rank == 0 else None
    if spec.get("stop"):
        report(joined=True, stop=True)
        if status_file:
            status_file.write_text(json.dumps({"joined": True}))
        dist.barrier(group=group)
        return
    job = TrainJob.from_json(spec["job"])
    params = params_from_dict(spec["params"], source=f"machine 0's {LAUNCH_FILE}")
    mine = None
    if machine > 0 and local == 0:  # machine 0's own ranks read what the launcher hashed
        try:
            mine = fingerprint(params, job)
        except OSError as err:
            mine = f"missing {getattr(err, 'filename', None) or err}"
    ckpt = resumable_checkpoint(job.checkpoint_dir, _quiet) if spec["resuming"] else None
    gathered = [None] * state.num_processes
    dist.all_gather_object(gathered, (machine, mine, Path(ckpt).name if ckpt else None), group=group)
    problem = _inputs_message(spec, gathered)
    if problem:
        report(joined=True, error=problem)
        if status_file:
            status_file.write_text(json.dumps({"joined": True, "error": problem}))
        raise LaunchError(problem)
    report(joined=True, task=job.task)
    if status_file:
        status_file.write_text(json.dumps({"joined": True}))
    fit(job, params, spec["resuming"])
    dist.barrier(group=group)  # everyone stays until rank 0 has saved the model
    if machine > 0:  # the Trainer's per-rank RNG files are resume state; machine 0's launcher prunes its own
        for rng in job.checkpoint_dir.glob(f"checkpoint-*/rng_state_{rank}.pth"):
            rng.unlink(missing_ok=True)
        for empty in [*job.checkpoint_dir.glob("checkpoint-*"), job.checkpoint_dir, job.checkpoint_dir.parent]:
            with contextlib.suppress(OSError):
                empty.rmdir()  # only if empty: on a shared filesystem machine 0's files keep it
    report(joined=True, task=job.task, done=True)


def main(argv: list[str] | None = None) -> None:
    (launch_file,) = sys.argv[1:] if argv is None else argv
    try:
        _run_rank(launch_file)
    except TunevalError as err:  # the user's problem: one paragraph (machine 0's launcher repeats it)
        print(f"[rank {os.environ.get('RANK', '?')}] error: {redact(str(err))}", file=sys.stderr)
        sys.exit(1)
    except Exception:  # noqa: BLE001 - the traceback, minus any secret it may quote
        print(f"[rank {os.environ.get('RANK', '?')}] " + redact(traceback.format_exc()), end="", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
