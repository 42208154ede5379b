"""The train stage's one decision: fit in this process, or start every rank under `accelerate launch`.

This process owns the checkpoint bookkeeping either way: it checks the fingerprint (resume or start over),
and prunes the intermediate checkpoints once the run finished.
"""

from __future__ import annotations

import shutil
from typing import Any

from tuneval import paths
from tuneval.config import Params
from tuneval.io import atomic_path, read_json
from tuneval.train.checkpoints import fingerprint, prepare_checkpoints
from tuneval.train.job import TRAINING_INFO, TrainJob


def run_training(job: TrainJob, params: Params) -> dict[str, Any]:
    """Fine-tune `job.base_model` on `job.train_file` into `job.out_dir`: the PEFT adapter alone for LoRA, the
    whole model and its tokenizer for full fine-tuning, with tuneval_training.json beside them.

    Checkpoints go to `job.checkpoint_dir` every `train.save_steps`; a rerun with the same fingerprint resumes
    from the newest one. With `train.num_processes > 1` the fitting runs under `accelerate launch`
    (tuneval.train.launch); otherwise here (tuneval.train.trainer.fit)."""
    resuming = prepare_checkpoints(job.checkpoint_dir, fingerprint(params, job))
    if not resuming:
        shutil.rmtree(job.live_dir, ignore_errors=True)
    if params.train.num_processes > 1:
        from tuneval.train.launch import launch

        launch(job, params, resuming)
        stats = read_json(job.out_dir / TRAINING_INFO)
    else:
        from tuneval.train.trainer import fit

        stats = fit(job, params, resuming)
    for old in job.checkpoint_dir.glob("checkpoint-*"):  # finished: intermediate checkpoints are pruned
        shutil.rmtree(old)
    return stats


def train(task_name: str, params: Params) -> None:
    """The train stage: fine-tune the base model on the task's training draw into models/<task>; the loss dvclive
    watches is on rows of the development split, never on the scored set."""
    with atomic_path(paths.finetuned(task_name)) as out:
        job = TrainJob(task=task_name, base_model=paths.BASE_MODEL, train_file=paths.split_file(task_name, "train"),
                       out_dir=out, live_dir=paths.live_dir(task_name), checkpoint_dir=paths.checkpoints(task_name),
                       eval_file=paths.split_file(task_name, "test"))  # watched loss: the development split
        run_training(job, params)
