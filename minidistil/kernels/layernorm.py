"""LayerNorm over the last axis, forward and backward.

Legend: N rows (leading shape flattened), C features.

    mean = x.mean(-1);  rstd = 1 / sqrt(var(x) + eps);  xhat = (x - mean) * rstd
    y = gamma * xhat + beta
    dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),   g = dy * gamma   (docs/math.md)

eps defaults to 1e-12 as in BERT. As every layer: ``y, cache = layernorm_forward(x, gamma, beta)``
and ``dx, dgamma, dbeta = layernorm_backward(dy, cache)``; the cache keeps the row statistics so
that the backward does not recompute them.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import prange

from . import backend
from .backend import as_rows, check_cache, check_float_array, check_same_dtype, check_shape, jit, num_threads
from .softmax_t import row_dot, row_sum

DEFAULT_EPS = 1e-12


class LayerNormCache(NamedTuple):
    x: np.ndarray  # (..., C) the input
    gamma: np.ndarray  # (C,) the gain (Hugging Face: ``weight``)
    mean: np.ndarray  # (...,) the row means
    rstd: np.ndarray  # (...,) 1 / sqrt(var + eps) per row


# ---------------------------------------------------------------- NumPy twins (the reference)

def layernorm_forward_numpy(x, gamma, beta, eps=DEFAULT_EPS):
    mean = x.mean(axis=-1)  # (...,)
    xc = x - mean[..., None]  # (..., C)
    var = (xc * xc).mean(axis=-1)  # (...,)
    rstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype)  # (...,)
    y = xc * rstd[..., None] * gamma + beta  # (..., C)
    return y, LayerNormCache(x=x, gamma=gamma, mean=mean, rstd=rstd)


def layernorm_backward_numpy(dy, cache: LayerNormCache):
    x, gamma, mean, rstd = cache.x, cache.gamma, cache.mean, cache.rstd
    xhat = (x - mean[..., None]) * rstd[..., None]  # (..., C)
    lead = tuple(range(x.ndim - 1))
    dgamma = (dy * xhat).sum(axis=lead)  # (C,)
    dbeta = dy.sum(axis=lead)  # (C,)
    g = dy * gamma  # (..., C)
    dx = rstd[..., None] * (
        g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True)
    )  # (..., C)
    return dx, dgamma, dbeta


# ---------------------------------------------------------------- Numba versions
# Forward: statistics and normalisation fused, one row (C values, in L1 cache) at a time, rows
# spread over threads. Backward: dx needs two row sums, dgamma/dbeta need sums over *rows*; if
# threads added into one dgamma they would race, so each chunk of rows owns a row of
# dgamma_parts/dbeta_parts and the chunks are summed afterwards (deterministic for a thread count).

@jit(parallel=True)
def _layernorm_forward_rows(x, gamma, beta, eps, y, mean, rstd):
    """x, y (N, C); gamma, beta (C,); mean, rstd (N,); eps a scalar of x's dtype."""
    N, C = x.shape
    one = x.dtype.type(1.0)
    inv_c = one / x.dtype.type(C)
    for n in prange(N):
        m = row_sum(x[n]) * inv_c  # sums in a fixed order (softmax_t.row_sum says why)
        for j in range(C):  # two-pass variance: no cancellation, the row is already in cache
            y[n, j] = x[n, j] - m
        r = one / math.sqrt(row_dot(y[n], y[n]) * inv_c + eps)
        for j in range(C):
            y[n, j] = y[n, j] * r * gamma[j] + beta[j]
        mean[n] = m
        rstd[n] = r


@jit(parallel=True)
def _layernorm_backward_rows(dy, x, gamma, mean, rstd, dx, dgamma_parts, dbeta_parts):
    """dx (N, C); dgamma_parts, dbeta_parts (K, C) zeroed, one row per chunk of rows."""
    N, C = x.shape
    K = dgamma_parts.shape[0]
    inv_c = x.dtype.type(1.0) / x.dtype.type(C)
    per = (N + K - 1) // K
    for c in prange(K):
        xhat = np.empty(C, dtype=x.dtype)  # (C,) one row's xhat, reused for the chunk's rows
        for n in range(c * per, min(N, (c + 1) * per)):
            m = mean[n]
            r = rstd[n]
            for j in range(C):
                xhat[j] = (x[n, j] - m) * r
                dx[n, j] = dy[n, j] * gamma[j]  # g, until the two sums are taken
                dgamma_parts[c, j] += dy[n, j] * xhat[j]
                dbeta_parts[c, j] += dy[n, j]
            sg = row_sum(dx[n]) * inv_c  # mean_j g_j
            sgx = row_dot(dx[n], xhat) * inv_c  # mean_j g_j * xhat_j
            for j in range(C):
                dx[n, j] = r * (dx[n, j] - sg - xhat[j] * sgx)


def layernorm_forward_numba(x, gamma, beta, eps=DEFAULT_EPS):
    rows = as_rows(x)  # (N, C)
    N, C = rows.shape
    y = np.empty_like(rows)  # (N, C)
    mean = np.empty(N, dtype=x.dtype)  # (N,)
    rstd = np.empty(N, dtype=x.dtype)  # (N,)
    _layernorm_forward_rows(rows, np.ascontiguousarray(gamma), np.ascontiguousarray(beta),
                            x.dtype.type(eps), y, mean, rstd)
    mean, rstd = mean.reshape(x.shape[:-1]), rstd.reshape(x.shape[:-1])  # (...,) each, views
    return y.reshape(x.shape), LayerNormCache(x=x, gamma=gamma, mean=mean, rstd=rstd)


def layernorm_backward_numba(dy, cache: LayerNormCache):
    x, gamma, mean, rstd = cache.x, cache.gamma, cache.mean, cache.rstd
    rows = as_rows(x)  # (N, C)
    N, C = rows.shape
    K = max(1, min(num_threads(), N))  # chunks of rows, one per thread
    dx = np.empty_like(rows)  # (N, C)
    dgamma_parts = np.zeros((K, C), dtype=x.dtype)  # (K, C)
    dbeta_parts = np.zeros((K, C), dtype=x.dtype)  # (K, C)
    _layernorm_backward_rows(as_rows(dy), rows, np.ascontiguousarray(gamma),
                             np.ascontiguousarray(mean).reshape(-1), np.ascontiguousarray(rstd).reshape(-1),
                             dx, dgamma_parts, dbeta_parts)
    return dx.reshape(x.shape), dgamma_parts.sum(axis=0), dbeta_parts.sum(axis=0)


# ---------------------------------------------------------------- public, checked entry points

def layernorm_forward(x, gamma, beta, eps: float = DEFAULT_EPS):
    """Returns ``(y, LayerNormCache)``; ``x`` (..., C), ``gamma``/``beta`` (C,)."""
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
    if backend.get_backend() == "numpy":
        return layernorm_forward_numpy(x, gamma, beta, float(eps))
    fn = backend.fast_route("layernorm_forward") or layernorm_forward_numba
    return fn(x, gamma, beta, float(eps))


def layernorm_backward(dy, cache: LayerNormCache):
    """Returns ``(dx, dgamma, dbeta)`` given ``dy`` (..., C) and the forward's cache."""
    check_cache("cache", cache, LayerNormCache, "layernorm_forward")
    x = cache.x
    check_float_array("cache.x", x)
    check_float_array("dy", dy)
    check_shape("dy", dy, x.shape)
    for name in ("gamma", "mean", "rstd"):
        check_float_array("cache." + name, getattr(cache, name))
    check_shape("cache.gamma", cache.gamma, (x.shape[-1],))
    check_shape("cache.mean", cache.mean, x.shape[:-1])
    check_shape("cache.rstd", cache.rstd, x.shape[:-1])
    check_same_dtype(x.dtype, dy=dy, **{"cache.gamma": cache.gamma, "cache.mean": cache.mean,
                                        "cache.rstd": cache.rstd})
    fn = layernorm_backward_numba if backend.get_backend() == "numba" else layernorm_backward_numpy
    return fn(dy, cache)
