"""The Trainer run: completion-only fine-tuning, where the loss (and the lm_head) sees the answer tokens only.

`fit` runs in this process, or in each rank that train/rank.py starts under `accelerate launch`. Full
fine-tuning saves the whole model and its tokenizer; LoRA saves the PEFT adapter alone (the unit that is
published), which evaluation loads on top of models/base.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from tuneval.config import Params, micro_batch_size
from tuneval.train.batches import IGNORE_INDEX, answer_positions, data_collator, encode_example
from tuneval.train.checkpoints import resumable_checkpoint, trim_live_logs
from tuneval.train.job import TRAINING_INFO, TrainJob
from tuneval.usage import peak_memory_mb


def log_every(params: Params, num_examples: int) -> int:
    """Optimizer steps between loss points: train.log_points points per run whatever its length (a 25-example run
    of a learning curve and the default 400 both show their curve), at least one step apart."""
    steps = math.ceil(num_examples / params.batch_size) * params.epochs
    return max(1, steps // params.train.log_points)


def training_arguments(params: Params, task: str, output_dir: Path, compute_dtype: torch.dtype,
                       evaluating: bool = False, num_examples: int = 0):
    """TrainingArguments for `task` from params: effective batch = per-device batch (the task's micro-batch) x
    processes x accumulation = `batch_size`. `compute_dtype` is model.dtype resolved (pick_dtype), once per run,
    by the caller; `num_examples` (the training rows) sets how often losses are logged."""
    from transformers import TrainingArguments

    # bf16 autocast wherever model.dtype resolves to bf16. For LoRA over a bf16 base, running without autocast
    # (peft casts into its fp32 adapters) measured the same here: 361 vs 373 tokens/s, same loss.
    bf16 = compute_dtype == torch.bfloat16
    micro_batch = micro_batch_size(params.train, task)
    per_step = micro_batch * params.train.num_processes
    every = log_every(params, num_examples)
    return TrainingArguments(
        output_dir=str(output_dir),
        learning_rate=params.lr,
        num_train_epochs=params.epochs,
        per_device_train_batch_size=micro_batch,
        per_device_eval_batch_size=micro_batch,
        gradient_accumulation_steps=params.batch_size // per_step,
        lr_scheduler_type="linear",
        warmup_steps=params.train.warmup_steps,  # a float < 1 is a fraction of all steps
        weight_decay=params.train.weight_decay,
        seed=params.seed,
        data_seed=params.seed,
        bf16=bf16,  # autocast: bf16 matmuls, fp32 master weights and optimizer state
        use_cpu=not torch.cuda.is_available(),  # CPU autocast needs it said explicitly
        activation_checkpointing=params.train.activation_checkpointing,
        torch_compile=params.train.torch_compile,
        logging_steps=every,
        logging_first_step=True,
        eval_strategy="steps" if evaluating else "no",
        eval_steps=every,
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


def weights_dtype(params: Params, compute_dtype: torch.dtype) -> str:
    """The dtype the base weights are loaded in for training.

    Full fine-tuning keeps fp32 master weights (bf16 compute through autocast where `model.dtype` resolves to
    bf16): AdamW updates of ~lr x weight vanish in bf16's 8-bit mantissa. LoRA trains only the adapters, which
    peft keeps in fp32; the frozen base can then sit in bf16 (half the memory, and no per-step weight casts)."""
    lora_bf16 = params.train.method == "lora" and compute_dtype == torch.bfloat16
    return "bfloat16" if lora_bf16 else "float32"


def _quiet(*_args: object) -> None:
    """print() for ranks other than 0."""


def wrap_lora(model, params: Params):
    """peft LoRA adapters on the configured modules; the base weights are frozen."""
    from peft import LoraConfig, get_peft_model

    lora = params.train.lora
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=list(lora.target_modules), task_type="CAUSAL_LM")
    return get_peft_model(model, config)


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


def eval_timer():
    """A callback that adds up the seconds of the eval-loss passes, so the summary can give training's own
    tokens/s (on SQuAD v2 the two passes over 32 development rows were 13-16% of the train stage)."""
    from transformers import TrainerCallback

    class EvalTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds, self.passes = 0.0, 0

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            self.seconds += (metrics or {}).get("eval_runtime", 0.0)
            self.passes += 1

    return EvalTimer()


def answer_loss(model, inputs: dict[str, Any], num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
    """Cross-entropy over the answer tokens, with the lm_head run on the answer positions only.

    Equal to the model's own loss (`model(**inputs).loss`: logits at every position, prompt labels -100), summed
    over answer tokens and divided by `num_items_in_batch` (the Trainer's count over all accumulated micro-batches)
    or, without it, by this batch's answer tokens. tests/test_training.py checks loss and gradients against it."""
    inputs = dict(inputs)
    labels = inputs.pop("labels")
    keep = answer_positions(labels)
    logits = model(**inputs, logits_to_keep=keep).logits  # [answer tokens, vocab]
    targets = labels[:, 1:][keep[:, :-1]]
    total = F.cross_entropy(logits.float(), targets, ignore_index=IGNORE_INDEX, reduction="sum")
    count = num_items_in_batch if num_items_in_batch is not None else (targets != IGNORE_INDEX).sum()
    return total / count


def stable_adapter_config(adapter_dir: Path) -> None:
    """Rewrite peft's adapter_config.json with `target_modules` sorted: peft keeps them as a set, whose order
    follows Python's per-process string hashing, so the same run wrote different bytes (and dvc.lock a different
    hash for models/<task>) from one process to the next."""
    path = adapter_dir / "adapter_config.json"
    config = json.loads(path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _completion_trainer_class():
    from transformers import Trainer

    class CompletionTrainer(Trainer):
        """A Trainer with the answer-only loss, and whose evaluation leaves the random state as it found it."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not self.model_accepts_loss_kwargs:  # then the Trainer scales a per-batch mean for accumulation
                num_items_in_batch = None
            loss = answer_loss(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # DDP averages; the count was summed over ranks
            return (loss, {}) if return_outputs else loss  # no logits to hand back: eval is loss-only

        def evaluate(self, *args, **kwargs):
            # Each eval DataLoader draws a seed from torch's global generator, which would reshuffle the
            # following epochs: watching the eval loss must not change the model (a test compares weights).
            cpu = torch.random.get_rng_state()
            cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
            try:
                return super().evaluate(*args, **kwargs)
            finally:
                torch.random.set_rng_state(cpu)
                if cuda is not None:
                    torch.cuda.set_rng_state_all(cuda)

    return CompletionTrainer


def fit(job: TrainJob, params: Params, resuming: bool, callbacks: Sequence = ()) -> dict[str, Any]:
    """The Trainer run itself, in this process (one of several under `accelerate launch`): rank 0 logs and saves."""
    from dvclive import Live
    from tuneval.data import draw
    from tuneval.io import read_jsonl
    from tuneval.models.loading import load_model, load_tokenizer, pick_dtype
    from tuneval.tasks import get_task

    task = get_task(job.task)
    tokenizer = load_tokenizer(job.base_model)
    compute_dtype = pick_dtype(params.model.dtype)  # model.dtype resolved once for this run
    model = load_model(job.base_model, dtype=weights_dtype(params, compute_dtype), device="cpu")  # Trainer places it
    model.set_attn_implementation(params.train.attn_implementation)  # training's kernels; evaluation keeps its own
    if params.train.method == "lora":
        torch.manual_seed(params.seed)  # LoRA's A matrices are drawn here, before the Trainer seeds anything
        model = wrap_lora(model, params)
        model.peft_config["default"].base_model_name_or_path = str(job.base_model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    model.train()
    encode = functools.partial(encode_example, task, tokenizer=tokenizer, max_length=params.train.max_length,
                               max_prompt_tokens=params.eval.max_prompt_tokens, chat_template=params.eval.chat_template)
    dataset = [encode(r) for r in read_jsonl(job.train_file)]
    watch = job.eval_file is not None and params.train.eval_examples is not None
    watched = read_jsonl(job.eval_file) if watch else []
    eval_rows = draw(watched, params.train.eval_examples, f"{params.data.seed}-watch")
    eval_dataset = [encode(r) for r in eval_rows] or None
    args = training_arguments(params, job.task, job.checkpoint_dir, compute_dtype, evaluating=eval_dataset is not None,
                              num_examples=len(dataset))
    if args.world_size != params.train.num_processes:  # e.g. a launcher that fell back to independent processes
        raise RuntimeError(f"train.num_processes={params.train.num_processes} but the Trainer sees "
                           f"{args.world_size} process(es): check the accelerate launch configuration")
    main = args.process_index == 0
    checkpoint = resumable_checkpoint(job.checkpoint_dir, print if main else _quiet) if resuming else None
    timer = eval_timer()
    callbacks = [*callbacks, timer]  # extra TrainerCallbacks (benchmarks time the loop with one)
    if main:  # one writer for dvclive; other ranks only compute
        if checkpoint:
            trim_live_logs(job.live_dir, int(checkpoint.rsplit("-", 1)[1]))
        live = Live(dir=str(job.live_dir), dvcyaml=None, save_dvc_exp=False, report=None, resume=bool(checkpoint))
        callbacks.append(live_callback(live))
    trainer = _completion_trainer_class()(
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
    if params.train.method == "lora":  # the adapter alone (PEFT format); eval loads it on top of the base
        model.save_pretrained(job.out_dir)
        stable_adapter_config(job.out_dir)
    else:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(job.out_dir)
        tokenizer.save_pretrained(job.out_dir)
    (job.out_dir / TRAINING_INFO).write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
    training = seconds - timer.seconds  # tokens/s of training alone: the eval-loss passes are timed apart
    rate = f"{tokens / training:,.0f} tokens/s" if checkpoint is None else f"resumed from {Path(checkpoint).name}"
    print(f"trained {len(dataset)} examples x {params.epochs} epochs on {args.world_size} process(es) in "
          f"{seconds:.1f}s ({training:.1f}s training, {rate}; {timer.seconds:.1f}s in {timer.passes} eval-loss "
          f"passes), mean loss {result.training_loss:.4f}, peak memory {peak_memory_mb():,.0f} MiB on rank 0")
    return stats
