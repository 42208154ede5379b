"""tuneval.route: the compute route a run records (compute_route), and when two routes differ (route_difference)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tuneval import route as R
from tuneval.models import cpu_bf16, loading

REPO = Path(__file__).resolve().parents[1]
GIT = ["git", "-c", "user.email=test@tuneval.local", "-c", "user.name=tuneval tests", "-c", "commit.gpgsign=false"]
XEON = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480C CPU @ 2.00GHz\n"
        "flags\t\t: fpu sse2 avx avx2 avx512f avx512bw avx512_bf16 amx_tile amx_bf16\n\n"
        "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8480C CPU @ 2.00GHz\nflags\t\t: fpu\n")
EPYC = "processor\t: 0\nmodel name\t: AMD EPYC 7B13 64-Core Processor\nflags\t\t: fpu sse2 avx avx2 fma\n"


def cpu_route(**over) -> dict:
    """A recorded CPU route, as compute_route writes one on an AVX512-BF16 Xeon."""
    base = {"device": "Intel(R) Xeon(R) Platinum 8480C CPU @ 2.00GHz (avx2, avx512f, avx512_bf16, amx_bf16)",
            "device_kind": "cpu", "flags": ["avx2", "avx512f", "avx512_bf16", "amx_bf16"], "bf16_route": "native",
            "threads": 2, "versions": {"torch": "2.5.1", "transformers": "5.0.0", "peft": "0.13.0",
                                       "accelerate": "1.0.0"},
            "git_revision": "0" * 40}
    return {**base, **over}


AVX2 = {"device": "AMD EPYC 7B13 64-Core Processor (avx2)", "flags": ["avx2"], "bf16_route": "fp32_gemms"}


# ----------------------------------------------------------------------------------------------- compute_route
def test_compute_route_fields_and_types():
    route = R.compute_route()
    assert list(route)[:2] == ["device", "device_kind"]
    assert {"device", "device_kind", "bf16_route", "threads", "versions", "git_revision"} <= set(route)
    assert isinstance(route["device"], str) and route["device"]
    assert route["device_kind"] in ("cpu", "cuda")
    assert route["bf16_route"] in R.ROUTES
    assert isinstance(route["threads"], int) and route["threads"] == torch.get_num_threads()
    assert set(route["versions"]) == {"torch", "transformers", "peft", "accelerate"}
    assert route["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert all(v is None or isinstance(v, str) for v in route["versions"].values())
    assert isinstance(route["git_revision"], str) and route["git_revision"]
    if route["device_kind"] == "cpu":
        assert isinstance(route["flags"], list) and set(route["flags"]) <= set(R.ROUTE_FLAGS)
        assert all(flag in route["device"] for flag in route["flags"])
    json.dumps(route)  # stored in run.json and the metrics' run entry
    assert R.compute_route() == route  # deterministic apart from the machine's facts
    assert R.route_difference(route, R.compute_route()) is None


@pytest.mark.parametrize(("native", "installed", "model_dtype", "expected"), [
    (True, False, torch.bfloat16, "native"),
    (False, True, torch.bfloat16, "fp32_gemms"),
    (False, False, torch.bfloat16, "generic_bf16"),  # a bf16 model that did not come through load_model
    (True, False, torch.float32, "fp32"),
    (False, False, torch.float16, "fp16"),
])
def test_bf16_route_of_a_cpu_model(monkeypatch, native, installed, model_dtype, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(cpu_bf16, "fp32_matmuls_installed", lambda: installed)
    monkeypatch.setattr(R, "cpuinfo", lambda: XEON if native else EPYC)
    model = torch.nn.Linear(4, 4).to(model_dtype)
    route = R.compute_route(model, "bfloat16")  # the model's own dtype wins over the params' name
    assert route["device_kind"] == "cpu"
    assert route["bf16_route"] == expected
    assert route["flags"] == (["avx2", "avx512f", "avx512_bf16", "amx_bf16"] if native else ["avx2"])
    assert route["device"].startswith("Intel(R) Xeon(R) Platinum 8480C" if native else "AMD EPYC 7B13")


@pytest.mark.parametrize(("native", "dtype", "expected"), [
    (False, "bfloat16", "fp32_gemms"),  # what load_model would do: install cpu_bf16's route
    (True, "bfloat16", "native"),
    (False, "auto", "fp32"),  # pick_dtype("auto") is fp32 on a CPU without bf16 instructions
    (True, "auto", "native"),
    (True, "float32", "fp32"),
    (True, torch.float16, "fp16"),
    (True, None, "native"),
])
def test_route_without_a_model_follows_the_dtype(monkeypatch, native, dtype, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(cpu_bf16, "fp32_matmuls_installed", lambda: False)
    assert R.compute_route(dtype=dtype)["bf16_route"] == expected


def test_cpu_name_and_flags_from_cpuinfo():
    assert R.cpu_name_and_flags(XEON) == ("Intel(R) Xeon(R) Platinum 8480C CPU @ 2.00GHz",
                                          ["avx2", "avx512f", "avx512_bf16", "amx_bf16"])
    assert R.cpu_name_and_flags(EPYC) == ("AMD EPYC 7B13 64-Core Processor", ["avx2"])
    name, flags = R.cpu_name_and_flags("")  # no /proc/cpuinfo: the platform's name, no flags
    assert name and flags == []


def test_git_revision_and_dirty(tmp_path):
    def git(*args):
        return subprocess.run([*GIT, "-C", str(tmp_path), *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    assert R.git_revision(tmp_path) == "unknown"  # not a git repository
    git("init", "-q")
    assert R.git_revision(tmp_path) == "unknown"  # no commit yet
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x = 1\n")
    (tmp_path / "notes.md").write_text("notes\n")
    git("add", "-A")
    git("commit", "-qm", "init")
    head = git("rev-parse", "HEAD")
    assert R.git_revision(tmp_path) == head
    (tmp_path / "notes.md").write_text("edited: outside src/ and stages/\n")
    (tmp_path / "src" / "new.py").write_text("untracked\n")
    assert R.git_revision(tmp_path) == head
    (tmp_path / "src" / "a.py").write_text("x = 2\n")
    assert R.git_revision(tmp_path) == head + "+dirty"
    assert R.compute_route(repo=tmp_path)["git_revision"] == head + "+dirty"


# --------------------------------------------------------------------------------------------- route_difference
def test_identical_routes_do_not_differ():
    assert R.route_difference(cpu_route(), cpu_route()) is None
    # what never decides predictions alone: threads, the revision, patch releases, other libraries
    other = cpu_route(threads=16, git_revision="f" * 40 + "+dirty",
                      versions={"torch": "2.5.3", "transformers": "5.1.0", "peft": "0.14.0", "accelerate": "1.2.0"})
    assert R.route_difference(cpu_route(), other) is None


def test_a_cpu_without_native_bf16_differs():
    reason = R.route_difference(cpu_route(), cpu_route(**AVX2))
    assert reason == ("zero-shot: Intel Xeon Platinum 8480C (amx_bf16), bf16 native; "
                      "fine-tuned: AMD EPYC 7B13 (avx2), bf16 as fp32 GEMMs")
    assert "\n" not in reason
    named = R.route_difference(cpu_route(**AVX2), cpu_route(), names=("committed", "local"))
    assert named.startswith("committed: AMD EPYC 7B13 (avx2), bf16 as fp32 GEMMs; local: Intel Xeon")


def test_flags_alone_or_route_alone_differ():
    no_amx = cpu_route(flags=["avx2", "avx512f", "avx512_bf16"])
    assert "(avx512_bf16)" in R.route_difference(cpu_route(), no_amx)
    same_top = cpu_route(flags=["avx2", "avx512_bf16", "amx_bf16"])  # same strongest flag: the whole set shown
    assert "avx2, avx512f, avx512_bf16, amx_bf16" in R.route_difference(cpu_route(), same_top)
    fp32 = R.route_difference(cpu_route(), cpu_route(bf16_route="fp32"))
    assert fp32 is not None and fp32.endswith("fine-tuned: Intel Xeon Platinum 8480C (amx_bf16), fp32")


def test_versions_count_only_as_torch_major_minor():
    newer = cpu_route(versions={**cpu_route()["versions"], "torch": "2.6.0", "transformers": "5.2.0"})
    reason = R.route_difference(cpu_route(), newer)
    assert reason is not None and "torch 2.5.1 vs 2.6.0" in reason and "transformers 5.0.0 vs 5.2.0" in reason
    with_notes = R.route_difference(cpu_route(threads=2), cpu_route(threads=8, **AVX2))
    assert with_notes.endswith("(threads 2 vs 8)")


def test_gpu_and_cpu_routes():
    h100 = {"device": "NVIDIA H100 80GB HBM3 (sm_90)", "device_kind": "cuda", "capability": "9.0",
            "bf16_route": "native", "threads": 16, "versions": cpu_route()["versions"], "git_revision": "x"}
    assert R.route_difference(h100, dict(h100, threads=2)) is None
    assert R.route_difference(h100, cpu_route()).startswith("zero-shot: NVIDIA H100 80GB HBM3 (sm_90), bf16 native")
    a100 = dict(h100, device="NVIDIA A100-SXM4-40GB (sm_80)", capability="8.0")
    assert "(sm_80)" in R.route_difference(h100, a100)
    assert R.route_line(h100) == "cuda NVIDIA H100 80GB HBM3 (sm_90), bf16 native, 16 threads, torch 2.5.1"


def test_unrecorded_routes():
    for missing in (None, {}, {"dtype": "bfloat16"}):
        assert R.route_line(missing) == "unrecorded"
        assert R.route_difference(missing, cpu_route()) is None
        assert R.route_difference(cpu_route(), missing) is None
    assert not R.recorded(None) and R.recorded(cpu_route())


def test_route_line():
    assert R.route_line(cpu_route(**AVX2)) == "cpu AMD EPYC 7B13 (avx2), bf16 as fp32 GEMMs, 2 threads, torch 2.5.1"
    assert R.route_line(R.compute_route()).startswith(("cpu ", "cuda "))


def test_importing_route_loads_no_torch():
    """The CLI and the report import tuneval.route: torch loads only when compute_route runs."""
    code = "import sys, tuneval.route; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert proc.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------- scripts/as_avx2.sh
ROUTE_OF_A_BF16_MODEL = ("import json, torch; from tuneval.models.loading import bf16_matmuls_for_this_cpu; "
                         "from tuneval.route import compute_route, route_line; "
                         "m = bf16_matmuls_for_this_cpu(torch.nn.Linear(4, 4).to(torch.bfloat16)); "
                         "r = compute_route(m); print(json.dumps([r, route_line(r)]))")


def _run(code: str, *prefix: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=180, env={**os.environ, "PYTHONPATH": str(REPO / "src"), **env})


@pytest.mark.skipif("avx2" not in R.cpu_name_and_flags()[1], reason="AVX2 kernels need an x86 CPU with AVX2")
def test_as_avx2_takes_and_records_an_avx2_only_route():
    """scripts/as_avx2.sh: torch's AVX2 kernels, bf16 matmuls as fp32 GEMMs, recorded as an AVX2 route (on an
    AVX2-only CPU the same route as without the script, so the two compare as equal)."""
    proc = _run(ROUTE_OF_A_BF16_MODEL, str(REPO / "scripts" / "as_avx2.sh"))
    assert proc.returncode == 0, proc.stderr
    route, line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert route["flags"] == ["avx2"] and route["isa_cap"] == "avx2" and route["cpu_capability"] == "AVX2"
    assert route["bf16_route"] == "fp32_gemms"
    assert "via as_avx2.sh" in line and "bf16 as fp32 GEMMs" in line
    real_avx2 = {k: v for k, v in route.items() if k != "isa_cap"}  # what an AVX2-only CPU records
    assert R.route_difference(route, real_avx2) is None
    plain = _run(ROUTE_OF_A_BF16_MODEL)
    assert plain.returncode == 0, plain.stderr
    here, _ = json.loads(plain.stdout.strip().splitlines()[-1])
    assert "isa_cap" not in here
    if here["flags"] != ["avx2"]:  # a newer CPU: its own route differs from the capped one
        assert R.route_difference(here, route) is not None


def test_as_avx2_variable_alone_is_refused():
    """The marker without torch's and MKL's caps would record a route the run did not take."""
    proc = _run(ROUTE_OF_A_BF16_MODEL, TUNEVAL_AS_AVX2="1", ATEN_CPU_CAPABILITY="", MKL_ENABLE_INSTRUCTIONS="")
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "DEFAULT") and not torch.backends.mkl.is_available():
        pytest.skip("torch here runs AVX2 kernels without MKL: nothing to refuse")
    assert proc.returncode != 0
    assert "TUNEVAL_AS_AVX2 is set" in proc.stderr and "scripts/as_avx2.sh" in proc.stderr


def test_kernel_level_alone_differs():
    reason = R.route_difference(cpu_route(cpu_capability="AVX512"), cpu_route(cpu_capability="AVX2"))
    assert reason is not None and "AVX512 kernels" in reason and "AVX2 kernels" in reason
    assert R.route_difference(cpu_route(cpu_capability="AVX2"), cpu_route()) is None  # one side unrecorded
