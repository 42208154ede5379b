"""Training throughput: tuneval's collation (length-grouped batches, padded to the batch's longest; and the
padding-free packing option) against a plain Trainer that pads every example to max_length, on the same
SQuAD v2 examples and model.

    python benchmarks/bench_train.py --out benchmarks/results/train_cpu.json   # tiny + a ~135M Llama shape
    python benchmarks/bench_train.py --models tiny --steps 60

Reports non-padding tokens per second (the tokens that carry signal) and the ratio. All sides use the
same loss masking (answer tokens only) and optimizer settings; only batching differs.

Real-model mode: the library's own training (`tuneval.train.trainer.fit`, as the train stage runs it) on a model
directory, for the first N SQuAD v2 train examples (one epoch: N / batch-size optimizer steps):

    python benchmarks/bench_train.py --model /tmp/exp/g270 --method lora --examples 64 --dtype auto

Reports training tokens/s (all tokens and answer tokens) of the training loop (loading, tokenizing and saving
left out), peak memory (ru_maxrss) and the FLOP floor: 3 x forward FLOPs (backward ~ 2 x forward), the forward
being 2 x non-embedding params x tokens + 2 x hidden x vocab x positions whose logits are computed, once with
the lm_head on the answer positions only and once on every position.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from benchlib import data_dir, dtype_name, floor_seconds, loop_timer, print_table, shape_of_dir
from transformers import DataCollatorWithFlattening

from tuneval.config import load_params
from tuneval.data import SAMPLE_DIR, normalize
from tuneval.io import read_jsonl, write_jsonl
from tuneval.models.loading import load_model, load_tokenizer
from tuneval.models.tiny import build_tiny_model
from tuneval.tasks import demonstration, get_task
from tuneval.train.batches import IGNORE_INDEX, CompletionCollator, encode_example
from tuneval.train.job import TrainJob
from tuneval.train.trainer import fit

SHAPE_135M = dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                  intermediate_size=1536, vocab_size=49152, max_position_embeddings=2048, tie_word_embeddings=True)


@dataclasses.dataclass
class PadToMax(CompletionCollator):
    """The baseline: every example padded to the same fixed length."""

    max_length: int = 768

    def __call__(self, features):
        padded = [{"input_ids": f["input_ids"] + [self.pad_token_id] * (self.max_length - len(f["input_ids"])),
                   "labels": f["labels"] + [IGNORE_INDEX] * (self.max_length - len(f["labels"]))} for f in features]
        batch = super().__call__(padded)
        for i, f in enumerate(features):
            batch["attention_mask"][i, len(f["input_ids"]):] = 0
        return batch


def run(model_factory, dataset, collator, sampling: str, steps: int, batch_size: int) -> tuple[float, int]:
    """Seconds and non-padding tokens for `steps` optimizer steps of HF Trainer."""
    from transformers import Trainer, TrainingArguments

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=batch_size, max_steps=steps,
                                 learning_rate=2e-5, report_to="none", save_strategy="no", logging_strategy="no",
                                 train_sampling_strategy=sampling, seed=1, disable_tqdm=True,
                                 dataloader_pin_memory=False)
        trainer = Trainer(model=model_factory(), args=args, train_dataset=dataset, data_collator=collator)
        seen = []
        original = trainer.training_step

        def counting_step(model, inputs, *a, **k):
            mask = inputs.get("attention_mask")  # packed batches have none: every token is real
            seen.append(int(mask.sum()) if mask is not None else inputs["input_ids"].numel())
            return original(model, inputs, *a, **k)

        trainer.training_step = counting_step
        start = time.perf_counter()
        trainer.train()
        return time.perf_counter() - start, sum(seen)


def real_model(args: argparse.Namespace) -> int:
    """`fit` on `args.model` for the first `args.examples` SQuAD v2 train examples; prints one table row."""
    task = get_task("squad_v2")
    rows = normalize(task, read_jsonl(args.data_dir / "squad_v2/train_partial.jsonl.gz"))[: args.examples]
    dtype = dtype_name(args.dtype)
    defaults = load_params(Path(__file__).resolve().parents[1] / "params.yaml")  # the one source of defaults
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = Path(args.model)
        if args.model == "tiny":
            model_dir = root / "tiny"
            build_tiny_model(dataclasses.replace(defaults.model, name="tiny-llama"),
                             [demonstration(task, r) for r in rows], 1, model_dir)
        params = dataclasses.replace(
            defaults, epochs=1, batch_size=args.batch_size,
            model=dataclasses.replace(defaults.model, name=str(model_dir), dtype=args.dtype),
            train=dataclasses.replace(defaults.train, method=args.method, save_steps=None, log_points=10**6,
                                      per_device_batch_size=args.per_device_batch_size or args.batch_size,
                                      max_length=args.max_length, eval_examples=None),
        )
        write_jsonl(root / "train.jsonl", rows)
        job = TrainJob(task="squad_v2", base_model=model_dir, train_file=root / "train.jsonl", out_dir=root / "out",
                        live_dir=root / "live", checkpoint_dir=root / "ckpt")
        shape = shape_of_dir(model_dir)
        timer = loop_timer()
        stats = fit(job, params, resuming=False, callbacks=[timer])
    seconds, tokens, answers = timer.seconds, stats["train_tokens"], stats["answer_tokens"]
    at_answers = 3 * shape.forward_flops(tokens, answers)  # forward + backward ~ 3 x forward
    everywhere = 3 * shape.forward_flops(tokens, tokens)
    row = {"model": args.model, "method": args.method, "dtype": dtype, "examples": stats["train_examples"],
           "steps": stats["optimizer_steps"], "batch": args.batch_size, "tokens": tokens, "answer_tokens": answers,
           "loop_s": round(seconds, 1), "tok_per_s": round(tokens / seconds, 1),
           "answer_tok_per_s": round(answers / seconds, 2),
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
           "trainable_params": stats["trainable_parameters"],
           "tflop_head_at_answers": round(at_answers / 1e12, 3),
           "floor_s_head_at_answers": round(floor_seconds(at_answers, dtype), 1),
           "tflop_head_everywhere": round(everywhere / 1e12, 3),
           "floor_s_head_everywhere": round(floor_seconds(everywhere, dtype), 1),
           "wall_over_floor_at_answers": round(seconds / floor_seconds(at_answers, dtype), 1)}
    print_table([row], f"training loop, {torch.get_num_threads()} threads; floors at the {dtype} peak "
                       f"({shape.body_params / 1e6:.1f}M non-embedding params, hidden {shape.hidden}, "
                       f"vocab {shape.vocab}); peak_rss = ru_maxrss of the whole process")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                                        "shape": dataclasses.asdict(shape), "result": row}, indent=2) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "135m"], choices=["tiny", "135m"])
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per run (tiny model)")
    parser.add_argument("--big-steps", type=int, default=4, help="optimizer steps per run (135M model)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=768)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    real = parser.add_argument_group("real-model mode (--model): the library's fit on a model directory")
    real.add_argument("--model", help="model directory (or `tiny`); switches to this mode")
    real.add_argument("--method", choices=["lora", "full"], default="lora")
    real.add_argument("--examples", type=int, default=64, help="first N SQuAD v2 train examples, one epoch")
    real.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto",
                      help="model.dtype: bf16 autocast over fp32 weights where it resolves to bfloat16")
    real.add_argument("--per-device-batch-size", type=int, default=None, help="micro-batch (default: --batch-size)")
    real.add_argument("--data-dir", type=Path, default=data_dir())
    args = parser.parse_args()
    if args.model:
        return real_model(args)
    task = get_task("squad_v2")
    rows = normalize(task, read_jsonl(SAMPLE_DIR / "squad_v2/train_partial.jsonl.gz"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'cuda ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "tiny"
        model_cfg = dataclasses.replace(load_params(Path(__file__).resolve().parents[1] / "params.yaml").model,
                                        name="tiny-llama")  # params.yaml: the one source of defaults
        build_tiny_model(model_cfg, [demonstration(task, r) for r in rows], 1, base)
        tokenizer = load_tokenizer(base)
        dataset = [encode_example(task, r, tokenizer, args.max_length) for r in rows]
        mean_len = sum(len(x["input_ids"]) for x in dataset) / len(dataset)
        print(f"{len(dataset)} SQuAD v2 train examples, mean {mean_len:.0f} tokens, padded baseline to "
              f"{args.max_length}")
        factories = {}
        if "tiny" in args.models:
            factories["tiny (1M)"] = (lambda: load_model(base, dtype="float32"), args.steps)
        if "135m" in args.models:
            from transformers import LlamaConfig, LlamaForCausalLM

            def big():
                torch.manual_seed(1)
                return LlamaForCausalLM(LlamaConfig(pad_token_id=tokenizer.pad_token_id, **SHAPE_135M))

            factories["llama-shaped (135M)"] = (big, args.big_steps)
        results = []
        for label, (factory, steps) in factories.items():
            sides = {  # name -> (collator, sampling)
                "pad-to-max": (PadToMax(tokenizer.pad_token_id, args.max_length), "random"),
                "tuneval grouped": (CompletionCollator(tokenizer.pad_token_id), "group_by_length"),
                "tuneval packed": (DataCollatorWithFlattening(), "random"),
            }
            tps = {}
            for name, (collator, sampling) in sides.items():
                seconds, tokens = run(factory, dataset, collator, sampling, steps, args.batch_size)
                tps[name] = tokens / seconds
            base = tps["pad-to-max"]
            print(f"{label:<20} {steps} steps x {args.batch_size}: "
                  + "   ".join(f"{name} {v:7.0f} tok/s (x{v / base:.1f})" for name, v in tps.items()), flush=True)
            results.append({"model": label, "steps": steps, "batch_size": args.batch_size,
                            "tokens_per_second": tps, "speedup": {k: v / base for k, v in tps.items()}})
    if args.out:
        args.out.write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                                        "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
