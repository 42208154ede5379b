"""Completion-only fine-tuning with the Hugging Face Trainer: the loss sees the answer tokens only."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
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


def data_collator(params: Params, tokenizer, model):
    """Length-padded batches, or padding-free packing (`train.packing`): one row per micro-batch whose position
    ids restart at every example; transformers turns that into a block-diagonal causal mask (sdpa / eager) or
    variable-length kernels (flash-attention), so no example sees another. Labels keep their -100 prompt mask."""
    if not params.train.packing:
        return CompletionCollator(tokenizer.pad_token_id)
    from transformers import DataCollatorWithFlattening

    flash = "flash" in str(getattr(model.config, "_attn_implementation", ""))
    flatten = DataCollatorWithFlattening(return_flash_attn_kwargs=flash)

    def packed(features):
        # use_cache=False: transformers only reads packed position ids when there is no KV cache; the model's
        # default (a cache, even in training) would silently let every example attend to those before it.
        return {**flatten(features), "use_cache": False}

    return packed


def training_arguments(params: Params, output_dir: Path, evaluating: bool = False):
    """TrainingArguments from params: effective batch = per-device batch x processes x accumulation = `batch_size`."""
    from transformers import TrainingArguments

    from tuneval.modeling import pick_dtype

    bf16 = pick_dtype(params.model.dtype) == torch.bfloat16
    per_step = params.train.per_device_batch_size * params.train.num_processes
    return TrainingArguments(
        output_dir=str(output_dir),
        learning_rate=params.lr,
        num_train_epochs=params.epochs,
        per_device_train_batch_size=params.train.per_device_batch_size,
        per_device_eval_batch_size=params.train.per_device_batch_size,
        gradient_accumulation_steps=params.batch_size // per_step,
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
        eval_strategy="steps" if evaluating else "no",
        eval_steps=params.train.eval_steps,
        prediction_loss_only=True,  # eval loss only: never gather [examples x length x vocab] logits
        save_strategy="steps" if params.train.save_steps else "no",
        save_steps=params.train.save_steps or 500,
        save_total_limit=1,  # keep only the newest checkpoint: resumable, and the disk does not fill up
        report_to="none",
        train_sampling_strategy="group_by_length" if params.train.group_by_length else "random",
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        ddp_find_unused_parameters=False,  # every parameter gets a gradient (LoRA: frozen ones need none)
    )


def fingerprint(params: Params, job: TrainJob) -> str:
    """What a checkpoint was trained from: resuming is only safe when all of it is unchanged."""
    digest = hashlib.sha256()
    digest.update(json.dumps([params.lr, params.epochs, params.batch_size, params.seed, params.model.dtype,
                              dataclasses.asdict(params.train)], sort_keys=True).encode())
    inputs = [job.train_file, job.eval_file] if job.eval_file else [job.train_file]
    for path in [*inputs, *sorted(p for p in Path(job.base_model).rglob("*") if p.is_file())]:
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


def _quiet(*_args: object) -> None:
    """print() for ranks other than 0."""


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


# Kept out of the dvclive metrics in git: the Trainer's end-of-run timings (they differ run to run) and its
# `train_loss`, a mean over the steps since the process started (after a resume, only the resumed part).
UNSTABLE_LOG_KEYS = re.compile(r"runtime|per_second|flos|^train_loss$")


def live_callback(live):
    """DVCLiveCallback with the optimizer step as the x axis (dvclive would count log calls, so every eval
    would shift the curves) and without the run-to-run timing keys, so `dvc exp show` shows only what matters."""
    from transformers.integrations import DVCLiveCallback

    class StepAlignedDVCLiveCallback(DVCLiveCallback):
        def on_log(self, args, state, control, model=None, logs=None, **kwargs):
            logs = {k: v for k, v in (logs or {}).items() if not UNSTABLE_LOG_KEYS.search(k)}
            self.live.step = state.global_step
            super().on_log(args, state, control, model=model, logs=logs, **kwargs)

    return StepAlignedDVCLiveCallback(live=live)


def trim_live_logs(live_dir: Path, last_step: int) -> None:
    """Drop dvclive points after `last_step`: a resumed run logs those steps again (else they would repeat).
    A line cut short by the kill (too few fields) goes too."""
    for tsv in (live_dir / "plots" / "metrics").rglob("*.tsv"):
        header, *rows = tsv.read_text().splitlines() or [""]
        names = header.split("\t")
        if "step" not in names:  # empty or cut inside the header: dvclive writes it again
            tsv.unlink()
            continue
        column = names.index("step")
        kept = [row for row in rows if len(row.split("\t")) == len(names) and _step_of(row, column) <= last_step]
        tsv.write_text("\n".join([header, *kept]) + "\n")


def _step_of(row: str, column: int) -> float:
    try:
        return int(row.split("\t")[column])
    except ValueError:
        return float("inf")


def _monitoring_trainer_class():
    from transformers import Trainer

    class MonitoringTrainer(Trainer):
        """A Trainer whose evaluation leaves the random state as it found it: each eval DataLoader draws a seed
        from torch's global generator, which would reshuffle the following epochs. Watching the eval loss
        must not change the model (a test trains with and without it and compares the weights)."""

        def evaluate(self, *args, **kwargs):
            cpu = torch.random.get_rng_state()
            cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
            try:
                return super().evaluate(*args, **kwargs)
            finally:
                torch.random.set_rng_state(cpu)
                if cuda is not None:
                    torch.cuda.set_rng_state_all(cuda)

    return MonitoringTrainer


def train(job: TrainJob, params: Params) -> dict[str, Any]:
    """Fine-tune `job.base_model` on `job.train_file` into `job.out_dir` (merged model + tokenizer).

    Checkpoints go to `job.checkpoint_dir` every `train.save_steps`; a rerun with the same fingerprint resumes
    from the newest one, and a finished run prunes them. With `train.num_processes > 1` the fitting runs
    under `accelerate launch` (see tuneval.distributed); this process keeps the checkpoint bookkeeping.
    """
    resuming = prepare_checkpoints(job.checkpoint_dir, fingerprint(params, job))
    if not resuming:
        shutil.rmtree(job.live_dir, ignore_errors=True)
    if params.train.num_processes > 1:
        from tuneval.distributed import launch

        launch(job, params, resuming)
        stats = json.loads((job.out_dir / TRAINING_INFO).read_text())
    else:
        stats = fit(job, params, resuming)
    for old in job.checkpoint_dir.glob("checkpoint-*"):  # finished: intermediate checkpoints are pruned
        shutil.rmtree(old)
    return stats


def fit(job: TrainJob, params: Params, resuming: bool, callbacks: Sequence = ()) -> dict[str, Any]:
    """The Trainer run itself, in this process (one of several under `accelerate launch`): rank 0 logs and saves."""
    from dvclive import Live
    from tuneval.io import read_jsonl
    from tuneval.modeling import load_model, load_tokenizer
    from tuneval.tasks import get_task

    task = get_task(job.task)
    tokenizer = load_tokenizer(job.base_model)
    # fp32 master weights (bf16 autocast where supported); on CPU: the Trainer places it on its rank's device
    model = load_model(job.base_model, dtype="float32", device="cpu")
    if params.train.method == "lora":
        model = wrap_lora(model, params)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    model.train()
    encode = functools.partial(encode_example, task, tokenizer=tokenizer, max_length=params.train.max_length)
    dataset = [encode(r) for r in read_jsonl(job.train_file)]
    watch = job.eval_file is not None and params.train.eval_examples is not None
    eval_rows = read_jsonl(job.eval_file)[: params.train.eval_examples] if watch else []
    eval_dataset = [encode(r) for r in eval_rows] or None
    args = training_arguments(params, job.checkpoint_dir, evaluating=eval_dataset is not None)
    if args.world_size != params.train.num_processes:  # e.g. a launcher that fell back to independent processes
        raise RuntimeError(f"train.num_processes={params.train.num_processes} but the Trainer sees "
                           f"{args.world_size} process(es): check the accelerate launch configuration")
    main = args.process_index == 0
    checkpoint = resumable_checkpoint(job.checkpoint_dir, print if main else _quiet) if resuming else None
    callbacks = list(callbacks)  # extra TrainerCallbacks (benchmarks time the loop with one)
    if main:  # one writer for dvclive; other ranks only compute
        if checkpoint:
            trim_live_logs(job.live_dir, int(checkpoint.rsplit("-", 1)[1]))
        live = Live(dir=str(job.live_dir), dvcyaml=None, save_dvc_exp=False, report=None, resume=bool(checkpoint))
        callbacks.append(live_callback(live))
    trainer = _monitoring_trainer_class()(
        model=model,
        args=args,
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        data_collator=data_collator(params, tokenizer, model),
        callbacks=callbacks,
    )
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - start
    tokens = sum(len(x["input_ids"]) for x in dataset) * params.epochs
    stats = {  # deterministic numbers only: timings are printed, never stored as metrics
        "method": params.train.method,
        "trainable_parameters": trainable,
        "train_examples": len(dataset),
        "train_tokens": tokens,
        "answer_tokens": sum(sum(1 for t in x["labels"] if t != IGNORE_INDEX) for x in dataset) * params.epochs,
        "optimizer_steps": result.global_step,
        "num_processes": args.world_size,
    }
    if not main:
        return stats
    if params.train.method == "lora":
        model = model.merge_and_unload()  # publish and count the merged model; adapters are counted below
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(job.out_dir)
    tokenizer.save_pretrained(job.out_dir)
    (job.out_dir / TRAINING_INFO).write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
    print(f"trained {len(dataset)} examples x {params.epochs} epochs on {args.world_size} process(es) in "
          f"{seconds:.1f}s ({tokens / seconds:,.0f} tokens/s, mean loss {result.training_loss:.4f}, "
          f"peak memory {peak_memory_mb():,.0f} MiB on rank 0)")
    return stats
