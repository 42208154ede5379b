"""`tuneval eval`: the pipeline's evaluation engine for ad-hoc use, without DVC; `tuneval compare`: experiments.

    tuneval eval --model models/sst2 --task sst2 --split validation [--num-fewshot K] [--limit N] [--out f.json]
    tuneval compare EXP_A EXP_B [EXP_C ...] [--task T] [--split S] [--metric M] [--json PATH]   (tuneval.report.compare)
    tuneval agree [--rev REV] [--task T] [--phase P] [--json [PATH]]   (tuneval.report.agreement: a rerun vs git)
    tuneval curve --param KEY --task T [--metric M] [--experiments all|NAME ...] [--out DIR]   (tuneval.report.curve)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tuneval.config import load_params
from tuneval.errors import ConfigError, DataError, report_error
from tuneval.io import read_jsonl, write_json
from tuneval.report import agreement, compare, curve


def _rows_for(task, split: str, data_dir: Path | None, params) -> tuple[list[dict], list[dict], str]:
    """(rows to score, rows for few-shot demonstrations, where the rows came from): pipeline outputs if present
    (demonstrations from the split's pool, as the eval stages draw them), else the raw data."""
    from tuneval import paths
    from tuneval.data import load_raw, normalize

    if data_dir is None and paths.eval_rows_file(task.name, split).is_file():
        train = paths.split_file(task.name, "pool")
        source = paths.eval_rows_file(task.name, split)
        what = ("the pipeline's 80/20 holdout" if split == "test" else
                f"the pipeline's prepared copy (data.validation_examples.{task.name} = "
                f"{params.data.validation_examples.get(task.name)}, "
                "a seeded draw when set; --data-dir scores the raw files)")
        return read_jsonl(source), read_jsonl(train) if train.is_file() else [], f"{source}: {what}"
    if split == "test":
        raise DataError("--split test needs the pipeline's split (run `dvc repro split`); use --split validation")
    if data_dir is not None:
        from dataclasses import replace

        params = replace(params, data=replace(params.data, source="local", local_dir=str(data_dir)))
    rows, origin = load_raw(task, "validation", params)
    return normalize(task, rows), normalize(task, load_raw(task, "train", params)[0]), f"{origin}: every row"


def resolve_model_arg(model: str, params) -> str:
    """A model directory or hub id as given; a GGUF (`gemma-3-270m`, a .gguf file) is converted once into
    ~/.cache/tuneval/gguf/ and that plain directory is used from then on."""
    from dataclasses import replace

    from tuneval.models.gguf import cached_conversion
    from tuneval.models.source import resolve_source

    model_cfg = replace(params.model, name=model, gguf_file=None)
    return str(cached_conversion(model_cfg)) if resolve_source(model_cfg).is_gguf else model


FLAG_MINIMUMS = {"num_processes": 1, "batch_size": 1, "limit": 1, "num_fewshot": 0}


def cmd_eval(args: argparse.Namespace) -> int:
    from tuneval.data import draw
    from tuneval.models.loading import load_model, load_tokenizer
    from tuneval.scoring.engine import EvalSettings
    from tuneval.scoring.parallel import check_processes, predict_parallel
    from tuneval.scoring.scores import score
    from tuneval.tasks import get_task

    for name, low in FLAG_MINIMUMS.items():  # refused before any work, like params.yaml's values
        value = getattr(args, name)
        if value is not None and value < low:
            raise ConfigError(f"--{name.replace('_', '-')} {value}: expected an integer >= {low}")
    if args.timeout is not None and not args.timeout > 0:
        raise ConfigError(f"--timeout {args.timeout:g}: expected a number of seconds > 0")
    params = load_params(args.params)
    processes = params.eval.num_processes if args.num_processes is None else args.num_processes
    check_processes(processes, "eval.num_processes" if args.num_processes is None else "--num-processes")
    task = get_task(args.task)
    rows, train_rows, origin = _rows_for(task, args.split, args.data_dir, params)
    total = len(rows)
    rows = draw(rows, args.limit, f"{params.data.seed}-limit")  # the pipeline's eval.limit draw
    settings = EvalSettings.from_params(params, batch_size=args.batch_size, num_fewshot=args.num_fewshot,
                                        chat_template=args.chat_template)  # flags override params, never ignore
    print(f"scoring {len(rows):,} of {total:,} rows from {origin}")
    model_path = resolve_model_arg(args.model, params)
    tokenizer = load_tokenizer(model_path)
    dtype = args.dtype or params.model.dtype
    model = load_model(model_path, dtype=dtype)
    timeout = {} if args.timeout is None else {"timeout_s": args.timeout}  # else predict_parallel's default
    predictions = predict_parallel(task, model, tokenizer, model_path, dtype, rows, train_rows, settings, processes,
                                   **timeout)
    scores = score(task, predictions)
    print(f"{task.name} [{args.split}] {len(rows):,} examples, {settings.num_fewshot}-shot, model {args.model}")
    for key, value in scores.items():
        if isinstance(value, int | float):
            print(f"  {key:<22} {value:.4f}" if isinstance(value, float) else f"  {key:<22} {value}")
    if args.out:
        write_json(args.out, {args.split: scores})
        write_json(Path(args.out).with_suffix(".predictions.json"), predictions, indent=None)
        print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tuneval", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="score a model on a task (same engine as the pipeline)")
    ev.add_argument("--model", required=True,
                    help="model directory (e.g. models/sst2), hub id, .gguf file or gemma-3-270m (offline GGUF)")
    ev.add_argument("--task", required=True, help="sst2 | squad_v2")
    ev.add_argument("--split", default="validation", choices=["validation", "test"])
    ev.add_argument("--num-fewshot", type=int, default=None, help="demonstrations (default: eval.num_fewshot)")
    ev.add_argument("--chat-template", action=argparse.BooleanOptionalAction, default=None,
                    help="wrap prompts in the tokenizer's chat template (default: eval.chat_template)")
    ev.add_argument("--limit", type=int, default=None, help="score a seeded random draw of N examples")
    ev.add_argument("--batch-size", type=int, default=None)
    ev.add_argument("--num-processes", type=int, default=None,
                    help="data-parallel scoring processes, one per GPU (default: eval.num_processes)")
    ev.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                    help="stop every scoring process with an error when the split takes longer (default: 86400)")
    ev.add_argument("--dtype", default=None, choices=["auto", "float32", "bfloat16", "float16"],
                    help="weights and compute dtype (default: model.dtype)")
    ev.add_argument("--data-dir", type=Path, default=None,
                    help="JSONL root in the shared-data layout (e.g. ../shared/data) instead of pipeline outputs")
    ev.add_argument("--params", default="params.yaml")
    ev.add_argument("--out", default=None, help="write metrics JSON here (+ .predictions.json beside it)")
    compare.add_parser(sub)  # `tuneval compare`: its arguments and command live in tuneval.report.compare
    agreement.add_parser(sub)  # `tuneval agree`: likewise in tuneval.report.agreement
    curve.add_parser(sub)  # `tuneval curve`: likewise in tuneval.report.curve
    args = parser.parse_args(argv)
    commands = {"compare": compare.cmd_compare, "agree": agreement.cmd_agree, "curve": curve.cmd_curve}
    try:
        return commands.get(args.command, cmd_eval)(args)
    except Exception as err:  # noqa: BLE001 - as in stages: a user error is one paragraph, a bug its traceback
        report_error(err)
        return 1


if __name__ == "__main__":
    sys.exit(main())
