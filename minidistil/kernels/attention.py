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

from . import backend
from .backend import check_float_array, check_mask, check_same_dtype, check_shape


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


attention_forward_numba = attention_forward_numpy
attention_backward_numba = attention_backward_numpy


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


def attention_backward(dout, q, k, v, probs):
    """Returns ``(dq, dk, dv)`` given ``dout`` (B, NH, T, HS) and the forward's ``probs``."""
    check_float_array("q", q, 4)
    check_float_array("dout", dout, 4)
    check_shape("dout", dout, q.shape)
    check_shape("k", k, q.shape)
    check_shape("v", v, q.shape)
    B, NH, T, HS = q.shape
    check_shape("probs", probs, (B, NH, T, T))
    check_same_dtype(q.dtype, dout=dout, k=k, v=v, probs=probs)
    fn = attention_backward_numba if backend.get_backend() == "numba" else attention_backward_numpy
    return fn(dout, q, k, v, probs)
