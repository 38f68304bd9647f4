"""encoder_block: one control and nine slips, all written through one backward with a switch."""
from __future__ import annotations

import math

import numpy as np

from .common import entry, gelu, softmax

E = "encoder_block"
_S2 = math.sqrt(2.0)


def _split(x, nh):
    B, T, C = x.shape
    return x.reshape(B, T, nh, C // nh).transpose(0, 2, 1, 3)


def _merge(x):
    B, NH, T, HS = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, NH * HS)


def _ln_fwd(x, eps):
    mean = x.mean(-1, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps)
    return (x - mean) * rstd, rstd


def _ln_bwd(dy, x, gamma, eps, bug):
    xhat, rstd = _ln_fwd(x, eps)
    g = dy * gamma
    if bug == "ln_mean":
        dx = rstd * (g - xhat * (g * xhat).mean(-1, keepdims=True))
    else:
        dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    C = x.shape[-1]
    return dx, (dy * xhat).reshape(-1, C).sum(0), dy.reshape(-1, C).sum(0)


def _lin_bwd(d, inp, w, bug):
    """d (B, T, OUT), inp (B, T, IN) -> (dinp, dW, db)."""
    OUT, IN = w.shape
    dW = d.reshape(-1, OUT).T @ inp.reshape(-1, IN)
    db = d.sum(axis=0) if bug == "bias_axis0" else d.reshape(-1, OUT).sum(0)
    return d @ w, dW, db


def _block_bwd(dy, x, mask, p, num_heads, eps, bug=None):
    lin = lambda a, n: a @ p[n + ".weight"].T + p[n + ".bias"]  # noqa: E731
    q = _split(lin(x, "q"), num_heads)
    k = _split(lin(x, "k"), num_heads)
    v = _split(lin(x, "v"), num_heads)
    HS = q.shape[-1]
    scores = q @ k.swapaxes(-1, -2) / math.sqrt(HS)
    if bug != "no_mask":
        scores = scores + np.where(mask, 0.0, np.finfo(q.dtype).min)[:, None, None, :]
    probs = softmax(scores)
    ctx = probs @ v
    m = _merge(ctx)
    a = lin(m, "o")
    r1 = x + a
    h = _ln_fwd(r1, eps)[0] * p["ln1.weight"] + p["ln1.bias"]
    u = lin(h, "ff1")
    g = gelu(u)
    f = lin(g, "ff2")
    r2 = h + f
    grads = {}
    dr2, grads["ln2.weight"], grads["ln2.bias"] = _ln_bwd(dy, r2, p["ln2.weight"], eps, bug)
    dg, grads["ff2.weight"], grads["ff2.bias"] = _lin_bwd(dr2, g, p["ff2.weight"], bug)
    Phi = 0.5 * (1.0 + np.vectorize(math.erf)(u / _S2))
    phi = np.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi)
    du = dg * (Phi if bug == "gelu_product" else Phi + u * phi)
    dh_f, grads["ff1.weight"], grads["ff1.bias"] = _lin_bwd(du, h, p["ff1.weight"], bug)
    dh = dh_f if bug == "res_ffn" else dr2 + dh_f
    dr1, grads["ln1.weight"], grads["ln1.bias"] = _ln_bwd(dh, r1, p["ln1.weight"], eps, bug)
    dm, grads["o.weight"], grads["o.bias"] = _lin_bwd(dr1, m, p["o.weight"], bug)
    if bug == "merge_reshape":
        dctx = dm.reshape(ctx.shape)
    else:
        dctx = _split(dm, num_heads)
    dv = probs.swapaxes(-1, -2) @ dctx
    dP = dctx @ v.swapaxes(-1, -2)
    if bug == "softmax_sum":
        dS = probs * dP
    else:
        dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    dq = dS @ k / math.sqrt(HS)
    dk = dS.swapaxes(-1, -2) @ q / math.sqrt(HS)
    dx = np.zeros_like(x) if bug == "res_attn" else dr1.copy()
    for name, d in (("q", dq), ("k", dk), ("v", dv)):
        dxi, grads[name + ".weight"], grads[name + ".bias"] = _lin_bwd(
            _merge(d), x, p[name + ".weight"], bug)
        if bug != "dx_q_only" or name == "q":
            dx = dx + dxi
    return dx, grads


@entry(E, "control")
def encoder_block_control(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_bwd(dy, x, mask, p, num_heads, eps)


@entry(E, "forgot_ffn_residual", "dh = FFN backward only: forgot the residual path h -> h + f")
def encoder_block_m1(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_bwd(dy, x, mask, p, num_heads, eps, "res_ffn")


@entry(E, "forgot_attn_residual", "dx from the q/k/v projections only: forgot the residual x -> x + a")
def encoder_block_m2(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_bwd(dy, x, mask, p, num_heads, eps, "res_attn")


@entry(E, "gelu_no_product_rule", "GELU backward as dy * Phi(u): dropped the u * phi(u) term")
def encoder_block_m3(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_bwd(dy, x, mask, p, num_heads, eps, "gelu_product")


@entry(E, "softmax_no_sum", "attention's softmax backward dS = P * dP, no row-sum term")
def encoder_block_m4(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_bwd(dy, x, mask, p, num_heads, eps, "softmax_sum")


@entry(E, "ln_no_mean_term", "LayerNorm backward helper (used for both LNs) missing -mean(dxhat)")
def encoder_block_m5(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_bwd(dy, x, mask, p, num_heads, eps, "ln_mean")


@entry(E, "merge_heads_reshape", "undid merge_heads with a plain reshape to (B, NH, T, HS), no transpose")
def encoder_block_m6(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_bwd(dy, x, mask, p, num_heads, eps, "merge_reshape")


@entry(E, "no_mask", "recomputed the attention probs without the padding mask")
def encoder_block_m7(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_bwd(dy, x, mask, p, num_heads, eps, "no_mask")


@entry(E, "bias_axis0", "linear-backward helper sums bias grads over axis=0 only: shape (T, OUT)")
def encoder_block_m8(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_bwd(dy, x, mask, p, num_heads, eps, "bias_axis0")


@entry(E, "dx_query_only", "added only the query projection's dx: forgot k's and v's paths to x")
def encoder_block_m9(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_bwd(dy, x, mask, p, num_heads, eps, "dx_q_only")
