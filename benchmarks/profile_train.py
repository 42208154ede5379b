"""Where one LoRA training step spends its time: torch.profiler over the train stage's own pieces (the encoded
examples, the collator, `answer_loss`, AdamW on the adapters), grouped into matmuls, attention, elementwise and
the rest, with tokens/s and the fraction of this machine's measured matmul peak (MFU).

    python benchmarks/profile_train.py --model models/base --task squad_v2 --out benchmarks/results/profile_lora.json

The model is `models/base` as the pipeline leaves it (Gemma-3-270M converted from its GGUF); params.yaml gives
the LoRA settings, dtype, max_length and micro-batch. The FLOPs per step are counted, not estimated: 2 x every
matmul's m x n x k from the profiler's shapes (with_flops), forward and backward. The peak is a 2048^3 matmul
timed here in the same dtype (the fastest of a few square sizes, or the step's own matmul kernels if those ran
faster), so MFU is "how close to this CPU's own best matmul". tokens/s and MFU come from the same steps run once
without the profiler (whose hooks slow small ops down); the time shares from the profiled run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from benchlib import dtype_name

from tuneval.config import load_params, micro_batch_size
from tuneval.io import read_jsonl
from tuneval.models.loading import load_model, load_tokenizer
from tuneval.tasks import get_task
from tuneval.train.batches import data_collator, encode_example
from tuneval.train.trainer import answer_loss, weights_dtype, wrap_lora

REPO = Path(__file__).resolve().parents[1]
CATEGORIES = {  # profiler op name -> category (first match wins; the rest is "other")
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear", "aten::matmul"),
    "attention": ("scaled_dot_product", "aten::_softmax", "aten::softmax", "flash"),
    "elementwise": ("aten::mul", "aten::add", "aten::div", "aten::pow", "aten::rsqrt", "aten::mean", "aten::gelu",
                    "aten::tanh", "aten::neg", "aten::cat", "aten::sub", "aten::copy_", "aten::to", "aten::_to_copy",
                    "aten::cos", "aten::sin", "aten::exp", "aten::sum", "aten::where", "aten::clone",
                    "aten::contiguous", "aten::fill_", "aten::zero_", "aten::embedding"),
    "loss": ("aten::log_softmax", "aten::_log_softmax", "aten::nll_loss", "aten::cross_entropy"),
    "optimizer": ("Optimizer.step", "aten::_foreach", "aten::addcdiv", "aten::addcmul", "aten::lerp"),
}


def category(name: str) -> str:
    for cat, prefixes in CATEGORIES.items():
        if any(name.startswith(p) or p in name for p in prefixes):
            return cat
    return "other"


def outermost_flops(events) -> float:
    """FLOPs of the profiled matmuls, each product once: an op with FLOPs inside another one is the same product
    (models/cpu_bf16.py's aten::mm calls aten::mm.out, which the profiler names and counts again), so only the
    outermost counts."""
    total = 0.0
    for e in events:
        parent = e.cpu_parent
        while parent is not None and not parent.flops:
            parent = parent.cpu_parent
        total += e.flops if e.flops and parent is None else 0
    return total


def matmul_peak(dtype: torch.dtype, sizes: tuple[int, ...] = (1024, 2048, 3072), repeats: int = 5) -> float:
    """GFLOP/s of the fastest square matmul in `dtype` on this machine (best of `repeats` per size)."""
    rates = []
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b
        rates.append(2 * n**3 / min(_timed(lambda a=a, b=b: a @ b) for _ in range(repeats)) / 1e9)
    return max(rates)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/base")
    parser.add_argument("--task", default="squad_v2")
    parser.add_argument("--steps", type=int, default=3, help="profiled micro-batch steps (after one warm-up)")
    parser.add_argument("--params", default=str(REPO / "params.yaml"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    params = load_params(args.params)
    task = get_task(args.task)
    dtype = dtype_name(params.model.dtype)
    compute = getattr(torch, dtype)
    tokenizer = load_tokenizer(args.model)
    base = load_model(args.model, dtype=weights_dtype(params, compute), device="cpu")
    base.set_attn_implementation(params.train.attn_implementation)  # as the train stage's fit() does
    model = wrap_lora(base, params).train()
    rows = read_jsonl(REPO / "data/split" / task.name / "train.jsonl")
    examples = [encode_example(task, r, tokenizer=tokenizer, max_length=params.train.max_length,
                               max_prompt_tokens=params.eval.max_prompt_tokens) for r in rows]
    examples.sort(key=lambda e: -len(e["input_ids"]))  # group_by_length: similar lengths per micro-batch
    size = micro_batch_size(params.train, task.name)
    batches = [data_collator(params, tokenizer, model)(examples[i : i + size])
               for i in range(0, size * (args.steps + 1), size)]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=params.lr)

    def step(batch) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=compute == torch.bfloat16):
            loss = answer_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step(batches[0])  # warm-up: allocator, lazy inits
    start = time.perf_counter()  # the same steps without the profiler first: its hooks slow small ops down
    for batch in batches[1:]:
        step(batch)
    plain = time.perf_counter() - start
    from torch.profiler import ProfilerActivity, profile

    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        for batch in batches[1:]:
            step(batch)
    wall = time.perf_counter() - start
    events = prof.key_averages()
    by_cat: dict[str, float] = defaultdict(float)
    mm_seconds = 0.0
    for e in events:  # self time: each microsecond counted once, in the op that spent it
        by_cat[category(e.key)] += e.self_cpu_time_total / 1e6
        mm_seconds += e.self_cpu_time_total / 1e6 if e.flops else 0.0
    flops = outermost_flops(prof.events())
    tokens = sum(int(b["attention_mask"].sum()) if "attention_mask" in b else b["input_ids"].numel()
                 for b in batches[1:])
    peak = matmul_peak(compute)
    profiled = sum(by_cat.values())
    result = {
        "model": args.model, "task": task.name, "dtype": dtype, "micro_batch": size, "steps": args.steps,
        "tokens": tokens, "wall_s": round(plain, 2), "tokens_per_s": round(tokens / plain, 1),
        "counted_gflop": round(flops / 1e9, 1), "achieved_gflops": round(flops / plain / 1e9, 1),
        "matmul_kernels_gflops": round(flops / mm_seconds / 1e9, 1),
        "matmul_peak_gflops": round(peak, 1),
        "mfu": round(flops / plain / 1e9 / max(peak, flops / mm_seconds / 1e9), 3),
        "profiled_wall_s": round(wall, 2),  # the shares below are of this (slower) profiled run
        "self_time_s": {k: round(v, 2) for k, v in sorted(by_cat.items(), key=lambda kv: -kv[1])},
        "self_time_share": {k: round(v / profiled, 3) for k, v in sorted(by_cat.items(), key=lambda kv: -kv[1])},
        "python_and_untracked_s": round(max(0.0, wall - profiled), 2),  # of the profiled run
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
