"""The attention core: scaled dot-product attention with a key-padding mask.

Legend: B batch, NH heads, T sequence, HS head size.

    scores = q @ k^T / sqrt(HS) + (1 - mask) * finfo.min     # padded keys get the most
    probs  = softmax(scores)                                 # negative finite value, as BERT
    out    = probs @ v                                        # (not -inf: rows stay finite)

Backward (docs/math.md, "attention"):
    dv = probs^T @ dout;  dprobs = dout @ v^T
    dscores = probs * (dprobs - sum(dprobs * probs));  dq = dscores @ k / sqrt(HS);
    dk = dscores^T @ q / sqrt(HS)

As every layer: ``out, cache = attention_forward(q, k, v, mask)`` and
``dq, dk, dv = attention_backward(dout, cache)``.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import prange

from . import backend
from .backend import check_cache, check_float_array, check_mask, check_same_dtype, check_shape, jit
from .matmul import matmul, matmul_pair
from .softmax_t import row_dot, row_sum
from .vecmath import fast_exp


class AttentionCache(NamedTuple):
    q: np.ndarray  # (B, NH, T, HS) the queries (any strides: the layer passes views)
    k: np.ndarray  # (B, NH, T, HS) the keys
    v: np.ndarray  # (B, NH, T, HS) the values
    probs: np.ndarray  # (B, NH, T, T) softmax of the masked, scaled scores (the mask is in them)


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
    return out, AttentionCache(q=q, k=k, v=v, probs=probs)


def attention_backward_numpy(dout, cache: AttentionCache):
    q, k, v, probs = cache.q, cache.k, cache.v, cache.probs
    HS = q.shape[-1]
    scale = q.dtype.type(1.0 / math.sqrt(HS))
    dv = probs.swapaxes(-1, -2) @ dout  # (B, NH, T, HS)
    dprobs = dout @ v.swapaxes(-1, -2)  # (B, NH, T, T)
    dscores = probs * (dprobs - (dprobs * probs).sum(axis=-1, keepdims=True))  # (B, NH, T, T)
    dq = (dscores @ k) * scale  # (B, NH, T, HS)
    dk = (dscores.swapaxes(-1, -2) @ q) * scale  # (B, NH, T, HS)
    return dq, dk, dv


# ---------------------------------------------------------------- Numba version
# The products stay BLAS's (through kernels/matmul.py); Numba fuses the softmax passes around
# them, in place on the (B, NH, T, T) scores. The opt-in speed layer has a faster route that runs
# each head whole, calling BLAS from Numba (fast/attention.py); the public functions take it when
# that layer is on and its calibration chose it.

def _keep_mask(mask, B, T):
    """The (B, T) C-ordered bool mask the kernels take (True = real key): all True for None."""
    return np.ones((B, T), dtype=np.bool_) if mask is None else np.ascontiguousarray(mask, dtype=np.bool_)


def _into(out, grads):
    """``grads`` copied into ``out`` when given (then ``out`` is returned), else ``grads``."""
    if out is None:
        return grads
    for o, g in zip(out, grads):
        o[...] = g
    return tuple(out)



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


def attention_forward_numba(q, k, v, mask):
    B, NH, T, HS = q.shape
    scale = q.dtype.type(1.0 / math.sqrt(HS))
    scores = matmul(q, k.swapaxes(-1, -2))  # (B, NH, T, T), BLAS, a fresh C-ordered array
    keep = _keep_mask(mask, B, T)  # (B, T) bool
    _masked_softmax_inplace(scores, keep, scale)
    probs = scores  # (B, NH, T, T)
    out = matmul(probs, v)  # (B, NH, T, HS), BLAS
    return out, AttentionCache(q=q, k=k, v=v, probs=probs)


def attention_backward_numba(dout, cache: AttentionCache, out=None):
    q, k, v, probs = cache.q, cache.k, cache.v, cache.probs
    HS = q.shape[-1]
    scale = q.dtype.type(1.0 / math.sqrt(HS))
    # dv (B, NH, T, HS) and dprobs (B, NH, T, T), BLAS
    dv, dscores = matmul_pair(probs.swapaxes(-1, -2), dout, dout, v.swapaxes(-1, -2))
    _softmax_backward_inplace(dscores, np.ascontiguousarray(probs), scale)  # now dscores * scale
    dq, dk = matmul_pair(dscores, k, dscores.swapaxes(-1, -2), q)  # (B, NH, T, HS) each
    return _into(out, (dq, dk, dv))


# ---------------------------------------------------------------- public, checked entry points

def attention_forward(q, k, v, mask=None):
    """Returns ``(out, AttentionCache)``: ``out`` (B, NH, T, HS); the cache holds q, k, v and
    ``probs`` (B, NH, T, T), the attention weights (``cache.probs`` to look at them).

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
    if backend.get_backend() == "numpy":
        return attention_forward_numpy(q, k, v, mask)
    fn = backend.fast_route("attention_forward") or attention_forward_numba
    return fn(q, k, v, mask)


def attention_backward(dout, cache: AttentionCache, out=None):
    """Returns ``(dq, dk, dv)`` given ``dout`` (B, NH, T, HS) and the forward's cache.

    ``out``, optional: three writable (B, NH, T, HS) arrays that receive dq, dk and dv and are
    returned, e.g. the head views of one (B, T, 3C) gradient (the layer's stacked q/k/v), so
    nothing is copied afterwards. They must not overlap each other or the inputs.
    """
    check_cache("cache", cache, AttentionCache, "attention_forward")
    q, k, v, probs = cache.q, cache.k, cache.v, cache.probs
    check_float_array("cache.q", q, 4)
    check_float_array("cache.k", k, 4)
    check_float_array("cache.v", v, 4)
    check_float_array("cache.probs", probs, 4)
    check_float_array("dout", dout, 4)
    check_shape("dout", dout, q.shape)
    check_shape("cache.k", k, q.shape)
    check_shape("cache.v", v, q.shape)
    B, NH, T, HS = q.shape
    check_shape("cache.probs", probs, (B, NH, T, T))
    check_same_dtype(q.dtype, dout=dout, **{"cache.k": k, "cache.v": v, "cache.probs": probs})
    if out is not None:
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise TypeError("out must be a tuple of three arrays (dq, dk, dv)")
        for name, o in zip(("out[0] (dq)", "out[1] (dk)", "out[2] (dv)"), out):
            check_float_array(name, o, 4)
            check_shape(name, o, q.shape)
            check_same_dtype(q.dtype, **{name: o})
            if not o.flags.writeable:
                raise ValueError(f"{name} must be writable")
    if backend.get_backend() == "numpy":
        return _into(out, attention_backward_numpy(dout, cache))
    fn = backend.fast_route("attention_backward") or attention_backward_numba
    return fn(dout, cache, out)
