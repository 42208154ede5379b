"""Shared entry point for stage scripts: parse `--task`, load params, turn known errors into one line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from tuneval.config import ConfigError, Params, load_params
from tuneval.io import DataError

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_stage(fn: Callable[..., object], needs_task: bool = True) -> None:
    """`python stages/x.py --task sst2` -> fn("sst2", params); clear message + exit 1 on user errors."""
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__)
    if needs_task:
        parser.add_argument("--task", required=True, help="task name (see src/tuneval/tasks/*.yaml)")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args()
    from tuneval.modeling import ModelLoadError
    from tuneval.publishing import PublishError

    try:
        params: Params = load_params(args.params)
        fn(args.task, params) if needs_task else fn(params)
    except (ConfigError, DataError, ModelLoadError, PublishError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)
