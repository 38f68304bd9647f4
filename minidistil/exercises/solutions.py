"""Reference solutions of the gradient exercises. Try the exercises before reading this file!

Legend: N rows (any leading shape), B batch, T sequence, C hidden, NH heads, HS head size,
F feed-forward, V vocabulary, P selected positions, IN/OUT linear fan-in/fan-out.

Each function has the signature of its stub in :mod:`minidistil.exercises.stubs` and returns
the gradients listed there. None writes into its arguments. The derivations are in
docs/math.md; the package's production versions live in ``minidistil/kernels``,
``minidistil/layers`` and ``minidistil/losses.py``.
"""
from __future__ import annotations

import math

from typing import NamedTuple

import numpy as np

from . import forwards as F


def linear_backward(dy, x, weight):
    """y = x @ W.T + b  ->  dx = dy @ W, dW = dy^T x (summed over rows), db = sum dy."""
    x2 = x.reshape(-1, x.shape[-1])  # (N, IN)
    dy2 = dy.reshape(-1, dy.shape[-1])  # (N, OUT)
    dx = dy @ weight  # (..., IN)
    dweight = dy2.T @ x2  # (OUT, IN): same layout as weight
    dbias = dy2.sum(axis=0)  # (OUT,)
    return dx, dweight, dbias


def gelu_backward(dy, x):
    """gelu'(x) = Phi(x) + x * phi(x) (product rule on x * Phi(x))."""
    cdf = 0.5 * (1.0 + F._erf(x / math.sqrt(2.0)))  # (...)
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)  # (...)
    return dy * (cdf + x * pdf)  # (...)


def layernorm_backward(dy, x, gamma, eps=1e-12):
    """dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma."""
    mean = x.mean(axis=-1, keepdims=True)  # (N, 1)
    rstd = 1.0 / np.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + eps)  # (N, 1)
    xhat = (x - mean) * rstd  # (N, C)
    lead = tuple(range(x.ndim - 1))
    dgamma = (dy * xhat).sum(axis=lead)  # (C,)
    dbeta = dy.sum(axis=lead)  # (C,)
    g = dy * gamma  # (N, C), a new array: dy is untouched
    dx = rstd * (g - g.mean(axis=-1, keepdims=True)
                 - xhat * (g * xhat).mean(axis=-1, keepdims=True))  # (N, C)
    return dx, dgamma, dbeta


def softmax_t_backward(dp, x, tau):
    """p = softmax(x/tau)  ->  dx = p * (dp - sum(dp * p)) / tau."""
    p = F.softmax_t(x, tau)  # (N, V)
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True)) / tau  # (N, V)


def log_softmax_t_backward(dy, x, tau):
    """y = log softmax(x/tau)  ->  dx = (dy - softmax(x/tau) * sum(dy)) / tau."""
    p = F.softmax_t(x, tau)  # (N, V)
    return (dy - p * dy.sum(axis=-1, keepdims=True)) / tau  # (N, V)


def attention_backward(dout, q, k, v, probs):
    """Back through out = probs @ v, the softmax, and scores = q k^T / sqrt(HS)."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    dv = probs.swapaxes(-1, -2) @ dout  # (B, NH, T, HS)
    dprobs = dout @ v.swapaxes(-1, -2)  # (B, NH, T, T)
    dscores = probs * (dprobs - (dprobs * probs).sum(axis=-1, keepdims=True))  # (B, NH, T, T)
    dq = dscores @ k * scale  # (B, NH, T, HS)
    dk = dscores.swapaxes(-1, -2) @ q * scale  # (B, NH, T, HS)
    return dq, dk, dv


def embedding_tied_backward(dlogits, ids, weight):
    """The tied matrix collects two gradients: from the output projection and from the lookup."""
    C = weight.shape[1]
    h = weight[ids]  # (B, T, C)
    dlogits2 = dlogits.reshape(-1, dlogits.shape[-1])  # (B*T, V)
    dweight = dlogits2.T @ h.reshape(-1, C)  # (V, C): use 1, logits = h @ W.T
    dh = dlogits @ weight  # (B, T, C)
    # use 2, h = W[ids]: a scatter-ADD, since an id may appear several times
    np.add.at(dweight, ids.reshape(-1), dh.reshape(-1, C))
    dbias = dlogits2.sum(axis=0)  # (V,)
    return dweight, dbias


def kl_soft_target_backward(dloss, s_logits, t_logits, tau):
    """d/ds of tau^2 * mean KL(q || p) = tau^2 * (1/P) * (1/tau) * (p - q): student p, teacher q."""
    P = s_logits.shape[0]
    p = F.softmax_t(s_logits, tau)  # (P, V) the student's distribution
    q = F.softmax_t(t_logits, tau)  # (P, V) the teacher's soft targets
    return dloss * tau * (p - q) / P  # (P, V)


def cross_entropy_backward(dloss, logits, labels):
    """(softmax(logits) - onehot(label)) / n on the n scored rows; 0 where the label is -100."""
    p = F.softmax_t(logits)  # (..., V)
    keep = np.asarray(labels) != F.IGNORE_INDEX  # (...)
    onehot = np.zeros_like(p)  # (..., V)
    onehot[np.nonzero(keep) + (labels[keep],)] = 1.0
    return dloss * (p - onehot) * keep[..., None] / keep.sum()  # (..., V)


def triple_loss_backward(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    """The three gradients meet at h: Lce and Lmlm through the logits (and W), Lcos directly."""
    a_ce, a_mlm, a_cos = alphas
    logits = h @ weight.T  # (P, V)
    dlogits = (a_ce * kl_soft_target_backward(1.0, logits, t_logits, tau)
               + a_mlm * cross_entropy_backward(1.0, logits, labels))  # (P, V): two losses add
    every = np.ones((1, h.shape[0]), dtype=np.int64)  # (1, P)
    dh = dlogits @ weight + a_cos * cosine_backward(1.0, h[None], t_h[None], every)[0]  # (P, C)
    return dloss * dh  # (P, C)


def hidden_mse_backward(dloss, s_h, t_h, weight):
    """e = s_h W^T - t_h; dL/de = 2 e / e.size; back through the projection like a linear layer."""
    e = s_h @ weight.T - t_h  # (B, T, CT)
    de = dloss * 2.0 * e / e.size  # (B, T, CT)
    ds_h = de @ weight  # (B, T, CS)
    dweight = de.reshape(-1, e.shape[-1]).T @ s_h.reshape(-1, s_h.shape[-1])  # (CT, CS)
    return ds_h, dweight


def cosine_backward(dloss, s_h, t_h, mask):
    """d(1 - cos)/ds = -(t/(|s||t|) - cos * s/|s|^2), averaged over the real positions only."""
    m = np.asarray(mask, dtype=bool)  # (B, T)
    ns = np.sqrt((s_h * s_h).sum(axis=-1, keepdims=True))  # (B, T, 1)
    nt = np.sqrt((t_h * t_h).sum(axis=-1, keepdims=True))  # (B, T, 1)
    cos = (s_h * t_h).sum(axis=-1, keepdims=True) / (ns * nt)  # (B, T, 1)
    dcos = t_h / (ns * nt) - cos * s_h / (ns * ns)  # (B, T, C)
    return -dloss * dcos * m[..., None] / m.sum()  # (B, T, C), zero at padding


# ------------------------------------------------------------------- bonus: the encoder block

class BlockCache(NamedTuple):
    """What the encoder block's backward needs from its forward."""
    q: np.ndarray  # (B, NH, T, HS)
    k: np.ndarray  # (B, NH, T, HS)
    v: np.ndarray  # (B, NH, T, HS)
    probs: np.ndarray  # (B, NH, T, T)
    ctx2: np.ndarray  # (B, T, C) merged attention context
    r1: np.ndarray  # (B, T, C) x + attention output, before LN1
    h: np.ndarray  # (B, T, C) LN1 output
    u: np.ndarray  # (B, T, F) FFN pre-activation
    gu: np.ndarray  # (B, T, F) gelu(u)
    r2: np.ndarray  # (B, T, C) h + FFN output, before LN2


def encoder_block_cache(x, mask, p, num_heads, eps=1e-12) -> BlockCache:
    """The block's forward again, keeping every intermediate the backward needs."""
    q = F.split_heads(F.linear(x, p["q.weight"], p["q.bias"]), num_heads)  # (B, NH, T, HS)
    k = F.split_heads(F.linear(x, p["k.weight"], p["k.bias"]), num_heads)  # (B, NH, T, HS)
    v = F.split_heads(F.linear(x, p["v.weight"], p["v.bias"]), num_heads)  # (B, NH, T, HS)
    ctx, probs = F.attention(q, k, v, mask)  # (B, NH, T, HS), (B, NH, T, T)
    ctx2 = F.merge_heads(ctx)  # (B, T, C)
    r1 = x + F.linear(ctx2, p["o.weight"], p["o.bias"])  # (B, T, C)
    h = F.layernorm(r1, p["ln1.weight"], p["ln1.bias"], eps)  # (B, T, C)
    u = F.linear(h, p["ff1.weight"], p["ff1.bias"])  # (B, T, F)
    gu = F.gelu(u)  # (B, T, F)
    r2 = h + F.linear(gu, p["ff2.weight"], p["ff2.bias"])  # (B, T, C)
    return BlockCache(q, k, v, probs, ctx2, r1, h, u, gu, r2)


def encoder_block_backward(dy, x, mask, p, num_heads, eps=1e-12):
    """Backward of :func:`minidistil.exercises.forwards.encoder_block`: returns (dx, grads)."""
    g = {}
    q, k, v, probs, ctx2, r1, h, u, gu, r2 = encoder_block_cache(x, mask, p, num_heads, eps)
    # ---- backward, last operation first
    dr2, g["ln2.weight"], g["ln2.bias"] = layernorm_backward(dy, r2, p["ln2.weight"], eps)
    dgu, g["ff2.weight"], g["ff2.bias"] = linear_backward(dr2, gu, p["ff2.weight"])
    du = gelu_backward(dgu, u)  # (B, T, F)
    dh_ffn, g["ff1.weight"], g["ff1.bias"] = linear_backward(du, h, p["ff1.weight"])
    dh = dr2 + dh_ffn  # (B, T, C): the residual path and the FFN branch both use h
    dr1, g["ln1.weight"], g["ln1.bias"] = layernorm_backward(dh, r1, p["ln1.weight"], eps)
    dctx2, g["o.weight"], g["o.bias"] = linear_backward(dr1, ctx2, p["o.weight"])
    B, T, C = x.shape
    dctx = F.split_heads(dctx2, num_heads)  # (B, NH, T, HS)
    dq, dk, dv = attention_backward(dctx, q, k, v, probs)
    dx = dr1.copy()  # (B, T, C): the residual path
    for name, dpart in (("q", dq), ("k", dk), ("v", dv)):
        dxp, g[f"{name}.weight"], g[f"{name}.bias"] = linear_backward(
            F.merge_heads(dpart), x, p[f"{name}.weight"])
        dx += dxp
    return dx, g
