"""Shared correct pieces used by the controls and the mistakes (plain NumPy, float64)."""
import math
import numpy as np
erf = np.vectorize(math.erf, otypes=[np.float64])


def softmax(x, T=1.0, axis=-1):
    z = (x - x.max(axis=axis, keepdims=True)) / T
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def Phi(x):
    return 0.5 * (1.0 + erf(x / math.sqrt(2.0)))


def phi(x):
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def gelu(x):
    return x * Phi(x)


def gelu_grad(x):
    return Phi(x) + x * phi(x)


def ln_fwd(x, gamma, beta, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * rstd
    return xhat * gamma + beta, xhat, rstd


def ln_bwd(dy, x, gamma, eps=1e-12):
    _, xhat, rstd = ln_fwd(x, gamma, 0.0, eps)
    dxhat = dy * gamma
    dx = rstd * (dxhat - dxhat.mean(-1, keepdims=True) - xhat * (dxhat * xhat).mean(-1, keepdims=True))
    C = x.shape[-1]
    return dx, (dy * xhat).reshape(-1, C).sum(0), dy.reshape(-1, C).sum(0)


def lin_grads(dy, x, W):
    """dx, dW, db for y = x @ W.T + b, any leading shape."""
    OUT, IN = W.shape
    dx = dy @ W
    dW = dy.reshape(-1, OUT).T @ x.reshape(-1, IN)
    db = dy.reshape(-1, OUT).sum(0)
    return dx, dW, db


def attn_bwd(dout, q, k, v, probs, scale=None):
    HS = q.shape[-1]
    if scale is None:
        scale = 1.0 / math.sqrt(HS)
    dv = probs.swapaxes(-1, -2) @ dout
    dP = dout @ v.swapaxes(-1, -2)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    dq = dS @ k * scale
    dk = dS.swapaxes(-1, -2) @ q * scale
    return dq, dk, dv


def ce_grad(logits, labels):
    """d mean-CE / d logits, -100 ignored (no upstream)."""
    V = logits.shape[-1]
    z = logits.reshape(-1, V)
    y = np.asarray(labels).reshape(-1)
    keep = y != -100
    g = softmax(z)
    g[keep, y[keep]] -= 1.0
    g[~keep] = 0.0
    g /= keep.sum()
    return g.reshape(logits.shape)


def kl_grad(s, t, T):
    P = s.shape[0]
    return T * (softmax(s, T) - softmax(t, T)) / P


def cos_grad(s, t, mask):
    """d mean_real(1 - cos) / d s (no upstream)."""
    m = np.asarray(mask, dtype=np.float64)
    ns = np.sqrt((s * s).sum(-1, keepdims=True))
    nt = np.sqrt((t * t).sum(-1, keepdims=True))
    cos = (s * t).sum(-1, keepdims=True) / (ns * nt)
    dcos = t / (ns * nt) - cos * s / (ns * ns)
    return -dcos * m[..., None] / m.sum()


def split(x, NH):
    B, T, C = x.shape
    return x.reshape(B, T, NH, C // NH).transpose(0, 2, 1, 3)


def merge(x):
    B, NH, T, HS = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, NH * HS)
