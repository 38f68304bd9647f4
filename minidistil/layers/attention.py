"""Multi-head self-attention: q/k/v projections, the attention core kernel, an output projection.

Legend: B batch, T sequence, C hidden, NH heads, HS head size (C = NH * HS).

    q, k, v = x Wq^T + bq, x Wk^T + bk, x Wv^T + bv            (B, T, C) each
    split heads: (B, T, C) -> (B, NH, T, HS)
    a = softmax(q k^T / sqrt(HS) + padding bias) v             the kernel (kernels/attention.py)
    merge heads: (B, NH, T, HS) -> (B, T, C);   y = a Wo^T + bo

The three input projections run as one: ``[q | k | v] = x [Wq; Wk; Wv]^T + [bq | bk | bv]``,
a single (B*T, C) @ (C, 3C) product whose (B, T, 3C) result *is* q, k and v side by side. The
heads are then strided views into it (no copies: the batched products take any row stride).
In the backward the three gradients are written side by side into one (B, T, 3C) array, so
``dx`` is one product with the stacked weight instead of three products and two additions
(docs/performance.md, "Open levers", has the figure). The parameters keep their separate
Hugging Face names.

Parameters ``p`` (local names): ``q.weight q.bias k.weight k.bias v.weight v.bias o.weight o.bias``.
``mask`` (B, T) is the key-padding mask, 1 for real tokens and 0 for padding, or None.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from ..kernels import AttentionCache, attention_backward, attention_forward
from ..kernels.backend import check_float_array
from ._params import require_params
from .linear import LinearCache, linear_backward, linear_forward

ATTENTION_KEYS = ("q.weight", "q.bias", "k.weight", "k.bias", "v.weight", "v.bias", "o.weight", "o.bias")


class SelfAttentionCache(NamedTuple):
    qkv_cache: LinearCache  # the stacked q/k/v projection (weight (3C, C))
    o_cache: LinearCache
    core_cache: AttentionCache  # q, k, v (B, NH, T, HS): strided views into the projection's
    #                             output; probs (B, NH, T, T)
    num_heads: int


def split_heads(x: np.ndarray, num_heads: int) -> np.ndarray:
    """(B, T, C) -> (B, NH, T, HS), contiguous (the kernels want plain C-ordered arrays)."""
    B, T, C = x.shape
    return np.ascontiguousarray(x.reshape(B, T, num_heads, C // num_heads).transpose(0, 2, 1, 3))  # (B, NH, T, HS)


def head_views(qkv: np.ndarray, num_heads: int):
    """(B, T, 3C) stacked projection -> q, k, v, each a (B, NH, T, HS) view (no copy)."""
    B, T, C3 = qkv.shape
    heads = qkv.reshape(B, T, 3, num_heads, C3 // (3 * num_heads))  # (B, T, 3, NH, HS)
    return tuple(heads[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # (B, NH, T, HS) each


def merge_heads(x: np.ndarray) -> np.ndarray:
    """(B, NH, T, HS) -> (B, T, C), the inverse of :func:`split_heads`."""
    B, NH, T, HS = x.shape
    return np.ascontiguousarray(x.transpose(0, 2, 1, 3)).reshape(B, T, NH * HS)  # (B, T, C)


def self_attention_forward(x: np.ndarray, mask: Optional[np.ndarray], p: dict, num_heads: int):
    """Returns ``(y, SelfAttentionCache)``; ``x`` (B, T, C) -> ``y`` (B, T, C)."""
    check_float_array("x", x, 3)
    require_params(p, ATTENTION_KEYS, "self_attention_forward")
    C = x.shape[-1]
    if not isinstance(num_heads, (int, np.integer)) or num_heads < 1 or C % num_heads:
        raise ValueError(f"num_heads must be a positive integer dividing the hidden size {C}, got {num_heads!r}")
    num_heads = int(num_heads)
    w_qkv = np.concatenate([p["q.weight"], p["k.weight"], p["v.weight"]])  # (3C, C)
    b_qkv = np.concatenate([p["q.bias"], p["k.bias"], p["v.bias"]])  # (3C,)
    qkv, qkv_cache = linear_forward(x, w_qkv, b_qkv)  # (B, T, 3C)
    q, k, v = head_views(qkv, num_heads)  # (B, NH, T, HS) each, views
    a, core_cache = attention_forward(q, k, v, mask)  # (B, NH, T, HS), probs (B, NH, T, T) inside
    y, o_cache = linear_forward(merge_heads(a), p["o.weight"], p["o.bias"])  # (B, T, C)
    cache = SelfAttentionCache(qkv_cache, o_cache, core_cache, num_heads)
    return y, cache


def self_attention_backward(dy: np.ndarray, cache: SelfAttentionCache):
    """Returns ``(dx, grads)`` with ``grads`` keyed like ``p``."""
    da_merged, g_o = linear_backward(dy, cache.o_cache)  # (B, T, C)
    B, T, C = da_merged.shape
    NH = cache.num_heads
    da = da_merged.reshape(B, T, NH, C // NH).transpose(0, 2, 1, 3)  # (B, NH, T, HS), a view
    dqkv = np.empty((B, T, 3 * C), dtype=da_merged.dtype)  # (B, T, 3C): [dq | dk | dv] side by side
    # dq, dk, dv (B, NH, T, HS) are written straight into their head views of dqkv
    attention_backward(da, cache.core_cache, out=head_views(dqkv, NH))
    dx, g_qkv = linear_backward(dqkv, cache.qkv_cache)  # (B, T, C): x feeds all three projections
    grads = {}
    for i, name in enumerate(("q", "k", "v")):
        grads[f"{name}.weight"] = g_qkv["weight"][i * C:(i + 1) * C]  # (C, C) rows of the stacked grad
        grads[f"{name}.bias"] = g_qkv["bias"][i * C:(i + 1) * C]  # (C,)
    grads["o.weight"], grads["o.bias"] = g_o["weight"], g_o["bias"]
    return dx, grads
