"""Completion-only fine-tuning with the Hugging Face Trainer: the loss sees the answer tokens only."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
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
TRAINING_INFO = "tuneval_training.json"  # written beside the fine-tuned weights


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
        activation_checkpointing=params.train.gradient_checkpointing,
        torch_compile=params.train.torch_compile,
        logging_steps=params.train.logging_steps,
        logging_first_step=True,
        save_strategy="steps" if params.train.save_steps else "no",
        save_steps=params.train.save_steps or 500,
        save_total_limit=1,  # keep only the newest checkpoint: resumable, and the disk does not fill up
        eval_strategy="no",
        report_to="none",
        train_sampling_strategy="group_by_length" if params.train.group_by_length else "random",
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def fingerprint(params: Params, base_model: Path, train_file: Path) -> str:
    """What a checkpoint was trained from: resuming is only safe when all of it is unchanged."""
    digest = hashlib.sha256()
    digest.update(json.dumps([params.lr, params.epochs, params.batch_size, params.seed, params.model.dtype,
                              dataclasses.asdict(params.train)], sort_keys=True).encode())
    for path in [train_file, *sorted(p for p in Path(base_model).rglob("*") if p.is_file())]:
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def resumable_checkpoint(checkpoint_dir: Path, print_fn=print) -> str | None:
    """The newest `checkpoint-N` in `checkpoint_dir`, or None (the caller has checked the fingerprint)."""
    found = sorted(checkpoint_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    complete = [p for p in found if (p / "trainer_state.json").is_file()]  # a kill mid-save leaves no state
    if complete:
        print_fn(f"resuming from {complete[-1]}")
        return str(complete[-1])
    return None


def prepare_checkpoints(checkpoint_dir: Path, stamp: str) -> bool:
    """Keep checkpoints only if they were made from the same fingerprint. Returns True if resuming."""
    stamp_file = checkpoint_dir / "fingerprint.txt"
    if stamp_file.is_file() and stamp_file.read_text().strip() == stamp and any(checkpoint_dir.glob("checkpoint-*")):
        return True
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    checkpoint_dir.mkdir(parents=True)
    stamp_file.write_text(stamp + "\n")
    return False


def wrap_lora(model, params: Params):
    """peft LoRA adapters on the configured modules; the base weights are frozen."""
    from peft import LoraConfig, get_peft_model

    lora = params.train.lora
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=list(lora.target_modules), task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def peak_memory_mb() -> float:
    """Peak GPU memory allocated (CUDA) or peak resident memory of this process (CPU), in MiB."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def train(task: Task, params: Params, base_model: str | Path, train_file: Path, out_dir: Path, live_dir: Path,
          checkpoint_dir: Path) -> dict[str, Any]:
    """Fine-tune `base_model` on `train_file`, save the (merged) model + tokenizer to `out_dir`.

    Checkpoints go to `checkpoint_dir` every `train.save_steps`; a rerun with the same fingerprint resumes
    from the newest one, and a finished run prunes them. Loss and learning rate go to dvclive.
    """
    from transformers import Trainer
    from transformers.integrations import DVCLiveCallback

    from dvclive import Live
    from tuneval.io import read_jsonl
    from tuneval.modeling import load_model, load_tokenizer

    resuming = prepare_checkpoints(checkpoint_dir, fingerprint(params, Path(base_model), train_file))
    if not resuming:
        shutil.rmtree(live_dir, ignore_errors=True)
    tokenizer = load_tokenizer(base_model)
    model = load_model(base_model, dtype="float32")  # master weights in fp32; bf16 autocast when supported
    if params.train.method == "lora":
        model = wrap_lora(model, params)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    model.train()
    dataset = [encode_example(task, r, tokenizer, params.train.max_length) for r in read_jsonl(train_file)]
    live = Live(dir=str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None, resume=resuming)
    trainer = Trainer(
        model=model,
        args=training_arguments(params, checkpoint_dir),
        train_dataset=dataset,
        data_collator=CompletionCollator(tokenizer.pad_token_id),
        callbacks=[DVCLiveCallback(live=live)],
    )
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resumable_checkpoint(checkpoint_dir) if resuming else None)
    seconds = time.perf_counter() - start
    if params.train.method == "lora":
        model = model.merge_and_unload()  # publish and count the merged model; adapters are counted below
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    tokens = sum(len(x["input_ids"]) for x in dataset) * params.epochs
    stats = {  # deterministic numbers only: timings are printed, never stored as metrics
        "method": params.train.method,
        "trainable_parameters": trainable,
        "train_examples": len(dataset),
        "train_tokens": tokens,
        "answer_tokens": sum(sum(1 for t in x["labels"] if t != IGNORE_INDEX) for x in dataset) * params.epochs,
    }
    (out_dir / TRAINING_INFO).write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
    for old in checkpoint_dir.glob("checkpoint-*"):  # finished: intermediate checkpoints are pruned
        shutil.rmtree(old)
    print(f"trained {len(dataset)} examples x {params.epochs} epochs in {seconds:.1f}s "
          f"({tokens / seconds:,.0f} tokens/s, mean loss {result.training_loss:.4f}, "
          f"peak memory {peak_memory_mb():,.0f} MiB)")
    return stats
