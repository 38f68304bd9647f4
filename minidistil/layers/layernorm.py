"""LayerNorm as a layer (the kernel in ``minidistil.kernels`` does the arithmetic).

Legend: ... any leading shape, C features.

    y = weight * (x - mean) / sqrt(var + eps) + bias         (per row of C features)

Hugging Face names the gain ``weight`` and the shift ``bias``; the kernel calls them gamma/beta.
The layer's cache is the kernel's :class:`~minidistil.kernels.LayerNormCache` (``x``, ``gamma``,
``mean``, ``rstd``); the layer only gives the gradients their Hugging Face names.
"""
from __future__ import annotations

import numpy as np

from ..kernels import LayerNormCache, layernorm_backward, layernorm_forward
from ..kernels.layernorm import DEFAULT_EPS


def layernorm_layer_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = DEFAULT_EPS):
    """Returns ``(y, LayerNormCache)``; ``x`` (..., C), ``weight``/``bias`` (C,)."""
    return layernorm_forward(x, weight, bias, eps)  # (..., C), LayerNormCache


def layernorm_layer_backward(dy: np.ndarray, cache: LayerNormCache):
    """Returns ``(dx, {"weight": dweight, "bias": dbias})``."""
    dx, dweight, dbias = layernorm_backward(dy, cache)  # (..., C), (C,), (C,)
    return dx, {"weight": dweight, "bias": dbias}
