"""Completion-only fine-tuning with the Hugging Face Trainer: the loss sees the answer tokens only."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tuneval.config import Params
from tuneval.evaluation import build_prompt
from tuneval.tasks import Task

IGNORE_INDEX = -100  # label value the cross-entropy loss skips


def encode_example(task: Task, example: dict, tokenizer, max_length: int) -> dict[str, list[int]]:
    """Prompt ids (same builder as evaluation) + target ids; labels mask the prompt with -100."""
    target = tokenizer(task.target(example), add_special_tokens=False).input_ids
    prompt = build_prompt(task, example, [], tokenizer, max_length - len(target))
    return {"input_ids": prompt + target, "labels": [IGNORE_INDEX] * len(prompt) + target}


@dataclass
class CompletionCollator:
    """Right-pads a batch to its longest example (never to a global max length)."""

    pad_token_id: int

    def __call__(self, features: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            labels[i, :n] = torch.tensor(f["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def training_arguments(params: Params, output_dir: Path):
    """TrainingArguments from params: effective batch = per-device batch x accumulation = `batch_size`."""
    from transformers import TrainingArguments

    from tuneval.modeling import pick_dtype

    bf16 = pick_dtype(params.model.dtype) == torch.bfloat16
    return TrainingArguments(
        output_dir=str(output_dir),
        learning_rate=params.lr,
        num_train_epochs=params.epochs,
        per_device_train_batch_size=params.train.per_device_batch_size,
        gradient_accumulation_steps=params.batch_size // params.train.per_device_batch_size,
        lr_scheduler_type="linear",
        warmup_steps=params.train.warmup_ratio,  # a float < 1 is a fraction of all steps
        weight_decay=params.train.weight_decay,
        seed=params.seed,
        data_seed=params.seed,
        bf16=bf16,
        logging_steps=params.train.logging_steps,
        logging_first_step=True,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        train_sampling_strategy="group_by_length" if params.train.group_by_length else "random",
        dataloader_num_workers=0,
    )


def train(task: Task, params: Params, base_model: str | Path, train_rows: list[dict[str, Any]],
          out_dir: Path, live_dir: Path) -> dict[str, float]:
    """Fine-tune `base_model` on `train_rows`, save model + tokenizer to `out_dir`, log to dvclive."""
    from transformers import Trainer
    from transformers.integrations import DVCLiveCallback

    from dvclive import Live
    from tuneval.modeling import load_model, load_tokenizer

    tokenizer = load_tokenizer(base_model)
    model = load_model(base_model, dtype="float32")  # master weights in fp32; bf16 autocast when supported
    model.train()
    dataset = [encode_example(task, r, tokenizer, params.train.max_length) for r in train_rows]
    live = Live(dir=str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None)
    trainer = Trainer(
        model=model,
        args=training_arguments(params, out_dir.parent / f".{out_dir.name}-work"),
        train_dataset=dataset,
        data_collator=CompletionCollator(tokenizer.pad_token_id),
        callbacks=[DVCLiveCallback(live=live)],
    )
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    tokens = sum(len(x["input_ids"]) for x in dataset) * params.epochs
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    trainer.save_model(str(out_dir))
    (out_dir / "training_args.bin").unlink(missing_ok=True)  # pickles temp paths: would break byte-identity
    tokenizer.save_pretrained(out_dir)
    stats = {  # deterministic numbers only: timings are printed, never stored as metrics
        "train_loss": round(result.training_loss, 6),
        "train_examples": len(dataset),
        "train_tokens": tokens,
        "answer_tokens": sum(sum(1 for t in x["labels"] if t != IGNORE_INDEX) for x in dataset) * params.epochs,
    }
    print(f"trained {len(dataset)} examples x {params.epochs} epochs in {seconds:.1f}s "
          f"({tokens / seconds:,.0f} tokens/s, loss {stats['train_loss']:.4f})")
    return stats
