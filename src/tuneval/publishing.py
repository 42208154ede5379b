"""The Hub side of `publish`: a model card with the study's numbers, and an upload that is all or nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tuneval.config import Params
from tuneval.modeling import is_tiny
from tuneval.tasks import Task

HUB_TASK_TYPES = {"multiple_choice": "text-classification", "generate": "question-answering"}
CARD_METRICS = {  # metric key in our JSON -> (model-index metric type, display name)
    "accuracy": ("accuracy", "Accuracy"),
    "f1": ("f1", "F1"),
    "macro_f1": ("f1", "Macro F1"),
    "exact": ("exact_match", "Exact match"),
    "best_f1": ("f1", "Best F1"),
    "HasAns_f1": ("f1", "HasAns F1"),
    "NoAns_f1": ("f1", "NoAns F1"),
    "bleu": ("bleu", "BLEU"),
    "rougeL": ("rouge", "ROUGE-L"),
    "meteor": ("meteor", "METEOR"),
}
PHASE_NAMES = {"zeroshot": "zero-shot", "finetuned": "fine-tuned"}


class PublishError(RuntimeError):
    """Publishing was asked for but cannot happen; nothing was uploaded."""


def resolve_repo_id(params: Params, task: str) -> str:
    if params.publish.repo_id:
        return params.publish.repo_id.format(task=task)
    return f"{params.model.name.split('/')[-1].lower()}-tuneval-{task}"


def eval_results(task: Task, metrics: dict[str, dict[str, Any]]) -> list:
    """model-index entries: every headline metric of every evaluated split, for both phases."""
    from huggingface_hub import EvalResult

    results = []
    for phase, by_split in metrics.items():
        for split, scores in by_split.items():
            if not isinstance(scores, dict) or split == "conventions":
                continue
            for key, (metric_type, label) in CARD_METRICS.items():
                if key in scores:
                    results.append(EvalResult(
                        task_type=HUB_TASK_TYPES[task.kind], dataset_type=task.hub_dataset,
                        dataset_name=task.hub_dataset.split("/")[-1], dataset_split=split,
                        metric_type=metric_type, metric_name=f"{label} ({PHASE_NAMES[phase]})",
                        metric_value=round(float(scores[key]), 4),
                    ))
    return results


def build_model_card(task: Task, params: Params, repo_id: str, metrics: dict[str, dict[str, Any]],
                     counts: dict[str, dict[str, int]]):
    """huggingface_hub ModelCard: metadata (base model, dataset, license, model-index) + a readable body."""
    from huggingface_hub import ModelCard, ModelCardData

    base = None if is_tiny(params.model.name) else params.model.name
    data = ModelCardData(
        base_model=base, datasets=[task.hub_dataset], license=params.publish.license, language="en",
        library_name="transformers", pipeline_tag="text-generation", model_name=repo_id,
        tags=["tuneval", task.name, "dvc"], eval_results=eval_results(task, metrics),
    )
    rows = []
    zeroshot, finetuned = metrics["zeroshot"], metrics["finetuned"]
    for split, scores in finetuned.items():
        if not isinstance(scores, dict) or split == "conventions":
            continue
        for key, (_, label) in CARD_METRICS.items():
            if key in scores and key in zeroshot.get(split, {}):
                before, after = zeroshot[split][key], scores[key]
                rows.append(f"| {split} | {label} | {before:.4f} | {after:.4f} | {after - before:+.4f} |")
    body = f"""# {repo_id}

`{params.model.name}` fine-tuned on **{task.name}** ({task.hub_dataset}) with
tuneval, a DVC pipeline that scores the model zero-shot and again after fine-tuning,
with the same code on the same examples.

## Results

| split | metric | zero-shot | fine-tuned | Δ |
| --- | --- | ---: | ---: | ---: |
{chr(10).join(rows)}

## Training

- method: {params.train.method} fine-tuning, loss on the answer tokens only (prompt tokens masked)
- learning rate {params.lr}, {params.epochs} epochs, batch size {params.batch_size}, seed {params.seed}
- train split: 80/20 split (seed {params.seed}) of the task's train data (`data.source: {params.data.source}`)
- parameters: {counts['finetuned']['total']:,} total, {counts['finetuned']['trainable']:,} trainable,
  {counts['finetuned']['embedding']:,} in embeddings

## Prompt

```
{task.prompt}
```

## Intended use and limits

A research artifact for comparing zero-shot and fine-tuned behaviour on {task.name}. It is not a
general-purpose assistant, has not been evaluated for safety or bias, and inherits the limits and license
of its base model and of the dataset ({task.hub_dataset}).
"""
    return ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n" + body)


def push_folder(folder: Path, params: Params, repo_id: str, api=None) -> bool:
    """Upload `folder` as one commit (all files or none). Returns True if pushed, False for a dry run."""
    token = os.environ.get("HF_TOKEN")
    if not params.publish.push:
        print(f"dry run: {folder} holds exactly what would be uploaded to {repo_id} "
              "(set publish.push: true and HF_TOKEN to upload)")
        return False
    if not token:
        raise PublishError(
            f"publish.push is true but HF_TOKEN is not set, so nothing was uploaded to {repo_id}. "
            "Create a write token at https://huggingface.co/settings/tokens and `export HF_TOKEN=...` "
            "(never put it in params.yaml)."
        )
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    url = api.create_repo(repo_id, private=params.publish.private, exist_ok=True, repo_type="model")
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                      commit_message=f"tuneval: upload {folder.name}")
    print(f"pushed {folder} to {url}")
    return True
