"""The compute route: which hardware path produced a set of predictions, so a rerun elsewhere can be told apart.

The same commit reproduces its predictions byte for byte on the same kind of machine, but a bf16 model's matmuls
take one of several routes, and each rounds its fp32 sums in its own order, which moves borderline predictions
(SST-2 zero-shot, AVX2 vs AVX512-BF16: 22 of 872 labels differ, accuracy 0.5688 vs 0.5711). The route is decided by:

- the device: a CUDA GPU (its name and compute capability) or the CPU (its model name and the instruction-set
  flags that pick the bf16 path: avx2, avx512f, avx512_bf16, amx_bf16, and torch's kernel level); under
  scripts/as_avx2.sh a newer CPU takes an AVX2-only CPU's route and records it as such (``isa_cap``);
- ``bf16_route``: ``native`` (a CPU with AVX512-BF16/AMX, or a bf16-capable GPU), ``fp32_gemms`` (a bf16 model on a
  CPU without them: tuneval.models.cpu_bf16 runs its matmuls as fp32 GEMMs), ``fp32`` (the model is not bf16),
  ``fp16``; two rarer values: ``generic_bf16`` (a bf16 model on such a CPU without cpu_bf16's route installed:
  torch's own loops, only outside `load_model`) and ``emulated`` (bf16 on a GPU without bf16 support);
- the torch version (its kernels): major.minor counts, a patch release is only mentioned.

`compute_route(model, dtype)` records these facts (plus threads, library versions and the git revision, which do
not count as a difference); the prediction stages store it in run.json and the metrics' ``run`` entry.
`route_difference(a, b)` says in one line why two recorded routes would not give the same predictions (None when
they would), `route_line(route)` is the short label reports print. This module imports no torch until
`compute_route` runs (the CLI and the report import it).
"""

from __future__ import annotations

import platform
import re
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

ROUTE_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")  # the CPU flags that decide the bf16 route
VERSIONED = ("torch", "transformers", "peft", "accelerate")
ROUTES = {  # bf16_route -> how route_line / route_difference say it
    "native": "bf16 native",
    "fp32_gemms": "bf16 as fp32 GEMMs",
    "generic_bf16": "bf16 in torch's generic loops",
    "emulated": "bf16 emulated",
    "fp32": "fp32",
    "fp16": "fp16",
}
DIRTY_PATHS = ("src", "stages")  # tracked files whose local edits make the revision "+dirty"
UNRECORDED = "unrecorded"
REPO_ROOT = Path(__file__).resolve().parents[2]  # src/tuneval/route.py -> the repository (an editable install)


# ----------------------------------------------------------------------------------------------- the facts
def cpuinfo() -> str:
    """/proc/cpuinfo's text ('' where there is none: not Linux)."""
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def cpu_name_and_flags(text: str | None = None) -> tuple[str, list[str]]:
    """(the CPU's model name, the ROUTE_FLAGS it has, in ROUTE_FLAGS' order) from /proc/cpuinfo's first
    processor; the name falls back to `platform` where cpuinfo has none."""
    text = cpuinfo() if text is None else text
    name, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not name:
            name = " ".join(value.split())
        elif key == "flags" and not flags:
            flags = set(value.split())
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    return name, [flag for flag in ROUTE_FLAGS if flag in flags]


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for package in VERSIONED:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def git_revision(repo: str | Path | None = None) -> str:
    """The project's code revision: the newest commit that touched src/ or stages/ (commits of outputs, params or
    docs since then ran the same code, so a rerun after them records the same revision), + "+dirty" when tracked
    files there have local edits; "unknown" outside a git repository (or without git)."""
    if repo is None:  # the checkout this module runs from; an installed copy: the working directory (stages: the repo)
        repo = REPO_ROOT if (REPO_ROOT / "src" / "tuneval").is_dir() else Path.cwd()
    repo = Path(repo)

    def git(*args: str) -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30,
                                  check=False)
        except (OSError, subprocess.SubprocessError):
            return None

    head = git("log", "-1", "--format=%H", "--", *DIRTY_PATHS)
    if head is None or head.returncode != 0 or not head.stdout.strip():
        return "unknown"
    status = git("status", "--porcelain", "--untracked-files=no", "--", *DIRTY_PATHS)
    dirty = status is None or status.returncode != 0 or bool(status.stdout.strip())
    return head.stdout.strip() + ("+dirty" if dirty else "")


def _model_facts(model: Any) -> tuple[Any, Any]:
    """(torch device, torch dtype) of a model's first floating-point parameter; (None, None) without one."""
    for param in model.parameters():
        if param.is_floating_point():
            return param.device, param.dtype
    return None, None


def compute_route(model: Any = None, dtype: Any = None, *, repo: str | Path | None = None) -> dict[str, Any]:
    """The route `model` runs on (or, without a model, the one `load_model(dtype=...)` would take on this machine):
    {device, device_kind, bf16_route, threads, versions, git_revision}, plus `flags` (CPU: the ROUTE_FLAGS present,
    only avx2 under scripts/as_avx2.sh, which adds `isa_cap`) and `cpu_capability` (torch's kernel level, "AVX2" /
    "AVX512"), or `capability` (CUDA: "major.minor"). `dtype` (a params-style name such as "auto" or "bfloat16", or a
    torch.dtype) is used only without a model or when the model has no floating-point parameter; "auto" and None
    mean `pick_dtype("auto")`. `repo`: the git repository whose revision is recorded (default: the project)."""
    import torch

    from tuneval.models.cpu_bf16 import fp32_matmuls_installed
    from tuneval.models.loading import cpu_has_native_bf16, pick_dtype, running_as_avx2

    device, model_dtype = _model_facts(model) if model is not None else (None, None)
    if model_dtype is None:
        model_dtype = dtype if isinstance(dtype, torch.dtype) else pick_dtype(dtype or "auto")
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind = "cuda" if device.type == "cuda" else "cpu"
    route: dict[str, Any] = {"device": "", "device_kind": kind}
    if kind == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        route["device"] = f"{torch.cuda.get_device_name(index)} (sm_{major}{minor})"
        route["capability"] = f"{major}.{minor}"
        native = torch.cuda.is_bf16_supported()
    else:
        name, flags = cpu_name_and_flags()
        route["device"] = f"{name} ({', '.join(flags) or 'none of ' + '/'.join(ROUTE_FLAGS)})"
        if running_as_avx2():  # scripts/as_avx2.sh: the flags the kernels may use, not all the CPU has
            flags = [flag for flag in flags if flag == "avx2"]
            route["device"] = f"{name} ({', '.join(flags)}; run as AVX2-only by scripts/as_avx2.sh)"
            route["isa_cap"] = "avx2"
        route["flags"] = flags
        route["cpu_capability"] = torch.backends.cpu.get_cpu_capability()  # torch's vectorised kernels
        native = cpu_has_native_bf16()
    if model_dtype == torch.bfloat16:
        if native:
            bf16 = "native"
        elif kind == "cuda":
            bf16 = "emulated"
        else:  # load_model installs cpu_bf16's route for every bf16 model it puts on such a CPU
            bf16 = "fp32_gemms" if model is None or fp32_matmuls_installed() else "generic_bf16"
    else:
        bf16 = "fp16" if model_dtype == torch.float16 else "fp32"
    route |= {"bf16_route": bf16, "threads": torch.get_num_threads(), "versions": _versions(),
              "git_revision": git_revision(repo)}
    return route


# ----------------------------------------------------------------------------------------------- comparing
def recorded(route: Any) -> bool:
    """A route dict as compute_route writes it (not None, {} or a run.json without one)."""
    return isinstance(route, Mapping) and bool(route.get("device_kind")) and bool(route.get("bf16_route"))


def short_device(route: Mapping[str, Any]) -> str:
    """`AMD EPYC 7B13` from `AMD EPYC 7B13 64-Core Processor (avx2)`: the name without trademarks, clock, core
    count or flags."""
    name = str(route.get("device", "")).strip()
    name = re.sub(r"\s*\([^()]*\)\s*$", "", name)  # the flag / sm_XY suffix compute_route appends
    name = re.sub(r"\((R|TM|r|tm)\)", "", name)
    name = re.sub(r"\s+(CPU\s+)?@\s*[\d.]+\s*GHz", "", name)
    name = re.sub(r"\s+\d+-Core Processor|\s+Processor|\s+CPU$", "", name)
    return " ".join(name.split()) or str(route.get("device_kind", "?"))


def _top_flag(flags: list[str]) -> str:
    return flags[-1] if flags else "no avx2"  # ROUTE_FLAGS is ordered weakest first


def _hardware(route: Mapping[str, Any], other: Mapping[str, Any] | None = None) -> str:
    """`Intel Xeon Platinum 8375C (avx512_bf16)` / `NVIDIA H100 80GB HBM3 (sm_90)`: the device and what decides
    its route (the strongest flag; the whole flag set when `other` has the same strongest flag but another set)."""
    if route.get("device_kind") == "cuda":
        capability = str(route.get("capability", "?"))
        return f"{short_device(route)} (sm_{capability.replace('.', '')})"
    flags = [f for f in ROUTE_FLAGS if f in (route.get("flags") or [])]
    shown = _top_flag(flags)
    if other is not None and other.get("device_kind") != "cuda":
        other_flags = [f for f in ROUTE_FLAGS if f in (other.get("flags") or [])]
        if set(flags) != set(other_flags) and _top_flag(other_flags) == shown:
            shown = ", ".join(flags) or "none"
    if route.get("isa_cap"):
        shown += " via as_avx2.sh"
    if other is not None and route.get("cpu_capability") and other.get("cpu_capability") not in (
            None, route["cpu_capability"]):
        shown += f", {route['cpu_capability']} kernels"
    return f"{short_device(route)} ({shown})"


def _major_minor(version: Any) -> str | None:
    match = re.match(r"(\d+)\.(\d+)", str(version or ""))
    return f"{match.group(1)}.{match.group(2)}" if match else None


def route_difference(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None, *,
                     names: tuple[str, str] = ("zero-shot", "fine-tuned")) -> str | None:
    """None when routes `a` and `b` would produce the same predictions: same device kind, bf16 route and CPU flag
    set (or GPU compute capability), same torch major.minor. Otherwise one line naming what differs, each side
    under its name in `names`, e.g. "zero-shot: Intel Xeon (avx512_bf16), bf16 native; fine-tuned: AMD EPYC
    (avx2), bf16 as fp32 GEMMs". Other version differences (patch releases, transformers, peft, accelerate) and
    threads are mentioned there but never make a difference on their own.

    An unrecorded route (None, {}, a run.json from before routes were recorded) cannot be compared: None. Check
    `recorded()` where an unknown route matters."""
    if not (recorded(a) and recorded(b)):
        return None
    assert a is not None and b is not None  # for type checkers: recorded() checked it
    reasons = []
    if a["device_kind"] != b["device_kind"]:
        reasons.append("device")
    elif a["device_kind"] == "cuda":
        if str(a.get("capability")) != str(b.get("capability")):
            reasons.append("GPU capability")
    elif set(a.get("flags") or []) != set(b.get("flags") or []):
        reasons.append("CPU flags")
    elif a.get("cpu_capability") and b.get("cpu_capability") and a["cpu_capability"] != b["cpu_capability"]:
        reasons.append("torch's CPU kernels")
    if a["bf16_route"] != b["bf16_route"]:
        reasons.append("bf16 route")
    va, vb = a.get("versions") or {}, b.get("versions") or {}
    torch_a, torch_b = _major_minor(va.get("torch")), _major_minor(vb.get("torch"))
    if torch_a != torch_b and torch_a and torch_b:
        reasons.append("torch")
    if not reasons:
        return None
    notes = [f"{package} {va.get(package)} vs {vb.get(package)}" for package in VERSIONED
             if va.get(package) != vb.get(package)]
    if a.get("threads") != b.get("threads"):
        notes.append(f"threads {a.get('threads')} vs {b.get('threads')}")
    sides = [f"{name}: {_hardware(route, other)}, {ROUTES.get(route['bf16_route'], route['bf16_route'])}"
             for name, route, other in ((names[0], a, b), (names[1], b, a))]
    return "; ".join(sides) + (f" ({'; '.join(notes)})" if notes else "")


def route_line(route: Mapping[str, Any] | None) -> str:
    """`cpu AMD EPYC 7B13 (avx2), bf16 as fp32 GEMMs, 2 threads, torch 2.5.1`; "unrecorded" without a route."""
    if not recorded(route):
        return UNRECORDED
    assert route is not None
    torch_version = (route.get("versions") or {}).get("torch")
    parts = [f"{route['device_kind']} {_hardware(route)}", ROUTES.get(route["bf16_route"], route["bf16_route"])]
    if route.get("threads") is not None:
        parts.append(f"{route['threads']} threads")
    if torch_version:
        parts.append(f"torch {torch_version}")
    return ", ".join(parts)
