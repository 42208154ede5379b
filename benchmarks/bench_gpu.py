"""tuneval's training path on a GPU: a Llama-3.2-1B-shaped model (random weights), bf16, full fine-tuning on
SQuAD v2 sample examples for ~50 optimizer steps. Prints tokens/s, peak GPU memory and MFU.

    python benchmarks/bench_gpu.py                        # the 1B shape; needs a CUDA GPU (~25 GB)
    python benchmarks/bench_gpu.py --shape tiny --steps 4 # a smoke test of this script on a CPU
    python benchmarks/bench_gpu.py --peers                # bench_peers.py's ratios (TRL, generate, lm-eval) here
    python benchmarks/bench_gpu.py --peers --peers-model tiny --peers-sizes smoke  # its smoke test, on a CPU too

It runs the same `tuneval.train.trainer.fit` as the train stage (same collation, length grouping, answer-only
loss, bf16 autocast from `model.dtype: auto`), on a model directory written here: the 1B shape with random
weights (no Hub access needed) and the tokenizer trained on the sample text (its ids fit the 128k vocab).
MFU = model FLOPs per second / the card's dense bf16 peak, with the usual 6 x parameters per token for
the matmuls plus 12 x layers x hidden x sequence length per token for attention (fwd + bwd).

`--peers` runs bench_peers.py's comparisons instead (`run_peers` with device cuda; on a machine without a GPU,
on the CPU): tuneval's LoRA step against TRL's SFTTrainer, its SQuAD v2 answers against batched `generate`, its
SST-2 scoring against lm-evaluation-harness, as ratios, on `--peers-model` (default models/base). `--append` adds
the dated record to benchmarks/README.md's "Peer comparisons" section.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from benchlib import loop_timer  # benchmarks/ is on sys.path when run as a script

from tuneval.config import load_params
from tuneval.data import SAMPLE_DIR, normalize
from tuneval.io import read_jsonl, write_jsonl
from tuneval.models.tiny import train_tokenizer
from tuneval.tasks import demonstration, get_task
from tuneval.train.job import TrainJob
from tuneval.train.trainer import fit
from tuneval.usage import peak_memory_mb

SHAPES = {
    "llama-3.2-1b": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                         intermediate_size=8192, vocab_size=128256, max_position_embeddings=4096,
                         rope_theta=500000.0, tie_word_embeddings=True),
    "tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=512, vocab_size=128256, max_position_embeddings=1024, tie_word_embeddings=True),
}
# bench_peers.run_peers sizes: a GPU does the CPU defaults in seconds, so it gets more steps and examples (and the
# SQuAD v2 LoRA step, whose ~250-token rows are where TRL's CPU head is slowest)
PEERS_SIZES = {"gpu": dict(train_steps=20, warmup=5, train_task="squad_v2", squad_n=208, sst2_n=872),
               "cpu": dict(train_steps=6, warmup=2, squad_n=40, sst2_n=200),
               "smoke": dict(train_steps=2, warmup=1, squad_n=6, sst2_n=8)}
PEAK_BF16_TFLOPS = {"H200": 989.4, "H100 PCIe": 756.0, "H100": 989.4, "A100": 312.0, "L40S": 362.0,
                    "A10G": 125.0, "L4": 121.0}  # dense; "H100" alone is the SXM card


def peak_tflops(device_name: str) -> float | None:
    """Dense bf16 peak of the card, by the longest matching name (None: unknown card, MFU not reported)."""
    matches = [k for k in PEAK_BF16_TFLOPS if k in device_name]
    return PEAK_BF16_TFLOPS[max(matches, key=len)] if matches else None


def build_model_dir(shape: dict, texts: list[str], out: Path) -> int:
    """Random-weight Llama of `shape` + the sample-trained tokenizer, saved like any HF model. Returns params."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = train_tokenizer(texts, 4096)
    config = LlamaConfig(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, **shape)
    torch.manual_seed(1)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama-3.2-1b")
    parser.add_argument("--steps", type=int, default=50, help="optimizer steps (one epoch over steps x batch)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=768)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--packing", action="store_true", help="padding-free batches instead of length grouping")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--peers", action="store_true",
                        help="instead: bench_peers.py's comparisons with TRL, generate and lm-eval, on this GPU")
    parser.add_argument("--peers-model", default="models/base", help="with --peers: a model directory, or `tiny`")
    parser.add_argument("--peers-dtype", default="bfloat16", choices=["bfloat16", "float32", "auto"])
    parser.add_argument("--peers-sizes", choices=sorted(PEERS_SIZES), default=None,
                        help="with --peers: step and example counts (default: gpu on a GPU, cpu elsewhere)")
    parser.add_argument("--append", action="store_true", help="with --peers: append the record to benchmarks/README.md")
    args = parser.parse_args()
    if args.peers:
        return peers(args)

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"torch {torch.__version__}, device {device}", flush=True)
    task = get_task("squad_v2")
    rows = normalize(task, read_jsonl(SAMPLE_DIR / "squad_v2/train_partial.jsonl.gz"))
    examples = (rows * (1 + args.steps * args.batch_size // len(rows)))[: args.steps * args.batch_size]
    defaults = load_params(Path(__file__).resolve().parents[1] / "params.yaml")  # the one source of defaults
    params = dataclasses.replace(
        defaults, epochs=1, batch_size=args.batch_size,
        model=dataclasses.replace(defaults.model, name="bench", dtype="auto"),
        train=dataclasses.replace(defaults.train, per_device_batch_size=args.batch_size, save_steps=None,
                                  log_points=10, max_length=args.max_length, eval_examples=None,
                                  activation_checkpointing=args.gradient_checkpointing, packing=args.packing),
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        n_params = build_model_dir(SHAPES[args.shape], [demonstration(task, r) for r in rows], root / "base")
        print(f"{args.shape}: {n_params / 1e9:.3f}B parameters, built and saved in {time.perf_counter() - start:.0f}s",
              flush=True)
        write_jsonl(root / "train.jsonl", examples)
        job = TrainJob(task="squad_v2", base_model=root / "base", train_file=root / "train.jsonl",
                       out_dir=root / "out", live_dir=root / "live", checkpoint_dir=root / "ckpt")
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        timer = loop_timer()
        stats = fit(job, params, resuming=False, callbacks=[timer])
        seconds = timer.seconds  # the training loop only: not loading, tokenizing or saving
    shape = SHAPES[args.shape]
    mean_len = stats["train_tokens"] / stats["train_examples"]
    flops_per_token = 6 * n_params + 12 * shape["num_hidden_layers"] * shape["hidden_size"] * mean_len
    tokens_per_s = stats["train_tokens"] / seconds
    peak = peak_tflops(device)
    mfu = flops_per_token * tokens_per_s / (peak * 1e12) if peak else None
    result = {
        "device": device, "shape": args.shape, "parameters": n_params, "steps": stats["optimizer_steps"],
        "batch_size": args.batch_size, "mean_tokens_per_example": round(mean_len, 1),
        "bf16": bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported()),
        "gradient_checkpointing": args.gradient_checkpointing, "packing": args.packing,
        "seconds": round(seconds, 1), "tokens_per_second": round(tokens_per_s),
        "peak_memory_gib": round(peak_memory_mb() / 1024, 2), "peak_bf16_tflops": peak,
        "mfu": round(mfu, 4) if mfu is not None else None,
    }
    print(json.dumps(result, indent=2), flush=True)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def peers(args: argparse.Namespace) -> int:
    """bench_peers.py's three comparisons on this machine's GPU (its CPU where there is none), as ratios."""
    import bench_peers  # benchmarks/ is on sys.path when run as a script

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        print("no CUDA GPU here: the peer comparisons run on the CPU", flush=True)
    sizes = PEERS_SIZES[args.peers_sizes or ("gpu" if device == "cuda" else "cpu")]
    results = bench_peers.run_peers(args.peers_model, args.peers_dtype, device=device, **sizes)
    record = bench_peers.record_text(results)
    bench_peers.print_summary(results)
    print("\n" + record, flush=True)
    if args.out:
        args.out.write_text(json.dumps(results | {"record": record}, indent=2, default=str) + "\n")
    if args.append:
        bench_peers.append_record(bench_peers.README, record)
    return 1 if results["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
