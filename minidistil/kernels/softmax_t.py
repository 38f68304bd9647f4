"""Softmax with temperature over the last axis, its backward, and log-softmax.

Legend: N rows (any leading shape, flattened), V entries per row (the vocabulary).

    p = softmax(x / T)                       forward
    dx = p * (dp - sum(dp * p)) / T          backward (docs/math.md, "softmax with temperature")
    log p = (x - max) / T - log(sum(exp((x - max) / T)))

The NumPy twins below are the readable reference; the ``*_numba`` versions fuse the passes.
"""
from __future__ import annotations

import numpy as np

from . import backend
from .backend import check_float_array, check_same_dtype, check_temperature, check_shape


# ---------------------------------------------------------------- NumPy twins (the reference)

def softmax_forward_numpy(x: np.ndarray, T: float = 1.0) -> np.ndarray:
    z = (x - x.max(axis=-1, keepdims=True)) / x.dtype.type(T)  # (..., V), max entry 0
    e = np.exp(z)  # (..., V)
    return e / e.sum(axis=-1, keepdims=True)  # (..., V)


def softmax_backward_numpy(dp: np.ndarray, p: np.ndarray, T: float = 1.0) -> np.ndarray:
    inner = (dp * p).sum(axis=-1, keepdims=True)  # (..., 1)
    return p * (dp - inner) / p.dtype.type(T)  # (..., V)


def log_softmax_numpy(x: np.ndarray, T: float = 1.0) -> np.ndarray:
    z = (x - x.max(axis=-1, keepdims=True)) / x.dtype.type(T)  # (..., V)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # (..., V)


# ---------------------------------------------------------------- Numba versions
# Filled in by the Numba kernel module below; until a fused kernel exists they fall back to
# the twins so that both backends always work.
softmax_forward_numba = softmax_forward_numpy
softmax_backward_numba = softmax_backward_numpy
log_softmax_numba = log_softmax_numpy


# ---------------------------------------------------------------- public, checked entry points

def softmax_forward(x: np.ndarray, T: float = 1.0) -> np.ndarray:
    """``softmax(x / T)`` over the last axis. ``x``: float32/float64, at least 1-D."""
    check_float_array("x", x)
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(f"x must have a non-empty last axis, got shape {x.shape}")
    T = check_temperature(T)
    fn = softmax_forward_numba if backend.get_backend() == "numba" else softmax_forward_numpy
    return fn(x, T)


def softmax_backward(dp: np.ndarray, p: np.ndarray, T: float = 1.0) -> np.ndarray:
    """Gradient w.r.t. the logits ``x`` of ``p = softmax(x / T)`` given ``dp``."""
    check_float_array("p", p)
    check_float_array("dp", dp)
    check_same_dtype(p.dtype, dp=dp)
    check_shape("dp", dp, p.shape)
    T = check_temperature(T)
    fn = softmax_backward_numba if backend.get_backend() == "numba" else softmax_backward_numpy
    return fn(dp, p, T)


def log_softmax(x: np.ndarray, T: float = 1.0) -> np.ndarray:
    """``log(softmax(x / T))`` over the last axis, computed stably."""
    check_float_array("x", x)
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(f"x must have a non-empty last axis, got shape {x.shape}")
    T = check_temperature(T)
    fn = log_softmax_numba if backend.get_backend() == "numba" else log_softmax_numpy
    return fn(x, T)
