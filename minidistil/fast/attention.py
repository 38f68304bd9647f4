"""The fast attention route: one (batch, head) at a time, BLAS's gemm called from Numba.

Legend: B batch, NH heads, T sequence, HS head size.

The plain code this replaces is ``attention_forward_numba`` / ``attention_backward_numba`` in
kernels/attention.py (the readable reference is the NumPy twin there): batched ``@`` products
with a fused softmax between them. Here each (batch, head) runs whole inside a ``prange``, its six
products calling BLAS's gemm (fast/gemm.py) while the head's (T, T) tile is still in the core's
cache, with no (B, NH, T, T) temporaries between products and no thread hand-offs.

The probabilities are kept *transposed*, probs_t[b, h, j, i] = probs[b, h, i, j] (key j, query
i), and returned as ``probs_t.swapaxes(-1, -2)``, a view with the right shape and values. In the
transposed tile every softmax pass (max, exp and sum, normalise; the backward's sum of
dprobs * probs) is an elementwise loop over the contiguous queries, which LLVM vectorises; in the
natural layout the row max is a reduction LLVM leaves scalar. BLAS just flips a transpose flag.
``out`` and the gradients are (B, NH, T, HS) views of (B, T, NH, HS) memory, so the layer merges
heads without a copy.

Padded keys get the score finfo.min (as in the twin), so their probabilities underflow to exactly
0. Keys after a batch row's last real key are not computed at all: their rows of probs_t are set
to 0 and every product runs over the first ``n_keys[b]`` keys only. The backward finds the same
extent from the trailing all-zero rows of probs_t, which is exact for any input: a key whose
probability is 0 for every query adds nothing to out, dq, dk or dv. A row whose keys are all
padding has every score equal to finfo.min and becomes uniform 1/T, as in the twin, never NaN.

BLAS must be single-threaded while the Numba threads call it: the fast layer holds it so before
it installs this route.
"""
from __future__ import annotations

import math

import numpy as np
from numba import prange, typeof

from ..kernels.attention import AttentionCache, _into, _keep_mask
from ..kernels.backend import jit
from ..kernels.vecmath import fast_exp_nonpositive
from .gemm import blas_ready, gemm, gemm_functions


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


_ENTRIES: dict = {}  # (kernel, argument type keys) -> its compiled entry point


def _call_any_layout(kernel, args, any_layout):
    """``kernel(*args)``, with the arrays at positions ``any_layout`` typed by layout "A".

    Numba compiles one specialization per array layout: q, k, v and the gradients come as
    contiguous arrays from a test and as strided views of the fused qkv projection from a layer,
    which would compile these parallel kernels (several seconds each) twice per dtype. Typing them
    "A" (any strides) once costs nothing here: they only reach gemm, which takes strides anyway.
    The (B, NH, T, T) tile array keeps its contiguous type, so the softmax loops stay vectorised.
    """
    if not hasattr(kernel, "compile"):  # NUMBA_DISABLE_JIT, or a test's stand-in
        return kernel(*args)
    key = (kernel,) + tuple(_type_key(a, i in any_layout) for i, a in enumerate(args))
    fn = _ENTRIES.get(key)  # numba.typeof on every call would cost more than the lookup saves
    if fn is None:
        sig = tuple(typeof(a).copy(layout="A") if i in any_layout else typeof(a) for i, a in enumerate(args))
        fn = _ENTRIES[key] = kernel.compile(sig)
    return fn(*args)


def _type_key(a, any_layout: bool) -> tuple:
    """What Numba's type of argument ``a`` depends on (its layout only where it is typed as found)."""
    if not isinstance(a, np.ndarray):
        return (type(a),)
    f = a.flags
    tail = () if any_layout else (f.c_contiguous, f.f_contiguous, f.aligned)
    return (a.dtype, a.ndim, f.writeable) + tail


def _ready(x):
    return x if blas_ready(x) else np.ascontiguousarray(x)


def _merged_heads_empty(shape, dtype):
    """An empty (B, NH, T, HS) array laid out as (B, T, NH, HS): merging heads is then free."""
    B, NH, T, HS = shape
    return np.empty((B, T, NH, HS), dtype=dtype).transpose(0, 2, 1, 3)


def attention_forward_tiles(q, k, v, mask):
    """``(out, AttentionCache)`` as the kernel's Numba version returns them (inputs already checked)."""
    g = gemm_functions()
    cache_qkv = dict(q=q, k=k, v=v)  # the caller's arrays, not the copies _ready may make
    q, k, v = _ready(q), _ready(k), _ready(v)
    B, NH, T, HS = q.shape
    scale = q.dtype.type(1.0 / math.sqrt(HS))
    keep = _keep_mask(mask, B, T)  # (B, T) bool
    last_real = T - np.argmax(keep[:, ::-1], axis=1)  # (B,) one past each row's last real key
    n_keys = np.where(keep.any(axis=1), last_real, T).astype(np.int64)  # all padding: every key
    probs_t = np.empty((B, NH, T, T), dtype=q.dtype)  # (B, NH, T keys, T queries)
    out = _merged_heads_empty(q.shape, q.dtype)  # (B, NH, T, HS)
    _call_any_layout(_forward_tiles, (q, k, v, keep, n_keys, scale, g.table(q.dtype), probs_t, out),
                     (0, 1, 2, 8))
    return out, AttentionCache(probs=probs_t.swapaxes(-1, -2), **cache_qkv)  # probs (B, NH, T, T), a view


def attention_backward_tiles(dout, cache: AttentionCache, out=None):
    """``(dq, dk, dv)``; ``out``: optional arrays to write into (the public function checks them)."""
    g = gemm_functions()
    dout, q, k, v = _ready(dout), _ready(cache.q), _ready(cache.k), _ready(cache.v)
    probs_t = cache.probs.swapaxes(-1, -2)
    if not blas_ready(probs_t):  # probs not from attention_forward_numba: one transposing copy
        probs_t = np.ascontiguousarray(probs_t)
    HS = q.shape[-1]
    scale = q.dtype.type(1.0 / math.sqrt(HS))
    direct = out is not None and all(blas_ready(o) for o in out)
    dq, dk, dv = out if direct else (_merged_heads_empty(q.shape, q.dtype) for _ in range(3))
    _call_any_layout(_backward_tiles, (dout, q, k, v, probs_t, scale, g.table(q.dtype), dq, dk, dv),
                     (0, 1, 2, 3, 7, 8, 9))
    return (dq, dk, dv) if direct else _into(out, (dq, dk, dv))
