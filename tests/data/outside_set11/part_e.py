"""encoder_block (bonus): a control and nine learner-style mistakes.

One staged backward, written as a learner would (forward recomputed, then the pieces in
reverse); each mistake entry is that same code with exactly one stage written wrong.
"""
from __future__ import annotations

import math

import numpy as np

from ._util import Phi, entry, erf, phi, softmax


def _split(x, nh):
    B, T, C = x.shape
    return x.reshape(B, T, nh, C // nh).transpose(0, 2, 1, 3)


def _merge(x):
    B, NH, T, HS = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, NH * HS)


def _ln_fwd(x, gamma, beta, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    r = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * r
    return xhat * gamma + beta, (xhat, r)


def _ln_bwd(dy, cache, gamma, var_term=True):
    xhat, r = cache
    C = xhat.shape[-1]
    g = dy * gamma
    dx = g - g.mean(-1, keepdims=True)
    if var_term:
        dx = dx - xhat * (g * xhat).mean(-1, keepdims=True)
    return r * dx, (dy * xhat).reshape(-1, C).sum(0), dy.reshape(-1, C).sum(0)


def _lin_bwd(dy, x, W, bias_axis0=False):
    C_in, C_out = x.shape[-1], dy.shape[-1]
    dW = dy.reshape(-1, C_out).T @ x.reshape(-1, C_in)
    db = dy.sum(axis=0) if bias_axis0 else dy.reshape(-1, C_out).sum(0)
    return dy @ W, dW, db


def _block_backward(dy, x, mask, p, num_heads, eps, bug=None):
    B, T, C = x.shape
    HS = C // num_heads
    lin = lambda z, n: z @ p[n + ".weight"].T + p[n + ".bias"]  # noqa: E731
    # ---- forward, keeping what the backward needs
    q, k, v = (_split(lin(x, n), num_heads) for n in ("q", "k", "v"))
    scores = q @ k.swapaxes(-1, -2) / math.sqrt(HS)
    if bug != "probs_no_mask":
        m = np.asarray(mask, dtype=bool)
        scores = scores + np.where(m, 0.0, np.finfo(np.float64).min)[:, None, None, :]
    probs = softmax(scores)
    ctx = probs @ v
    merged = _merge(ctx)
    a = lin(merged, "o")
    h, c1 = _ln_fwd(x + a, p["ln1.weight"], p["ln1.bias"], eps)
    u = lin(h, "ff1")
    gu = 0.5 * u * (1.0 + erf(u / math.sqrt(2.0)))
    f = lin(gu, "ff2")
    y, c2 = _ln_fwd(h + f, p["ln2.weight"], p["ln2.bias"], eps)
    grads = {}
    ba0 = bug == "bias_axis0"
    # ---- LN2 and the FFN
    dr2, grads["ln2.weight"], grads["ln2.bias"] = _ln_bwd(dy, c2, p["ln2.weight"],
                                                          var_term=bug != "ln2_no_var")
    dgu, grads["ff2.weight"], grads["ff2.bias"] = _lin_bwd(dr2, gu, p["ff2.weight"], ba0)
    if bug == "gelu_phi_only":
        du = dgu * Phi(u)
    else:
        du = dgu * (Phi(u) + u * phi(u))
    dh_ffn, grads["ff1.weight"], grads["ff1.bias"] = _lin_bwd(du, h, p["ff1.weight"], ba0)
    dh = dh_ffn if bug == "no_resid_h" else dr2 + dh_ffn
    # ---- LN1 and attention
    dr1, grads["ln1.weight"], grads["ln1.bias"] = _ln_bwd(dh, c1, p["ln1.weight"])
    dmerged, grads["o.weight"], grads["o.bias"] = _lin_bwd(dr1, merged, p["o.weight"], ba0)
    if bug == "merge_reshape":
        dctx = dmerged.reshape(B, num_heads, T, HS)  # undo merge_heads with a plain reshape
    else:
        dctx = _split(dmerged, num_heads)
    dv = probs.swapaxes(-1, -2) @ dctx
    dP = dctx @ v.swapaxes(-1, -2)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    s = 1.0 if bug == "attn_no_scale" else 1.0 / math.sqrt(HS)
    dq, dk = dS @ k * s, dS.swapaxes(-1, -2) @ q * s
    dx = np.zeros_like(x) if bug == "no_resid_x" else dr1.copy()
    for n, d in (("q", dq), ("k", dk), ("v", dv)):
        dxn, grads[n + ".weight"], grads[n + ".bias"] = _lin_bwd(_merge(d), x, p[n + ".weight"], ba0)
        if not (bug == "dx_no_k" and n == "k"):
            dx = dx + dxn
    return dx, grads


def encoder_block_control(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_backward(dy, x, mask, p, num_heads, eps)


def encoder_block_no_resid_x(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_backward(dy, x, mask, p, num_heads, eps, "no_resid_x")


def encoder_block_no_resid_h(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_backward(dy, x, mask, p, num_heads, eps, "no_resid_h")


def encoder_block_probs_no_mask(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_backward(dy, x, mask, p, num_heads, eps, "probs_no_mask")


def encoder_block_gelu_phi_only(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_backward(dy, x, mask, p, num_heads, eps, "gelu_phi_only")


def encoder_block_bias_axis0(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_backward(dy, x, mask, p, num_heads, eps, "bias_axis0")


def encoder_block_ln2_no_var(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_backward(dy, x, mask, p, num_heads, eps, "ln2_no_var")


def encoder_block_attn_no_scale(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_backward(dy, x, mask, p, num_heads, eps, "attn_no_scale")


def encoder_block_merge_reshape(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_backward(dy, x, mask, p, num_heads, eps, "merge_reshape")


def encoder_block_dx_no_k(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_backward(dy, x, mask, p, num_heads, eps, "dx_no_k")


ENTRIES = [
    entry("encoder_block", "control", "correct", encoder_block_control, True),
    entry("encoder_block", "no_resid_x", "dx forgot the residual path x + Attn(x)", encoder_block_no_resid_x),
    entry("encoder_block", "no_resid_h", "dh forgot the residual path h + FFN(h)", encoder_block_no_resid_h),
    entry("encoder_block", "probs_no_mask", "recomputed probs without the padding mask", encoder_block_probs_no_mask),
    entry("encoder_block", "gelu_phi_only", "GELU backward Phi(u) only, no u*phi(u)", encoder_block_gelu_phi_only),
    entry("encoder_block", "bias_axis0", "linear bias grads summed over axis 0 only", encoder_block_bias_axis0),
    entry("encoder_block", "ln2_no_var", "LN2 backward without the variance term", encoder_block_ln2_no_var),
    entry("encoder_block", "attn_no_scale", "attention dq, dk without 1/sqrt(HS)", encoder_block_attn_no_scale),
    entry("encoder_block", "merge_reshape", "undid merge_heads by reshape, no transpose", encoder_block_merge_reshape),
    entry("encoder_block", "dx_no_k", "dx sums the q and v paths, forgot k", encoder_block_dx_no_k),
]
