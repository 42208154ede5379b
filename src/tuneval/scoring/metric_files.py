"""The score stage: metrics/<task>/{zeroshot,finetuned}.json from the committed predictions, in seconds.

Both phases are scored by the same code on the same examples; a metric fix reruns this stage, publish and the
report, never a model.
"""

from __future__ import annotations

from typing import Any

from tuneval import paths
from tuneval.config import PHASES, Params
from tuneval.io import read_json, write_json
from tuneval.scoring.scores import score
from tuneval.tasks import Task, get_task


def score_task(task_name: str, params: Params) -> None:
    """Score every phase and split in eval.splits; the metrics' `run` entry is the predictions' run record."""
    task = get_task(task_name)
    for phase in PHASES:
        record = read_json(paths.predictions(task.name, phase, "run"))
        results: dict[str, Any] = {}
        for split_name in params.eval.splits:
            scores = score(task, read_json(paths.predictions(task.name, phase, split_name)))
            results[split_name] = scores
            print(f"{task.name} {phase} [{split_name}]: {headline(task, scores)}")
        results["run"] = {key: value for key, value in record.items()  # what `dvc exp show` needs to see
                          if key not in ("prompt_template", "train_label_counts")}
        write_json(paths.metrics_file(task.name, phase), results)


def headline(task: Task, scores: dict[str, Any]) -> str:
    """The console line: the task's own headline metrics (tasks/<task>.yaml `metrics.headline`)."""
    return ", ".join(f"{key} {scores[key]:.4g}" for key in task.metrics.headline
                     if isinstance(scores.get(key), int | float))
