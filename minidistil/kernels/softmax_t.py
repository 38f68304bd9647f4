"""Softmax with temperature over the last axis, its backward, and log-softmax.

Legend: N rows (any leading shape, flattened), V entries per row (the vocabulary).

    p = softmax(x / tau)                       forward
    dx = p * (dp - sum(dp * p)) / tau          backward (docs/math.md, "softmax with temperature")
    log p = (x - max) / tau - log(sum(exp((x - max) / tau)))
    dx = (dlogp - exp(log p) * sum(dlogp)) / tau          backward of log-softmax

As every layer: ``p, cache = softmax_forward(x, tau)`` and ``dx = softmax_backward(dp, cache)``
(likewise ``log_softmax_forward`` / ``log_softmax_backward``); the cache holds the output and tau,
which is all the backward needs. The NumPy twins below are the readable reference; the ``*_numba`` versions fuse the passes (one
row at a time, rows spread over Numba's threads; see backend.py for the flags and threading).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import prange

from . import backend
from .backend import (as_rows, check_cache, check_float_array, check_same_dtype, check_shape,
                      check_temperature, jit, legacy_temperature)
from .vecmath import fast_exp


class SoftmaxCache(NamedTuple):
    p: np.ndarray  # (..., V) the forward's output, softmax(x / tau)
    tau: float  # the temperature


class LogSoftmaxCache(NamedTuple):
    logp: np.ndarray  # (..., V) the forward's output, log softmax(x / tau)
    tau: float  # the temperature


# ---------------------------------------------------------------- NumPy twins (the reference)

def softmax_forward_numpy(x: np.ndarray, tau: float = 1.0):
    z = (x - x.max(axis=-1, keepdims=True)) / x.dtype.type(tau)  # (..., V), max entry 0
    e = np.exp(z)  # (..., V)
    p = e / e.sum(axis=-1, keepdims=True)  # (..., V)
    return p, SoftmaxCache(p=p, tau=tau)


def softmax_backward_numpy(dp: np.ndarray, cache: SoftmaxCache) -> np.ndarray:
    p = cache.p  # (..., V)
    inner = (dp * p).sum(axis=-1, keepdims=True)  # (..., 1)
    return p * (dp - inner) / p.dtype.type(cache.tau)  # (..., V)


def log_softmax_forward_numpy(x: np.ndarray, tau: float = 1.0):
    z = (x - x.max(axis=-1, keepdims=True)) / x.dtype.type(tau)  # (..., V)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # (..., V)
    return logp, LogSoftmaxCache(logp=logp, tau=tau)


def log_softmax_backward_numpy(dlogp: np.ndarray, cache: LogSoftmaxCache) -> np.ndarray:
    logp = cache.logp  # (..., V)
    total = dlogp.sum(axis=-1, keepdims=True)  # (..., 1)
    return (dlogp - np.exp(logp) * total) / logp.dtype.type(cache.tau)  # (..., V)


# ---------------------------------------------------------------- Numba versions
# One pass over a row does what the twin does in several: the twin reads and writes the whole
# (N, V) array once per NumPy call (max, subtract, divide, exp, sum, divide), the kernel keeps a
# row in cache and touches memory three times. NumPy's float32 exp is SIMD and Numba's math.exp
# is a scalar libm call, so the float32 kernels use fast_exp (a vectorisable polynomial, see
# vecmath.py); rows run on both cores (prange).

@jit()
def row_max(r):
    """max(r) of a 1-D row, in 16 interleaved lanes so that LLVM vectorises it.

    The plain loop ``if r[j] > m: m = r[j]`` is one long dependency chain that LLVM will not
    vectorise without the ``nnan`` fast-math flag (we keep NaNs meaningful); 16 independent
    running maxima break the chain, and the row maximum stops being the softmax's slowest pass.
    """
    V = r.shape[0]
    L = 16
    J = V // L * L
    m = r[0]
    if J > 0:
        lanes = r[:L].copy()  # (L,)
        for j in range(L, J, L):
            for lane in range(L):
                v = r[j + lane]
                lanes[lane] = v if v > lanes[lane] else lanes[lane]
        for lane in range(L):
            m = lanes[lane] if lanes[lane] > m else m
    for j in range(J, V):
        m = r[j] if r[j] > m else m
    return m


@jit()
def row_sum(r):
    """sum(r) of a 1-D row in an order fixed by this source: eight interleaved partial sums.

    Why not ``for j: s += r[j]`` with LLVM's ``reassoc`` flag, which vectorises that loop: then
    the compiler picks the order of the additions, and Numba compiles a parallel kernel's body
    twice (alone, then again inside the kernel that calls it; only the second copy is cached),
    so a freshly compiled kernel and the same kernel loaded from the cache summed in different
    orders and differed in the last bits (docs/reliability.md, "Exact resume"). Eight
    independent sums still run in parallel on the vector unit; no flag can reorder them.
    """
    V = r.shape[0]
    J = V // 8 * 8
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = r.dtype.type(0.0)
    for j in range(0, J, 8):
        s0 += r[j]
        s1 += r[j + 1]
        s2 += r[j + 2]
        s3 += r[j + 3]
        s4 += r[j + 4]
        s5 += r[j + 5]
        s6 += r[j + 6]
        s7 += r[j + 7]
    s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    for j in range(J, V):
        s += r[j]
    return s


@jit()
def row_dot(a, b):
    """sum(a * b) of two 1-D rows of one length, in the fixed order of :func:`row_sum`."""
    V = a.shape[0]
    J = V // 8 * 8
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = a.dtype.type(0.0)
    for j in range(0, J, 8):
        s0 += a[j] * b[j]
        s1 += a[j + 1] * b[j + 1]
        s2 += a[j + 2] * b[j + 2]
        s3 += a[j + 3] * b[j + 3]
        s4 += a[j + 4] * b[j + 4]
        s5 += a[j + 5] * b[j + 5]
        s6 += a[j + 6] * b[j + 6]
        s7 += a[j + 7] * b[j + 7]
    s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    for j in range(J, V):
        s += a[j] * b[j]
    return s


@jit(parallel=True)
def _softmax_rows(x, inv_t, p):
    """p[n] = softmax(x[n] * inv_t); x, p (N, V) C-contiguous; inv_t a scalar of x's dtype."""
    N, V = x.shape
    one = x.dtype.type(1.0)
    for n in prange(N):
        m = row_max(x[n])  # for a stable exp
        for j in range(V):  # no sum in this loop: it vectorises, fast_exp included
            p[n, j] = fast_exp((x[n, j] - m) * inv_t)
        r = one / row_sum(p[n])  # the row is still in cache
        for j in range(V):
            p[n, j] *= r


@jit(parallel=True)
def _softmax_backward_rows(dp, p, inv_t, dx):
    """dx[n] = p[n] * (dp[n] - <dp[n], p[n]>) * inv_t; all (N, V) C-contiguous."""
    N, V = p.shape
    for n in prange(N):
        inner = row_dot(dp[n], p[n])
        for j in range(V):
            dx[n, j] = p[n, j] * (dp[n, j] - inner) * inv_t


@jit(parallel=True)
def _log_softmax_rows(x, inv_t, logp):
    """logp[n] = (x[n] - max) * inv_t - log(sum(exp((x[n] - max) * inv_t)))."""
    N, V = x.shape
    for n in prange(N):
        m = row_max(x[n])
        for j in range(V):  # logp[n] holds the exponentials until the sum is taken
            logp[n, j] = fast_exp((x[n, j] - m) * inv_t)
        lse = math.log(row_sum(logp[n]))
        for j in range(V):
            logp[n, j] = (x[n, j] - m) * inv_t - lse


@jit(parallel=True)
def _log_softmax_backward_rows(dlogp, logp, inv_t, dx):
    """dx[n] = (dlogp[n] - exp(logp[n]) * sum(dlogp[n])) * inv_t."""
    N, V = logp.shape
    for n in prange(N):
        total = row_sum(dlogp[n])
        for j in range(V):
            dx[n, j] = (dlogp[n, j] - fast_exp(logp[n, j]) * total) * inv_t


def softmax_forward_numba(x: np.ndarray, tau: float = 1.0):
    rows = as_rows(x)  # (N, V)
    p = np.empty_like(rows)  # (N, V)
    _softmax_rows(rows, x.dtype.type(1.0 / tau), p)
    p = p.reshape(x.shape)  # (..., V)
    return p, SoftmaxCache(p=p, tau=tau)


def softmax_backward_numba(dp: np.ndarray, cache: SoftmaxCache) -> np.ndarray:
    p = cache.p  # (..., V)
    p_rows = as_rows(p)  # (N, V)
    dx = np.empty_like(p_rows)  # (N, V)
    _softmax_backward_rows(as_rows(dp), p_rows, p.dtype.type(1.0 / cache.tau), dx)
    return dx.reshape(p.shape)  # (..., V)


def log_softmax_forward_numba(x: np.ndarray, tau: float = 1.0):
    rows = as_rows(x)  # (N, V)
    logp = np.empty_like(rows)  # (N, V)
    _log_softmax_rows(rows, x.dtype.type(1.0 / tau), logp)
    logp = logp.reshape(x.shape)  # (..., V)
    return logp, LogSoftmaxCache(logp=logp, tau=tau)


def log_softmax_backward_numba(dlogp: np.ndarray, cache: LogSoftmaxCache) -> np.ndarray:
    logp = cache.logp  # (..., V)
    lp_rows = as_rows(logp)  # (N, V)
    dx = np.empty_like(lp_rows)  # (N, V)
    _log_softmax_backward_rows(as_rows(dlogp), lp_rows, logp.dtype.type(1.0 / cache.tau), dx)
    return dx.reshape(logp.shape)  # (..., V)


# ---------------------------------------------------------------- public, checked entry points

def _check_logits(x) -> None:
    check_float_array("x", x)
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(f"x must have a non-empty last axis, got shape {x.shape}")


def _check_backward(dname: str, d: np.ndarray, oname: str, o) -> None:
    """Checks an upstream gradient against the cached output it flows back through."""
    check_float_array(oname, o)
    check_float_array(dname, d)
    check_same_dtype(o.dtype, **{dname: d})
    check_shape(dname, d, o.shape)
    if o.ndim < 1 or o.shape[-1] == 0:
        raise ValueError(f"{oname} must have a non-empty last axis, got shape {o.shape}")


def softmax_forward(x: np.ndarray, tau: float = 1.0, *, T: float | None = None):
    """``(p, SoftmaxCache)``: ``p = softmax(x / tau)`` over the last axis; ``x`` float32/float64,
    at least 1-D. Only the probabilities? ``p, _ = softmax_forward(x, tau)``. (``T=`` is the
    keyword's earlier name, deprecated: it gives a FutureWarning.)"""
    _check_logits(x)
    tau = check_temperature(legacy_temperature(tau, T), x.dtype)
    fn = softmax_forward_numba if backend.get_backend() == "numba" else softmax_forward_numpy
    return fn(x, tau)


def softmax_backward(dp: np.ndarray, cache: SoftmaxCache) -> np.ndarray:
    """``dx``, the gradient w.r.t. the logits ``x`` of ``p = softmax(x / tau)`` given ``dp`` (..., V)."""
    check_cache("cache", cache, SoftmaxCache, "softmax_forward")
    _check_backward("dp", dp, "cache.p", cache.p)
    cache = cache._replace(tau=check_temperature(cache.tau, cache.p.dtype))
    fn = softmax_backward_numba if backend.get_backend() == "numba" else softmax_backward_numpy
    return fn(dp, cache)


def log_softmax_forward(x: np.ndarray, tau: float = 1.0, *, T: float | None = None):
    """``(logp, LogSoftmaxCache)``: ``logp = log(softmax(x / tau))`` over the last axis, computed
    stably."""
    _check_logits(x)
    tau = check_temperature(legacy_temperature(tau, T), x.dtype)
    fn = log_softmax_forward_numba if backend.get_backend() == "numba" else log_softmax_forward_numpy
    return fn(x, tau)


def log_softmax_backward(dlogp: np.ndarray, cache: LogSoftmaxCache) -> np.ndarray:
    """``dx``, the gradient w.r.t. the logits ``x`` of ``logp = log_softmax(x / tau)`` given ``dlogp``."""
    check_cache("cache", cache, LogSoftmaxCache, "log_softmax_forward")
    _check_backward("dlogp", dlogp, "cache.logp", cache.logp)
    cache = cache._replace(tau=check_temperature(cache.tau, cache.logp.dtype))
    fn = log_softmax_backward_numba if backend.get_backend() == "numba" else log_softmax_backward_numpy
    return fn(dlogp, cache)
