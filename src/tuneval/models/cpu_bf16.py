"""bf16 on CPUs without bf16 instructions: the same matmuls, run as fp32 GEMMs.

A native bf16 matmul (AVX512-BF16, AMX, and every GPU) multiplies the bf16 inputs exactly, sums the products in
fp32 and rounds the result to bf16 once. CPUs without those instructions (AVX2 only: most AMD Zen 2/3 and older
Intel) get torch's generic loops instead: on this project's AVX2 VM a bf16 linear ran at 20 GFLOP/s against
fp32's 164, and the backward's grad-input product at 1.8 GFLOP/s, so one LoRA step of Gemma-3-270M on 4 x 64
tokens took 63.5 s instead of 1.3 s, and the default study would have taken most of a day
(benchmarks/bench_cpu_bf16.py).

`use_fp32_matmuls(model)` routes every bf16 matmul on the CPU (aten `mm`, `bmm`, `addmm`, `baddbmm`, forward
and backward) through fp32: inputs upcast (exact), MKL's fp32 GEMM (fp32 sums), product rounded to bf16. That is
a native bf16 kernel's arithmetic up to the order of the sums, which differs between native kernels too, so a
study pinned to bf16 stays the same study on these CPUs, at about fp32's speed. Everything else (norms,
activations, attention's softmax) still runs in bf16 as written. The model's bf16 weights are upcast once, on
first use, and kept while they are unchanged (checked by their version counter): the 262k-row head of Gemma-3
took 0.8 s per cast. Costs ~4 bytes per weight of extra memory (1.1 GB for Gemma-3-270M).

`load_model` calls it on such CPUs only; with native bf16, or for fp32 models, nothing changes.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass

import torch

BF16 = torch.bfloat16
_library: torch.library.Library | None = None  # the aten overrides, registered once per process


@dataclass
class _Weight:
    """A registered bf16 weight and its fp32 copy (made on first use, redone when the weight changes)."""

    weight: weakref.ref[torch.Tensor]  # weak: a freed model's weights and copies go with it
    copy: torch.Tensor | None = None
    version: int = -1

    def fp32_view(self, view: torch.Tensor) -> torch.Tensor | None:
        """`view` (a transpose or reshape of the weight, sharing its memory) in fp32, or None if it is not one."""
        w = self.weight()
        same_memory = w is not None and view.untyped_storage().data_ptr() == w.untyped_storage().data_ptr()
        if not same_memory or min(view.stride(), default=1) < 0:
            return None
        extent = 1 + sum((n - 1) * s for n, s in zip(view.shape, view.stride(), strict=True) if n > 0)
        if extent > w.numel():
            return None
        if self.copy is None or self.version != w._version:
            self.copy, self.version = w.detach().float(), w._version
        return self.copy.as_strided(view.shape, view.stride())


_WEIGHTS: dict[int, _Weight] = {}  # data_ptr of a registered weight -> its entry


def _fp32(t: torch.Tensor) -> torch.Tensor:
    entry = _WEIGHTS.get(t.data_ptr())
    cached = entry.fp32_view(t) if entry is not None else None
    return cached if cached is not None else t.float()


def _fp32_out(shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """The fp32 buffer an fp32 GEMM writes into, before its one rounding to bf16."""
    return torch.empty(shape, dtype=torch.float32)


def _mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.dtype == BF16 and b.dtype == BF16:
        return torch.ops.aten.mm.out(_fp32(a), _fp32(b), out=_fp32_out((a.shape[0], b.shape[1]))).to(BF16)
    return torch.ops.aten.mm.out(a, b, out=a.new_empty((a.shape[0], b.shape[1])))


def _bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    shape = (a.shape[0], a.shape[1], b.shape[2])
    if a.dtype == BF16 and b.dtype == BF16:
        return torch.ops.aten.bmm.out(_fp32(a), _fp32(b), out=_fp32_out(shape)).to(BF16)
    return torch.ops.aten.bmm.out(a, b, out=a.new_empty(shape))


def _addmm(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, beta: float = 1, alpha: float = 1) -> torch.Tensor:
    shape = (a.shape[0], b.shape[1])
    if a.dtype == BF16 and b.dtype == BF16:
        out = _fp32_out(shape)
        return torch.ops.aten.addmm.out(bias.float(), _fp32(a), _fp32(b), beta=beta, alpha=alpha, out=out).to(BF16)
    return torch.ops.aten.addmm.out(bias, a, b, beta=beta, alpha=alpha, out=a.new_empty(shape))


def _baddbmm(base: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, beta: float = 1,
             alpha: float = 1) -> torch.Tensor:
    shape = (a.shape[0], a.shape[1], b.shape[2])
    if a.dtype == BF16 and b.dtype == BF16:
        out = _fp32_out(shape)
        return torch.ops.aten.baddbmm.out(base.float(), _fp32(a), _fp32(b), beta=beta, alpha=alpha, out=out).to(BF16)
    return torch.ops.aten.baddbmm.out(base, a, b, beta=beta, alpha=alpha, out=a.new_empty(shape))


def install_fp32_matmuls() -> None:
    """Register the overrides of aten's CPU matmul kernels for this process (idempotent). Non-bf16 inputs run
    the same kernels as before, through their `out=` variants."""
    global _library
    if _library is not None:
        return
    library = torch.library.Library("aten", "IMPL")
    with warnings.catch_warnings():  # "Overriding a previously registered kernel": that is the point
        warnings.filterwarnings("ignore", message=".*[Oo]verrid")
        for name, kernel in (("mm", _mm), ("bmm", _bmm), ("addmm", _addmm), ("baddbmm", _baddbmm)):
            library.impl(name, kernel, "CPU")
    _library = library


def use_fp32_matmuls(model: torch.nn.Module) -> torch.nn.Module:
    """Install the overrides and register the model's contiguous bf16 CPU weights for cached upcasts. Call it
    again after changing weights through `.data` (peft's merge does), which their version counters miss."""
    install_fp32_matmuls()
    for param in model.parameters():
        if param.dtype == BF16 and param.device.type == "cpu" and param.is_contiguous():
            key = param.data_ptr()
            _WEIGHTS[key] = _Weight(weakref.ref(param, lambda _ref, key=key: _forget(key, _ref)))
    return model


def _forget(key: int, ref: weakref.ref) -> None:
    """Drop the entry of a weight that was freed (unless the key was registered again since)."""
    entry = _WEIGHTS.get(key)
    if entry is not None and entry.weight is ref:
        del _WEIGHTS[key]


def fp32_matmuls_installed() -> bool:
    return _library is not None


def uninstall_fp32_matmuls() -> None:
    """Give aten its own CPU matmul kernels back and forget every registered weight (tests use it)."""
    global _library
    if _library is not None:
        _library._destroy()
        _library = None
    _WEIGHTS.clear()
