"""Multi-head self-attention: q/k/v projections, the attention core kernel, an output projection.

Legend: B batch, T sequence, C hidden, NH heads, HS head size (C = NH * HS).

    q, k, v = x Wq^T + bq, x Wk^T + bk, x Wv^T + bv            (B, T, C) each
    split heads: (B, T, C) -> (B, NH, T, HS)
    a = softmax(q k^T / sqrt(HS) + padding bias) v             the kernel (kernels/attention.py)
    merge heads: (B, NH, T, HS) -> (B, T, C);   y = a Wo^T + bo

Parameters ``p`` (local names): ``q.weight q.bias k.weight k.bias v.weight v.bias o.weight o.bias``.
``mask`` (B, T) is the key-padding mask, 1 for real tokens and 0 for padding, or None.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from ..kernels import attention_backward, attention_forward
from ..kernels.backend import check_float_array
from ._params import require_params
from .linear import LinearCache, linear_backward, linear_forward

ATTENTION_KEYS = ("q.weight", "q.bias", "k.weight", "k.bias", "v.weight", "v.bias", "o.weight", "o.bias")


class SelfAttentionCache(NamedTuple):
    q_cache: LinearCache
    k_cache: LinearCache
    v_cache: LinearCache
    o_cache: LinearCache
    q: np.ndarray  # (B, NH, T, HS)
    k: np.ndarray  # (B, NH, T, HS)
    v: np.ndarray  # (B, NH, T, HS)
    probs: np.ndarray  # (B, NH, T, T)
    num_heads: int


def split_heads(x: np.ndarray, num_heads: int) -> np.ndarray:
    """(B, T, C) -> (B, NH, T, HS), contiguous (the kernels want plain C-ordered arrays)."""
    B, T, C = x.shape
    return np.ascontiguousarray(x.reshape(B, T, num_heads, C // num_heads).transpose(0, 2, 1, 3))  # (B, NH, T, HS)


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
    q_lin, q_cache = linear_forward(x, p["q.weight"], p["q.bias"])  # (B, T, C)
    k_lin, k_cache = linear_forward(x, p["k.weight"], p["k.bias"])  # (B, T, C)
    v_lin, v_cache = linear_forward(x, p["v.weight"], p["v.bias"])  # (B, T, C)
    q = split_heads(q_lin, num_heads)  # (B, NH, T, HS)
    k = split_heads(k_lin, num_heads)  # (B, NH, T, HS)
    v = split_heads(v_lin, num_heads)  # (B, NH, T, HS)
    a, probs = attention_forward(q, k, v, mask)  # (B, NH, T, HS), (B, NH, T, T)
    y, o_cache = linear_forward(merge_heads(a), p["o.weight"], p["o.bias"])  # (B, T, C)
    cache = SelfAttentionCache(q_cache, k_cache, v_cache, o_cache, q, k, v, probs, num_heads)
    return y, cache


def self_attention_backward(dy: np.ndarray, cache: SelfAttentionCache):
    """Returns ``(dx, grads)`` with ``grads`` keyed like ``p``."""
    da_merged, g_o = linear_backward(dy, cache.o_cache)  # (B, T, C)
    da = split_heads(da_merged, cache.num_heads)  # (B, NH, T, HS)
    dq, dk, dv = attention_backward(da, cache.q, cache.k, cache.v, cache.probs)  # (B, NH, T, HS) each
    dx_q, g_q = linear_backward(merge_heads(dq), cache.q_cache)  # (B, T, C)
    dx_k, g_k = linear_backward(merge_heads(dk), cache.k_cache)  # (B, T, C)
    dx_v, g_v = linear_backward(merge_heads(dv), cache.v_cache)  # (B, T, C)
    dx = dx_q + dx_k + dx_v  # (B, T, C): x feeds all three projections
    grads = {}
    for name, g in (("q", g_q), ("k", g_k), ("v", g_v), ("o", g_o)):
        grads[f"{name}.weight"] = g["weight"]
        grads[f"{name}.bias"] = g["bias"]
    return dx, grads
