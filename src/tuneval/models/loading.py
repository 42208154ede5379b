"""Loading any model the same way: `load_model` / `load_tokenizer` end in `from_pretrained` for every source.

`models/base` is a plain Hugging Face model directory (a tiny model, or a GGUF converted once), or holds only
its source record (tuneval_model.json, models/source.py) when it pins a hub model: `resolve` follows that record
to the hub id and revision. A fine-tuned LoRA directory holds the adapter alone and loads on top of its base.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from tuneval.config import ModelConfig
from tuneval.errors import ModelLoadError
from tuneval.models.source import read_record


def check_hub_model(model_cfg: ModelConfig) -> None:
    """For a hub model: check now that it is reachable at its revision (fail fast, before any later stage)."""
    from huggingface_hub import HfApi
    from transformers import AutoConfig

    try:
        if not Path(model_cfg.name).is_dir():  # one quick API call first: from_pretrained retries offline
            HfApi().model_info(model_cfg.name, revision=model_cfg.revision, timeout=15)
        AutoConfig.from_pretrained(model_cfg.name, revision=model_cfg.revision)
    except Exception as err:  # noqa: BLE001
        raise explain_load_error(model_cfg.name, err) from err


# ------------------------------------------------------------------------------------------------ loading
def resolve(model_dir_or_id: str | Path) -> tuple[str, str | None]:
    """(what to pass to from_pretrained, revision): a directory that only pins a hub model or a local model
    directory (its source record, no weights) resolves to that model and its revision."""
    path = Path(model_dir_or_id)
    source = read_record(path) if path.is_dir() else None
    if source is not None and source.kind in ("hub", "local"):
        return source.name, source.revision
    return str(model_dir_or_id), None


AS_AVX2 = "TUNEVAL_AS_AVX2"  # set by scripts/as_avx2.sh: take an AVX2-only CPU's route on a newer x86 CPU


def running_as_avx2() -> bool:
    """True under scripts/as_avx2.sh, which starts a command the way an AVX2-only CPU runs it: torch's AVX2
    kernels (ATEN_CPU_CAPABILITY=avx2), MKL's and oneDNN's capped at AVX2, and bf16 matmuls as fp32 GEMMs. On a
    CPU with AVX512-BF16 this reproduces the other CPU kind's outputs, so cross-route agreement can be measured
    on one machine (docs/reference.md). Refused when the variable is set but torch still runs wider kernels:
    a half-capped run would be recorded as a route it did not take."""
    if os.environ.get(AS_AVX2, "") in ("", "0"):
        return False
    capability = torch.backends.cpu.get_cpu_capability()
    mkl = os.environ.get("MKL_ENABLE_INSTRUCTIONS", "").upper()
    if capability not in ("AVX2", "DEFAULT") or (torch.backends.mkl.is_available() and mkl != "AVX2"):
        raise ModelLoadError(
            f"{AS_AVX2} is set, but torch's CPU kernels are {capability} and MKL_ENABLE_INSTRUCTIONS is "
            f"{mkl or 'unset'} (expected AVX2 and AVX2): start the command with scripts/as_avx2.sh, which sets "
            "them before torch loads")
    return True


def cpu_has_native_bf16() -> bool:
    """True on x86 CPUs with bf16 matrix instructions (AVX512-BF16 or AMX): there bf16 matmuls run ~4x faster
    than fp32 (870 vs 210 GFLOP/s measured on this project's 2-core machine). Without them torch's own bf16
    matmuls run 5-80x slower than fp32, so `load_model` runs them as fp32 GEMMs there.
    Read from /proc/cpuinfo (Linux); elsewhere False; False under scripts/as_avx2.sh."""
    if running_as_avx2():
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_dtype(dtype: str = "auto") -> torch.dtype:
    """`auto`: bf16 on CUDA cards that support it and on CPUs with native bf16, fp32 elsewhere.

    bf16 changes a few borderline predictions (see benchmarks/README.md, bf16 vs fp32); `float32` reproduces
    reference implementations exactly (lm-evaluation-harness runs fp32)."""
    if dtype == "auto":
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    return getattr(torch, dtype)


ADAPTER_CONFIG = "adapter_config.json"  # a PEFT adapter directory (LoRA output) instead of full weights


def adapter_base(model_dir: str | Path) -> str | None:
    """The base model a PEFT adapter directory was trained on (None if `model_dir` holds full weights)."""
    config = Path(model_dir) / ADAPTER_CONFIG
    return json.loads(config.read_text())["base_model_name_or_path"] if config.is_file() else None


def require_trained(finetuned: str | Path, base: str | Path) -> None:
    """Refuse a "fine-tuned" model whose weights equal its base's (an adapter never applied or never trained:
    fine-tuned scores equal to zero-shot scores that only look like a result). Compares tensors lazily from the
    safetensors files and stops at the first difference."""
    from safetensors import safe_open

    finetuned, base = Path(finetuned), Path(base)
    if adapter_base(finetuned) is not None:
        with safe_open(str(finetuned / "adapter_model.safetensors"), "pt") as f:
            names = f.keys()
            if any(k.endswith("lora_B.weight") and bool(f.get_tensor(k).any()) for k in names):
                return  # LoRA's B starts at zero: any non-zero B changes the model
        same = True
    else:
        same = _same_weights(finetuned, base)
    if same:
        raise ModelLoadError(
            f"{finetuned} holds the same weights as its base model {base}: fine-tuning changed nothing (an "
            "adapter never trained or never applied, or lr too small for the dtype), so its scores would just "
            "repeat the zero-shot ones. Rerun the train stage and check its loss."
        )


def _same_weights(a: Path, b: Path) -> bool:
    from safetensors import safe_open

    files_a, files_b = sorted(a.glob("*.safetensors")), sorted(b.glob("*.safetensors"))
    if not files_a or [f.name for f in files_a] != [f.name for f in files_b]:
        return False
    for fa, fb in zip(files_a, files_b, strict=True):
        with safe_open(str(fa), "pt") as x, safe_open(str(fb), "pt") as y:
            names = x.keys()
            if set(names) != set(y.keys()):
                return False
            for key in names:
                if not torch.equal(x.get_tensor(key), y.get_tensor(key).to(x.get_tensor(key).dtype)):
                    return False
    return True


def load_tokenizer(model_dir_or_id: str | Path):
    """Tokenizer with a pad token (Llama-3 has none: reuse EOS) and left padding for batched generation.
    An adapter directory without tokenizer files uses its base model's."""
    from transformers import AutoTokenizer

    base = adapter_base(model_dir_or_id)
    if base is not None and not (Path(model_dir_or_id) / "tokenizer_config.json").is_file():
        return load_tokenizer(base)
    name, revision = resolve(model_dir_or_id)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, revision=revision)
    except Exception as err:  # noqa: BLE001
        raise explain_load_error(name, err) from err
    tokenizer.init_kwargs["local_files_only"] = False  # see gguf.convert: saved files never depend on offline mode
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_model(model_dir_or_id: str | Path, dtype: str = "auto", device: str | None = None, merge: bool = True):
    """`AutoModelForCausalLM.from_pretrained` for tiny dirs, fine-tuned dirs and hub ids alike.

    A PEFT adapter directory loads its base model, then the adapter on top (peft's `PeftModel.from_pretrained`);
    `merge` folds the adapter into the weights, which makes inference as fast as the base model's."""
    from transformers import AutoModelForCausalLM

    base = adapter_base(model_dir_or_id)
    if base is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_model(base, dtype, device), str(model_dir_or_id))
        return bf16_matmuls_for_this_cpu(model.merge_and_unload() if merge else model).eval()
    name, revision = resolve(model_dir_or_id)
    try:
        model = AutoModelForCausalLM.from_pretrained(name, revision=revision, dtype=pick_dtype(dtype))
    except Exception as err:  # noqa: BLE001
        raise explain_load_error(name, err) from err
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return bf16_matmuls_for_this_cpu(contiguous_head_inputs(model.to(device))).eval()


def bf16_matmuls_for_this_cpu(model):
    """On a CPU without bf16 instructions, run a bf16 model's matmuls as fp32 GEMMs (models/cpu_bf16.py: the
    same arithmetic as native bf16 up to the order of fp32 sums, 5-20x faster than torch's fallback here).
    Called after any merge, which changes weights behind the copies' back. Elsewhere: the model unchanged."""
    on_cpu_bf16 = any(p.dtype == torch.bfloat16 and p.device.type == "cpu" for p in model.parameters())
    if on_cpu_bf16 and not cpu_has_native_bf16():
        from tuneval.models.cpu_bf16 import fp32_matmuls_installed, use_fp32_matmuls

        if not fp32_matmuls_installed():
            print("this CPU has no bf16 instructions (AVX512-BF16/AMX): bf16 matmuls run as fp32 GEMMs "
                  "(same products, fp32 sums, one rounding; about fp32's speed)")
        use_fp32_matmuls(model)
    return model


def contiguous_head_inputs(model):
    """Hand the lm_head a contiguous input. With `logits_to_keep` the head gets a strided slice of the hidden
    states; on CPU a bf16 linear over such a slice ran 500x slower here (26 s instead of 0.05 s for 32 rows of
    Gemma-3's 262k-row head) when the weight does not require grad, as in every frozen or merged model. This
    is the "bf16 is 20x slower after conversion" effect; a copy of a few rows costs nothing."""
    head = model.get_output_embeddings()
    if head is not None:
        head.register_forward_pre_hook(lambda _module, args: (args[0].contiguous(), *args[1:]))
    return model


def explain_load_error(name: str, err: Exception) -> ModelLoadError:
    """One paragraph: which model, what went wrong, what the user needs to do.

    `err` is a huggingface_hub error (HfApi calls) or transformers' OSError wrapping one (`from_pretrained`):
    classify by the exception types along the cause chain first, by transformers' wording second.
    """
    from huggingface_hub import errors as hub

    chain, seen = [], set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = f"{type(err).__name__}: {err}"
    status = next((getattr(e.response, "status_code", None) for e in chain if isinstance(e, hub.HfHubHTTPError)), None)

    def has(*types: type) -> bool:
        return any(isinstance(e, types) for e in chain)

    login = "`hf auth login` or `export HF_TOKEN=...` (a read token from https://huggingface.co/settings/tokens)"
    gated_words = "access a gated repo" in text or "is a gated repository" in text  # transformers' wording
    if has(hub.GatedRepoError) or (gated_words and not has(hub.RepositoryNotFoundError)):
        # first: GatedRepoError subclasses RepositoryNotFoundError, whose message mentions "gated" too
        why = f"{name} is a gated model and this account has not been granted access (or no token was sent)."
        fix = f"Accept its license on https://huggingface.co/{name}, then log in as that account: {login}."
    elif has(hub.RevisionNotFoundError) or "is not a valid git identifier" in text:
        why = f"the revision (model.revision) does not exist for {name}."
        fix = f"Pick a branch, tag or commit listed on https://huggingface.co/{name}/tree/main."
    elif has(hub.RepositoryNotFoundError) or "is not a valid model identifier" in text or (
        "is not a local folder" in text and "offline" not in text and "couldn't connect" not in text
    ):
        why = f"no model called {name!r} exists on the Hub or as a local directory (or it is private)."
        fix = f"Check the spelling of model.name; if the repo is private, log in with access to it: {login}."
    elif has(hub.HFValidationError):
        why = f"{name!r} is neither an existing local directory nor a valid Hub id (namespace/name)."
        fix = "Check the spelling of model.name (a local path must exist, relative to the repository root)."
    elif status == 401 or "401" in text or "Unauthorized" in text:
        why = "the Hub rejected the token (missing, expired or invalid)."
        fix = f"Create a new token and log in with it: {login}."
    elif status == 403 or "403" in text:
        why = f"the token is valid but has no permission to read {name}."
        fix = ("Use a token with read access (fine-grained tokens need 'read access to public gated repos'), "
               f"and accept the license on https://huggingface.co/{name} if the model is gated.")
    else:
        why = "the Hugging Face Hub could not be reached (no network, or HF_HUB_OFFLINE is set)."
        fix = (
            "Hub models need network access to huggingface.co, their license accepted on the model page "
            "(Llama and Gemma are gated) and a token (`hf auth login` or HF_TOKEN). Offline, use "
            "model.name=tiny-llama or tiny-gemma2, or a local model directory."
        )
    return ModelLoadError(f"Could not load model {name!r}: {why} {fix}\n(underlying error: {text[:300]})")
