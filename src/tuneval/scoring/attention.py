"""Attention for scoring on CPUs: transformers' eager math with grouped-query heads packed into the query.

transformers' eager attention repeats the keys and values once per query head before its two matmuls (a copy
per layer and pass); torch's `scaled_dot_product_attention` CPU kernel, given the padding mask that batched
scoring needs, ran at half the speed of those matmuls here (bf16, Gemma-3's 4 query heads on 1 key/value head,
head dim 256, ~200-token prefills). Here the query heads that share a key/value head are stacked as extra query
rows instead: the same scores, no copy. The math is eager's (bf16 scores plus the additive mask, softmax in
fp32, optional soft-capping), the path the models are trained with (train.attn_implementation). A one-token
decoding step keeps sdpa, as transformers runs it (stacked heads; here with eager's additive mask): there the
two kernels were within noise of each other. Used only while the engine scores on a CPU; GPUs keep their fused
kernels.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import torch

NAME = "tuneval_packed_eager"
REPLACES = ("sdpa", "eager")  # the implementations this one stands in for (same math, or sdpa's up to rounding)


def packed_eager_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                           attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                           softcap: float | None = None, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' eager_attention_forward without repeating keys/values: query (batch, heads, q, dim), key and
    value (batch, kv_heads, kv, dim), an additive mask broadcast over heads; returns (batch, q, heads, dim)."""
    batch, heads, q_len, dim = query.shape
    kv_heads = key.shape[1]
    scaling = module.head_dim**-0.5 if scaling is None else scaling
    if q_len == 1 and softcap is None and not module.training:  # a decoding step: sdpa, as transformers runs it
        out = torch.nn.functional.scaled_dot_product_attention(
            query.view(batch, kv_heads, heads // kv_heads, dim), key, value, attn_mask=attention_mask, scale=scaling)
        return out.view(batch, heads, 1, dim).transpose(1, 2).contiguous(), None
    # query head h reads key/value head h // (heads / kv_heads), as repeat_kv lays them out
    stacked = query.reshape(batch, kv_heads, heads // kv_heads * q_len, dim)
    scores = (torch.matmul(stacked, key.transpose(2, 3)) * scaling).view(batch, heads, q_len, -1)
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = torch.nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = torch.nn.functional.dropout(probs, p=dropout, training=module.training)
    out = torch.matmul(probs.view(batch, kv_heads, -1, probs.shape[-1]), value)
    return out.view(batch, heads, q_len, dim).transpose(1, 2).contiguous(), probs


@functools.cache
def _register() -> None:
    """Make NAME a valid attn_implementation (with eager's additive float masks) for every transformers model."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(NAME, packed_eager_attention)
    AttentionMaskInterface.register(NAME, eager_mask)


@contextmanager
def scoring_attention(model) -> Iterator[None]:
    """Within the block, a CPU model running sdpa or eager attention runs packed_eager_attention; restored after.
    Models on other devices or with other kernels (flash-attention, flex) are left as they are."""
    config = getattr(model, "config", None)
    current = getattr(config, "_attn_implementation", None)
    if model.device.type != "cpu" or current not in REPLACES or not hasattr(model, "set_attn_implementation"):
        yield
        return
    _register()
    model.set_attn_implementation(NAME)
    try:
        yield
    finally:
        model.set_attn_implementation(current)
