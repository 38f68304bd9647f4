"""The fused, chunked vocabulary head: decoder, Lce and Lmlm, forward and backward, a chunk at a time.

Legend: P positions with logits, C hidden, V vocabulary, K positions per chunk (``chunk``),
N_ce / N_mlm the rows Lce / Lmlm average over; tau the temperature.

The reference path (models/base.py's decoder, then losses.py) builds the student's logits
``s = h W^T + b`` (P, V), the teacher's ``t`` (P, V), ``ps - pt`` (P, V), the masked rows'
log-softmax and the logits' gradient (P, V): at BERT-base width with P = 1024 each is 125 MB.
Here the same quantities are made K rows at a time and folded into what outlives them: the two
loss sums, and the gradients of the decoder's input and parameters::

    for each chunk c of K rows:
        s_c = h_c W^T + b,  t_c = h^t_c W_t^T + b_t                       (K, V)
        Lce  += sum_rows KL(softmax(t_c / tau) || softmax(s_c / tau))     over the Lce rows
        Lmlm += sum_rows -log softmax(s_c)[label]                         over the labelled rows
        g_c   = alpha_ce tau (ps - pt) / N_ce + alpha_mlm (softmax(s_c) - onehot) / N_mlm   (K, V)
        dh_c  = g_c W,   dW += g_c^T h_c,   db += sum_rows g_c

The loss is the end of the graph, so its gradient is known during the forward: it is computed
there (as Liger-Kernel's fused linear cross-entropy and llm.c's fused classifier do, Hsu et al.
2024; Karpathy, llm.c) and the backward only scales it by the upstream ``dloss``. Memory beyond
the inputs and the gradients is a few (K, V) arrays instead of several (P, V) ones; the FLOP are
the unfused path's (the decoder's forward, dX and dW products). Each row goes through the same
row kernels as the reference (kernels/kl.py, kernels/softmax_t.py, so ``MINIDISTIL_BACKEND``
picks their twin or Numba version), which is why the two paths agree to rounding.
The derivation of the gradients: losses.py (``soft_target_backward``, ``mlm_backward``).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np

from .backend import (IGNORE_INDEX, check_float_array, check_ids, check_same_dtype, check_shape,
                      check_temperature)
from .kl import soft_target_rows
from .matmul import matmul
from .softmax_t import log_softmax_forward

DEFAULT_CHUNK = 256
VOCAB_BLOCK = 4096  # vocabulary rows of dW per accumulation (a (4096, C) temporary)


class FusedHeadCache(NamedTuple):
    dh: np.ndarray  # (P, C) d(head loss)/dh at dloss = 1
    dweight: np.ndarray  # (V, C) d(head loss)/dW at dloss = 1
    dbias: np.ndarray  # (V,) d(head loss)/db at dloss = 1


def _check(h, weight, bias, name):
    check_float_array(name, h, 2)
    check_float_array(f"{name} weight", weight, 2)
    check_float_array(f"{name} bias", bias, 1)
    V, C = weight.shape
    if h.shape[1] != C:
        raise ValueError(f"{name} must have last dimension {C} (its weight is {weight.shape}), got {h.shape}")
    check_shape(f"{name} bias", bias, (V,))
    check_same_dtype(h.dtype, **{f"{name} weight": weight, f"{name} bias": bias})


def _rows(mask: Optional[np.ndarray], P: int, name: str) -> Optional[np.ndarray]:
    """Row indices of a (P,) bool mask; None = every row (the usual case: no fancy indexing)."""
    if mask is None:
        return None
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (P,):
        raise ValueError(f"{name} must be a boolean array of shape ({P},), got "
                         f"{getattr(mask, 'dtype', type(mask).__name__)} {getattr(mask, 'shape', '')}")
    return None if mask.all() else np.flatnonzero(mask)


def fused_head_forward(h: np.ndarray, weight: np.ndarray, bias: np.ndarray, labels: np.ndarray,
                       t_h: Optional[np.ndarray], t_weight: Optional[np.ndarray],
                       t_bias: Optional[np.ndarray], ce_mask: Optional[np.ndarray],
                       tau: float, alpha_ce: float, alpha_mlm: float, chunk: int = DEFAULT_CHUNK):
    """``(loss, parts, cache)`` of ``alpha_ce * Lce + alpha_mlm * Lmlm`` on the student's decoder.

    h (P, C): the student's head input (its transform's output) at the P positions; weight (V, C)
    and bias (V,): the tied decoder. labels (P,): the MLM label of each row, -100 = none.
    t_h, t_weight, t_bias: the teacher's (None when alpha_ce == 0). ce_mask (P,) bool: the rows
    Lce averages over (None = all). ``parts`` = {"loss_ce", "loss_mlm"} as losses.py reports
    them (Lce with its tau**2); a zero alpha skips its term (reported 0.0). No (P, V) array is made.

    ``tau``, ``alpha_ce``, ``alpha_mlm`` have no default here: they are the caller's loss settings
    (``DistillLossConfig``'s temperature, alpha_ce and alpha_mlm, declared once in losses.py,
    which this kernel layer below it does not import). Only ``chunk``, a memory/speed knob of the
    kernel itself, has one.
    """
    _check(h, weight, bias, "h")
    P, C = h.shape
    V = weight.shape[0]
    dtype = h.dtype
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be an int >= 1, got {chunk!r}")
    for name, a in (("alpha_ce", alpha_ce), ("alpha_mlm", alpha_mlm)):
        if not math.isfinite(float(a)) or a < 0:
            raise ValueError(f"{name} must be finite and >= 0, got {a!r}")
    tau = check_temperature(tau)
    check_ids("labels", labels, V, ignore=IGNORE_INDEX)
    check_shape("labels", labels, (P,))
    use_ce = alpha_ce > 0
    if use_ce:
        if t_h is None or t_weight is None or t_bias is None:
            raise ValueError("t_h, t_weight and t_bias are required when alpha_ce > 0")
        _check(t_h, t_weight, t_bias, "t_h")
        check_shape("t_h", t_h, (P, t_weight.shape[1]))
        check_same_dtype(dtype, t_h=t_h)
        if t_weight.shape[0] != V:
            raise ValueError(f"the teacher's vocabulary ({t_weight.shape[0]}) must equal the student's ({V})")
    ce_all = _rows(ce_mask, P, "ce_mask")
    is_ce = np.ones(P, dtype=bool) if ce_all is None else ce_mask  # (P,)
    is_mlm = labels != IGNORE_INDEX  # (P,)
    n_ce = int(is_ce.sum()) if use_ce else 0
    n_mlm = int(is_mlm.sum()) if alpha_mlm > 0 else 0
    ce_scale = dtype.type(alpha_ce * tau / n_ce) if n_ce else None  # as losses.soft_target_backward
    mlm_scale = dtype.type(alpha_mlm / n_mlm) if n_mlm else None  # as losses._mlm_row_grads

    dh = np.empty((P, C), dtype=dtype)  # (P, C)
    dweight = np.zeros((V, C), dtype=dtype)  # (V, C)
    dbias = np.zeros(V, dtype=dtype)  # (V,)
    kl_sum, nll_sum = 0.0, 0.0
    wT = weight.T  # (C, V) a view
    for lo in range(0, P, chunk):
        hi = min(lo + chunk, P)
        h_c = h[lo:hi]  # (K, C) a view
        s_c = matmul(h_c, wT, bias)  # (K, V) the student's logits of this chunk
        g_c = np.zeros_like(s_c) if n_ce == 0 else None  # (K, V) the logits' gradient
        if n_ce:
            t_c = matmul(t_h[lo:hi], t_weight.T, t_bias)  # (K, V) the teacher's
            ce_c = is_ce[lo:hi]  # (K,)
            if ce_c.all():
                kl, diff = soft_target_rows(s_c, t_c, tau)  # (K,), (K, V)
                diff *= ce_scale
                g_c = diff  # (K, V), ours: diff is a fresh array
            else:
                rows = np.flatnonzero(ce_c)  # (k,)
                kl, diff = soft_target_rows(s_c[rows], t_c[rows], tau)  # (k,), (k, V)
                g_c = np.zeros_like(s_c)  # (K, V)
                g_c[rows] = diff * ce_scale
            del t_c
            kl_sum += float(kl.sum())
        if n_mlm:
            rows = np.flatnonzero(is_mlm[lo:hi])  # (m,)
            if rows.size:
                targets = labels[lo:hi][rows].astype(np.intp)  # (m,)
                log_p, _ = log_softmax_forward(s_c[rows])  # (m, V)
                nll_sum += float(-log_p[np.arange(rows.size), targets].sum(dtype=np.float64))
                g = np.exp(log_p)  # (m, V) softmax of the labelled rows
                g[np.arange(rows.size), targets] -= 1
                g *= mlm_scale
                g_c[rows] += g
                del log_p, g
        del s_c
        dh[lo:hi] = matmul(g_c, weight)  # (K, C)
        # dW += g_c^T h_c, a block of vocabulary rows at a time: NumPy cannot accumulate into
        # dW in place (BLAS's beta = 1), and a whole (V, C) product per chunk would be the
        # head's largest temporary (94 MB at BERT-base width)
        for vlo in range(0, V, VOCAB_BLOCK):
            vhi = min(vlo + VOCAB_BLOCK, V)
            dweight[vlo:vhi] += matmul(g_c[:, vlo:vhi].T, h_c)  # (Vb, C)
        dbias += g_c.sum(axis=0)  # (V,)
        del g_c
    loss_ce = tau * tau * kl_sum / n_ce if n_ce else 0.0
    loss_mlm = nll_sum / n_mlm if n_mlm else 0.0
    for v, what in ((loss_ce, "the soft-target loss"), (loss_mlm, "the MLM loss")):
        if not math.isfinite(v):
            raise ValueError(f"{what} of the fused head is {v}: non-finite logits (check h and the weights)")
    parts = {"loss_ce": float(loss_ce), "loss_mlm": float(loss_mlm)}
    loss = alpha_ce * parts["loss_ce"] + alpha_mlm * parts["loss_mlm"]
    return float(loss), parts, FusedHeadCache(dh, dweight, dbias)


def fused_head_backward(dloss, cache: FusedHeadCache):
    """``(dh (P, C), {"weight": dW (V, C), "bias": db (V,)})`` of ``dloss * loss``.

    At ``dloss == 1`` (a training step) the cache's own arrays are returned, not copies: the
    (V, C) gradient is as large as the decoder, and a copy would be the largest array of the
    head. They are fresh arrays the forward made for this purpose; nothing else holds them.
    """
    try:
        d = float(dloss)
    except (TypeError, ValueError):
        raise TypeError(f"dloss must be a number, got {type(dloss).__name__}") from None
    if not math.isfinite(d):
        raise ValueError(f"dloss must be finite, got {dloss!r}")
    if not isinstance(cache, FusedHeadCache):
        raise TypeError(f"cache must be the FusedHeadCache of fused_head_forward, got {type(cache).__name__}")
    if d == 1.0:
        return cache.dh, {"weight": cache.dweight, "bias": cache.dbias}
    k = cache.dh.dtype.type(d)
    return cache.dh * k, {"weight": cache.dweight * k, "bias": cache.dbias * k}  # (P, C), (V, C), (V,)
