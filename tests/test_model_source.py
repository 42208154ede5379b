"""Where a model comes from is decided by one function (models/source.py) and recorded in models/base."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from tuneval.config import load_params
from tuneval.errors import ModelLoadError
from tuneval.models.source import RECORD_FILE, ModelSource, read_record, resolve_source, write_record

REPO = Path(__file__).resolve().parents[1]


def _model(name: str, gguf_file: str | None = None):
    return dataclasses.replace(load_params(REPO / "params.yaml").model, name=name, gguf_file=gguf_file)


@pytest.mark.parametrize(("name", "gguf_file", "kind", "hub_base"), [
    ("tiny-llama", None, "tiny", None),
    ("gemma-3-270m", None, "gguf_package", "google/gemma-3-270m"),
    ("weights/model-q4.gguf", None, "gguf_file", None),
    ("unsloth/gemma-3-270m-it-GGUF", "gemma-3-270m-it-Q4_K_M.gguf", "gguf_file", "unsloth/gemma-3-270m-it-GGUF"),
    ("meta-llama/Llama-3.2-1B", None, "hub", "meta-llama/Llama-3.2-1B"),
])
def test_resolve_source_decides_the_kind_and_the_hub_base(name, gguf_file, kind, hub_base):
    source = resolve_source(_model(name, gguf_file))
    assert (source.kind, source.name, source.hub_base_model()) == (kind, name, hub_base)
    assert source.is_gguf == kind.startswith("gguf")


def test_an_existing_directory_is_a_local_model(tmp_path):
    source = resolve_source(_model(str(tmp_path)))
    assert source.kind == "local" and source.hub_base_model() is None


def test_the_record_round_trips_and_a_bad_one_names_the_file(tmp_path):
    source = ModelSource("hub", "meta-llama/Llama-3.2-1B", "main")
    write_record(source, tmp_path)
    assert read_record(tmp_path) == source
    assert read_record(tmp_path / "nowhere") is None
    (tmp_path / RECORD_FILE).write_text(json.dumps({"kind": "ftp", "name": "x"}))
    with pytest.raises(ModelLoadError, match=re.escape(f"{tmp_path / RECORD_FILE}: kind 'ftp'")):
        read_record(tmp_path)


def test_one_function_decides_the_model_source():
    """The acceptance grep: only models/source.py compares model.name with the tiny or offline GGUF names."""
    deciding = re.compile(r"(in|not in) (TINY_MODELS|OFFLINE_MODELS)\b|\.endswith\(\"\.gguf\"\)")
    hits = sorted(str(p.relative_to(REPO)) for p in (REPO / "src/tuneval").rglob("*.py")
                  if deciding.search(p.read_text()))
    assert hits == ["src/tuneval/models/source.py"]
