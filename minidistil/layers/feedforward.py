"""The position-wise feed-forward network: Linear(C -> F), GELU, Linear(F -> C).

Legend: B batch, T sequence, C hidden, F feed-forward (intermediate) size.

    u = x W1^T + b1        (B, T, F)
    g = gelu(u)            exact erf form for hidden_act "gelu" (reference.md)
    y = g W2^T + b2        (B, T, C)

Parameters ``p`` (local names): ``ff1.weight ff1.bias ff2.weight ff2.bias``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..kernels import GeluCache, gelu_backward, gelu_forward
from ._params import require_params
from .linear import LinearCache, linear_backward, linear_forward

FFN_KEYS = ("ff1.weight", "ff1.bias", "ff2.weight", "ff2.bias")

# Hugging Face ``hidden_act`` names -> the GELU kernel's ``approximate`` argument.
HIDDEN_ACTS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}


def gelu_approximation(hidden_act: str) -> str:
    """The kernel's ``approximate`` flag for a Hugging Face ``hidden_act`` name."""
    if hidden_act not in HIDDEN_ACTS:
        raise ValueError(f"hidden_act must be one of {sorted(HIDDEN_ACTS)}, got {hidden_act!r}")
    return HIDDEN_ACTS[hidden_act]


class FeedForwardCache(NamedTuple):
    ff1_cache: LinearCache
    gelu_cache: GeluCache  # the GELU input u (B, T, F) and its form
    ff2_cache: LinearCache


def feedforward_forward(x: np.ndarray, p: dict, hidden_act: str = "gelu"):
    """Returns ``(y, FeedForwardCache)``; ``x`` (..., C) -> ``y`` (..., C)."""
    require_params(p, FFN_KEYS, "feedforward_forward")
    approximate = gelu_approximation(hidden_act)
    u, ff1_cache = linear_forward(x, p["ff1.weight"], p["ff1.bias"])  # (..., F)
    g, gelu_cache = gelu_forward(u, approximate)  # (..., F)
    y, ff2_cache = linear_forward(g, p["ff2.weight"], p["ff2.bias"])  # (..., C)
    return y, FeedForwardCache(ff1_cache, gelu_cache, ff2_cache)


def feedforward_backward(dy: np.ndarray, cache: FeedForwardCache):
    """Returns ``(dx, grads)`` with ``grads`` keyed like ``p``."""
    dg, g2 = linear_backward(dy, cache.ff2_cache)  # (..., F)
    du = gelu_backward(dg, cache.gelu_cache)  # (..., F)
    dx, g1 = linear_backward(du, cache.ff1_cache)  # (..., C)
    grads = {"ff1.weight": g1["weight"], "ff1.bias": g1["bias"],
             "ff2.weight": g2["weight"], "ff2.bias": g2["bias"]}
    return dx, grads
