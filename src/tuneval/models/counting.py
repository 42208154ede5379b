"""Parameter counts of the base and the fine-tuned model: total, trainable, embedding, and a LoRA adapter's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneval.models.loading import adapter_base, load_model


def parameter_counts(model) -> dict[str, int]:
    """Unique parameters (tied input/output embeddings counted once)."""
    unique = {id(p): p for p in model.parameters()}.values()
    embedding_params = {id(p) for p in model.get_input_embeddings().parameters()}
    output = model.get_output_embeddings()
    if output is not None:
        embedding_params |= {id(p) for p in output.parameters()}
    return {
        "total": sum(p.numel() for p in unique),
        "trainable": sum(p.numel() for p in unique if p.requires_grad),
        "embedding": sum(p.numel() for p in unique if id(p) in embedding_params),
    }


def adapter_parameter_count(adapter_dir: str | Path) -> int:
    """Parameters stored in a PEFT adapter directory (adapters are small: loading them is cheap)."""
    from safetensors.torch import load_file

    return sum(t.numel() for t in load_file(Path(adapter_dir) / "adapter_model.safetensors").values())


def count_parameters(base: Path, finetuned: Path, trainable: int) -> dict[str, dict[str, Any]]:
    """metrics/<task>/params.json: `base` and `finetuned` counts; `trainable` is what the training run reported
    (the loaded fine-tuned model has nothing left to train). A LoRA run adds its adapter to the base's total."""
    counts = {"base": parameter_counts(load_model(base, dtype="float32", device="cpu"))}
    if adapter_base(finetuned) is not None:  # the adapter is what was trained and is published
        adapter = adapter_parameter_count(finetuned)
        counts["finetuned"] = {**counts["base"], "adapter": adapter, "total": counts["base"]["total"] + adapter}
    else:
        counts["finetuned"] = parameter_counts(load_model(finetuned, dtype="float32", device="cpu"))
    counts["finetuned"]["trainable"] = trainable
    return counts


def count_params(task_name: str, params) -> None:
    """The count_params stage: metrics/<task>/params.json for the base and the fine-tuned model."""
    from tuneval import paths
    from tuneval.io import read_json, write_json
    from tuneval.train.job import TRAINING_INFO

    info = read_json(paths.finetuned(task_name) / TRAINING_INFO)
    counts = count_parameters(paths.BASE_MODEL, paths.finetuned(task_name), info["trainable_parameters"])
    write_json(paths.metrics_file(task_name, "params"), counts)
    extra = f", adapter {counts['finetuned']['adapter']:,}" if "adapter" in counts["finetuned"] else ""
    print(f"{task_name}: base {counts['base']['total']:,} parameters ({counts['base']['embedding']:,} in "
          f"embeddings), trainable {info['trainable_parameters']:,}{extra}")
