"""bf16 on a CPU without bf16 instructions: torch's own kernels against tuneval's fp32-GEMM route (models/cpu_bf16.py).

    python benchmarks/bench_cpu_bf16.py --model models/base --out benchmarks/results/cpu_bf16_avx2.json

Part 1 times the matmul shapes of Gemma-3-270M's training step (a linear's forward, its grad-input and
grad-weight products, the attention's batched products) in fp32, in torch's bf16 and through the route, with
each result's mean distance from the exact (fp64) product, so speed and arithmetic are seen together.
Part 2 runs LoRA steps of the real model (q/k/v/o, r=8, bf16 autocast, lm_head on 4 answer positions per
row, eager attention: the train stage's settings) on random tokens, torch's bf16 first (skipped with
--skip-native: ~90 s a step on an AVX2 VM), then the route, and prints seconds per step and tokens/s.
On a CPU with AVX512-BF16 or AMX the route is never switched on by `load_model`; run here, it shows what it
would cost there.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tuneval.models import cpu_bf16
from tuneval.models.loading import cpu_has_native_bf16

SHAPES = {  # name -> (a shape, b shape, how the step multiplies them)
    "linear forward 1024x640 @ (2048x640)^T": ((1024, 640), (2048, 640), "a @ b.T"),
    "grad input 1024x2048 @ 2048x640": ((1024, 2048), (2048, 640), "a @ b"),
    "grad weight (1024x2048)^T @ 1024x640": ((1024, 2048), (1024, 640), "a.T @ b"),
    "attention scores 16x256x256 @ (16x256x256)^T": ((16, 256, 256), (16, 256, 256), "a @ b.mT"),
}


def product(a: torch.Tensor, b: torch.Tensor, how: str) -> torch.Tensor:
    return {"a @ b.T": lambda: F.linear(a, b), "a @ b": lambda: a @ b, "a.T @ b": lambda: a.t() @ b,
            "a @ b.mT": lambda: a @ b.mT}[how]()


def seconds(fn, repeat: int = 3) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def matmuls() -> dict:
    rows = {}
    gen = torch.Generator().manual_seed(0)
    for name, (sa, sb, how) in SHAPES.items():
        a, b = torch.randn(*sa, generator=gen), torch.randn(*sb, generator=gen)
        exact = product(a.to(torch.bfloat16).double(), b.to(torch.bfloat16).double(), how)
        flops = 2 * exact.numel() * (sa[-2] if how == "a.T @ b" else sa[-1])
        row = {}
        for variant in ("float32", "bfloat16 (torch)", "bfloat16 (fp32 GEMMs)"):
            dtype = torch.float32 if variant == "float32" else torch.bfloat16
            if variant.endswith("(fp32 GEMMs)"):
                cpu_bf16.install_fp32_matmuls()
            x, y = a.to(dtype), b.to(dtype)
            took = seconds(lambda x=x, y=y, how=how: product(x, y, how))
            err = (product(x, y, how).double() - exact).abs().mean().item() if dtype == torch.bfloat16 else None
            cpu_bf16.uninstall_fp32_matmuls()
            row[variant] = {"gflops": round(flops / took / 1e9, 1), "mean_abs_error_vs_fp64": err}
            print(f"{name:48s} {variant:22s} {flops / took / 1e9:7.1f} GFLOP/s"
                  + (f"  mean |error| {err:.2e}" if err is not None else ""), flush=True)
        rows[name] = row
    return rows


def lora_steps(model_dir: str, variant: str, rows: int, length: int, steps: int) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, attn_implementation="eager")
    if variant == "fp32 GEMMs":
        cpu_bf16.use_fp32_matmuls(model)
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                 "o_proj"], task_type="CAUSAL_LM"))
    ids = torch.randint(10, 20_000, (rows, length), generator=torch.Generator().manual_seed(1))
    keep = torch.zeros(rows, length, dtype=torch.bool)
    keep[:, -4:] = True
    times, losses = [], []
    for _ in range(steps + 1):  # the first is a warm-up (first-use allocations, the weight upcasts)
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(input_ids=ids, logits_to_keep=keep).logits
        loss = F.cross_entropy(logits.float(), ids[keep])
        loss.backward()
        model.zero_grad()
        times.append(time.perf_counter() - start)
        losses.append(round(loss.item(), 4))
    cpu_bf16.uninstall_fp32_matmuls()
    step = sum(times[1:]) / steps
    print(f"LoRA step, {rows} x {length} tokens, bf16 {variant}: {step:.2f} s ({rows * length / step:,.0f} tokens/s), "
          f"loss {losses[-1]}", flush=True)
    return {"seconds_per_step": round(step, 3), "tokens_per_second": round(rows * length / step, 1),
            "loss": losses[-1], "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/base")
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--skip-native", action="store_true", help="skip torch's own bf16 (slow without bf16 units)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {cpu_has_native_bf16()}")
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "native_bf16": cpu_has_native_bf16(),
              "matmuls": matmuls(), "lora": {}}
    if Path(args.model).is_dir():
        for variant in ("fp32 GEMMs",) if args.skip_native else ("torch", "fp32 GEMMs"):
            result["lora"][variant] = lora_steps(args.model, variant, args.rows, args.length, args.steps)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
