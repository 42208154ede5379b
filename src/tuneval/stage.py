"""Shared entry point for stage scripts: parse `--task`, load params, turn known errors into one line."""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping

from tuneval.config import ConfigError, Params, load_params
from tuneval.io import DataError

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SECRET_NAME = re.compile(r"(_TOKEN|_KEY)$|SECRET|PASSWORD", re.IGNORECASE)
MIN_SECRET_LENGTH = 8  # shorter values ("1", "true") would blank out ordinary words


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """`text` with the value of every *_TOKEN / *_KEY / *SECRET* / *PASSWORD* variable replaced by its name."""
    environ = os.environ if environ is None else environ
    secrets = {v: k for k, v in environ.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH}
    for value in sorted(secrets, key=len, reverse=True):  # longest first: one value may contain another
        text = text.replace(value, f"<{secrets[value]} redacted>")
    return text


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input or environment (one line, no traceback); imported late: torch is slow."""
    from tuneval.distributed import LaunchError
    from tuneval.modeling import ModelLoadError
    from tuneval.publishing import PublishError

    return ConfigError, DataError, LaunchError, ModelLoadError, PublishError, KeyError


def run_stage(fn: Callable[..., object], needs_task: bool = True) -> None:
    """`python stages/x.py --task sst2` -> fn("sst2", params); clear message + exit 1 on user errors."""
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__)
    if needs_task:
        parser.add_argument("--task", required=True, help="task name (see src/tuneval/tasks/*.yaml)")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args()

    try:
        params: Params = load_params(args.params)
        fn(args.task, params) if needs_task else fn(params)
    except Exception as err:  # noqa: BLE001 - every message leaving a stage goes through redact()
        known = isinstance(err, (ConfigError, DataError, KeyError))  # checked first: no torch import needed
        if known or isinstance(err, _user_errors()):
            message = err.args[0] if isinstance(err, KeyError) and err.args else err
            print(f"error: {redact(str(message))}", file=sys.stderr)
        else:  # a bug: keep the traceback, minus any secret it may quote
            print(redact(traceback.format_exc()), end="", file=sys.stderr)
        sys.exit(1)
