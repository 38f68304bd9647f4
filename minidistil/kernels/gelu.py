"""GELU, the exact erf form used by BERT (and the tanh approximation as an option).

    gelu(x)  = 0.5 * x * (1 + erf(x / sqrt(2))) = x * Phi(x)
    gelu'(x) = Phi(x) + x * phi(x),   phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
    tanh form: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))

As every layer: ``y, cache = gelu_forward(x)`` and ``dx = gelu_backward(dy, cache)``; the
derivative depends on the input, so the cache keeps ``x`` (and which form was used).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import prange

from . import backend
from .backend import check_cache, check_float_array, check_same_dtype, check_shape, jit
from .vecmath import fast_erf, fast_exp

APPROXIMATIONS = ("none", "tanh")


class GeluCache(NamedTuple):
    x: np.ndarray  # (...) the input
    approximate: str  # "none" (erf) or "tanh"

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TANH_CUBIC = 0.044715

# np.vectorize(math.erf) is slow but exact; NumPy has no erf ufunc, which is one reason the
# Numba kernel wins big here (reference.md, "Numba on this kind of machine").
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _erf_like(x: np.ndarray) -> np.ndarray:
    return _erf(x).astype(x.dtype, copy=False)


# ---------------------------------------------------------------- NumPy twins (the reference)

def gelu_forward_numpy(x, approximate="none"):
    if approximate == "tanh":
        inner = _SQRT_2_OVER_PI * (x + _TANH_CUBIC * x * x * x)  # (...)
        y = (0.5 * x * (1.0 + np.tanh(inner))).astype(x.dtype, copy=False)  # (...)
    else:
        y = (0.5 * x * (1.0 + _erf_like(x * _INV_SQRT_2))).astype(x.dtype, copy=False)  # (...)
    return y, GeluCache(x=x, approximate=approximate)


def gelu_backward_numpy(dy, cache: GeluCache):
    x = cache.x  # (...)
    if cache.approximate == "tanh":
        inner = _SQRT_2_OVER_PI * (x + _TANH_CUBIC * x * x * x)
        t = np.tanh(inner)
        dinner = _SQRT_2_OVER_PI * (1.0 + 3.0 * _TANH_CUBIC * x * x)
        d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dinner
        return (dy * d).astype(x.dtype, copy=False)
    cdf = 0.5 * (1.0 + _erf_like(x * _INV_SQRT_2))
    pdf = _INV_SQRT_2PI * np.exp(-0.5 * x * x)
    return (dy * (cdf + x * pdf)).astype(x.dtype, copy=False)


# ---------------------------------------------------------------- Numba versions
# Elementwise, so the array is flattened and split over threads. The erf form uses fast_erf (a
# vectorisable rational approximation for float32, libm's erf for float64; the twin has no erf
# ufunc at all and calls math.erf per element). The tanh form is rewritten with
# 1 + tanh(u) = 2 * sigmoid(2u):  gelu = x * s,  gelu' = s + 2 x s (1 - s) u',  s = sigmoid(2u),
# which needs one exp (fast_exp: vectorisable for float32) and no cancellation for large |u|.

@jit(parallel=True)
def _gelu_forward_flat(x, tanh_form, y):
    """y = gelu(x); x, y (n,) contiguous; tanh_form selects the approximation."""
    half = x.dtype.type(0.5)
    one = x.dtype.type(1.0)
    two = x.dtype.type(2.0)
    inv_sqrt2 = x.dtype.type(_INV_SQRT_2)
    k0 = x.dtype.type(_SQRT_2_OVER_PI)
    k1 = x.dtype.type(_TANH_CUBIC)
    for i in prange(x.shape[0]):
        v = x[i]
        if tanh_form:
            u = k0 * (v + k1 * v * v * v)
            y[i] = v / (one + fast_exp(-two * u))
        else:
            y[i] = half * v * (one + fast_erf(v * inv_sqrt2))


@jit(parallel=True)
def _gelu_backward_flat(dy, x, tanh_form, dx):
    """dx = dy * gelu'(x); all (n,) contiguous."""
    half = x.dtype.type(0.5)
    one = x.dtype.type(1.0)
    two = x.dtype.type(2.0)
    three = x.dtype.type(3.0)
    inv_sqrt2 = x.dtype.type(_INV_SQRT_2)
    inv_sqrt2pi = x.dtype.type(_INV_SQRT_2PI)
    k0 = x.dtype.type(_SQRT_2_OVER_PI)
    k1 = x.dtype.type(_TANH_CUBIC)
    for i in prange(x.shape[0]):
        v = x[i]
        if tanh_form:
            u = k0 * (v + k1 * v * v * v)
            du = k0 * (one + three * k1 * v * v)
            sg = one / (one + fast_exp(-two * u))
            dx[i] = dy[i] * (sg + two * v * sg * (one - sg) * du)
        else:
            cdf = half * (one + fast_erf(v * inv_sqrt2))
            pdf = inv_sqrt2pi * fast_exp(-half * v * v)
            dx[i] = dy[i] * (cdf + v * pdf)


def gelu_forward_numba(x, approximate="none"):
    flat = np.ascontiguousarray(x).reshape(-1)  # (n,)
    y = np.empty_like(flat)  # (n,)
    _gelu_forward_flat(flat, approximate == "tanh", y)
    return y.reshape(x.shape), GeluCache(x=x, approximate=approximate)


def gelu_backward_numba(dy, cache: GeluCache):
    x = cache.x  # (...)
    flat = np.ascontiguousarray(x).reshape(-1)  # (n,)
    dx = np.empty_like(flat)  # (n,)
    _gelu_backward_flat(np.ascontiguousarray(dy).reshape(-1), flat, cache.approximate == "tanh", dx)
    return dx.reshape(x.shape)


def _check_approx(approximate):
    if approximate not in APPROXIMATIONS:
        raise ValueError(f"approximate must be one of {APPROXIMATIONS}, got {approximate!r}")


# ---------------------------------------------------------------- public, checked entry points

def gelu_forward(x, approximate: str = "none"):
    """``(y, GeluCache)``: elementwise GELU of ``x`` (any shape)."""
    check_float_array("x", x)
    _check_approx(approximate)
    if backend.get_backend() == "numpy":
        return gelu_forward_numpy(x, approximate)
    fn = backend.fast_route("gelu_forward") or gelu_forward_numba
    return fn(x, approximate)


def gelu_backward(dy, cache: GeluCache):
    """``dx = dy * gelu'(x)``, with ``x`` and the form from the forward's cache."""
    check_cache("cache", cache, GeluCache, "gelu_forward")
    check_float_array("cache.x", cache.x)
    check_float_array("dy", dy)
    check_shape("dy", dy, cache.x.shape)
    check_same_dtype(cache.x.dtype, dy=dy)
    _check_approx(cache.approximate)
    fn = gelu_backward_numba if backend.get_backend() == "numba" else gelu_backward_numpy
    return fn(dy, cache)
