"""Evaluation engine vs a plain per-example loop: same model, same examples, same predictions?

    python benchmarks/bench_eval.py                      # tiny model (full sample sets) + a ~135M Llama shape
    python benchmarks/bench_eval.py --models tiny --sst2-n 200 --squad-n 100

The plain loop is what an evaluation notebook does: one example at a time, one forward pass per
(prompt, label word) pair, `generate` with batch size 1 (same stop tokens, so both do the same decoding
work) and a separate forward pass for the no-answer probability. Both sides build prompts the same way.
Prints examples/s for each, the ratio, and whether the predictions are identical (exit 1 if not).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tuneval import evaluation as E
from tuneval.config import ModelConfig
from tuneval.data import SAMPLE_DIR, normalize
from tuneval.io import read_jsonl
from tuneval.modeling import build_tiny_model, load_model, load_tokenizer
from tuneval.tasks import demonstration, get_task

# A SmolLM-135M-like Llama shape (random weights): a realistic cost profile for a small real model.
SHAPE_135M = dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                  intermediate_size=1536, vocab_size=49152, max_position_embeddings=2048, tie_word_embeddings=True)


def load_rows(task_name: str, n: int) -> list[dict]:
    task = get_task(task_name)
    name = {"sst2": "sst2/validation.jsonl", "squad_v2": "squad_v2/validation.jsonl.gz"}[task_name]
    return normalize(task, read_jsonl(SAMPLE_DIR / name))[:n]


def build_models(which: list[str], workdir: Path) -> dict[str, tuple]:
    """name -> (model, tokenizer). The tiny one goes through the pipeline's builder and from_pretrained."""
    texts = [demonstration(get_task(t), r) for t in ("sst2", "squad_v2") for r in load_rows(t, 10_000)]
    tiny_dir = workdir / "tiny"
    build_tiny_model(ModelConfig(name="tiny-llama"), texts, seed=1, out_dir=tiny_dir)
    tokenizer = load_tokenizer(tiny_dir)
    models = {}
    if "tiny" in which:
        models["tiny (1M)"] = (load_model(tiny_dir, dtype="float32"), tokenizer)
    if "135m" in which:
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(1)
        config = LlamaConfig(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id, **SHAPE_135M)
        model = LlamaForCausalLM(config).eval()
        models[f"llama-shaped ({model.num_parameters() / 1e6:.0f}M)"] = (model, tokenizer)
    return models


@torch.inference_mode()
def plain_loglik(model, ids: list[int], cont: list[int]) -> float:
    logits = model(torch.tensor([ids + cont])).logits[0].float()
    logprobs = F.log_softmax(logits, dim=-1)
    return sum(logprobs[len(ids) - 1 + j, t].item() for j, t in enumerate(cont))


def plain_sst2(model, tok, rows, prompts) -> list[str]:
    task = get_task("sst2")
    conts = [E.continuation_ids(tok, c) for c in task.choices]
    preds = []
    for p in prompts:
        scores = [plain_loglik(model, p, c) for c in conts]
        preds.append(task.label_names[max(range(len(scores)), key=scores.__getitem__)])
    return preds


@torch.inference_mode()
def plain_squad(model, tok, rows, prompts, max_new_tokens: int) -> tuple[list[str], list[float]]:
    task = get_task("squad_v2")
    stops = E.stop_token_ids(tok, task.stop)
    abstain = E.continuation_ids(tok, task.answer_prefix + task.abstain)
    answers, na_probs = [], []
    for p in prompts:
        out = model.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                             max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops,
                             pad_token_id=tok.pad_token_id, temperature=None, top_p=None, top_k=None)
        answers.append(task.to_answer(tok.decode(out[0, len(p):], skip_special_tokens=True)))
        na_probs.append(math.exp(plain_loglik(model, p, abstain)))
    return answers, na_probs


def bench(label: str, model, tok, task_name: str, n: int, batch_size: int, max_new_tokens: int) -> dict:
    task = get_task(task_name)
    rows = load_rows(task_name, n)
    settings = E.EvalSettings(batch_size=batch_size, max_prompt_tokens=768, max_new_tokens=max_new_tokens)

    E.predict(task, model, tok, rows[:4], [], settings)  # warm-up (threads, allocator) for both sides
    start = time.perf_counter()
    engine_preds = E.predict(task, model, tok, rows, [], settings)  # metrics are not timed on either side
    engine_s = time.perf_counter() - start

    start = time.perf_counter()
    prompts = [E.build_prompt(task, r, [], tok, settings.max_prompt_tokens) for r in rows]
    if task_name == "sst2":
        plain = plain_sst2(model, tok, rows, prompts)
        ours = [p["predicted"] for p in engine_preds]
        na_diff = 0.0
    else:
        plain, plain_na = plain_squad(model, tok, rows, prompts, max_new_tokens)
        ours = [p["prediction"] for p in engine_preds]
        na_diff = max(abs(a - p["no_answer_prob"]) for a, p in zip(plain_na, engine_preds, strict=True))
    plain_s = time.perf_counter() - start
    mismatches = sum(a != b for a, b in zip(plain, ours, strict=True))
    return {"model": label, "task": task_name, "examples": len(rows),
            "plain_ex_per_s": round(len(rows) / plain_s, 2), "engine_ex_per_s": round(len(rows) / engine_s, 2),
            "speedup": round(plain_s / engine_s, 1), "prediction_mismatches": mismatches,
            "max_no_answer_prob_diff": float(f"{na_diff:.2e}")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "135m"], choices=["tiny", "135m"])
    parser.add_argument("--sst2-n", type=int, default=872, help="SST-2 validation examples (tiny model)")
    parser.add_argument("--squad-n", type=int, default=560, help="SQuAD v2 sample validation questions (tiny)")
    parser.add_argument("--big-sst2-n", type=int, default=128, help="SST-2 examples for the 135M model")
    parser.add_argument("--big-squad-n", type=int, default=32, help="SQuAD questions for the 135M model")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'cuda ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, (model, tok) in build_models(args.models, Path(tmp)).items():
            big = not label.startswith("tiny")
            for task_name, n in (("sst2", args.big_sst2_n if big else args.sst2_n),
                                 ("squad_v2", args.big_squad_n if big else args.squad_n)):
                r = bench(label, model, tok, task_name, n, args.batch_size, args.max_new_tokens)
                results.append(r)
                print(f"{r['model']:<22} {r['task']:<9} n={r['examples']:<4} plain {r['plain_ex_per_s']:>8.2f} ex/s"
                      f"  engine {r['engine_ex_per_s']:>8.2f} ex/s  x{r['speedup']:<5} "
                      f"mismatches {r['prediction_mismatches']}  max|Δp_na| {r['max_no_answer_prob_diff']}",
                      flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if any(r["prediction_mismatches"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
