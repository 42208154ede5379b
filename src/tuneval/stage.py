"""Shared entry point for stage scripts: parse `--task`, load params, turn user errors into one paragraph."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from tuneval.config import Params, load_params
from tuneval.errors import report_error

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_stage(fn: Callable[..., object], needs_task: bool = True) -> None:
    """`python stages/x.py --task sst2` -> fn("sst2", params); a message + exit 1 on any error."""
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__)
    if needs_task:
        parser.add_argument("--task", required=True, help="task name (see src/tuneval/tasks/*.yaml)")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args()

    try:
        params: Params = load_params(args.params)
        fn(args.task, params) if needs_task else fn(params)
    except Exception as err:  # noqa: BLE001 - every message leaving a stage goes through redact()
        report_error(err)
        sys.exit(1)
