"""Where SQuAD v2 scoring spends its time: the engine on the study's validation questions (engine.predict_raw,
as the eval stages run it), timed per part (prefill packs, decoding, cache merges, stop-token scan), with a digest of
the outputs so two code versions can be checked for the same answers.

    python benchmarks/profile_squad.py --model models/base --dtype bfloat16            # all 560, ~1.5 min
    python benchmarks/profile_squad.py --n 120 --dtype float32 --out /tmp/new.json     # fp32 answers to compare

Alternate the versions you compare (this VM's speed drifts 10-25% between runs). `--out` writes the answers
and no-answer log-probabilities; `--compare OTHER.json` prints how many answers agree and the largest
|Δ log-prob|.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from collections import defaultdict
from pathlib import Path

from tuneval import paths
from tuneval.config import load_params
from tuneval.io import read_jsonl
from tuneval.models.loading import load_model, load_tokenizer
from tuneval.scoring import engine as E
from tuneval.tasks import get_task

PARTS = {"_start_pack": "prefill packs", "_start_group": "prefill, long groups", "_greedy": "decoding",
         "_merge": "cache merges", "stop_token_ids": "stop-token scan"}


def timed_parts() -> dict[str, float]:
    """Wrap the engine's parts so each call adds its wall time to the returned dict."""
    spent: dict[str, float] = defaultdict(float)

    def timed(fn, label: str):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - start
        return wrapper

    for name, label in PARTS.items():
        setattr(E, name, timed(getattr(E, name), label))
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(paths.BASE_MODEL))
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--n", type=int, default=None, help="first N validation questions (default: all)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--compare", type=Path, default=None)
    args = parser.parse_args()

    params, task = load_params(), get_task("squad_v2")
    settings = E.EvalSettings.from_params(params)
    rows = read_jsonl(paths.eval_rows_file(task.name, "validation"))[: args.n]
    train_rows = read_jsonl(paths.split_file(task.name, "train"))  # few-shot demonstrations, if eval asks for any
    tokenizer, model = load_tokenizer(args.model), load_model(args.model, dtype=args.dtype)
    spent = timed_parts()
    start = time.perf_counter()
    raw = E.predict_raw(task, model, tokenizer, rows, train_rows, settings)  # what the eval stages run
    wall = time.perf_counter() - start
    texts, logprobs = raw["texts"], raw["abstain_lp"]
    digest = hashlib.sha256(json.dumps([texts, [round(x, 4) for x in logprobs]]).encode()).hexdigest()[:12]
    print(f"{len(rows)} questions, {args.dtype}: {wall:.1f} s "
          f"({len(rows) / wall:.2f} q/s); " + ", ".join(f"{k} {v:.1f} s" for k, v in spent.items())
          + f"; outputs {digest}")
    if args.out:
        args.out.write_text(json.dumps({"texts": texts, "no_answer_logprob": logprobs, "wall_s": round(wall, 1),
                                        "parts_s": {k: round(v, 1) for k, v in spent.items()}}))
    if args.compare:
        other = json.loads(args.compare.read_text())
        same = sum(a == b for a, b in zip(texts, other["texts"], strict=True))
        delta = max(abs(a - b) for a, b in zip(logprobs, other["no_answer_logprob"], strict=True))
        prob = max(abs(math.exp(a) - math.exp(b)) for a, b in zip(logprobs, other["no_answer_logprob"], strict=True))
        print(f"vs {args.compare}: {same}/{len(texts)} answers identical, max |Δ log-prob| {delta:.2e}, "
              f"max |Δ prob| {prob:.2e}")


if __name__ == "__main__":
    main()
