"""LayerNorm as a layer (the kernel in ``minidistil.kernels`` does the arithmetic).

Legend: ... any leading shape, C features.

    y = weight * (x - mean) / sqrt(var + eps) + bias         (per row of C features)

Hugging Face names the gain ``weight`` and the shift ``bias``; the kernel calls them gamma/beta.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..kernels import layernorm_backward, layernorm_forward
from ..kernels.layernorm import DEFAULT_EPS


class LayerNormCache(NamedTuple):
    x: np.ndarray  # (..., C)
    weight: np.ndarray  # (C,)
    mean: np.ndarray  # (...,)
    rstd: np.ndarray  # (...,) 1 / sqrt(var + eps)


def layernorm_layer_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = DEFAULT_EPS):
    """Returns ``(y, LayerNormCache)``; ``x`` (..., C), ``weight``/``bias`` (C,)."""
    y, mean, rstd = layernorm_forward(x, weight, bias, eps)  # (..., C), (...,), (...,)
    return y, LayerNormCache(x=x, weight=weight, mean=mean, rstd=rstd)


def layernorm_layer_backward(dy: np.ndarray, cache: LayerNormCache):
    """Returns ``(dx, {"weight": dweight, "bias": dbias})``."""
    dx, dweight, dbias = layernorm_backward(dy, cache.x, cache.weight, cache.mean, cache.rstd)
    return dx, {"weight": dweight, "bias": dbias}
