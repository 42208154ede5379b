"""The zeroshot_eval and eval stages: predictions of the base or fine-tuned model on every split in eval.splits.

They write predictions and the run record only; metrics come from the predictions in the score stage (seconds),
so a metric change never reruns a model.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from typing import Any

from tuneval import paths
from tuneval.config import Params
from tuneval.data import draw
from tuneval.io import read_jsonl, write_json
from tuneval.tasks import Task, get_task
from tuneval.usage import peak_memory_mb


def predict_phase(task_name: str, params: Params, *, phase: str) -> None:
    """Predict with the base (zeroshot) or fine-tuned model on every split in eval.splits, same examples both."""
    from tuneval.models.loading import load_model, load_tokenizer, require_trained
    from tuneval.route import compute_route
    from tuneval.scoring.engine import EvalSettings
    from tuneval.scoring.parallel import check_processes, predict_parallel

    check_processes(params.eval.num_processes)  # before any model loads
    start = time.perf_counter()
    task = get_task(task_name)
    model_path = paths.BASE_MODEL if phase == "zeroshot" else paths.finetuned(task.name)
    tokenizer = load_tokenizer(model_path)
    if phase == "finetuned":
        require_trained(model_path, paths.BASE_MODEL)
    model = load_model(model_path, dtype=params.model.dtype)
    settings = EvalSettings.from_params(params)
    demo_rows = read_jsonl(paths.split_file(task.name, "pool"))  # demonstrations: never the training draw
    for split_name in params.eval.splits:
        rows = draw(read_jsonl(paths.eval_rows_file(task.name, split_name)), params.eval.limit,
                    f"{params.data.seed}-limit")
        predictions = predict_parallel(task, model, tokenizer, model_path, params.model.dtype, rows, demo_rows,
                                       settings, params.eval.num_processes)
        write_json(paths.predictions(task.name, phase, split_name), predictions)
        print(f"{task.name} {phase} [{split_name}]: {len(rows):,} predictions")
    record = {**run_facts(task, params, model), "route": compute_route(model, params.model.dtype)}
    if phase == "finetuned" and task.label_field:  # the majority-class baseline, in git with the predictions
        record["train_label_counts"] = train_label_counts(task, read_jsonl(paths.split_file(task.name, "train")))
    write_json(paths.predictions(task.name, phase, "run"), {**record, "prompt_template": task.prompt})
    print(f"{task.name} {phase}: {time.perf_counter() - start:.0f}s, peak memory {peak_memory_mb():,.0f} MiB")


def train_label_counts(task: Task, rows: list[dict[str, Any]]) -> dict[str, int]:
    """The training draw's label counts: what the majority-class baseline predicts (zero-shot never reads the draw,
    so resizing it does not rescore the base model)."""
    counts = Counter(str(row[task.label_field]) for row in rows)
    return {str(label): counts[str(label)] for label in task.labels}


def run_facts(task: Task, params: Params, model) -> dict[str, Any]:
    """What the phase was scored with, short enough for `dvc metrics show` (the score stage copies it into the
    metrics file's `run` entry; the full prompt template stays in run.json)."""
    return {
        "num_fewshot": params.eval.num_fewshot,
        "prompt_sha": hashlib.sha256(task.prompt.encode()).hexdigest()[:12],
        "dtype": str(model.dtype).removeprefix("torch."),
        "chat_template": params.eval.chat_template,
    }
