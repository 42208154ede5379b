"""One error hierarchy (tuneval.errors) and one way to show it: a TunevalError is one redacted `error:` paragraph
and exit 1, anything else (a bug) keeps its full, redacted traceback; stages and the CLI alike. Plus the import
structure that keeps stage start-up cheap and acyclic."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import pytest
from repo_helpers import SECRETS

from tuneval import cli, errors
from tuneval.errors import DataError, TunevalError
from tuneval.stage import run_stage

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------------------ hierarchy
def test_every_user_facing_error_is_a_tuneval_error_defined_in_errors():
    """The classes that once lived in config / io / modeling / distributed / publishing / wordnet are the same
    objects wherever they are imported from, and the builtin bases they had are kept for old `except` clauses."""
    from tuneval import config, io, tasks
    from tuneval.models import loading as modeling
    from tuneval.report import card as publishing
    from tuneval.scoring import wordnet
    from tuneval.train import launch as distributed

    for module, name, builtin in [(config, "ConfigError", ValueError), (io, "DataError", ValueError),
                                  (modeling, "ModelLoadError", RuntimeError),
                                  (distributed, "LaunchError", RuntimeError),
                                  (publishing, "PublishError", RuntimeError),
                                  (wordnet, "WordNetMissingError", RuntimeError)]:
        cls = getattr(module, name)
        assert cls is getattr(errors, name) and cls.__module__ == "tuneval.errors"
        assert issubclass(cls, TunevalError) and issubclass(cls, builtin)
    with pytest.raises(errors.TaskError, match="unknown task 'imdb'") as caught:
        tasks.get_task("imdb")
    assert not isinstance(caught.value, KeyError)  # a KeyError means a bug, never a user error


def test_no_error_class_is_defined_outside_errors():
    """`class XError(...)` only in tuneval.errors (the installer script keeps its own, it is not the library)."""
    stray = [f"{path.relative_to(REPO)}: {line.strip()}"
             for path in sorted((REPO / "src/tuneval").rglob("*.py")) if path.name != "errors.py"
             for line in path.read_text().splitlines() if line.startswith("class ") and "Error(" in line]
    assert stray == []


# ---------------------------------------------------------------------------------------------- stages
def _stage_stderr(err: Exception, monkeypatch, capsys) -> str:
    """run_stage on a stage function raising `err`; stderr, after asserting exit status 1."""
    def stage_fn(task, params):
        raise err

    monkeypatch.setattr(sys, "argv", ["stage.py", "--task", "sst2", "--params", str(REPO / "params.yaml")])
    with pytest.raises(SystemExit) as exited:
        run_stage(stage_fn)
    assert exited.value.code == 1
    return capsys.readouterr().err


def test_a_keyerror_in_a_stage_is_a_bug_and_keeps_its_traceback(monkeypatch, capsys):
    err = _stage_stderr(KeyError("label"), monkeypatch, capsys)
    assert err.startswith("Traceback (most recent call last):") and "KeyError: 'label'" in err
    assert "error:" not in err


def test_a_tuneval_error_in_a_stage_is_one_paragraph(monkeypatch, capsys):
    message = "data/x.jsonl:3: expected a JSON object, got list. Fix the file or set data.source=sample."
    err = _stage_stderr(DataError(message), monkeypatch, capsys)
    assert err == f"error: {message}\n"


# ------------------------------------------------------------------------------------------------- CLI
def _cli(argv: list[str], capsys) -> str:
    assert cli.main(argv) == 1
    return capsys.readouterr().err


def test_cli_user_error_is_one_redacted_paragraph(monkeypatch, capsys, tmp_path):
    """A real user error through `tuneval eval`: a --data-dir that does not exist, its path holding a secret."""
    monkeypatch.setenv("HF_TOKEN", SECRETS["HF_TOKEN"])
    data_dir = tmp_path / f"data-{SECRETS['HF_TOKEN']}"
    err = _cli(["eval", "--model", "unused", "--task", "sst2", "--data-dir", str(data_dir),
                "--params", str(REPO / "params.yaml")], capsys)
    assert err.startswith("error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "file not found" in err and "<HF_TOKEN redacted>" in err and SECRETS["HF_TOKEN"] not in err


def test_cli_unknown_task_is_a_user_error(capsys):
    err = _cli(["eval", "--model", "unused", "--task", "imdb", "--params", str(REPO / "params.yaml")], capsys)
    assert err.startswith("error: unknown task 'imdb'") and "Traceback" not in err


def test_cli_bug_keeps_a_redacted_traceback(monkeypatch, capsys):
    monkeypatch.setenv("MY_SERVICE_TOKEN", SECRETS["MY_SERVICE_TOKEN"])

    def broken(args):
        return {}[f"row-{SECRETS['MY_SERVICE_TOKEN']}"]  # a plain KeyError: a bug

    monkeypatch.setattr(cli, "cmd_eval", broken)
    err = _cli(["eval", "--model", "unused", "--task", "sst2"], capsys)
    assert err.startswith("Traceback (most recent call last):") and "KeyError" in err
    assert "<MY_SERVICE_TOKEN redacted>" in err and SECRETS["MY_SERVICE_TOKEN"] not in err


def test_stage_and_cli_share_one_reporter():
    """No second list of 'known' errors anywhere: both entry points hand every exception to report_error."""
    from tuneval import stage

    for module in (stage, cli):
        source = inspect.getsource(module)
        assert "report_error(err)" in source and "KeyError" not in source
