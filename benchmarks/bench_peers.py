"""Peer comparisons: tuneval against the tools a user would otherwise reach for, as ratios on this machine.

    python benchmarks/bench_peers.py                      # models/base (Gemma-3-270M), bf16: ~5-8 min on 2 cores
    python benchmarks/bench_peers.py --only train --train-task squad_v2   # the SQuAD v2 LoRA step: ~5-10 min more
    python benchmarks/bench_peers.py --only squad --squad-n 10 --no-append
    python benchmarks/bench_peers.py --model tiny --dtype float32 --train-steps 2 --warmup 1 --squad-n 6 \
        --sst2-n 8 --no-append                            # smoke test (< 1 min)

1. Training: tuneval's LoRA step (train/trainer.py's `training_arguments`, `wrap_lora`, the answer-only loss;
   train/batches.py's `encode_example` and `data_collator`) against TRL's `SFTTrainer` with `peft_config` and
   `completion_only_loss=True` on pre-tokenized `input_ids` + `completion_mask`. Both get the same token ids and
   loss mask, model, LoRA config, initial adapter weights (tuneval's seeded init, copied into TRL's adapter and
   checked by digest), micro-batches in the same order (length-grouped once, as tuneval's sampler groups them,
   then read sequentially by both), AdamW settings, schedule and dtype (bf16 autocast over a bf16 base, as the
   train stage runs LoRA). Each side runs in its own process, so each has its own peak RSS. Reported: the median
   seconds per optimizer step after the warm-up steps, peak memory, both sides' losses at every timed step.
2. SQuAD v2 answers: the engine (`engine.predict`: shared-prefix prefill, abstention scored in the same pass)
   against a plain batched greedy `model.generate` loop on the same prompts (`build_prompts`), batches of
   eval.batch_size, max_new_tokens = eval.max_new_tokens, stopping at the first token holding a newline; answers
   compared after the task's `to_answer`. When the answers differ in bf16 (batching rounds differently), both
   sides run again in float32, where they must be identical.
3. SST-2: the engine against lm-evaluation-harness in the same dtype (bench_eval.py's `run_lm_eval`).

Ratios are peer time / tuneval time (above 1: tuneval is faster). Prints a table, and appends a dated record to
the "Peer comparisons" section of benchmarks/README.md unless --no-append. Exit 1 when the losses differ by more
than 1% at some timed step, the two trainers saw different batches or initial adapters, or float32 answers /
predictions differ. benchmarks/bench_gpu.py --peers runs the same comparisons on a GPU (`run_peers`).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchlib / bench_eval, also when imported elsewhere

import torch  # noqa: E402
from bench_eval import (  # noqa: E402  (sets HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)
    common_prefix,
    load_squad,
    load_sst2,
    prepare_model_dir,
    run_engine,
    run_lm_eval,
)
from benchlib import REPO, data_dir, dtype_name, print_table, shape_of, shape_of_dir, study_params  # noqa: E402

from tuneval.data import draw, normalize  # noqa: E402
from tuneval.io import read_jsonl  # noqa: E402
from tuneval.models.loading import cpu_has_native_bf16, load_model, load_tokenizer  # noqa: E402
from tuneval.route import ROUTE_FLAGS, compute_route, cpu_name_and_flags  # noqa: E402
from tuneval.scoring import engine as E  # noqa: E402
from tuneval.tasks import get_task  # noqa: E402
from tuneval.tasks.prompting import build_prompts  # noqa: E402
from tuneval.train.batches import IGNORE_INDEX, data_collator, encode_example  # noqa: E402

README = REPO / "benchmarks" / "README.md"
SECTION = "## Peer comparisons"
SECTION_INTRO = """\
`bench_peers.py` runs tuneval's pieces against the tools a user would otherwise reach for, on the same inputs,
and appends one dated record per run below (oldest first):

- **LoRA step** against TRL's `SFTTrainer` (`peft_config`, `completion_only_loss=True` on pre-tokenized
  `input_ids` + `completion_mask`): the same token ids and loss mask, model, LoRA config, initial adapter weights
  (checked by digest), micro-batches in the same order, AdamW settings and dtype; each side in its own process.
  Median seconds per optimizer step after warm-up steps, peak RSS, and both sides' losses step by step.
- **SQuAD v2 answers** against a plain batched greedy `generate` loop on the same prompts, stopping at the newline;
  answers compared after the task's `to_answer`, in float32 too when bf16 batching makes them differ.
- **SST-2** against lm-evaluation-harness in the same dtype (`bench_eval.py`'s lm-eval side).

Ratios are peer time / tuneval time (above 1: tuneval is faster); compare them within a record, not absolute
times across records. Each record says where one side wins by doing less work and whether the peer has an option
that closes the gap on that hardware.

```bash
.venv/bin/python -m pip install -e ".[bench]"   # trl and lm_eval
python benchmarks/bench_peers.py                # models/base, bf16, defaults below: ~5-8 min on 2 quiet cores
# --train-steps 6 --warmup 2 --train-task sst2 --squad-n 40 --sst2-n 200 --only train|squad|sst2 --no-append
python benchmarks/bench_peers.py --only train --train-task squad_v2   # longer rows: TRL's steps take ~15-30 s here
```
"""
DEFAULT_MODEL = "models/base"
PARTS = ("train", "squad", "sst2")
TRAIN_FILES = {"squad_v2": "squad_v2/train_partial.jsonl.gz", "sst2": "sst2/train.jsonl"}
TOLERANCE = 0.01  # relative loss difference allowed at each timed step
# TrainingArguments both trainers must share (TRL's SFTConfig gets them from tuneval's own training_arguments)
SAME_ARGS = ("learning_rate", "lr_scheduler_type", "warmup_steps", "weight_decay", "optim", "adam_beta1",
             "adam_beta2", "adam_epsilon", "max_grad_norm", "seed", "data_seed", "bf16", "fp16", "use_cpu",
             "per_device_train_batch_size", "gradient_accumulation_steps", "max_steps", "train_sampling_strategy",
             "activation_checkpointing", "torch_compile", "dataloader_num_workers", "dataloader_pin_memory",
             "logging_steps", "disable_tqdm")


def versions() -> dict[str, str | None]:
    out = {}
    for package in ("torch", "transformers", "peft", "accelerate", "trl", "lm_eval"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def resolve_model(spec: str, workdir: Path) -> Path:
    """`tiny` / `135m`: built in `workdir` (bench_eval.py); a directory: itself; models/base when it is absent:
    the study's base model converted once into the user cache (tuneval.models.gguf, as `tuneval eval` does)."""
    if spec in ("tiny", "135m"):
        return prepare_model_dir(spec, workdir)
    path = Path(spec)
    if path.is_dir():
        return path.resolve()
    if spec == DEFAULT_MODEL:
        from tuneval.models.gguf import cached_conversion

        model_cfg = study_params().model
        print(f"{DEFAULT_MODEL} is absent: using {model_cfg.name} from the user cache (converted there once, ~70 s)",
              flush=True)
        return cached_conversion(model_cfg)
    raise SystemExit(f"--model {spec}: no such model directory (or `tiny` / `135m`)")


def model_facts(model_dir: Path) -> dict[str, Any]:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    shape = shape_of_dir(model_dir)
    return {"architecture": (config.architectures or [config.model_type])[0],
            "parameters": shape.body_params + shape.vocab * shape.hidden, "body_parameters": shape.body_params,
            "hidden": shape.hidden, "vocab": shape.vocab}


def sync(device: str | None = None) -> None:
    if torch.cuda.is_available() and device != "cpu":
        torch.cuda.synchronize()


# ============================================================================================ 1. training
@dataclasses.dataclass
class TrainSpec:
    """What both training processes are given (JSON between the parent and the sides)."""

    model_dir: str
    dtype: str  # compute dtype: bfloat16 (autocast over a bf16 base) or float32
    task: str
    warmup: int
    steps: int
    data_dir: str
    workdir: str


def training_examples(spec: TrainSpec, tokenizer, params) -> list[dict[str, list[int]]]:
    """(warm-up + timed steps) x batch_size training rows, a seeded draw from the task's train file, encoded as
    the train stage encodes them and put in the order tuneval's length-grouped sampler would draw them (seeded),
    so both trainers can read them sequentially and see the same micro-batches."""
    from transformers.trainer_pt_utils import get_length_grouped_indices

    task = get_task(spec.task)
    n = (spec.warmup + spec.steps) * params.batch_size
    rows = normalize(task, read_jsonl(Path(spec.data_dir) / TRAIN_FILES[spec.task]))
    rows = draw(rows, n, f"{params.data.seed}-peers")
    if len(rows) < n:
        raise SystemExit(f"{spec.task}: {len(rows)} training rows, {n} needed")
    encoded = [encode_example(task, r, tokenizer, params.train.max_length, params.eval.max_prompt_tokens,
                              params.eval.chat_template) for r in rows]
    order = get_length_grouped_indices([len(e["input_ids"]) for e in encoded], params.batch_size,
                                       generator=torch.Generator().manual_seed(params.seed))
    return [encoded[i] for i in order]


def lora_state(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().float().cpu().clone() for name, p in model.named_parameters() if p.requires_grad}


def digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load_lora(model, state: dict[str, torch.Tensor]) -> None:
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if set(params) != set(state):
        raise RuntimeError(f"adapter parameters differ: {sorted(set(params) ^ set(state))[:4]}")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(state[name].to(p.dtype))


def step_recorder():
    """A TrainerCallback recording the wall time at the end of every optimizer step, the logged losses, the
    initial adapter digest, and (through `batch`, called from compute_loss) each micro-batch's content."""
    from transformers import TrainerCallback

    class StepRecorder(TrainerCallback):
        def __init__(self) -> None:
            self.ends: list[float] = []
            self.losses: dict[int, float] = {}
            self.batches: list[dict[str, Any]] = []
            self.initial = ""

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.initial = digest(lora_state(model))
            sync()
            self.ends = [time.perf_counter()]

        def on_step_end(self, args, state, control, **kwargs):
            sync()
            self.ends.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.losses[state.global_step] = float(logs["loss"])

        def batch(self, inputs) -> None:
            h = hashlib.sha256()
            for key in ("input_ids", "attention_mask", "labels"):
                h.update(key.encode() + inputs[key].detach().cpu().numpy().tobytes())
            labels = inputs["labels"]
            self.batches.append({"digest": h.hexdigest()[:16], "rows": labels.shape[0], "width": labels.shape[1],
                                 "answer_positions": int((labels[:, 1:] != IGNORE_INDEX).sum()),
                                 "tokens": int(inputs["attention_mask"].sum())})

    return StepRecorder()


def recording(trainer_class, recorder):
    """`trainer_class` whose compute_loss first records the micro-batch it is given."""

    class Recording(trainer_class):
        def compute_loss(self, model, inputs, *args, **kwargs):
            recorder.batch(inputs)
            return super().compute_loss(model, inputs, *args, **kwargs)

    return Recording


def tuneval_arguments(params, spec: TrainSpec, compute_dtype: torch.dtype, examples: int, output_dir: Path):
    """The train stage's TrainingArguments, fixed to (warm-up + timed) steps, read in order, a loss at every step."""
    from tuneval.train.trainer import training_arguments

    args = training_arguments(params, spec.task, output_dir, compute_dtype, evaluating=False, num_examples=examples)
    args.max_steps = spec.warmup + spec.steps
    args.train_sampling_strategy = "sequential"  # the examples come length-grouped already (training_examples)
    args.logging_steps = 1
    args.disable_tqdm = True
    return args


def sft_config(args, output_dir: Path):
    """TRL's SFTConfig with tuneval's optimizer, schedule, batch layout, dtype and sampling (SAME_ARGS); TRL's own
    defaults that would differ are set back (gradient checkpointing, shuffling, truncation, packing)."""
    from trl import SFTConfig

    return SFTConfig(output_dir=str(output_dir), **{key: getattr(args, key) for key in SAME_ARGS},
                     save_strategy="no", eval_strategy="no", report_to="none", completion_only_loss=True,
                     packing=False, padding_free=False, shuffle_dataset=False, max_length=None)


def run_train_side(side: str, spec: TrainSpec) -> dict[str, Any]:
    """One side's training run, in this process (the parent starts one process per side)."""
    from tuneval.train.trainer import _completion_trainer_class, weights_dtype, wrap_lora

    params = dataclasses.replace(study_params(), train=dataclasses.replace(study_params().train, save_steps=None))
    compute = getattr(torch, spec.dtype)
    workdir = Path(spec.workdir)
    tokenizer = load_tokenizer(spec.model_dir)
    model = load_model(spec.model_dir, dtype=weights_dtype(params, compute), device="cpu")  # the Trainer places it
    model.set_attn_implementation(params.train.attn_implementation)
    examples = training_examples(spec, tokenizer, params)
    args = tuneval_arguments(params, spec, compute, len(examples), workdir / f"{side}_out")
    recorder = step_recorder()
    initial_file = workdir / "initial_adapter.pt"
    out: dict[str, Any] = {"side": side}
    torch.manual_seed(params.seed)  # as `fit` does right before wrapping: LoRA's A matrices are drawn here
    if side == "tuneval":
        model = wrap_lora(model, params)
        model.train()
        torch.save(lora_state(model), initial_file)
        trainer = recording(_completion_trainer_class(), recorder)(
            model=model, args=args, train_dataset=examples, data_collator=data_collator(params, tokenizer, model),
            callbacks=[recorder])
        out["lora"] = model.peft_config["default"].to_dict()
    else:
        import trl
        from datasets import Dataset
        from peft import LoraConfig
        from trl import SFTTrainer
        from trl.kernels.chunked_logprob import _use_triton

        lora = params.train.lora  # the LoraConfig `wrap_lora` builds
        peft_config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                 target_modules=list(lora.target_modules), task_type="CAUSAL_LM")
        config = sft_config(args, workdir / f"{side}_out")
        different = {k: (str(getattr(args, k)), str(getattr(config, k))) for k in SAME_ARGS
                     if getattr(args, k) != getattr(config, k)}
        if different:
            raise RuntimeError(f"SFTConfig differs from tuneval's TrainingArguments: {different}")
        dataset = Dataset.from_list([{"input_ids": e["input_ids"],
                                      "completion_mask": [int(label != IGNORE_INDEX) for label in e["labels"]]}
                                     for e in examples])
        trainer = recording(SFTTrainer, recorder)(model=model, args=config, train_dataset=dataset,
                                                  processing_class=tokenizer, peft_config=peft_config,
                                                  callbacks=[recorder])
        initial = torch.load(initial_file)
        out["seeded_init_equal"] = digest(lora_state(trainer.model)) == digest(initial)
        load_lora(trainer.model, initial)  # tuneval's initial adapter, exactly
        out["lora"] = trainer.model.peft_config["default"].to_dict()
        out["trl"] = trl.__version__
        out["compact_head"] = bool(_use_triton(trainer.args.device))
    trainer.train()
    from tuneval.usage import peak_memory_mb

    out["lora"] = {k: sorted(v) if isinstance(v, (set, list)) else v for k, v in out["lora"].items()
                   if k in ("r", "lora_alpha", "lora_dropout", "target_modules", "bias", "use_rslora", "use_dora")}
    return out | {"dtype": spec.dtype, "device": str(trainer.args.device), "initial_adapter": recorder.initial,
                  "step_ends": recorder.ends, "losses": {str(k): v for k, v in recorder.losses.items()},
                  "batches": recorder.batches, "micro_batch": args.per_device_train_batch_size,
                  "accumulation": args.gradient_accumulation_steps, "shape": dataclasses.asdict(shape_of(model)),
                  "peak_rss_mib": round(peak_rss_mib()),
                  "peak_cuda_mib": round(peak_memory_mb()) if torch.cuda.is_available() else None}


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def train_dtype(dtype: str, device: str) -> tuple[str, str | None]:
    """The training comparison's dtype, and why it is not `dtype`. On a CPU without bf16 instructions tuneval's
    bf16 matmuls run as fp32 GEMMs (models/cpu_bf16.py overrides aten's mm/addmm/bmm/baddbmm), but TRL's fused LM
    head multiplies with `torch.mm(..., out=...)`, which that route does not cover: it would run in torch's
    generic bf16 loops (1.8-24 GFLOP/s there), minutes per step. Both sides then train in float32."""
    if dtype == "bfloat16" and device == "cpu" and not cpu_has_native_bf16():
        return "float32", ("this CPU has no bf16 instructions: TRL's LM head (`torch.mm(out=...)`) would miss the "
                           "fp32-GEMM route tuneval's bf16 takes here, so both sides trained in float32")
    return dtype, None


def compare_training(model_dir: Path, dtype: str, task: str, warmup: int, steps: int, data: Path, workdir: Path,
                     device: str) -> dict[str, Any]:
    """Both sides, one process each (tuneval first: it writes the initial adapter TRL starts from)."""
    dtype, dtype_note = train_dtype(dtype, device)
    spec = TrainSpec(str(model_dir), dtype, task, warmup, steps, str(data), str(workdir))
    spec_file = workdir / "train_spec.json"
    spec_file.write_text(json.dumps(dataclasses.asdict(spec)))
    env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": ""} if device == "cpu" else {}))
    sides = {}
    for side in ("tuneval", "trl"):
        result_file, log_file = workdir / f"train_{side}.json", workdir / f"train_{side}.log"
        print(f"train: {side} side ({task}, {dtype}, {warmup} warm-up + {steps} timed steps)...", flush=True)
        start = time.perf_counter()
        with log_file.open("w") as log:
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_train-side", side, "--_spec",
                                   str(spec_file), "--_result", str(result_file)], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-40:])
            raise RuntimeError(f"the {side} training process failed (exit {proc.returncode}):\n{tail}")
        sides[side] = json.loads(result_file.read_text()) | {"process_s": time.perf_counter() - start}
    return summarize_training(sides, warmup, steps) | {"task": task, "dtype": dtype, "dtype_note": dtype_note}


def summarize_training(sides: dict[str, dict], warmup: int, steps: int) -> dict[str, Any]:
    ours, theirs = sides["tuneval"], sides["trl"]
    timed = list(range(warmup + 1, warmup + steps + 1))  # global steps 1..; the first `warmup` are not timed

    def step_seconds(side: dict) -> list[float]:
        ends = side["step_ends"]  # [train begin, end of step 1, end of step 2, ...]
        return [ends[k] - ends[k - 1] for k in timed]

    losses = [(k, ours["losses"][str(k)], theirs["losses"][str(k)]) for k in timed]
    rel = [abs(a - b) / max(abs(a), 1e-12) for _, a, b in losses]
    per_step = ours["accumulation"]
    timed_batches = ours["batches"][warmup * per_step:(warmup + steps) * per_step]
    ours_s, theirs_s = statistics.median(step_seconds(ours)), statistics.median(step_seconds(theirs))
    return {
        "steps": steps, "warmup": warmup, "micro_batch": ours["micro_batch"], "accumulation": per_step,
        "device": ours["device"], "trl": theirs.get("trl"), "lora": ours["lora"],
        "lora_equal": ours["lora"] == theirs["lora"],
        "tuneval_step_s": ours_s, "trl_step_s": theirs_s, "time_ratio": theirs_s / ours_s,
        "tuneval_steps_s": step_seconds(ours), "trl_steps_s": step_seconds(theirs),
        "tuneval_peak_rss_mib": ours["peak_rss_mib"], "trl_peak_rss_mib": theirs["peak_rss_mib"],
        "memory_ratio": theirs["peak_rss_mib"] / ours["peak_rss_mib"],
        "tuneval_peak_cuda_mib": ours["peak_cuda_mib"], "trl_peak_cuda_mib": theirs["peak_cuda_mib"],
        "losses": [{"step": k, "tuneval": a, "trl": b} for k, a, b in losses],
        "max_rel_loss_diff": max(rel), "losses_agree": max(rel) <= TOLERANCE,
        "batches_identical": [b["digest"] for b in ours["batches"]] == [b["digest"] for b in theirs["batches"]],
        "initial_adapter_equal": ours["initial_adapter"] == theirs["initial_adapter"],
        "initial_adapter": ours["initial_adapter"], "trl_seeded_init_equal": theirs["seeded_init_equal"],
        "trl_compact_head": theirs["compact_head"], "shape": ours["shape"],
        "process_s": {"tuneval": ours["process_s"], "trl": theirs["process_s"]},
        # per timed optimizer step: what each side's lm_head projects
        "tokens_per_step": sum(b["tokens"] for b in timed_batches) / steps,
        "answer_positions_per_step": sum(b["answer_positions"] for b in timed_batches) / steps,
        "all_positions_per_step": sum(b["rows"] * (b["width"] - 1) for b in timed_batches) / steps,
    }


# ============================================================================================ 2. SQuAD v2
@torch.inference_mode()
def hf_generate(model, tokenizer, prompts: list[list[int]], max_new_tokens: int, batch_size: int
                ) -> tuple[list[str], float]:
    """A plain batched greedy `generate` loop: prompts in their order, batches left-padded to their longest, each
    row stopping at its first token holding a newline (eos_token_id = every such token, the same set the engine
    stops at). Answers after the task's `to_answer`, and the wall seconds (the stop-token scan included)."""
    task = get_task("squad_v2")
    pad = tokenizer.pad_token_id
    start = time.perf_counter()
    stops = E.stop_token_ids(tokenizer, task.stop)
    texts: list[str] = []
    for i in range(0, len(prompts), batch_size):
        batch = prompts[i:i + batch_size]
        width = max(len(p) for p in batch)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in batch], device=model.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device=model.device)
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=stops, pad_token_id=pad, temperature=None, top_p=None, top_k=None)
        texts += tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
    sync()
    return [task.to_answer(t) for t in texts], time.perf_counter() - start


def squad_once(model, tokenizer, rows: list[dict], settings, dtype: str) -> dict[str, Any]:
    task = get_task("squad_v2")
    prompts = build_prompts(task, rows, [[] for _ in rows], tokenizer, settings.max_prompt_tokens,
                            settings.chat_template)
    model.generate(input_ids=torch.tensor([prompts[0]], device=model.device), max_new_tokens=2, do_sample=False,
                   pad_token_id=tokenizer.pad_token_id, temperature=None, top_p=None, top_k=None)  # warm-up
    engine, engine_s = run_engine("squad_v2", model, tokenizer, rows, settings)
    answers, hf_s = hf_generate(model, tokenizer, prompts, settings.max_new_tokens, settings.batch_size)
    print(f"squad_v2: generate {len(rows)} questions in {hf_s:.1f}s", flush=True)
    identical = sum(a == p["prediction"] for a, p in zip(answers, engine, strict=True))
    return {"dtype": dtype, "n": len(rows), "engine_s": engine_s, "hf_s": hf_s, "time_ratio": hf_s / engine_s,
            "identical": identical,
            "differing": [{"id": p["id"], "engine": p["prediction"], "generate": a}
                          for a, p in zip(answers, engine, strict=True) if a != p["prediction"]][:10]}


def compare_squad(model, tokenizer, model_dir: Path, rows: list[dict], settings, dtype: str, device: str
                  ) -> dict[str, Any]:
    """Engine vs `generate` in `dtype`; again in float32 when bf16 batching made some answers differ."""
    task = get_task("squad_v2")
    prompts = build_prompts(task, rows, [[] for _ in rows], tokenizer, settings.max_prompt_tokens,
                            settings.chat_template)
    contexts: dict[str, list[list[int]]] = {}
    for row, prompt in zip(rows, prompts, strict=True):
        contexts.setdefault(row["context"], []).append(prompt)
    shared = sum(common_prefix(g) + sum(len(p) - common_prefix(g) for p in g) for g in contexts.values())
    runs = [squad_once(model, tokenizer, rows, settings, dtype)]
    if runs[0]["identical"] < len(rows) and dtype != "float32":
        print(f"squad_v2: {runs[0]['identical']}/{len(rows)} answers identical in {dtype}; again in float32",
              flush=True)
        fp32 = load_model(model_dir, dtype="float32", device=device)
        runs.append(squad_once(fp32, tokenizer, rows, settings, "float32"))
        del fp32
    return {"runs": runs, "n": len(rows), "contexts": len(contexts), "prompt_tokens": sum(len(p) for p in prompts),
            "shared_prompt_tokens": shared, "batch_size": settings.batch_size,
            "max_new_tokens": settings.max_new_tokens}


# ============================================================================================ 3. SST-2
def compare_sst2(model, tokenizer, model_dir: Path, rows: list[dict], settings, dtype: str, workdir: Path
                 ) -> dict[str, Any]:
    """bench_eval.py's SST-2 engine and lm-eval sides on the same sentences, in `dtype`."""
    task = get_task("sst2")
    engine, engine_s = run_engine("sst2", model, tokenizer, rows, settings)
    lm = run_lm_eval(model_dir, dtype, rows, settings.batch_size, workdir)
    identical = sum(lm["predicted"][p["id"]] == p["predicted"] for p in engine)
    prompts = build_prompts(task, rows, [[] for _ in rows], tokenizer, settings.max_prompt_tokens,
                            settings.chat_template)
    shape = shape_of(model)
    tokens = sum(len(p) for p in prompts)
    return {"dtype": dtype, "n": len(rows), "engine_s": engine_s, "lm_eval_s": lm["seconds"],
            "lm_eval_loglikelihood_s": lm["loglikelihood_s"], "lm_eval_load_s": lm["load_s"],
            "time_ratio": lm["seconds"] / engine_s, "loglikelihood_ratio": lm["loglikelihood_s"] / engine_s,
            "identical": identical, "lm_eval": lm["version"], "batch_size": settings.batch_size,
            "prompt_tokens": tokens,
            # one logit row per sentence (engine) vs every position of every prompt (lm-eval, its context cache on)
            "engine_flops": shape.forward_flops(tokens, len(rows)),
            "lm_eval_flops": shape.forward_flops(tokens, tokens)}


# ============================================================================================ all three
def machine(dtype: str, device: str) -> dict[str, Any]:
    """compute_route's facts (device, bf16 route, threads, git revision) + the CPU and every flag that decides
    the route, + the peers' versions."""
    route = compute_route(dtype=getattr(torch, dtype))
    cpu, flags = cpu_name_and_flags()
    gpu = torch.cuda.get_device_name() if device == "cuda" else None
    return {"route": route, "cpu": cpu, "flags": {flag: flag in flags for flag in ROUTE_FLAGS}, "gpu": gpu,
            "device": device, "threads": torch.get_num_threads(), "versions": versions()}


def run_peers(model: str = DEFAULT_MODEL, dtype: str = "bfloat16", parts: tuple[str, ...] = PARTS,
              train_steps: int = 6, warmup: int = 2, train_task: str = "sst2", squad_n: int = 40,
              sst2_n: int = 200, device: str | None = None, data: Path | None = None) -> dict[str, Any]:
    """The comparisons in `parts` on this machine (device: cuda where there is one, else cpu). JSON-safe."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("device cuda: no CUDA GPU here")
    dtype = dtype_name(dtype)
    data = data or data_dir()
    params = study_params()
    settings = E.EvalSettings.from_params(params)
    started = datetime.datetime.now(datetime.timezone.utc)
    results: dict[str, Any] = {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "model": model, "dtype": dtype,
                               "data": str(data), "machine": machine(dtype, device),
                               "sizes": {"train_steps": train_steps, "warmup": warmup, "train_task": train_task,
                                         "squad_n": squad_n, "sst2_n": sst2_n}, "parts": list(parts)}
    with tempfile.TemporaryDirectory(prefix="bench_peers_") as tmp:
        workdir = Path(tmp)
        model_dir = resolve_model(model, workdir)
        results["model_facts"] = model_facts(model_dir)
        if model not in ("tiny", "135m") and Path(model).resolve() != model_dir.resolve():
            results["model_facts"]["resolved"] = _short_path(str(model_dir))
        clock = {"t": time.perf_counter()}

        def lap(part: str) -> None:
            now = time.perf_counter()
            results["part_seconds"][part] = round(now - clock["t"], 1)
            clock["t"] = now

        results["part_seconds"] = {}
        if "train" in parts:
            results["train"] = compare_training(model_dir, dtype, train_task, warmup, train_steps, data, workdir,
                                                device)
            if not results["train"]["losses_agree"] and results["train"]["dtype"] != "float32":
                print(f"train: losses differ by up to {results['train']['max_rel_loss_diff']:.2%} in "
                      f"{results['train']['dtype']}; again in float32", flush=True)
                results["train_fp32"] = compare_training(model_dir, "float32", train_task, warmup, train_steps,
                                                         data, workdir, device)
            lap("train")
        if "squad" in parts or "sst2" in parts:
            tokenizer = load_tokenizer(model_dir)
            loaded = load_model(model_dir, dtype=dtype, device=device)
            if "squad" in parts:
                results["squad"] = compare_squad(loaded, tokenizer, model_dir, load_squad(data, 1, squad_n),
                                                 settings, dtype, device)
                lap("squad")
            if "sst2" in parts:
                sentences = load_sst2(data, sst2_n)
                results["sst2"] = compare_sst2(loaded, tokenizer, model_dir, sentences, settings, dtype, workdir)
                if results["sst2"]["identical"] < sst2_n and dtype != "float32":
                    print(f"sst2: {results['sst2']['identical']}/{sst2_n} predictions identical in {dtype}; again "
                          "in float32", flush=True)
                    fp32 = load_model(model_dir, dtype="float32", device=device)
                    results["sst2_fp32"] = compare_sst2(fp32, tokenizer, model_dir, sentences, settings, "float32",
                                                        workdir)
                    del fp32
                lap("sst2")
            del loaded
    results["seconds"] = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
    results["problems"] = problems(results)
    return results


def problems(results: dict[str, Any]) -> list[str]:
    """What makes the run fail: the checks that do not depend on timing."""
    out = []
    train = results.get("train_fp32") or results.get("train")  # the float32 rerun decides where there is one
    if train:
        if not train["losses_agree"]:
            out.append(f"training losses differ by up to {train['max_rel_loss_diff']:.2%} at a timed step "
                       f"({train['dtype']})")
        if not train["batches_identical"]:
            out.append("the two trainers saw different micro-batches")
        if not (train["initial_adapter_equal"] and train["lora_equal"]):
            out.append("the two trainers started from different adapters or LoRA configs")
    squad = results.get("squad")
    if squad and squad["runs"][-1]["dtype"] == "float32" and squad["runs"][-1]["identical"] < squad["n"]:
        out.append(f"SQuAD v2: {squad['runs'][-1]['identical']}/{squad['n']} float32 answers identical")
    sst2 = results.get("sst2_fp32") or results.get("sst2")
    if sst2 and sst2["dtype"] == "float32" and sst2["identical"] < sst2["n"]:
        out.append(f"SST-2: {sst2['identical']}/{sst2['n']} float32 predictions identical")
    return out


# ============================================================================================ the record
def _x(ratio: float) -> str:
    return f"{ratio:.2f}x"


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def _flop(flops: float) -> str:
    return f"{flops / 1e12:.2f} TFLOP" if flops >= 1e11 else f"{flops / 1e9:.2f} GFLOP"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _mib(value: float) -> str:
    return f"{value:,.0f} MiB"


def summary_rows(results: dict[str, Any]) -> list[dict[str, str]]:
    """One row per comparison: tuneval, peer, peer / tuneval, agreement."""
    rows = [_train_row(results[key], why) for key, why in (("train", ""), ("train_fp32", " (bf16 losses differed)"))
            if results.get(key)]
    squad = results.get("squad")
    if squad:
        for run in squad["runs"]:
            why = " (bf16 answers differed)" if run["dtype"] == "float32" and len(squad["runs"]) > 1 else ""
            rows.append({
                "comparison": f"SQuAD v2 answers, {squad['n']} questions ({_n(squad['contexts'], 'context')}), "
                              f"{run['dtype']}{why}",
                "tuneval": f"{_s(run['engine_s'])} ({squad['n'] / run['engine_s']:.2f} q/s)",
                "peer": f"HF generate, batch {squad['batch_size']}: {_s(run['hf_s'])} "
                        f"({squad['n'] / run['hf_s']:.2f} q/s)",
                "peer / tuneval": _x(run["time_ratio"]),
                "agreement": f"{run['identical']}/{squad['n']} answers identical"})
    rows += [_sst2_row(results[key], why) for key, why in (("sst2", ""), ("sst2_fp32", " (bf16 predictions differed)"))
             if results.get(key)]
    return rows


def _train_row(train: dict[str, Any], why: str) -> dict[str, str]:
    gpu = train["tuneval_peak_cuda_mib"] is not None
    mem = (f", peak GPU {_mib(train['tuneval_peak_cuda_mib'])}" if gpu else "")
    mem_trl = (f", peak GPU {_mib(train['trl_peak_cuda_mib'])}" if gpu else "")
    return {
        "comparison": f"LoRA step, {train['task']}, {train['dtype']}"
                      f"{' autocast' if train['dtype'] == 'bfloat16' else ''}{why} (batch "
                      f"{train['micro_batch']} x {train['accumulation']} accumulation; median of "
                      f"{train['steps']} steps after {train['warmup']} warm-up)",
        "tuneval": f"{train['tuneval_step_s']:.2f} s/step, peak RSS {_mib(train['tuneval_peak_rss_mib'])}{mem}",
        "peer": f"TRL {train['trl']} SFTTrainer: {train['trl_step_s']:.2f} s/step, peak RSS "
                f"{_mib(train['trl_peak_rss_mib'])}{mem_trl}",
        "peer / tuneval": f"time {_x(train['time_ratio'])}, memory {_x(train['memory_ratio'])}",
        "agreement": f"losses within 1% at every timed step: {'yes' if train['losses_agree'] else 'NO'} (max "
                     f"{train['max_rel_loss_diff']:.3%}); same batches: "
                     f"{'yes' if train['batches_identical'] else 'NO'}; same initial adapter: "
                     f"{'yes' if train['initial_adapter_equal'] and train['lora_equal'] else 'NO'}"}


def _sst2_row(sst2: dict[str, Any], why: str) -> dict[str, str]:
    return {
        "comparison": f"SST-2, {sst2['n']} sentences, {sst2['dtype']}{why}",
        "tuneval": f"{_s(sst2['engine_s'])} ({sst2['n'] / sst2['engine_s']:.1f} ex/s)",
        "peer": f"lm-eval {sst2['lm_eval']}, batch {sst2['batch_size']}: {_s(sst2['lm_eval_s'])} "
                f"(loglikelihood {_s(sst2['lm_eval_loglikelihood_s'])})",
        "peer / tuneval": f"{_x(sst2['time_ratio'])} (loglikelihood {_x(sst2['loglikelihood_ratio'])})",
        "agreement": f"{sst2['identical']}/{sst2['n']} predictions identical"}


def _flags_text(flags: dict[str, bool]) -> str:
    present = [f for f, on in flags.items() if on]
    absent = [f for f, on in flags.items() if not on]
    return ", ".join(present or ["none"]) + (f" (no {', '.join(absent)})" if absent else "")


def notes(results: dict[str, Any]) -> list[str]:
    """Where one side wins by doing less work, and whether the peer has an option that closes the gap here."""
    out = []
    v = results["machine"]["versions"]
    route = results["machine"]["route"]
    if route.get("bf16_route") == "fp32_gemms":
        out.append("**bf16 on this CPU** runs as fp32 GEMMs (`models/cpu_bf16.py`, an aten override for the "
                   "whole process): the engine, `generate` and lm-eval's model all took that route.")
    train = results.get("train")
    if train:
        s = train["shape"]
        head_row = 2 * s["hidden"] * s["vocab"]  # FLOPs of one lm_head row
        ans, every = train["answer_positions_per_step"], train["all_positions_per_step"]
        text = (f"**LoRA step.** {train['tokens_per_step']:,.0f} tokens a timed step, {ans:,.0f} of them answer "
                f"positions. tuneval runs the lm_head on the answer positions only (`logits_to_keep` in "
                f"`answer_loss`). TRL {train['trl']}'s SFTTrainer always installs its fused LM head "
                "(`add_fused_lm_head`): it never materializes the logits, but ")
        if train["trl_compact_head"]:
            text += ("with Triton on this device it projects only the positions whose label is not -100, as "
                     "tuneval does, so the head is not where the two differ here; TRL also computes the entropy "
                     "and top-1 accuracy it logs.")
        else:
            extra = 3 * head_row * (every - ans)
            text += (f"without Triton (this device) it projects every position, padding included ({every:,.0f} "
                     f"rows a step, {every / max(ans, 1):.0f}x tuneval's), and projects them again in its backward "
                     f"(~{_flop(extra)} more per step at 2 x {s['hidden']} x {s['vocab']:,} FLOPs a row, three "
                     "times: forward, recompute, gradient); its torch fallback of the Triton kernel also makes "
                     "a dozen fp32 passes (max, exp, sums, the top-1 mask) over every [positions x 32,768] tile, "
                     "forward and backward, for the loss and the entropy and top-1 accuracy it logs. On "
                     "CUDA/XPU with Triton it projects the completion positions only, which closes that gap "
                     "there. No SFTConfig option closes it "
                     "on a CPU: `padding_free=True` / `packing=True` drop the padding rows (TRL documents them "
                     "for FlashAttention 2/3) but the head still runs on every prompt token; `loss_type` and "
                     "`use_liger_kernel` do not restrict the head to the completion.")
        if train["dtype_note"]:
            text += f" Dtype: {train['dtype_note']}."
        text += (f" Same micro-batches (sha256 of input ids, mask and labels per micro-batch), the same initial "
                 f"adapter ({train['initial_adapter']}; TRL's own init with the same seed was "
                 f"{'identical' if train['trl_seeded_init_equal'] else 'different, so tuneval`s was copied in'}).")
        out.append(text)
        for run in (train, results.get("train_fp32")):
            if run:
                pairs = "; ".join(f"{x['step']}: {x['tuneval']:.5f} / {x['trl']:.5f}" for x in run["losses"])
                out.append(f"Losses at the timed steps, {run['dtype']} (step: tuneval / TRL): {pairs}.")
        if results.get("train_fp32"):
            fp32 = results["train_fp32"]
            out.append(f"In {train['dtype']} the losses differed by up to {train['max_rel_loss_diff']:.2%}: the two "
                       "LM heads round the logits and their log-sum-exp differently under bf16 autocast (tuneval: "
                       "the head's bf16 output into the cross-entropy; TRL: its fused head's chunked loss), and "
                       "the steps compound it. In float32, with the same batches and initial adapter, they agree "
                       f"within {fp32['max_rel_loss_diff']:.3%} at every timed step"
                       f"{'' if fp32['losses_agree'] else ' (NOT within 1%)'}: the setups match; the bf16 row "
                       f"gives the speed of the study's dtype (float32: time {_x(fp32['time_ratio'])}).")
    squad = results.get("squad")
    if squad:
        out.append(
            f"**SQuAD v2.** The engine prefills each context's common prefix once ({squad['prompt_tokens']:,} "
            f"prompt tokens over {_n(squad['contexts'], 'context')}, {squad['shared_prompt_tokens']:,} with each "
            "context's common prefix counted once), scores the abstention answer (the no-answer "
            "probability) in the same pass (the `generate` loop's time covers answers only: it would need one more "
            "forward pass per question for that) and drops finished "
            "rows from its decoding batches; `generate` prefills every whole prompt, left-padded to its batch's "
            "longest, and decodes until every row of the batch has stopped. Options of `generate` "
            f"(transformers {v['transformers']}): prompt lookup decoding (`prompt_lookup_num_tokens`, apt for "
            "answers copied from the context) is assisted generation, which refuses batches (\"only supported "
            "for batch_size = 1\"), so it trades batching for fewer decoding steps; a static cache "
            "(`cache_implementation=\"static\"`) pays off with `torch.compile`, mainly on GPUs; sharing a "
            "context's KV cache across its questions is user code (prefill the prefix into a `DynamicCache`, "
            "`copy.deepcopy` it per question, as transformers' cache docs show), not a `generate` option. "
            "None closes the prefill gap as an option.")
        if len(squad["runs"]) > 1:
            first = squad["runs"][0]
            out.append(f"In {first['dtype']} {first['identical']}/{squad['n']} answers were identical: the engine "
                       "and `generate` batch and pad the same prompts differently, and bf16 rounding flips near-tied "
                       "greedy tokens; in float32 both sides ran again for the identical-answers check.")
    sst2 = results.get("sst2")
    if sst2:
        out.append(
            f"**SST-2.** Both run each sentence's prompt once (lm-eval's logits cache shares the context of its "
            f"two one-token choices); the engine keeps the last position's logits only ({sst2['n']} rows), "
            f"lm-eval's HFLM computes logits and a log-softmax at every position ({sst2['prompt_tokens']:,} rows): "
            f"forward ~{_flop(sst2['lm_eval_flops'])} vs {_flop(sst2['engine_flops'])} (2 x non-embedding "
            "parameters x tokens + 2 x hidden x vocab x logit rows). HFLM has no option that "
            "keeps only the continuation's logits (`_model_call` returns [batch, length, vocab]); "
            "`batch_size=\"auto\"` only picks a larger batch. lm-eval's time is its whole `simple_evaluate` "
            "(task building from a local JSON file included), model loading excluded on both sides.")
        if sst2["identical"] < sst2["n"] and sst2["dtype"] != "float32":
            again = results.get("sst2_fp32")
            out.append(f"In {sst2['dtype']} {sst2['identical']}/{sst2['n']} SST-2 predictions were identical: the "
                       "two batch and pad the same sentences differently and bf16 rounding flips near-ties"
                       + (f"; in float32 both sides ran again: {again['identical']}/{again['n']} identical."
                          if again else " (`--only sst2 --dtype float32` compares them without it)."))
    return out


def command_line(results: dict[str, Any]) -> str:
    s = results["sizes"]
    parts = [] if results["parts"] == list(PARTS) else [f"--only {p}" for p in results["parts"]]
    if Path(results["data"]).resolve() != data_dir().resolve():
        parts.append(f"--data-dir {shlex.quote(_short_path(results['data']))}")
    return " ".join(["python benchmarks/bench_peers.py", f"--model {shlex.quote(results['model'])}",
                     f"--dtype {results['dtype']}", f"--train-steps {s['train_steps']}", f"--warmup {s['warmup']}",
                     f"--train-task {s['train_task']}", f"--squad-n {s['squad_n']}", f"--sst2-n {s['sst2_n']}",
                     *parts])


def record_text(results: dict[str, Any]) -> str:
    """The dated markdown record of one run."""
    m = results["machine"]
    facts = results["model_facts"]
    route = m["route"]
    device = f"GPU {m['gpu']}, host CPU {m['cpu']}" if m["gpu"] else m["cpu"]
    top = [f for f, on in m["flags"].items() if on]
    heading = f"### {results['date']}: {m['gpu'] or m['cpu']} ({top[-1] if top else 'no avx2'})"
    v = m["versions"]
    took = ", ".join(f"{part} {seconds:.0f} s" for part, seconds in results.get("part_seconds", {}).items())
    lines = [
        heading, "",
        f"`{command_line(results)}`: {results['seconds'] / 60:.1f} min in all ({took}).", "",
        f"- Machine: {device}; CPU flags: {_flags_text(m['flags'])}; {m['device']}, bf16 route "
        f"`{route.get('bf16_route')}`, {m['threads']} threads; git {route.get('git_revision')}.",
        "- Versions: " + ", ".join(f"{k} {v[k] or 'not installed'}" for k in v) + ".",
        f"- Model: `{results['model']}`{' = `' + facts['resolved'] + '`' if facts.get('resolved') else ''} "
        f"({facts['architecture']}, {facts['parameters'] / 1e6:.1f}M parameters, "
        f"{facts['body_parameters'] / 1e6:.1f}M outside the embedding); data `{_short_path(results['data'])}`.",
        "",
    ]
    rows = summary_rows(results)
    keys = list(rows[0]) if rows else []
    lines += ["| " + " | ".join(keys) + " |", "| " + " | ".join("---:" if k == "peer / tuneval" else "---"
                                                                  for k in keys) + " |"]
    lines += ["| " + " | ".join(r[k] for k in keys) + " |" for r in rows]
    lines.append("")
    lines += [f"- {note}" for note in notes(results)]
    if results["problems"]:
        lines.append("- **Checks failed:** " + "; ".join(results["problems"]) + ".")
    return "\n".join(lines) + "\n"


def _short_path(path: str) -> str:
    p = Path(path).resolve()
    for root, name in ((REPO.parent / "shared", "../shared"), (REPO, ".")):
        if p.is_relative_to(root):
            return f"{name}/{p.relative_to(root)}"
    return str(p)


def _with_section(text: str) -> tuple[str, re.Match[str]]:
    """`text` with the "Peer comparisons" section (added at its end, with its introduction, when missing), and
    the section's heading."""
    heading = re.search(rf"^{re.escape(SECTION)}[ \t]*$", text, re.MULTILINE)
    if heading is None:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{SECTION_INTRO}"
        heading = re.search(rf"^{re.escape(SECTION)}[ \t]*$", text, re.MULTILINE)
        assert heading is not None
    return text, heading


def ensure_section(readme: Path) -> None:
    """Give `readme` the "Peer comparisons" section (its introduction, no record) if it has none."""
    text = readme.read_text(encoding="utf-8")
    new, _ = _with_section(text)
    if new != text:
        readme.write_text(new, encoding="utf-8")


def append_record(readme: Path, record: str) -> None:
    """Add `record` at the end of the "Peer comparisons" section of `readme` (created at the end of the file, with
    its introduction, the first time); nothing else in the file changes."""
    text, heading = _with_section(readme.read_text(encoding="utf-8"))
    following = re.search(r"^## ", text[heading.end():], re.MULTILINE)
    end = heading.end() + following.start() if following else len(text)
    before, after = text[:end].rstrip("\n"), text[end:]
    readme.write_text(before + "\n\n" + record.strip("\n") + "\n" + ("\n" + after if after else ""),
                      encoding="utf-8")


def print_summary(results: dict[str, Any]) -> None:
    m = results["machine"]
    print_table(summary_rows(results), f"{results['model']} ({results['dtype']}) on {m['gpu'] or m['cpu']}, "
                                       f"{_flags_text(m['flags'])}; peer / tuneval > 1: tuneval is faster")
    for problem in results["problems"]:
        print(f"CHECK FAILED: {problem}", flush=True)


# ============================================================================================ CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model directory, or `tiny` / `135m` (built here)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "auto"])
    parser.add_argument("--train-steps", type=int, default=6, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=2, help="optimizer steps before the timed ones")
    parser.add_argument("--train-task", default="sst2", choices=sorted(TRAIN_FILES),
                        help="whose LoRA step (sst2: ~30-token rows; squad_v2: ~250-token rows, where TRL's CPU "
                             "steps take ~15-30 s each on Gemma)")
    parser.add_argument("--squad-n", type=int, default=40, help="first N questions of the first SQuAD v2 dev article")
    parser.add_argument("--sst2-n", type=int, default=200, help="first N SST-2 validation sentences")
    parser.add_argument("--only", action="append", choices=PARTS, help="run only this comparison (repeatable)")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: ../shared/data, else the sample")
    parser.add_argument("--no-append", action="store_true", help=f"do not append the record to {README.name}")
    parser.add_argument("--readme", type=Path, default=README, help="the page the record is appended to")
    parser.add_argument("--out", type=Path, default=None, help="also write the results (and the record) as JSON")
    parser.add_argument("--_train-side", dest="train_side", choices=["tuneval", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--_spec", dest="spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--_result", dest="result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.train_side:  # one side of the training comparison, in a process of its own
        result = run_train_side(args.train_side, TrainSpec(**json.loads(args.spec.read_text())))
        args.result.write_text(json.dumps(result))
        return 0
    if args.warmup < 0 or args.train_steps < 1:
        parser.error("--train-steps must be >= 1 and --warmup >= 0")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; model {args.model}, dtype {args.dtype}",
          flush=True)
    results = run_peers(args.model, args.dtype, tuple(dict.fromkeys(args.only or PARTS)), args.train_steps,
                        args.warmup, args.train_task, args.squad_n, args.sst2_n, data=args.data_dir)
    record = record_text(results)
    print_summary(results)
    print("\n" + record, flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results | {"record": record}, indent=2, default=str) + "\n")
    if not args.no_append:
        append_record(args.readme, record)
        print(f"record appended to {args.readme}", flush=True)
    return 1 if results["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
