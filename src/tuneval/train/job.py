"""The contract between the train stage, the trainer, the launcher and its launched ranks: what one training run
reads and writes, and the record it leaves beside the weights. Light on purpose (no torch): count_params and
publish read TRAINING_INFO without importing the trainer."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

TRAINING_INFO = "tuneval_training.json"  # written beside the fine-tuned weights (or adapter)

# The launcher (launch.py) and the ranks it starts (rank.py) meet through these files and settings.
LAUNCH_FILE = "launch.json"  # written into the checkpoint directory: what every launched process should run
STATUS_FILE = "launch.status.json"  # beside the launch file, by global rank 0: joined, or why the run stopped
FROM_RANK_0 = "--from-rank-0"  # the launch "file" of ranks on machines > 0: rank 0 sends the job
ENV_WORKER_STATE = "TUNEVAL_WORKER_STATE"  # internal: a node-local file where a worker machine's rank reports
DDP_TIMEOUT_S = 1800  # every collective after the join (the Trainer's default ddp_timeout)


@dataclass(frozen=True)
class TrainJob:
    """What one training run reads and writes. `eval_file` (optional) gives the eval-loss examples."""

    task: str
    base_model: Path
    train_file: Path
    out_dir: Path
    live_dir: Path
    checkpoint_dir: Path
    eval_file: Path | None = None

    def to_json(self) -> dict[str, str | None]:
        return {k: (str(v) if v is not None else None) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, raw: dict[str, str | None]) -> TrainJob:
        return cls(**{k: (v if k == "task" or v is None else Path(v)) for k, v in raw.items()})
