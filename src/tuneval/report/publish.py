"""publish/<task>: the folder that is uploaded to the Hub, exactly as it will be there.

A LoRA run publishes its adapter (PEFT format, the card's `base_model` naming the hub model it goes on) unless
`publish.merge` asks for the merged model; a full fine-tune publishes its weights and tokenizer. Files are hard
links to models/<task> where the filesystem allows: no second copy on disk.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tuneval import paths
from tuneval.config import Params
from tuneval.errors import ModelLoadError
from tuneval.io import read_json
from tuneval.report.card import build_model_card
from tuneval.report.summary import Row
from tuneval.tasks import Task


def write_publish_folder(task: Task, params: Params, repo_id: str, rows: Sequence[Row],
                         runs: Mapping[str, Mapping[str, Any]], out: Path) -> None:
    """Fill the (new, empty) directory `out`: the weights or adapter of models/<task>, then the model card."""
    from tuneval.models.gguf import read_source
    from tuneval.models.loading import adapter_base
    from tuneval.models.source import RECORD_FILE, read_record

    base = read_record(paths.BASE_MODEL)
    if base is None:
        raise ModelLoadError(f"{paths.BASE_MODEL}/{RECORD_FILE} is missing: models/base was written by an older "
                             "tuneval; rerun `dvc repro base_model`")
    finetuned = paths.finetuned(task.name)
    lora = adapter_base(finetuned) is not None
    adapter = lora and not params.publish.merge
    if lora and params.publish.merge:
        _save_merged(finetuned, out)
    else:  # README.md: the card below replaces peft's stub (a link would write through into models/)
        shutil.copytree(finetuned, out, copy_function=_link_or_copy, ignore=shutil.ignore_patterns("README.md"))
    if adapter:  # the PEFT convention: the adapter names the hub model it goes on
        _point_adapter_at(out, base.hub_base_model() or str(paths.BASE_MODEL))
    counts = read_json(paths.metrics_file(task.name, "params"))
    card = build_model_card(task, params, repo_id, rows, runs, counts, base_model=base.hub_base_model(),
                            source=read_source(paths.BASE_MODEL), adapter=adapter)
    card.save(out / "README.md")


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link (no second copy on disk); linked files are never written to, only replaced."""
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(src, dst)


def _point_adapter_at(folder: Path, base: str) -> None:
    config_path = folder / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = base
    config_path.unlink()  # a hard link into models/ (and the DVC cache): replace it, never edit it in place
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _save_merged(adapter_dir: Path, out: Path) -> None:
    from tuneval.models.loading import load_model, load_tokenizer

    model = load_model(adapter_dir, dtype="float32", device="cpu")  # base + adapter, merged
    model.save_pretrained(out)
    load_tokenizer(adapter_dir).save_pretrained(out)


def publish(task_name: str, params: Params) -> None:
    """The publish stage: publish/<task> (weights or adapter, model card); uploads only if publish.push is on and
    a token is set."""
    from tuneval.config import PHASES
    from tuneval.io import atomic_path
    from tuneval.report.card import push_folder, resolve_repo_id
    from tuneval.report.study import compare_phases
    from tuneval.tasks import get_task

    task = get_task(task_name)
    metrics, rows, _ = compare_phases(task, params.data.seed, params.report.allow_mixed_routes)
    runs = {phase: metrics[phase]["run"] for phase in PHASES}
    repo_id = resolve_repo_id(params, task.name)
    with atomic_path(paths.publish_dir(task.name)) as out:
        write_publish_folder(task, params, repo_id, rows, runs, out)
    push_folder(paths.publish_dir(task.name), params, repo_id)
