"""The attention core: scaled dot-product attention with a key-padding mask.

Legend: B batch, NH heads, T sequence, HS head size.

    scores = q @ k^T / sqrt(HS) + (1 - mask) * finfo.min     # padded keys get the most
    probs  = softmax(scores)                                 # negative finite value, as BERT
    out    = probs @ v                                        # (not -inf: rows stay finite)

Backward (docs/math.md, "attention"):
    dv = probs^T @ dout;  dprobs = dout @ v^T
    dscores = probs * (dprobs - sum(dprobs * probs));  dq = dscores @ k / sqrt(HS);
    dk = dscores^T @ q / sqrt(HS)
"""
from __future__ import annotations

import math

import numpy as np
from numba import prange

from . import backend
from .backend import check_float_array, check_mask, check_same_dtype, check_shape, jit
from .blas import matmul_pair_threaded, matmul_threaded, owned_cores
from .gemm import blas_ready, gemm, gemm_functions
from .softmax_t import row_dot, row_sum
from .vecmath import fast_exp, fast_exp_nonpositive


# ---------------------------------------------------------------- NumPy twins (the reference)

def attention_forward_numpy(q, k, v, mask):
    B, NH, T, HS = q.shape
    scale = q.dtype.type(1.0 / math.sqrt(HS))
    scores = (q @ k.swapaxes(-1, -2)) * scale  # (B, NH, T, T)
    if mask is not None:
        bias = np.where(mask, q.dtype.type(0), np.finfo(q.dtype).min).astype(q.dtype)  # (B, T)
        scores = scores + bias[:, None, None, :]  # (B, NH, T, T)
    scores = scores - scores.max(axis=-1, keepdims=True)  # (B, NH, T, T)
    e = np.exp(scores)  # (B, NH, T, T)
    probs = e / e.sum(axis=-1, keepdims=True)  # (B, NH, T, T)
    out = probs @ v  # (B, NH, T, HS)
    return out, probs


def attention_backward_numpy(dout, q, k, v, probs):
    HS = q.shape[-1]
    scale = q.dtype.type(1.0 / math.sqrt(HS))
    dv = probs.swapaxes(-1, -2) @ dout  # (B, NH, T, HS)
    dprobs = dout @ v.swapaxes(-1, -2)  # (B, NH, T, T)
    dscores = probs * (dprobs - (dprobs * probs).sum(axis=-1, keepdims=True))  # (B, NH, T, T)
    dq = (dscores @ k) * scale  # (B, NH, T, HS)
    dk = (dscores.swapaxes(-1, -2) @ q) * scale  # (B, NH, T, HS)
    return dq, dk, dv


# ---------------------------------------------------------------- Numba versions
# Two of them. The main one runs the whole attention of one (batch, head) at a time inside a
# `prange`, calling BLAS's gemm from Numba (kernels/gemm.py) for the six products and doing the
# softmax in between while the head's (T, T) tile is still in the core's cache. The fallback,
# for a BLAS that cannot be called that way (not OpenBLAS, or MINIDISTIL_BLAS_THREADS=native),
# leaves the products to blas.matmul_threaded and fuses only the softmax passes.
#
# The main version keeps the probabilities *transposed*, probs_t[b, h, j, i] = probs[b, h, i, j]
# (key j, query i), and returns ``probs_t.swapaxes(-1, -2)``, a view with the right shape and
# values. Why: the softmax runs over the keys j of each query i. In the transposed tile every
# pass (max, exp and sum, normalise; and the backward's sum of dprobs * probs) becomes an
# elementwise loop over the contiguous queries i, accumulating into a length-T vector, which LLVM
# vectorises; in the natural layout the row max is a reduction LLVM leaves scalar (measured
# 0.25 ms per million elements against 0.07 ms). BLAS does not care: each product just flips
# a transpose flag. ``out`` and the gradients are (B, NH, T, HS) views of (B, T, NH, HS) memory,
# so the layer merges heads without a copy.
#
# Measured at the bench shapes (B 32, NH 4, T 128, HS 32, 1/8 of the keys padded in every other
# row; 2 threads, the same minutes): forward+backward 2.3-3.0 ms with OpenBLAS's AVX-512 kernels
# (gemm.py's default route on a CPU with AVX-512), 4.3-5.2 ms through cblas_sgemm, against
# 6.8 ms for the fallback and 11.5-18.5 ms for the NumPy twin. Through cblas the six products alone
# take 3.7 ms (OpenBLAS's AVX2 kernel runs these 128 x 128 x 32 products at about 110 GFLOP/s
# per core, 85% of its square-matmul peak), the AVX-512 kernels take about half that; the
# softmax passes take about 0.4 ms.
#
# Padded keys: scores of padded keys are finfo.min (as the twin's finfo.min + score, which rounds
# to finfo.min), so their probabilities underflow to exactly 0. Keys after a batch row's last real
# key are not computed at all: their rows of probs_t are set to 0 and every product runs over the
# first ``n_keys[b]`` keys only (a row ending in 1/8 padding saves 1/8 of its products). The
# backward finds the same extent from the trailing all-zero rows of probs_t, which is exact for
# any input: a key whose probability is 0 for every query adds nothing to out, dq, dk or dv. A
# row whose keys are all padding has every score equal to finfo.min and becomes uniform 1/T, as
# in the twin and in BERT, never NaN.


@jit(parallel=True)
def _forward_tiles(q, k, v, keep, n_keys, scale, fns, probs_t, out):
    """probs_t (B, NH, T, T) <- probs transposed; out (B, NH, T, HS) <- probs @ v (any strides)."""
    B, NH, T, HS = q.shape
    neg = np.finfo(q.dtype).min
    zero, one = q.dtype.type(0.0), q.dtype.type(1.0)
    for bh in prange(B * NH):
        b = bh // NH
        h = bh % NH
        L = n_keys[b]
        pt = probs_t[b, h]  # (T keys, T queries)
        gemm(fns, False, True, scale, k[b, h, :L], q[b, h], pt[:L])  # scores^T (L, T)
        top = np.full(T, neg, dtype=q.dtype)  # (T,) each query's max score over real keys
        for j in range(L):
            row = pt[j]
            if keep[b, j]:
                for i in range(T):
                    x = row[i]
                    top[i] = x if x > top[i] else top[i]
            else:
                row[:] = neg
        total = np.zeros(T, dtype=q.dtype)  # (T,) each query's sum of exponentials
        for j in range(L):
            row = pt[j]
            for i in range(T):
                e = fast_exp_nonpositive(row[i] - top[i])  # <= 0, or NaN
                row[i] = e
                total[i] += e
        for i in range(T):
            total[i] = one / total[i]
        for j in range(L):
            row = pt[j]
            for i in range(T):
                row[i] *= total[i]
        pt[L:] = zero
        gemm(fns, True, False, one, pt[:L], v[b, h, :L], out[b, h])  # probs @ v (T, HS)


@jit()
def _key_extent(pt):
    """How many leading keys of a probs_t tile (T, T) have a nonzero probability somewhere."""
    L = pt.shape[0]
    while L > 0:
        for x in pt[L - 1]:
            if x != 0:
                return L
        L -= 1
    return L


@jit(parallel=True)
def _backward_tiles(dout, q, k, v, probs_t, scale, fns, dq, dk, dv):
    """dq, dk, dv (B, NH, T, HS) <- the gradients, given probs transposed (contiguous rows)."""
    B, NH, T, HS = q.shape
    zero, one = q.dtype.type(0.0), q.dtype.type(1.0)
    for bh in prange(B * NH):
        b = bh // NH
        h = bh % NH
        pt = probs_t[b, h]  # (T keys, T queries)
        L = _key_extent(pt)
        gemm(fns, False, False, one, pt[:L], dout[b, h], dv[b, h, :L])  # dv = probs^T dout
        dv[b, h, L:] = zero
        dst = np.empty((L, T), dtype=q.dtype)  # dprobs^T, then dscores^T
        gemm(fns, False, True, one, v[b, h, :L], dout[b, h], dst)  # v dout^T = dprobs^T
        inner = np.zeros(T, dtype=q.dtype)  # (T,) sum over keys of dprobs * probs, per query
        for j in range(L):
            for i in range(T):
                inner[i] += dst[j, i] * pt[j, i]
        for j in range(L):
            for i in range(T):
                dst[j, i] = pt[j, i] * (dst[j, i] - inner[i])
        gemm(fns, True, False, scale, dst, k[b, h, :L], dq[b, h])  # dscores k / sqrt(HS)
        gemm(fns, False, False, scale, dst, q[b, h], dk[b, h, :L])  # dscores^T q / sqrt(HS)
        dk[b, h, L:] = zero


def _ready(x):
    return x if blas_ready(x) else np.ascontiguousarray(x)


def _keep_mask(mask, B, T):
    """The (B, T) C-ordered bool mask the kernels take (True = real key): all True for None."""
    return np.ones((B, T), dtype=np.bool_) if mask is None else np.ascontiguousarray(mask, dtype=np.bool_)


def _merged_heads_empty(shape, dtype):
    """An empty (B, NH, T, HS) array laid out as (B, T, NH, HS): merging heads is then free."""
    B, NH, T, HS = shape
    return np.empty((B, T, NH, HS), dtype=dtype).transpose(0, 2, 1, 3)


def attention_forward_numba(q, k, v, mask):
    g = gemm_functions()
    if g is None:
        return _forward_pool(q, k, v, mask)
    q, k, v = _ready(q), _ready(k), _ready(v)
    B, NH, T, HS = q.shape
    scale = q.dtype.type(1.0 / math.sqrt(HS))
    keep = _keep_mask(mask, B, T)  # (B, T) bool
    last_real = T - np.argmax(keep[:, ::-1], axis=1)  # (B,) one past each row's last real key
    n_keys = np.where(keep.any(axis=1), last_real, T).astype(np.int64)  # all padding: every key
    probs_t = np.empty((B, NH, T, T), dtype=q.dtype)  # (B, NH, T keys, T queries)
    out = _merged_heads_empty(q.shape, q.dtype)  # (B, NH, T, HS)
    with owned_cores():
        _forward_tiles(q, k, v, keep, n_keys, scale, g.table(q.dtype), probs_t, out)
    return out, probs_t.swapaxes(-1, -2)


def attention_backward_numba(dout, q, k, v, probs, out=None):
    """``out``: optional (dq, dk, dv) arrays to write into (the public function checks them)."""
    g = gemm_functions()
    if g is None:
        return _into(out, _backward_pool(dout, q, k, v, probs))
    dout, q, k, v = _ready(dout), _ready(q), _ready(k), _ready(v)
    probs_t = probs.swapaxes(-1, -2)
    if not blas_ready(probs_t):  # probs not from attention_forward_numba: one transposing copy
        probs_t = np.ascontiguousarray(probs_t)
    HS = q.shape[-1]
    scale = q.dtype.type(1.0 / math.sqrt(HS))
    direct = out is not None and all(blas_ready(o) for o in out)
    dq, dk, dv = out if direct else (_merged_heads_empty(q.shape, q.dtype) for _ in range(3))
    with owned_cores():
        _backward_tiles(dout, q, k, v, probs_t, scale, g.table(q.dtype), dq, dk, dv)
    return (dq, dk, dv) if direct else _into(out, (dq, dk, dv))


def _into(out, grads):
    """``grads`` copied into ``out`` when given (then ``out`` is returned), else ``grads``."""
    if out is None:
        return grads
    for o, g in zip(out, grads):
        o[...] = g
    return tuple(out)


# ---------------------------------------------------------------- the fallback: products on the pool

@jit()
def _scale_mask_max(row, keep, j, scale, neg, m):
    """row[j] <- row[j] * scale, or ``neg`` for a padded key; returns max(m, row[j])."""
    v = row[j] * scale if keep[j] else neg
    row[j] = v
    return v if v > m else m


@jit(parallel=True)
def _masked_softmax_inplace(scores, mask, scale):
    """scores (B, NH, T, T) raw q.k^T -> probs, in place; mask (B, T) bool, True = real key.

    Two passes per row: scale + mask + running max together (eight independent maxima, so LLVM
    vectorises the loop without a temporary; 17% faster than a separate max pass), then exp + sum,
    then the normalisation.
    """
    B, NH, T, _ = scores.shape
    neg = np.finfo(scores.dtype).min
    one = scores.dtype.type(1.0)
    for bh in prange(B * NH):
        b = bh // NH
        h = bh % NH
        keep = mask[b]
        for i in range(T):
            row = scores[b, h, i]
            m0, m1, m2, m3, m4, m5, m6, m7 = neg, neg, neg, neg, neg, neg, neg, neg
            J = T // 8 * 8
            for j in range(0, J, 8):
                m0 = _scale_mask_max(row, keep, j, scale, neg, m0)
                m1 = _scale_mask_max(row, keep, j + 1, scale, neg, m1)
                m2 = _scale_mask_max(row, keep, j + 2, scale, neg, m2)
                m3 = _scale_mask_max(row, keep, j + 3, scale, neg, m3)
                m4 = _scale_mask_max(row, keep, j + 4, scale, neg, m4)
                m5 = _scale_mask_max(row, keep, j + 5, scale, neg, m5)
                m6 = _scale_mask_max(row, keep, j + 6, scale, neg, m6)
                m7 = _scale_mask_max(row, keep, j + 7, scale, neg, m7)
            m = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
            for j in range(J, T):
                m = _scale_mask_max(row, keep, j, scale, neg, m)
            for j in range(T):
                row[j] = fast_exp(row[j] - m)
            r = one / row_sum(row)  # a fixed order of additions (softmax_t.row_sum)
            for j in range(T):
                row[j] *= r


@jit(parallel=True)
def _softmax_backward_inplace(dprobs, probs, scale):
    """dprobs (B, NH, T, T) -> dscores * scale, in place: probs * (dprobs - <dprobs, probs>) * scale."""
    B, NH, T, _ = probs.shape
    for bh in prange(B * NH):
        b = bh // NH
        h = bh % NH
        for i in range(T):
            inner = row_dot(dprobs[b, h, i], probs[b, h, i])
            for j in range(T):
                dprobs[b, h, i, j] = probs[b, h, i, j] * (dprobs[b, h, i, j] - inner) * scale


def _forward_pool(q, k, v, mask):
    B, NH, T, HS = q.shape
    scale = q.dtype.type(1.0 / math.sqrt(HS))
    scores = matmul_threaded(q, k.swapaxes(-1, -2))  # (B, NH, T, T), BLAS, a fresh C-ordered array
    keep = _keep_mask(mask, B, T)  # (B, T) bool
    _masked_softmax_inplace(scores, keep, scale)
    probs = scores  # (B, NH, T, T)
    out = matmul_threaded(probs, v)  # (B, NH, T, HS), BLAS
    return out, probs


def _backward_pool(dout, q, k, v, probs):
    HS = q.shape[-1]
    scale = q.dtype.type(1.0 / math.sqrt(HS))
    # dv (B, NH, T, HS) and dprobs (B, NH, T, T), side by side on the two threads, BLAS
    dv, dscores = matmul_pair_threaded(probs.swapaxes(-1, -2), dout, dout, v.swapaxes(-1, -2))
    _softmax_backward_inplace(dscores, np.ascontiguousarray(probs), scale)  # now dscores * scale
    dq, dk = matmul_pair_threaded(dscores, k, dscores.swapaxes(-1, -2), q)  # (B, NH, T, HS) each
    return dq, dk, dv


# ---------------------------------------------------------------- public, checked entry points

def attention_forward(q, k, v, mask=None):
    """Returns ``(out, probs)``: ``out`` (B, NH, T, HS), ``probs`` (B, NH, T, T).

    ``mask`` is the key-padding mask (B, T): 1 for real tokens, 0 for padding (or None).
    """
    check_float_array("q", q, 4)
    check_float_array("k", k, 4)
    check_float_array("v", v, 4)
    check_shape("k", k, q.shape)
    check_shape("v", v, q.shape)
    check_same_dtype(q.dtype, k=k, v=v)
    B, NH, T, HS = q.shape
    if mask is not None:
        mask = check_mask("mask", mask, (B, T))
    fn = attention_forward_numba if backend.get_backend() == "numba" else attention_forward_numpy
    return fn(q, k, v, mask)


def attention_backward(dout, q, k, v, probs, out=None):
    """Returns ``(dq, dk, dv)`` given ``dout`` (B, NH, T, HS) and the forward's ``probs``.

    ``out``, optional: three writable (B, NH, T, HS) arrays that receive dq, dk and dv and are
    returned, e.g. the head views of one (B, T, 3C) gradient (the layer's stacked q/k/v), so
    nothing is copied afterwards. They must not overlap each other or the inputs.
    """
    check_float_array("q", q, 4)
    check_float_array("dout", dout, 4)
    check_shape("dout", dout, q.shape)
    check_shape("k", k, q.shape)
    check_shape("v", v, q.shape)
    B, NH, T, HS = q.shape
    check_shape("probs", probs, (B, NH, T, T))
    check_same_dtype(q.dtype, dout=dout, k=k, v=v, probs=probs)
    if out is not None:
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise TypeError("out must be a tuple of three arrays (dq, dk, dv)")
        for name, o in zip(("out[0] (dq)", "out[1] (dk)", "out[2] (dv)"), out):
            check_float_array(name, o, 4)
            check_shape(name, o, q.shape)
            check_same_dtype(q.dtype, **{name: o})
            if not o.flags.writeable:
                raise ValueError(f"{name} must be writable")
    if backend.get_backend() == "numba":
        return attention_backward_numba(dout, q, k, v, probs, out)
    return _into(out, attention_backward_numpy(dout, q, k, v, probs))
