"""LayerNorm over the last axis, forward and backward.

Legend: N rows (leading shape flattened), C features.

    mean = x.mean(-1);  rstd = 1 / sqrt(var(x) + eps);  xhat = (x - mean) * rstd
    y = gamma * xhat + beta
    dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),   g = dy * gamma   (docs/math.md)

eps defaults to 1e-12 as in BERT.
"""
from __future__ import annotations

import numpy as np

from . import backend
from .backend import check_float_array, check_same_dtype, check_shape

DEFAULT_EPS = 1e-12


# ---------------------------------------------------------------- NumPy twins (the reference)

def layernorm_forward_numpy(x, gamma, beta, eps=DEFAULT_EPS):
    mean = x.mean(axis=-1)  # (...,)
    xc = x - mean[..., None]  # (..., C)
    var = (xc * xc).mean(axis=-1)  # (...,)
    rstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype)  # (...,)
    y = xc * rstd[..., None] * gamma + beta  # (..., C)
    return y, mean, rstd


def layernorm_backward_numpy(dy, x, gamma, mean, rstd):
    xhat = (x - mean[..., None]) * rstd[..., None]  # (..., C)
    lead = tuple(range(x.ndim - 1))
    dgamma = (dy * xhat).sum(axis=lead)  # (C,)
    dbeta = dy.sum(axis=lead)  # (C,)
    g = dy * gamma  # (..., C)
    dx = rstd[..., None] * (
        g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True)
    )  # (..., C)
    return dx, dgamma, dbeta


layernorm_forward_numba = layernorm_forward_numpy
layernorm_backward_numba = layernorm_backward_numpy


# ---------------------------------------------------------------- public, checked entry points

def layernorm_forward(x, gamma, beta, eps: float = DEFAULT_EPS):
    """Returns ``(y, mean, rstd)``; ``x`` (..., C), ``gamma``/``beta`` (C,)."""
    check_float_array("x", x)
    if x.ndim < 1:
        raise ValueError(f"x must be at least 1-D, got shape {x.shape}")
    C = x.shape[-1]
    check_float_array("gamma", gamma, 1)
    check_float_array("beta", beta, 1)
    check_shape("gamma", gamma, (C,))
    check_shape("beta", beta, (C,))
    check_same_dtype(x.dtype, gamma=gamma, beta=beta)
    if not (float(eps) > 0.0):
        raise ValueError(f"eps must be > 0, got {eps!r}")
    fn = layernorm_forward_numba if backend.get_backend() == "numba" else layernorm_forward_numpy
    return fn(x, gamma, beta, float(eps))


def layernorm_backward(dy, x, gamma, mean, rstd):
    """Returns ``(dx, dgamma, dbeta)``."""
    check_float_array("x", x)
    check_float_array("dy", dy)
    check_shape("dy", dy, x.shape)
    check_shape("gamma", gamma, (x.shape[-1],))
    check_shape("mean", mean, x.shape[:-1])
    check_shape("rstd", rstd, x.shape[:-1])
    check_same_dtype(x.dtype, dy=dy, gamma=gamma, mean=mean, rstd=rstd)
    fn = layernorm_backward_numba if backend.get_backend() == "numba" else layernorm_backward_numpy
    return fn(dy, x, gamma, mean, rstd)
