"""`train.num_processes > 1`: the Trainer runs under `accelerate launch` (DDP: NCCL on GPUs, gloo on CPUs).

The stage process stays the launcher: it checks the checkpoint fingerprint, owns the atomic swap of the output
directory and prunes checkpoints at the end. Every launched process runs `tuneval.training.fit`; rank 0 alone
writes dvclive logs, checkpoint metadata and the final model.

Multi-node: write an `accelerate config` file per machine (num_machines, machine_rank, main_process_ip/port),
set `train.accelerate_config` to its path and `train.num_processes` to the total across machines, and start the
train stage on every node (the nodes must share the repository and its data at the same path).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from tuneval.config import Params, params_from_dict
from tuneval.errors import LaunchError, redact

if TYPE_CHECKING:  # training imports this module (lazily) to launch; importing it back here would be a cycle
    from tuneval.training import TrainJob

LAUNCH_FILE = "launch.json"  # written into the checkpoint directory: what every launched process should run


def launch_command(params: Params, launch_file: Path) -> list[str]:
    """`accelerate launch` running `python -m tuneval.distributed launch_file` on `train.num_processes` ranks."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(params.train.num_processes)]
    if params.train.accelerate_config:  # the config decides the rest: machines, DeepSpeed/FSDP, ...
        command += ["--config_file", params.train.accelerate_config]
    else:  # one machine, plain DDP; precision comes from model.dtype through TrainingArguments, not from here
        command += ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return [*command, "-m", "tuneval.distributed", str(launch_file)]


def launch_env(params: Params) -> dict[str, str]:
    """The environment for the launched processes: CPU-only hosts use gloo (else each rank would train alone)."""
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["ACCELERATE_USE_CPU"] = "true"
    elif not params.train.accelerate_config and params.train.num_processes > torch.cuda.device_count():
        raise LaunchError(
            f"train.num_processes={params.train.num_processes} but this machine has {torch.cuda.device_count()} "
            "GPU(s); use at most one process per GPU, or set train.accelerate_config for several machines"
        )
    return env


def launch(job: TrainJob, params: Params, resuming: bool) -> None:
    """Run `fit` on every rank and wait; raise LaunchError if any rank fails (torchrun stops the others)."""
    launch_file = job.checkpoint_dir / LAUNCH_FILE
    spec = {"job": job.to_json(), "params": dataclasses.asdict(params), "resuming": resuming}
    launch_file.write_text(json.dumps(spec, indent=2) + "\n")
    command = launch_command(params, launch_file)
    print(f"launching {params.train.num_processes} training processes: {' '.join(command)}", flush=True)
    try:
        returncode = subprocess.run(command, env=launch_env(params)).returncode
    finally:
        launch_file.unlink(missing_ok=True)
    if returncode != 0:
        raise LaunchError(f"accelerate launch exited with status {returncode}: a training process failed "
                          "(its output is above); checkpoints are kept, so a rerun resumes")


def main(argv: list[str] | None = None) -> None:
    """Entry point of each launched process: `python -m tuneval.distributed <checkpoint_dir>/launch.json`."""
    # Imported here, not at the top: training.py launches through this module, so a module-level import would be
    # a cycle; at call time (in a launched rank) both modules are complete.
    from tuneval.training import TrainJob, fit

    (launch_file,) = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(launch_file).read_text())
    try:
        fit(TrainJob.from_json(spec["job"]), params_from_dict(spec["params"], source=launch_file), spec["resuming"])
    except Exception:  # noqa: BLE001 - the traceback, minus any secret it may quote
        rank = os.environ.get("RANK", "?")
        print(f"[rank {rank}] " + redact(traceback.format_exc()), end="", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
