"""The forward passes of the exercises, written out in plain NumPy (float64).

Legend: N rows (any leading shape), B batch, T sequence, C hidden, NH heads, HS head size,
F feed-forward, V vocabulary, P selected positions, IN/OUT linear fan-in/fan-out.

These are given to the learner: the exercise is to write the *backward* pass. The checker
differentiates these functions by central differences, so they are kept deliberately plain
(no Numba, no caches) and independent of the package's kernels.
"""
from __future__ import annotations

import math

import numpy as np

from ..masking import IGNORE_INDEX  # -100, Hugging Face's label of a position no loss scores

_erf = np.vectorize(math.erf, otypes=[np.float64])


def linear(x, weight, bias):
    """``y = x @ weight.T + bias``; weight (OUT, IN) as Hugging Face stores it."""
    return x @ weight.T + bias  # (N, OUT)


def gelu(x):
    """Exact (erf) GELU as in BERT: ``x * Phi(x)``."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))  # (...)


def layernorm(x, gamma, beta, eps=1e-12):
    """LayerNorm over the last axis."""
    mean = x.mean(axis=-1, keepdims=True)  # (N, 1)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # (N, 1)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta  # (N, C)


def softmax_t(x, tau=1.0):
    """``softmax(x / tau)`` over the last axis."""
    z = (x - x.max(axis=-1, keepdims=True)) / tau  # (N, V)
    e = np.exp(z)  # (N, V)
    return e / e.sum(axis=-1, keepdims=True)  # (N, V)


def log_softmax_t(x, tau=1.0):
    """``log softmax(x / tau)`` over the last axis, computed stably."""
    z = (x - x.max(axis=-1, keepdims=True)) / tau  # (N, V)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # (N, V)


def attention(q, k, v, mask=None):
    """Scaled dot-product attention with a key-padding mask (1 real, 0 pad). Returns (out, probs)."""
    HS = q.shape[-1]
    scores = q @ k.swapaxes(-1, -2) / math.sqrt(HS)  # (B, NH, T, T)
    if mask is not None:
        # BERT adds the most negative finite value to padded keys (reference.md)
        scores = scores + np.where(mask, 0.0, np.finfo(q.dtype).min)[:, None, None, :]  # (B, NH, T, T)
    probs = softmax_t(scores)  # (B, NH, T, T)
    return probs @ v, probs  # (B, NH, T, HS), (B, NH, T, T)


def embedding_tied(ids, weight, bias):
    """Embedding lookup and an output projection that re-uses the same matrix (tied).

    ``h = weight[ids]`` then ``logits = h @ weight.T + bias``: the word-embedding matrix is used
    twice, as in BERT's MLM decoder.
    """
    h = weight[ids]  # (B, T, C)
    return h @ weight.T + bias  # (B, T, V)


def kl_soft_target(s_logits, t_logits, tau=2.0):
    """``tau**2 * mean over the P rows of KL(q || p)``: teacher ``q = softmax(t/tau)``, student
    ``p = softmax(s/tau)`` (Hinton et al. 2015; DistilBERT's Lce; docs/math.md's notation)."""
    q = softmax_t(t_logits, tau)  # (P, V) the teacher's soft targets (docs/math.md: q teacher, p student)
    kl = (q * (log_softmax_t(t_logits, tau) - log_softmax_t(s_logits, tau))).sum(axis=-1)  # (P,)
    return tau * tau * kl.mean()


def cross_entropy(logits, labels):
    """Mean over the rows whose label is not -100 of ``-log softmax(logits)[label]``.

    The label -100 marks a row that is not scored (PyTorch's ``ignore_index``, what Hugging Face
    puts at every position that was not masked for MLM). logits (..., V), labels (...) int.
    """
    V = logits.shape[-1]
    z = log_softmax_t(logits.reshape(-1, V))  # (N, V)
    y = np.asarray(labels).reshape(-1)  # (N,)
    keep = y != IGNORE_INDEX  # (N,)
    return float(-z[keep, y[keep]].sum() / keep.sum())


def triple_loss(h, weight, t_logits, t_h, labels, tau, alphas):
    """DistilBERT's weighted triple loss on P positions of one student layer ``h`` (P, C).

    ``logits = h @ weight.T`` (the MLM decoder, weight (V, C)); then
    ``a_ce * Lce(logits, t_logits, tau) + a_mlm * Lmlm(logits, labels) + a_cos * Lcos(h, t_h)``
    with ``alphas = (a_ce, a_mlm, a_cos)``: three losses whose gradients all reach ``h``.
    """
    a_ce, a_mlm, a_cos = alphas
    logits = h @ weight.T  # (P, V)
    every = np.ones((1, h.shape[0]), dtype=np.int64)  # (1, P): every position is real
    return (a_ce * kl_soft_target(logits, t_logits, tau) + a_mlm * cross_entropy(logits, labels)
            + a_cos * cosine(h[None], t_h[None], every))


def hidden_mse(s_h, t_h, weight):
    """TinyBERT's hidden-state loss: ``mean((s_h @ weight.T - t_h) ** 2)`` over every element.

    s_h (B, T, CS) student hidden states, t_h (B, T, CT) the teacher's, weight (CT, CS) a
    learned projection from the student's width to the teacher's (Jiao et al. 2020, eq. 7).
    """
    e = s_h @ weight.T - t_h  # (B, T, CT)
    return float((e * e).mean())


def cosine(s_h, t_h, mask):
    """``mean over real positions of 1 - cos(s_h, t_h)`` (DistilBERT's Lcos)."""
    m = np.asarray(mask, dtype=bool)  # (B, T)
    dot = (s_h * t_h).sum(axis=-1)  # (B, T)
    ns = np.sqrt((s_h * s_h).sum(axis=-1))  # (B, T)
    nt = np.sqrt((t_h * t_h).sum(axis=-1))  # (B, T)
    cos = dot / (ns * nt)  # (B, T)
    return float((1.0 - cos)[m].sum() / m.sum())


def split_heads(x, num_heads):
    B, T, C = x.shape
    return x.reshape(B, T, num_heads, C // num_heads).transpose(0, 2, 1, 3)  # (B, NH, T, HS)


def merge_heads(x):
    B, NH, T, HS = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, NH * HS)  # (B, T, C)


def encoder_block(x, mask, p, num_heads, eps=1e-12):
    """One post-LN encoder block: ``h = LN1(x + Attn(x)); y = LN2(h + FFN(h))``.

    ``p`` uses the local names of docs/api_contract.md: ``q.weight q.bias k.weight k.bias
    v.weight v.bias o.weight o.bias ln1.weight ln1.bias ff1.weight ff1.bias ff2.weight
    ff2.bias ln2.weight ln2.bias``.
    """
    q = split_heads(linear(x, p["q.weight"], p["q.bias"]), num_heads)  # (B, NH, T, HS)
    k = split_heads(linear(x, p["k.weight"], p["k.bias"]), num_heads)  # (B, NH, T, HS)
    v = split_heads(linear(x, p["v.weight"], p["v.bias"]), num_heads)  # (B, NH, T, HS)
    ctx, _ = attention(q, k, v, mask)  # (B, NH, T, HS)
    a = linear(merge_heads(ctx), p["o.weight"], p["o.bias"])  # (B, T, C)
    h = layernorm(x + a, p["ln1.weight"], p["ln1.bias"], eps)  # (B, T, C)
    f = linear(gelu(linear(h, p["ff1.weight"], p["ff1.bias"])), p["ff2.weight"], p["ff2.bias"])  # (B, T, C)
    return layernorm(h + f, p["ln2.weight"], p["ln2.bias"], eps)  # (B, T, C)
