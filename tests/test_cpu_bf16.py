"""bf16 matmuls as fp32 GEMMs on CPUs without bf16 instructions (models/cpu_bf16.py): the same arithmetic as a
native bf16 kernel (exact products, fp32 sums, one rounding), forward and backward, cached weight copies that
follow changes, and `load_model` switching it on only where the CPU lacks bf16."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tuneval.config import TinyModelConfig, load_params
from tuneval.models import cpu_bf16, loading
from tuneval.models.tiny import build_tiny_model

BF16 = torch.bfloat16
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny-gemma2")
    shape = TinyModelConfig(vocab_size=300, hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1,
                            intermediate_size=128, max_position_embeddings=256)
    model_cfg = dataclasses.replace(load_params(REPO / "params.yaml").model, name="tiny-gemma2", tiny=shape)
    texts = [f"the film number {i} was {'good' if i % 2 else 'bad'} and long ." for i in range(60)]
    build_tiny_model(model_cfg, texts, seed=1, out_dir=out)
    return out


@pytest.fixture
def fp32_matmuls():
    cpu_bf16.install_fp32_matmuls()
    yield
    cpu_bf16.uninstall_fp32_matmuls()


def rounded(x: torch.Tensor) -> torch.Tensor:
    """The exactly rounded bf16 value of an fp64 result: what a kernel with exact sums would return."""
    return x.to(torch.float32).to(BF16)


def bf16(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(BF16)


def test_bf16_matmuls_are_fp32_gemms_rounded_once(fp32_matmuls):
    a, b, c = bf16(33, 640, seed=0), bf16(640, 257, seed=1), bf16(33, 257, seed=2)
    x, y, z = bf16(3, 17, 256, seed=3), bf16(3, 256, 19, seed=4), bf16(3, 17, 19, seed=5)
    cases = {
        "mm": (torch.mm(a, b), a.double() @ b.double()),
        "addmm": (torch.addmm(c, a, b, beta=0.5, alpha=2), 0.5 * c.double() + 2 * (a.double() @ b.double())),
        "bmm": (torch.bmm(x, y), x.double() @ y.double()),
        "baddbmm": (torch.baddbmm(z, x, y), z.double() + x.double() @ y.double()),
        "linear (mm of a transpose)": (F.linear(a, b.t()), a.double() @ b.double()),
    }
    for name, (got, exact) in cases.items():
        assert got.dtype == BF16, name
        # fp32 sums differ from exact ones in the last bits, so a few results round the other way: <= 1 bf16 ulp
        ulp = exact.abs().to(torch.float32).to(BF16).double() * 2.0**-7
        assert ((got.double() - exact).abs() <= ulp + 1e-30).all(), name
        assert (got == rounded(exact)).double().mean() > 0.99, name


def test_other_dtypes_run_their_own_kernels(fp32_matmuls):
    a, b = torch.randn(40, 64, dtype=torch.float64), torch.randn(64, 24, dtype=torch.float64)
    cpu_bf16.uninstall_fp32_matmuls()
    expected = [torch.mm(a.float(), b.float()), torch.bmm(a[None], b[None]), torch.addmm(b[0], a, b)]
    cpu_bf16.install_fp32_matmuls()
    got = [torch.mm(a.float(), b.float()), torch.bmm(a[None], b[None]), torch.addmm(b[0], a, b)]
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == e.dtype and torch.equal(g, e)


def test_gradients_flow_through_the_fp32_gemms(fp32_matmuls):
    x = bf16(8, 64, seed=6).requires_grad_()
    w = bf16(32, 64, seed=7).requires_grad_()
    F.linear(x, w).float().square().sum().backward()
    out = x.detach().double() @ w.detach().double().t()  # d/dx sum(out^2) = 2 out w, d/dw = 2 out^T x
    grad_out = (2 * F.linear(x.detach(), w.detach()).float()).to(BF16).double()
    for got, exact in ((x.grad, grad_out @ w.detach().double()), (w.grad, grad_out.t() @ x.detach().double())):
        assert got.dtype == BF16 and torch.allclose(got.double(), exact, rtol=2**-7, atol=1e-3)
    assert out.abs().sum() > 0


def test_registered_weights_are_cached_and_follow_changes(fp32_matmuls):
    layer = torch.nn.Linear(64, 48, bias=False, dtype=BF16)
    cpu_bf16.use_fp32_matmuls(layer)
    x = bf16(5, 64, seed=8)
    first = layer(x)
    entry = cpu_bf16._WEIGHTS[layer.weight.data_ptr()]
    assert entry.copy is not None and entry.copy.dtype == torch.float32  # the weight was upcast once, and kept
    cpu_bf16.uninstall_fp32_matmuls()
    assert torch.equal(first, F.linear(x.float(), layer.weight.float()).to(BF16))  # the uncached upcast, exactly
    cpu_bf16.install_fp32_matmuls()
    cpu_bf16.use_fp32_matmuls(layer)
    with torch.no_grad():
        layer.weight.mul_(-1)  # an in-place change bumps the version counter: the copy is redone
    assert torch.equal(layer(x), -first)
    with torch.no_grad():
        layer.weight.data.mul_(-1)  # .data bypasses the counter (peft's merge does this) ...
    cpu_bf16.use_fp32_matmuls(layer)  # ... so whoever does it registers the model again, as load_model does
    assert torch.equal(layer(x), first)


def test_freed_weights_leave_the_registry(fp32_matmuls):
    layer = torch.nn.Linear(16, 16, bias=False, dtype=BF16)
    cpu_bf16.use_fp32_matmuls(layer)
    key = layer.weight.data_ptr()
    assert key in cpu_bf16._WEIGHTS
    del layer
    assert key not in cpu_bf16._WEIGHTS


@pytest.mark.parametrize("native", [True, False])
def test_load_model_switches_it_on_only_without_bf16_instructions(tiny_base, monkeypatch, native):
    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: native)
    try:
        model = loading.load_model(tiny_base, dtype="bfloat16", device="cpu")
        assert cpu_bf16.fp32_matmuls_installed() is (not native)
        registered = {p.data_ptr() for p in model.parameters()} & set(cpu_bf16._WEIGHTS)
        assert bool(registered) is (not native)
        fp32 = loading.load_model(tiny_base, dtype="float32", device="cpu")
        ids = torch.arange(3, 40)[None]
        with torch.no_grad():
            got, exact = model(input_ids=ids).logits.float(), fp32(input_ids=ids).logits
        assert (got.argmax(-1) == exact.argmax(-1)).double().mean() > 0.9  # bf16 rounding, either way
    finally:
        cpu_bf16.uninstall_fp32_matmuls()
