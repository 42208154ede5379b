"""Evaluation engine vs a plain per-example loop and vs lm-evaluation-harness, on one model directory.

    python benchmarks/bench_eval.py --model /tmp/exp/g270 --dtype float32 --out benchmarks/results/eval_g270.json
    python benchmarks/bench_eval.py --model tiny --sst2-n 64 --squad-articles 1 --squad-max-questions 32  # smoke
    python benchmarks/bench_eval.py --model models/base --whole-process --dtype float32   # tuneval eval vs lm_eval

SST-2 (the GLUE validation sentences): the engine (`tuneval.scoring.engine.predict`), a notebook's loop (one forward
pass per sentence and label word) and lm-eval's own `sst2` task (`simple_evaluate`, model "hf", batch 32, the
same model directory and sentences, fed from a local JSON file). SQuAD v2 (whole dev articles, so questions
share contexts): the engine vs the loop (`generate` with batch 1, same stop tokens, plus a forward pass for the
no-answer probability). Model loading is timed separately and left out of the wall times. Each row carries
its FLOP floor: 2 x non-embedding params x tokens + 2 x hidden x vocab x logit positions, over 210 GFLOP/s
(fp32) or 870 GFLOP/s (bf16). Exit 1 if the engine and the plain loop disagree on any prediction.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local: never wait on the Hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from benchlib import (  # noqa: E402
    OFFLINE_GEMMA,
    PEAK_GFLOPS,
    Shape,
    data_dir,
    dtype_name,
    floor_seconds,
    print_table,
    shape_of,
    study_params,
)

from tuneval.data import SAMPLE_DIR, normalize  # noqa: E402
from tuneval.io import read_jsonl, write_jsonl  # noqa: E402
from tuneval.models.loading import load_model, load_tokenizer  # noqa: E402
from tuneval.models.tiny import build_tiny_model  # noqa: E402
from tuneval.scoring import engine as E  # noqa: E402
from tuneval.scoring import metrics as M  # noqa: E402
from tuneval.tasks import demonstration, get_task  # noqa: E402
from tuneval.tasks.prompting import build_prompt, continuation_ids  # noqa: E402

# A SmolLM-135M-like Llama shape (random weights): `--model 135m`.
SHAPE_135M = dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                  intermediate_size=1536, vocab_size=49152, max_position_embeddings=2048, tie_word_embeddings=True)


# ------------------------------------------------------------------------------------------------ inputs
def default_model() -> str:
    return str(OFFLINE_GEMMA) if (OFFLINE_GEMMA / "config.json").is_file() else "tiny"


def prepare_model_dir(spec: str, workdir: Path) -> Path:
    """`tiny` / `135m` are written to `workdir` (tokenizer trained on the sample text); anything else is a path."""
    if spec not in ("tiny", "135m"):
        return Path(spec)
    texts = [demonstration(get_task(t), r) for t in ("sst2", "squad_v2") for r in sample_rows(t)]
    tiny_dir = workdir / "tiny"
    model_cfg = dataclasses.replace(study_params().model, name="tiny-llama")
    build_tiny_model(model_cfg, texts, seed=1, out_dir=tiny_dir)
    if spec == "tiny":
        return tiny_dir
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = load_tokenizer(tiny_dir)
    torch.manual_seed(1)
    model = LlamaForCausalLM(LlamaConfig(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                                         eos_token_id=tok.eos_token_id, **SHAPE_135M))
    model.save_pretrained(workdir / "135m")
    tok.save_pretrained(workdir / "135m")
    return workdir / "135m"


def sample_rows(task_name: str) -> list[dict]:
    name = {"sst2": "sst2/validation.jsonl", "squad_v2": "squad_v2/validation.jsonl.gz"}[task_name]
    return normalize(get_task(task_name), read_jsonl(SAMPLE_DIR / name))


def load_sst2(root: Path, n: int) -> list[dict]:
    return normalize(get_task("sst2"), read_jsonl(root / "sst2/validation.jsonl"))[:n]


def load_squad(root: Path, articles: int, max_questions: int | None) -> list[dict]:
    """Every question of the first `articles` dev articles (official order), optionally only the first few."""
    rows = normalize(get_task("squad_v2"), read_jsonl(root / "squad_v2/validation.jsonl.gz"))
    titles = list(dict.fromkeys(r["title"] for r in rows))[:articles]
    chosen = [r for r in rows if r["title"] in set(titles)]
    return chosen[:max_questions] if max_questions else chosen


# ------------------------------------------------------------------------------------------------ FLOPs
def common_prefix(seqs: list[list[int]]) -> int:
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for i in range(n):
        if any(s[i] != first[i] for s in seqs):
            return i
    return n


# ------------------------------------------------------------------------------------------- plain loop
@torch.inference_mode()
def plain_loglik(model, ids: list[int], cont: list[int]) -> float:
    logits = model(torch.tensor([ids + cont], device=model.device)).logits[0].float()
    logprobs = F.log_softmax(logits, dim=-1)
    return sum(logprobs[len(ids) - 1 + j, t].item() for j, t in enumerate(cont))


def plain_sst2(model, tok, prompts: list[list[int]]) -> list[str]:
    task = get_task("sst2")
    conts = [continuation_ids(tok, c) for c in task.choices]
    preds = []
    for p in prompts:
        scores = [plain_loglik(model, p, c) for c in conts]
        preds.append(task.label_names[max(range(len(scores)), key=scores.__getitem__)])
    return preds


@torch.inference_mode()
def plain_squad(model, tok, prompts: list[list[int]], max_new_tokens: int) -> tuple[list[str], list[float], list[int]]:
    """Answers, no-answer probabilities and the number of generated tokens of each question."""
    task = get_task("squad_v2")
    stops = E.stop_token_ids(tok, task.stop)
    abstain = continuation_ids(tok, task.answer_prefix + task.abstain)
    answers, na_probs, generated = [], [], []
    for p in prompts:
        out = model.generate(torch.tensor([p], device=model.device),
                             attention_mask=torch.ones(1, len(p), dtype=torch.long, device=model.device),
                             max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops,
                             pad_token_id=tok.pad_token_id, temperature=None, top_p=None, top_k=None)
        answers.append(task.to_answer(tok.decode(out[0, len(p):], skip_special_tokens=True)))
        generated.append(out.shape[1] - len(p))
        na_probs.append(math.exp(plain_loglik(model, p, abstain)))
    return answers, na_probs, generated


# ------------------------------------------------------------------------------------------------ engine
def run_engine(task_name: str, model, tok, rows: list[dict], settings) -> tuple[list[dict], float]:
    """Predictions and wall seconds of `predict` (after a 4-row warm-up; metrics are not timed)."""
    task = get_task(task_name)
    E.predict(task, model, tok, rows[:4], [], settings)
    start = time.perf_counter()
    preds = E.predict(task, model, tok, rows, [], settings)
    seconds = time.perf_counter() - start
    print(f"{task_name}: engine {len(rows)} examples in {seconds:.1f}s", flush=True)
    return preds, seconds


def sst2_accuracy(rows: list[dict], predicted: dict[str, str]) -> float:
    names = get_task("sst2").label_names
    return sum(predicted[r["id"]] == names[r["label"]] for r in rows) / len(rows)


def squad_scores(preds: list[dict]) -> dict[str, float]:
    result = M.squad_v2_scores({p["id"]: p["gold"] for p in preds}, {p["id"]: p["prediction"] for p in preds},
                               {p["id"]: p["no_answer_prob"] for p in preds})
    return {k: round(result[k], 2) for k in ("exact", "f1", "best_f1")}


def squad_text(preds: list[dict]) -> str:
    s = squad_scores(preds)
    return f"EM {s['exact']:.2f} F1 {s['f1']:.2f} best F1 {s['best_f1']:.2f}"


# ------------------------------------------------------------------------------------------------ lm-eval
def lm_eval_task_dir(rows: list[dict], workdir: Path) -> Path:
    """A task directory holding `sst2_local`: lm-eval's own GLUE sst2 YAML (prompt, choices, metric) reading these
    rows from a local JSON file instead of the Hub."""
    import lm_eval
    import yaml

    data_file = workdir / "sst2_validation.jsonl"
    write_jsonl(data_file, [{"idx": r["idx"], "sentence": r["sentence"], "label": r["label"]} for r in rows])
    config = yaml.safe_load((Path(lm_eval.__file__).parent / "tasks/glue/sst2/default.yaml").read_text())
    for key in ("tag", "dataset_name", "training_split"):
        config.pop(key, None)
    config.update(task="sst2_local", dataset_path="json",
                  dataset_kwargs={"data_files": {"validation": str(data_file)}})
    task_dir = workdir / "lm_eval_tasks"
    task_dir.mkdir(exist_ok=True)
    (task_dir / "sst2_local.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return task_dir


def whole_process_sst2(model_dir: Path, dtype: str, data: Path, rows: list[dict], batch_size: int,
                       workdir: Path) -> dict[str, Any]:
    """What a user waits for: `tuneval eval` and `lm_eval` as whole processes (imports, model load, scoring,
    writing) on all of SST-2 validation, in the same dtype and batch size; wall times, ratio, agreement."""
    import subprocess

    names = get_task("sst2").label_names
    tv_out = workdir / "tuneval_sst2.json"
    tuneval = [sys.executable, "-m", "tuneval.cli", "eval", "--model", str(model_dir), "--task", "sst2",
               "--split", "validation", "--data-dir", str(data), "--dtype", dtype, "--batch-size", str(batch_size),
               "--params", str(Path(__file__).resolve().parents[1] / "params.yaml"), "--out", str(tv_out)]
    lm_out = workdir / "lm_eval_out"
    lm_eval = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
               f"pretrained={model_dir},dtype={dtype}", "--tasks", "sst2_local", "--include_path",
               str(lm_eval_task_dir(rows, workdir)), "--batch_size", str(batch_size), "--device",
               "cuda" if torch.cuda.is_available() else "cpu", "--output_path", str(lm_out), "--log_samples"]
    seconds = {}
    for name, command in (("tuneval", tuneval), ("lm-eval", lm_eval)):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        seconds[name] = time.perf_counter() - start
        print(f"sst2 whole process: {name} {seconds[name]:.1f}s", flush=True)
    ours = {p["id"]: p["predicted"] for p in json.loads(tv_out.with_suffix(".predictions.json").read_text())}
    theirs = {}
    for path in lm_out.rglob("samples_sst2_local_*.jsonl"):
        for line in path.read_text().splitlines():
            sample = json.loads(line)
            scores = [float(r[0]) if isinstance(r, (list, tuple)) else float(r) for r in sample["filtered_resps"]]
            theirs[str(sample["doc"]["idx"])] = names[max(range(len(scores)), key=scores.__getitem__)]
    agree = sum(theirs.get(k) == v for k, v in ours.items())
    return {"examples": len(ours), "dtype": dtype, "batch_size": batch_size,
            "tuneval_s": round(seconds["tuneval"], 1), "lm_eval_s": round(seconds["lm-eval"], 1),
            "ratio": round(seconds["lm-eval"] / seconds["tuneval"], 2), "agree": f"{agree}/{len(ours)}"}


def run_lm_eval(model_dir: Path, dtype: str, rows: list[dict], batch_size: int, workdir: Path) -> dict[str, Any]:
    """lm-eval's `sst2` task on these rows: its own YAML (prompt, choices, metric), with the GLUE Hub dataset
    swapped for a local JSON file. The model is built as `simple_evaluate(model="hf", model_args=...)` builds
    it, but before the clock starts, so that loading is reported apart."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    task_manager = TaskManager(include_path=str(lm_eval_task_dir(rows, workdir)), include_defaults=False)

    model_args = f"pretrained={model_dir},dtype={dtype}"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    start = time.perf_counter()
    lm = HFLM.create_from_arg_string(model_args, {"batch_size": batch_size, "device": device})
    load_s = time.perf_counter() - start
    with torch.inference_mode():  # warm-up, as the engine gets
        lm.model(torch.tensor([[lm.tokenizer.bos_token_id or 0] * 16], device=lm.model.device))
    inner = {"seconds": 0.0}
    loglikelihood = lm.loglikelihood

    def timed_loglikelihood(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return loglikelihood(*args, **kwargs)
        finally:
            inner["seconds"] += time.perf_counter() - t0

    lm.loglikelihood = timed_loglikelihood
    start = time.perf_counter()
    out = lm_eval.simple_evaluate(model=lm, tasks=["sst2_local"], task_manager=task_manager, batch_size=batch_size,
                                  log_samples=True, bootstrap_iters=0)
    seconds = time.perf_counter() - start
    print(f"sst2: lm-eval {len(rows)} examples in {seconds:.1f}s (model load {load_s:.1f}s)", flush=True)
    names = get_task("sst2").label_names
    predicted, logliks = {}, {}
    for sample in out["samples"]["sst2_local"]:
        scores = [float(r[0]) if isinstance(r, (list, tuple)) else float(r) for r in sample["filtered_resps"]]
        key = str(sample["doc"]["idx"])
        predicted[key] = names[max(range(len(scores)), key=scores.__getitem__)]
        logliks[key] = scores
    return {"version": lm_eval.__version__, "model_args": model_args, "load_s": load_s, "seconds": seconds,
            "loglikelihood_s": inner["seconds"], "accuracy": out["results"]["sst2_local"]["acc,none"],
            "predicted": predicted, "logliks": logliks}


# ------------------------------------------------------------------------------------------------ tables
def row(task: str, side: str, n: int, seconds: float, engine_s: float, agree: str, score: str, flops: float,
        dtype: str) -> dict[str, Any]:
    return {"task": task, "side": side, "n": n, "wall_s": round(seconds, 2), "ex_per_s": round(n / seconds, 2),
            "engine_speedup": round(seconds / engine_s, 2), "agrees_with_engine": agree, "score": score,
            "tflop": round(flops / 1e12, 3), "floor_fp32_s": round(floor_seconds(flops, "float32"), 2),
            "floor_bf16_s": round(floor_seconds(flops, "bfloat16"), 2),
            "wall_over_floor": round(seconds / floor_seconds(flops, dtype), 1)}


# ------------------------------------------------------------------------------------------------ sections
@dataclasses.dataclass
class Section:
    """What one task's comparison adds to the report."""

    rows: list[dict[str, Any]]
    notes: list[str]
    engine_preds: list[dict[str, Any]]
    mismatches: int  # engine vs plain loop


PLAIN_SST2 = True  # --no-plain-sst2 skips the per-example SST-2 loop (lm-eval is the SST-2 reference then)


def bench_sst2(model, tok, shape: Shape, rows: list[dict], settings, dtype: str, model_dir: Path,
               lm_eval_dir: Path | None) -> Section:
    """Engine, plain loop and (with `lm_eval_dir`) lm-eval on the same sentences."""
    task, n = get_task("sst2"), len(rows)
    if not rows:
        return Section([], [], [], 0)
    engine, engine_s = run_engine("sst2", model, tok, rows, settings)
    ours = {p["id"]: p["predicted"] for p in engine}
    prompts = [build_prompt(task, r, [], tok, settings.max_prompt_tokens) for r in rows]
    conts = [continuation_ids(tok, c) for c in task.choices]
    if all(len(c) == 1 for c in conts):  # one pass per prompt, logits at its last position only
        engine_flops = shape.forward_flops(sum(len(p) for p in prompts), n)
    else:
        engine_flops = shape.forward_flops(sum(len(p) + len(c) for p in prompts for c in conts),
                                           sum(len(c) for _ in prompts for c in conts))
    out = [row("sst2", "engine", n, engine_s, engine_s, "-", f"acc {sst2_accuracy(rows, ours):.4f}",
               engine_flops, dtype)]

    same = n
    if PLAIN_SST2:
        start = time.perf_counter()
        plain = plain_sst2(model, tok, [build_prompt(task, r, [], tok, settings.max_prompt_tokens) for r in rows])
        plain_s = time.perf_counter() - start
        print(f"sst2: plain loop {n} examples in {plain_s:.1f}s", flush=True)
        plain_by_id = {r["id"]: a for a, r in zip(plain, rows, strict=True)}
        same = sum(plain_by_id[k] == v for k, v in ours.items())
        seq = sum(len(p) + len(c) for p in prompts for c in conts)  # one pass per label word, logits everywhere
        out.append(row("sst2", "plain loop", n, plain_s, engine_s, f"{same}/{n}",
                       f"acc {sst2_accuracy(rows, plain_by_id):.4f}", shape.forward_flops(seq, seq), dtype))
    notes = []
    if lm_eval_dir is not None:
        lm = run_lm_eval(model_dir, dtype, rows, settings.batch_size, lm_eval_dir)
        agree = sum(lm["predicted"][k] == v for k, v in ours.items())
        contexts = {tuple(p + c[:-1]) for p in prompts for c in conts}  # one pass per distinct context ...
        positions = sum(len(c) for c in contexts)  # ... keeping the logits of every position
        out.append(row("sst2", f"lm-eval {lm['version']}", n, lm["seconds"], engine_s, f"{agree}/{n}",
                       f"acc {lm['accuracy']:.4f}", shape.forward_flops(positions, positions), dtype))
        diff = max(abs(lm["logliks"][p["id"]][i] - p["loglik"][name])
                   for p in engine for i, name in enumerate(task.label_names))
        notes.append(f"lm-eval {lm['version']} ({lm['model_args']}, batch {settings.batch_size}): model load "
                     f"{lm['load_s']:.1f}s (not in wall_s); simple_evaluate {lm['seconds']:.1f}s, of which "
                     f"loglikelihood requests {lm['loglikelihood_s']:.1f}s; max |Δ loglik| vs engine {diff:.2e}")
    return Section(out, notes, engine, n - same)


def bench_squad(model, tok, shape: Shape, rows: list[dict], settings, dtype: str) -> Section:
    """Engine vs plain loop on whole articles; the engine's floor shares each context's common prefix."""
    task, n = get_task("squad_v2"), len(rows)
    if not rows:
        return Section([], [], [], 0)
    engine, engine_s = run_engine("squad_v2", model, tok, rows, settings)
    start = time.perf_counter()
    prompts = [build_prompt(task, r, [], tok, settings.max_prompt_tokens) for r in rows]
    answers, na_probs, generated = plain_squad(model, tok, prompts, settings.max_new_tokens)
    plain_s = time.perf_counter() - start
    print(f"squad_v2: plain loop {n} questions in {plain_s:.1f}s", flush=True)
    same = sum(a == p["prediction"] for a, p in zip(answers, engine, strict=True))
    plain_preds = [{**p, "prediction": a, "no_answer_prob": q}
                   for p, a, q in zip(engine, answers, na_probs, strict=True)]

    k = len(continuation_ids(tok, task.answer_prefix + task.abstain))
    groups = defaultdict(list)
    for r, p in zip(rows, prompts, strict=True):
        groups[r["context"]].append(p)
    shared = sum(common_prefix(g) + sum(len(p) - common_prefix(g) for p in g) for g in groups.values())
    # engine floor: each prompt token once (shared prefix once per context), generated tokens but the last, the
    # abstention's k-1 extra tokens; logits per generated token and per abstention token but the first
    engine_flops = shape.forward_flops(shared + sum(g - 1 for g in generated) + n * (k - 1),
                                       sum(generated) + n * (k - 1))
    prompt_tokens = sum(len(p) for p in prompts)
    plain_flops = (shape.forward_flops(prompt_tokens + sum(g - 1 for g in generated), sum(generated))
                   + shape.forward_flops(prompt_tokens + n * k, prompt_tokens + n * k))  # + the no-answer pass
    out = [row("squad_v2", "engine", n, engine_s, engine_s, "-", squad_text(engine), engine_flops,
               dtype),
           row("squad_v2", "plain loop", n, plain_s, engine_s, f"{same}/{n}", squad_text(plain_preds),
               plain_flops, dtype)]
    na_diff = max(abs(a - p["no_answer_prob"]) for a, p in zip(na_probs, engine, strict=True))
    log_diff = max(abs(math.log(max(a, 1e-300)) - math.log(max(p["no_answer_prob"], 1e-300)))
                   for a, p in zip(na_probs, engine, strict=True))
    notes = [f"SQuAD v2: {n} questions, {len(groups)} contexts; {prompt_tokens} prompt tokens, {shared} with each "
             f"context's common prefix counted once; {sum(generated)} generated tokens; no-answer answer = {k} "
             f"token(s); engine vs plain max |Δ no-answer prob| {na_diff:.2e}, max |Δ log prob| {log_diff:.2e}"]
    return Section(out, notes, engine, n - same)


def compare_dtypes(model_dir: Path, dtype: str, tok, sst2_rows: list[dict], squad_rows: list[dict], settings,
                   sst2_preds: list[dict], squad_preds: list[dict]) -> tuple[list[dict[str, Any]], list[str]]:
    """The engine in the other dtype: accuracy / EM / F1 both ways and how many predictions flip."""
    other = "bfloat16" if dtype == "float32" else "float32"
    model = load_model(model_dir, dtype=other)
    out, notes = [], []
    if sst2_rows:
        theirs, seconds = run_engine("sst2", model, tok, sst2_rows, settings)
        s32, s16 = (sst2_preds, theirs) if dtype == "float32" else (theirs, sst2_preds)
        acc32 = sst2_accuracy(sst2_rows, {p["id"]: p["predicted"] for p in s32})
        acc16 = sst2_accuracy(sst2_rows, {p["id"]: p["predicted"] for p in s16})
        flips = sum(a["predicted"] != b["predicted"] for a, b in zip(s32, s16, strict=True))
        out.append({"task": "sst2", "metric": "accuracy", "float32": round(acc32, 4), "bfloat16": round(acc16, 4),
                    "delta": round(acc16 - acc32, 4), "flips": flips, "n": len(sst2_rows),
                    f"engine_s_{other}": round(seconds, 2)})
    if squad_rows:
        theirs, seconds = run_engine("squad_v2", model, tok, squad_rows, settings)
        q32, q16 = (squad_preds, theirs) if dtype == "float32" else (theirs, squad_preds)
        m32, m16 = squad_scores(q32), squad_scores(q16)
        flips = sum(a["prediction"] != b["prediction"] for a, b in zip(q32, q16, strict=True))
        out += [{"task": "squad_v2", "metric": metric, "float32": m32[metric], "bfloat16": m16[metric],
                 "delta": round(m16[metric] - m32[metric], 2), "flips": flips, "n": len(squad_rows),
                 f"engine_s_{other}": round(seconds, 2)} for metric in ("exact", "f1")]
        na = max(abs(a["no_answer_prob"] - b["no_answer_prob"]) for a, b in zip(q32, q16, strict=True))
        notes.append(f"bf16 vs fp32 (engine): max |Δ no-answer prob| on SQuAD {na:.2e}")
    return out, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=default_model(), help="model directory, or `tiny` / `135m` (built here)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "auto"])
    parser.add_argument("--data-dir", type=Path, default=data_dir())
    parser.add_argument("--sst2-n", type=int, default=872, help="first N SST-2 validation sentences")
    parser.add_argument("--squad-articles", type=int, default=1, help="first N SQuAD v2 dev articles (1: 208 q.)")
    parser.add_argument("--squad-max-questions", type=int, default=None, help="cap on their questions (smoke tests)")
    parser.add_argument("--lm-eval", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--compare-dtypes", action="store_true", help="also run the engine in the other dtype")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--plain-sst2", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the per-example loop on SST-2 (the slowest part: ~0.6 s a sentence on Gemma)")
    parser.add_argument("--whole-process", action="store_true",
                        help="only time `tuneval eval` against the `lm_eval` CLI on all SST-2 validation sentences, "
                             "each a whole process, in --dtype")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args()
    if args.whole_process:
        with tempfile.TemporaryDirectory() as tmp:
            result = whole_process_sst2(prepare_model_dir(args.model, Path(tmp)), dtype_name(args.dtype),
                                        args.data_dir, load_sst2(args.data_dir, 872), args.batch_size, Path(tmp))
        print(json.dumps(result, indent=2))
        if args.out:
            args.out.write_text(json.dumps(result, indent=2) + "\n")
        identical = result["agree"] == f"{result['examples']}/{result['examples']}"
        return 0 if identical or dtype_name(args.dtype) != "float32" else 1  # fp32: lm-eval's numbers exactly
    global PLAIN_SST2
    PLAIN_SST2 = args.plain_sst2
    dtype = dtype_name(args.dtype)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'cuda ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}; "
          f"model {args.model}, dtype {args.dtype} -> {dtype}; data {args.data_dir}", flush=True)
    settings = E.EvalSettings(batch_size=args.batch_size, max_prompt_tokens=768, max_new_tokens=args.max_new_tokens,
                              num_fewshot=0, seed=1, chat_template=False)
    sst2_rows = load_sst2(args.data_dir, args.sst2_n)
    squad_rows = load_squad(args.data_dir, args.squad_articles, args.squad_max_questions)

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = prepare_model_dir(args.model, Path(tmp))
        start = time.perf_counter()
        model, tok = load_model(model_dir, dtype=dtype), load_tokenizer(model_dir)
        load_s = time.perf_counter() - start
        shape = shape_of(model)
        print(f"loaded in {load_s:.1f}s: {shape.body_params / 1e6:.1f}M non-embedding parameters, "
              f"hidden {shape.hidden}, vocab {shape.vocab}", flush=True)
        sst2 = bench_sst2(model, tok, shape, sst2_rows, settings, dtype, model_dir, Path(tmp) if args.lm_eval else None)
        squad = bench_squad(model, tok, shape, squad_rows, settings, dtype)
        del model
        dtype_rows, dtype_notes = [], []
        if args.compare_dtypes:
            dtype_rows, dtype_notes = compare_dtypes(model_dir, dtype, tok, sst2_rows, squad_rows, settings,
                                                     sst2.engine_preds, squad.engine_preds)

    table, notes = sst2.rows + squad.rows, sst2.notes + squad.notes + dtype_notes
    print_table(table, f"{args.model} ({dtype}, {torch.get_num_threads()} threads); wall_s excludes model loading "
                       f"(engine load {load_s:.1f}s); floors at {PEAK_GFLOPS['float32']:.0f} (fp32) / "
                       f"{PEAK_GFLOPS['bfloat16']:.0f} (bf16) GFLOP/s; wall_over_floor at the {dtype} peak")
    print_table(dtype_rows, "engine, bf16 vs fp32 (flips = examples whose prediction changes)")
    print("\n" + "\n".join(notes), flush=True)
    mismatches = sst2.mismatches + squad.mismatches
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                                        "model": args.model, "dtype": dtype, "engine_load_s": round(load_s, 2),
                                        "shape": dataclasses.asdict(shape), "table": table, "dtypes": dtype_rows,
                                        "notes": notes, "prediction_mismatches": mismatches}, indent=2) + "\n")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
