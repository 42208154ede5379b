"""Every error a user should see as one `error: ...` paragraph, and the redaction applied to anything printed.

A `TunevalError` means bad input or environment (params, data, a model that cannot load, a failed launch, ...):
stages and the CLI print its message and exit 1. Anything else is a bug and keeps its traceback. This module
imports nothing from tuneval (and no torch), so every other module, and `tuneval.stage`, can import it cheaply.

Each subclass also derives from the builtin it replaced (ValueError, RuntimeError, ...), so callers that caught
the builtin keep working; new code should catch the tuneval class.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections.abc import Mapping


class TunevalError(Exception):
    """Base class: the message is a one-paragraph explanation for the user (what is wrong, where, how to fix it)."""


class ConfigError(TunevalError, ValueError):
    """A params.yaml value is missing, misspelled or out of range."""


class TaskError(ConfigError):
    """An unknown task name; the message lists the defined tasks. (Not a KeyError: a KeyError is a bug.)"""


class DataError(TunevalError, ValueError):
    """An input file is missing, empty or does not match its schema. The message names file and line."""


class ModelLoadError(TunevalError, RuntimeError):
    """A model could not be loaded; the message says why and how to fix it."""


class LaunchError(TunevalError, RuntimeError):
    """The launched training processes failed or could not start; their own output says why."""


class PublishError(TunevalError, RuntimeError):
    """Publishing was asked for but cannot happen; nothing was uploaded."""


class WordNetMissingError(TunevalError, RuntimeError):
    """WordNet cannot be loaded by NLTK; the message says how to install it."""


# --------------------------------------------------------------------------------------------- redaction
SECRET_NAME = re.compile(r"(_TOKEN|_KEY)$|SECRET|PASSWORD", re.IGNORECASE)
MIN_SECRET_LENGTH = 8  # shorter values ("1", "true") would blank out ordinary words


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """`text` with the value of every *_TOKEN / *_KEY / *SECRET* / *PASSWORD* variable replaced by its name."""
    environ = os.environ if environ is None else environ
    secrets = {v: k for k, v in environ.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH}
    for value in sorted(secrets, key=len, reverse=True):  # longest first: one value may contain another
        text = text.replace(value, f"<{secrets[value]} redacted>")
    return text


def report_error(err: BaseException) -> None:
    """Print a TunevalError as `error: <message>`, anything else (a bug) as its full traceback; both redacted.

    Only TunevalError counts as the user's problem: a KeyError or ValueError from deep inside is a bug whose
    traceback is what a bug report needs, so it is never shortened to one line.
    """
    if isinstance(err, TunevalError):
        print(f"error: {redact(str(err))}", file=sys.stderr)
    else:
        print(redact("".join(traceback.format_exception(err))), end="", file=sys.stderr)
