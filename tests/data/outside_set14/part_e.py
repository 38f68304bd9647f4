"""Learner answers for the bonus encoder_block: one full backward, and nine versions of it that
each carry one slip (``slip`` names it; everything else is the same correct code)."""
import math

import numpy as np

from ._common import entry, erf, softmax


def _lin(x, W, b):
    return x @ W.T + b


def _lin_b(dy, x, W, slip):
    dy2 = dy.reshape(-1, dy.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    db = dy.sum(axis=0) if slip == "bias_sum_axis0" else dy2.sum(axis=0)
    return (dy2 @ W).reshape(x.shape), dy2.T @ x2, db


def _ln(x, g, b, eps):
    mean = x.mean(-1, keepdims=True)
    xc = x - mean
    r = 1.0 / np.sqrt((xc * xc).mean(-1, keepdims=True) + eps)
    xhat = xc * r
    return xhat * g + b, (xhat, r)


def _ln_b(dy, cache, gamma, slip):
    xhat, r = cache
    g = dy * gamma
    if slip == "ln_no_var_term":
        dx = r * (g - g.mean(-1, keepdims=True))
    else:
        dx = r * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).sum(axis=(0, 1)), dy.sum(axis=(0, 1))


def _gelu(x):
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _gelu_b(dy, x, slip):
    Phi = 0.5 * (1.0 + erf(x / math.sqrt(2.0)))
    if slip == "gelu_no_x_phi":
        return dy * Phi
    phi = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return dy * (Phi + x * phi)


def _split(x, nh):
    B, T, C = x.shape
    return x.reshape(B, T, nh, C // nh).transpose(0, 2, 1, 3)


def _merge(x):
    B, NH, T, HS = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, NH * HS)


def _block(dy, x, mask, p, num_heads, eps, slip):
    B, T, C = x.shape
    NH, HS = num_heads, C // num_heads
    # forward, keeping what the backward needs
    q = _split(_lin(x, p["q.weight"], p["q.bias"]), NH)
    k = _split(_lin(x, p["k.weight"], p["k.bias"]), NH)
    v = _split(_lin(x, p["v.weight"], p["v.bias"]), NH)
    scores = q @ k.swapaxes(-1, -2) / math.sqrt(HS)
    if slip != "no_mask":
        scores = scores + np.where(np.asarray(mask) > 0, 0.0, np.finfo(np.float64).min)[:, None, None, :]
    probs = softmax(scores)
    cm = _merge(probs @ v)
    a = _lin(cm, p["o.weight"], p["o.bias"])
    h, c1 = _ln(x + a, p["ln1.weight"], p["ln1.bias"], eps)
    u = _lin(h, p["ff1.weight"], p["ff1.bias"])
    gu = _gelu(u)
    f = _lin(gu, p["ff2.weight"], p["ff2.bias"])
    _, c2 = _ln(h + f, p["ln2.weight"], p["ln2.bias"], eps)
    # backward
    gr = {}
    dr2, gr["ln2.weight"], gr["ln2.bias"] = _ln_b(dy, c2, p["ln2.weight"], slip)
    dgu, gr["ff2.weight"], gr["ff2.bias"] = _lin_b(dr2, gu, p["ff2.weight"], slip)
    du = _gelu_b(dgu, u, slip)
    dhf, gr["ff1.weight"], gr["ff1.bias"] = _lin_b(du, h, p["ff1.weight"], slip)
    dh = dhf if slip == "no_residual_ffn" else dr2 + dhf
    g1 = p["ln2.weight"] if slip == "ln1_uses_ln2_gamma" else p["ln1.weight"]
    dr1, gr["ln1.weight"], gr["ln1.bias"] = _ln_b(dh, c1, g1, slip)
    dcm, gr["o.weight"], gr["o.bias"] = _lin_b(dr1, cm, p["o.weight"], slip)
    if slip == "head_merge_no_transpose":
        dctx = dcm.reshape(B, NH, T, HS)
    else:
        dctx = dcm.reshape(B, T, NH, HS).transpose(0, 2, 1, 3)
    s = 1.0 / math.sqrt(HS)
    dv = probs.swapaxes(-1, -2) @ dctx
    dP = dctx @ v.swapaxes(-1, -2)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    dq, dk = dS @ k * s, dS.swapaxes(-1, -2) @ q * s
    dxq, gr["q.weight"], gr["q.bias"] = _lin_b(_merge(dq), x, p["q.weight"], slip)
    dxk, gr["k.weight"], gr["k.bias"] = _lin_b(_merge(dk), x, p["k.weight"], slip)
    dxv, gr["v.weight"], gr["v.bias"] = _lin_b(_merge(dv), x, p["v.weight"], slip)
    if slip == "no_residual_attn":
        dx = dxq + dxk + dxv
    elif slip == "dx_only_q":
        dx = dr1 + dxq
    else:
        dx = dr1 + dxq + dxk + dxv
    return dx, gr


def _make(slip):
    def encoder_block_backward(dy, x, mask, p, num_heads, eps=1e-12):
        return _block(dy, x, mask, p, num_heads, eps, slip)
    encoder_block_backward.__name__ = f"enc_{slip or 'control'}"
    return encoder_block_backward


_SLIPS = [
    ("no_residual_ffn", "dh = FFN_backward(dr2): forgot the residual path's + dr2"),
    ("no_residual_attn", "dx = Attn_backward(dr1): forgot the residual path's + dr1"),
    ("no_mask", "recomputed the attention forward without the padding mask"),
    ("dx_only_q", "dx only through the query projection: forgot k and v also read x"),
    ("gelu_no_x_phi", "GELU backward dy*Phi(u): forgot the x*phi(x) term"),
    ("ln_no_var_term", "LayerNorm backward without the variance term (both LNs)"),
    ("bias_sum_axis0", "linear biases' gradients summed over axis 0 only, shape (T, OUT)"),
    ("head_merge_no_transpose", "dctx = dmerged.reshape(B, NH, T, HS): head split undone without transpose"),
    ("ln1_uses_ln2_gamma", "LN1 backward multiplied by ln2.weight (copy-paste of the LN2 line)"),
]

ENTRIES = [entry("encoder_block", "control", "correct", _make(None), True)] + [
    entry("encoder_block", s, what, _make(s)) for s, what in _SLIPS]
