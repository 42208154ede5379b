"""The Hub side of `publish`: a model card with the study's numbers, and an upload that is all or nothing."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tuneval.config import Params
from tuneval.errors import PublishError
from tuneval.report.summary import (
    PHASE_NAMES,
    PHASES,
    Row,
    abstention_lines,
    labelled,
    method_note,
    route_text,
    run_facts,
    table_lines,
)
from tuneval.tasks import Task

HUB_TASK_TYPES = {"multiple_choice": "text-classification", "generate": "question-answering"}


def resolve_repo_id(params: Params, task: str) -> str:
    if params.publish.repo_id:
        return params.publish.repo_id.format(task=task)
    return f"{params.model.name.split('/')[-1].lower()}-tuneval-{task}"


def eval_results(task: Task, rows: Sequence[Row]) -> list:
    """model-index entries: every headline metric (the task's own list) of every evaluated split, both phases."""
    from huggingface_hub import EvalResult

    spec = task.metrics
    return [
        EvalResult(
            task_type=HUB_TASK_TYPES[task.kind], dataset_type=task.hub_dataset,
            dataset_name=task.hub_dataset.split("/")[-1], dataset_split=row.split,
            metric_type=spec.hub_type(row.metric),
            metric_name=f"{labelled(row.metric, spec.display_name(row.metric))} ({PHASE_NAMES[phase]})",
            metric_value=round(float(getattr(row, phase)), 4),
        )
        for row in rows
        for phase in PHASES
    ]


def build_model_card(task: Task, params: Params, repo_id: str, rows: Sequence[Row],
                     runs: Mapping[str, Mapping[str, Any]], counts: dict[str, dict[str, int]],
                     base_model: str | None = None, source: Mapping[str, Any] | None = None,
                     adapter: bool = False):
    """huggingface_hub ModelCard: metadata (base model, dataset, license, model-index) + a readable body.

    `rows` are the task's comparison rows (reporting.compare_split), `runs` maps phase -> the metrics file's
    `run` entry, `counts` is metrics/<task>/params.json. The body is `card_sections`, in order. `base_model` is the
    hub id the weights derive from (ModelSource.hub_base_model; None for tiny and local models), `source` the
    GGUF record of models/base (models.gguf.read_source); `adapter` means the folder holds a PEFT adapter,
    published the PEFT way: `base_model` in the metadata, `library_name: peft`.
    """
    from huggingface_hub import ModelCard, ModelCardData

    license_name = (source or {}).get("license_name") or params.publish.license  # a base's terms carry over
    tags = ["tuneval", task.name, "dvc", *(["lora"] if adapter else []), *(["gguf-dequantized"] if source else [])]
    data = ModelCardData(
        base_model=base_model, datasets=[task.hub_dataset], license=license_name, language="en",
        library_name="peft" if adapter else "transformers", pipeline_tag="text-generation", model_name=repo_id,
        tags=tags, eval_results=eval_results(task, rows),
    )
    sections = card_sections(task, params, repo_id, rows, runs, counts)
    if source is not None:
        sections.insert(2, _source_section(source, adapter))
    body = "\n\n".join(sections) + "\n"
    return ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n" + body)


def card_sections(task: Task, params: Params, repo_id: str, rows: Sequence[Row],
                  runs: Mapping[str, Mapping[str, Any]], counts: dict[str, dict[str, int]]) -> list[str]:
    """The card body, one markdown section per entry (add a section here to extend the card); a task that
    abstains (SQuAD v2) gets an abstention section after the results."""
    abstention = [_abstention_section(task, rows)] if task.abstain is not None else []
    return [
        _intro_section(task, params, repo_id),
        _results_section(task, rows, runs),
        *[section for section in abstention if section],
        _training_section(task, params, counts),
        _prompt_section(task, runs),
        _limits_section(task),
    ]


def _intro_section(task: Task, params: Params, repo_id: str) -> str:
    return f"""# {repo_id}

`{params.model.name}` fine-tuned on **{task.name}** ({task.hub_dataset}) with
tuneval, a DVC pipeline that scores the model zero-shot and again after fine-tuning,
with the same code on the same examples."""


def _results_section(task: Task, rows: Sequence[Row], runs: Mapping[str, Mapping[str, Any]]) -> str:
    table = "\n".join(table_lines(rows, with_task=False, metric_label=task.metrics.display_name))
    return f"""## Results

Metrics are {"fractions (0-1)" if task.metrics.scale == "fraction" else "percentages (0-100)"}; evaluation:
{run_facts(runs)}; compute route: {route_text(runs)}.

{table}

{method_note(rows)}"""


def _abstention_section(task: Task, rows: Sequence[Row]) -> str:
    """Abstention measured the SQuAD v2 way, for both phases: greedy F1, F1 at a held-out no-answer threshold
    (cross-fit over article folds: how, and the thresholds), best F1 labelled as the in-sample upper bound it is,
    the no-answer AUROC with its interval, the answer rate; '' when the rows have none of them."""
    lines = abstention_lines(rows, label=task.metrics.display_name)
    if not lines:
        return ""
    body = "\n".join(lines)
    return f"""## Abstention

When to say "unanswerable" is part of SQuAD v2. Each number below is for both phases, by the same rule;
brackets are 95% intervals by the method named on each line.

{body}"""


def _training_section(task: Task, params: Params, counts: dict[str, dict[str, int]]) -> str:
    return f"""## Training

- method: {params.train.method} fine-tuning, loss on the answer tokens only (prompt tokens masked)
- learning rate {params.lr}, {params.epochs} epochs, batch size {params.batch_size}, training seed {params.seed}
- training examples: a seeded draw of {params.data.train_examples[task.name]} from the train side of an 80/20
  split (data.seed {params.data.seed}) of the task's train data (`data.source: {params.data.source}`)
- parameters: {counts['finetuned']['total']:,} total, {counts['finetuned']['trainable']:,} trainable,
  {counts['finetuned']['embedding']:,} in embeddings"""


def _prompt_section(task: Task, runs: Mapping[str, Mapping[str, Any]]) -> str:
    return f"""## Prompt

Template (sha `{runs["finetuned"].get("prompt_sha")}`):

```
{task.prompt}
```"""


def _source_section(source: Mapping[str, Any], adapter: bool) -> str:
    upstream = source.get("upstream") or source.get("hub_repo") or "the GGUF's model"
    origin = (f"pip package `{source['package']}=={source['package_version']}`" if source.get("package")
              else f"`{source.get('hub_repo') or source['file']}`")
    terms = "the Gemma Terms of Use" if source.get("license_name") == "gemma" else "see the base model's card"
    use = (f"Load it with peft on top of `{upstream}`: `PeftModel.from_pretrained(base, repo_id)`."
           if adapter else "The weights here are a full model.")
    return f"""## Base weights

The base model is `{upstream}`, but not its original weights: a {source.get('quantization') or 'quantized'}
GGUF (llama.cpp) from {origin} (sha256 `{source['sha256']}`), dequantized to fp32 by transformers and
fine-tuned from there. The 4-bit round trip costs some quality against the original checkpoint, and the
zero-shot numbers above are those of the dequantized model. {use} The base model's license terms apply:
{terms}."""


def _limits_section(task: Task) -> str:
    return f"""## Intended use and limits

A research artifact for comparing zero-shot and fine-tuned behaviour on {task.name}. It is not a
general-purpose assistant, has not been evaluated for safety or bias, and inherits the limits and license
of its base model and of the dataset ({task.hub_dataset})."""


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
