"""GELU, the exact erf form used by BERT (and the tanh approximation as an option).

    gelu(x)  = 0.5 * x * (1 + erf(x / sqrt(2))) = x * Phi(x)
    gelu'(x) = Phi(x) + x * phi(x),   phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
    tanh form: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
"""
from __future__ import annotations

import math

import numpy as np

from . import backend
from .backend import check_float_array, check_same_dtype, check_shape

APPROXIMATIONS = ("none", "tanh")
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# np.vectorize(math.erf) is slow but exact; NumPy has no erf ufunc, which is one reason the
# Numba kernel wins big here (reference.md, "Numba on this kind of machine").
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _erf_like(x: np.ndarray) -> np.ndarray:
    return _erf(x).astype(x.dtype, copy=False)


# ---------------------------------------------------------------- NumPy twins (the reference)

def gelu_forward_numpy(x, approximate="none"):
    if approximate == "tanh":
        inner = _SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)
        return (0.5 * x * (1.0 + np.tanh(inner))).astype(x.dtype, copy=False)
    return (0.5 * x * (1.0 + _erf_like(x * _INV_SQRT_2))).astype(x.dtype, copy=False)


def gelu_backward_numpy(dy, x, approximate="none"):
    if approximate == "tanh":
        inner = _SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)
        t = np.tanh(inner)
        dinner = _SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x)
        d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dinner
        return (dy * d).astype(x.dtype, copy=False)
    cdf = 0.5 * (1.0 + _erf_like(x * _INV_SQRT_2))
    pdf = _INV_SQRT_2PI * np.exp(-0.5 * x * x)
    return (dy * (cdf + x * pdf)).astype(x.dtype, copy=False)


gelu_forward_numba = gelu_forward_numpy
gelu_backward_numba = gelu_backward_numpy


def _check_approx(approximate):
    if approximate not in APPROXIMATIONS:
        raise ValueError(f"approximate must be one of {APPROXIMATIONS}, got {approximate!r}")


# ---------------------------------------------------------------- public, checked entry points

def gelu_forward(x, approximate: str = "none"):
    """Elementwise GELU of ``x`` (any shape)."""
    check_float_array("x", x)
    _check_approx(approximate)
    fn = gelu_forward_numba if backend.get_backend() == "numba" else gelu_forward_numpy
    return fn(x, approximate)


def gelu_backward(dy, x, approximate: str = "none"):
    """``dx = dy * gelu'(x)``."""
    check_float_array("x", x)
    check_float_array("dy", dy)
    check_shape("dy", dy, x.shape)
    check_same_dtype(x.dtype, dy=dy)
    _check_approx(approximate)
    fn = gelu_backward_numba if backend.get_backend() == "numba" else gelu_backward_numpy
    return fn(dy, x, approximate)
