"""The soft-target kernel: KL(softmax(t/tau) || softmax(s/tau)) per row and its gradient, in one
pass (tau the temperature).

Legend: N rows (positions), V entries per row (the vocabulary).

With zs = (s - max s) / tau, zt = (t - max t) / tau, Zs = sum exp(zs), Zt = sum exp(zt),
ps = exp(zs) / Zs and pt = exp(zt) / Zt:

    log pt_v - log ps_v = (zt_v - zs_v) - (log Zt - log Zs)
    KL_n = sum_v pt_v (zt_v - zs_v) - log Zt + log Zs           (docs/math.md, "KL with tau^2")
    d KL_n / d s = (ps - pt) / tau

So one sweep over a row gives both the loss term and the gradient direction ``ps - pt``; the
unfused version (losses built from softmax and log-softmax) reads and writes the (N, V) arrays five
times. Returns ``kl`` (N,) in float64 and ``diff = ps - pt`` (N, V) in the input dtype. Identical
``s`` and ``t`` give exactly zero for both (the same arithmetic runs on both rows). KL is never
negative (Gibbs' inequality), but the log-sum-exp form can round a near-zero row to -1e-31:
rows are clamped at 0, which changes nothing but that rounding.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from . import backend
from .backend import (as_rows, check_float_array, check_same_dtype, check_shape, check_temperature,
                      legacy_temperature)
from .softmax_t import row_dot, row_max, row_sum
from .vecmath import fast_exp


# ---------------------------------------------------------------- NumPy twin (the reference)

def soft_target_rows_numpy(s: np.ndarray, t: np.ndarray, tau: float):
    inv_t = s.dtype.type(1.0 / tau)
    zs = (s - s.max(axis=-1, keepdims=True)) * inv_t  # (N, V)
    zt = (t - t.max(axis=-1, keepdims=True)) * inv_t  # (N, V)
    es, et = np.exp(zs), np.exp(zt)  # (N, V) each
    Zs = es.sum(axis=-1, keepdims=True)  # (N, 1)
    Zt = et.sum(axis=-1, keepdims=True)  # (N, 1)
    ps, pt = es / Zs, et / Zt  # (N, V) each
    kl = (pt * (zt - zs)).sum(axis=-1, dtype=np.float64) \
        - np.log(Zt[:, 0].astype(np.float64)) + np.log(Zs[:, 0].astype(np.float64))  # (N,)
    return np.maximum(kl, 0.0), ps - pt


# ---------------------------------------------------------------- Numba kernel

# The package's flag subset minus "contract": fused multiply-add would round es*rs - et*rt
# differently from its parts, so identical rows would no longer give exactly zero. No "reassoc"
# either (backend.py): the three row sums run in the fixed order of softmax_t.row_sum.
@numba.njit(cache=True, parallel=True, error_model="numpy", fastmath={"nsz", "arcp", "afn"})
def _soft_target_rows(s, t, inv_t, diff, kl):
    """kl[n] and diff[n] = ps[n] - pt[n] for (N, V) C-contiguous s, t; diff first holds exp(zs)."""
    N, V = s.shape
    one = s.dtype.type(1.0)
    for n in prange(N):
        ms = row_max(s[n])
        mt = row_max(t[n])
        et = np.empty(V, dtype=s.dtype)  # (V,) exp(zt)
        dz = np.empty(V, dtype=s.dtype)  # (V,) zt - zs
        for j in range(V):
            zs = (s[n, j] - ms) * inv_t
            zt = (t[n, j] - mt) * inv_t
            diff[n, j] = fast_exp(zs)
            et[j] = fast_exp(zt)
            dz[j] = zt - zs
        Zs = row_sum(diff[n])
        Zt = row_sum(et)
        A = row_dot(et, dz)  # sum_v exp(zt_v) * (zt_v - zs_v), normalised below
        rs = one / Zs
        rt = one / Zt
        kl_n = float(A) * float(rt) - math.log(float(Zt)) + math.log(float(Zs))
        kl[n] = 0.0 if kl_n < 0.0 else kl_n  # a NaN (bad input) stays NaN and is reported
        for j in range(V):
            diff[n, j] = diff[n, j] * rs - et[j] * rt


def soft_target_rows_numba(s: np.ndarray, t: np.ndarray, tau: float):
    s2, t2 = as_rows(s), as_rows(t)  # (N, V) each, C-contiguous
    diff = np.empty_like(s2)  # (N, V)
    kl = np.empty(s2.shape[0], dtype=np.float64)  # (N,)
    _soft_target_rows(s2, t2, s.dtype.type(1.0 / tau), diff, kl)
    return kl, diff


# ---------------------------------------------------------------- public, checked entry point

def soft_target_rows(s: np.ndarray, t: np.ndarray, tau: float = 1.0, *, T: float | None = None):
    """``(kl, diff)``: per-row KL(softmax(t/tau) || softmax(s/tau)) (N,) float64 and ``ps - pt`` (N, V).
    ``T=`` is the temperature keyword's earlier name, deprecated (a FutureWarning)."""
    check_float_array("s", s, 2)
    check_float_array("t", t, 2)
    check_shape("t", t, s.shape)
    check_same_dtype(s.dtype, t=t)
    if s.shape[1] == 0:
        raise ValueError(f"s must have a non-empty last axis, got shape {s.shape}")
    tau = check_temperature(legacy_temperature(tau, T), s.dtype)
    fn = soft_target_rows_numba if backend.get_backend() == "numba" else soft_target_rows_numpy
    return fn(s, t, tau)
