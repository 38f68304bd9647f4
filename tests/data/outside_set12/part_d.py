"""encoder_block (post-LN BERT block): a control and 9 slips."""
from __future__ import annotations

import math

import numpy as np

from ._common import SQ2, _erf, build, gelu, gelu_grad, softmax


def _split(x, nh):
    B, T, C = x.shape
    return x.reshape(B, T, nh, C // nh).transpose(0, 2, 1, 3)


def _merge(x):
    B, NH, T, HS = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, NH * HS)


def _ln_fwd(x, gamma, beta, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    r = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean) * r
    return xhat * gamma + beta, (xhat, r)


def _ln_bwd(dy, cache, gamma, slip):
    xhat, r = cache
    C = xhat.shape[-1]
    g = dy * gamma
    dx = g - g.mean(axis=-1, keepdims=True)
    if slip != "ln_no_var_term":
        dx = dx - xhat * (g * xhat).mean(axis=-1, keepdims=True)
    return r * dx, (dy * xhat).reshape(-1, C).sum(0), dy.reshape(-1, C).sum(0)


def _lin_bwd(dy, x, W, slip):
    OUT, IN = W.shape
    dx = dy @ W
    dW = dy.reshape(-1, OUT).T @ x.reshape(-1, IN)
    db = dy.sum(axis=0) if slip == "bias_sum_axis0" else dy.reshape(-1, OUT).sum(0)
    return dx, dW, db


def encoder_block_impl(dy, x, mask, p, num_heads, eps=1e-12, slip=None):
    B, T, C = x.shape
    nh = num_heads
    HS = C // nh
    lin = {}
    for name in ("q", "k", "v"):
        lin[name] = _split(x @ p[f"{name}.weight"].T + p[f"{name}.bias"], nh)
    q, k, v = lin["q"], lin["k"], lin["v"]
    scores = q @ k.swapaxes(-1, -2) / math.sqrt(HS)
    if slip != "attn_mask_dropped":
        m = np.asarray(mask, dtype=bool)
        scores = scores + np.where(m, 0.0, np.finfo(np.float64).min)[:, None, None, :]
    P = softmax(scores)
    cm = _merge(P @ v)
    a = cm @ p["o.weight"].T + p["o.bias"]
    h, c1 = _ln_fwd(x + a, p["ln1.weight"], p["ln1.bias"], eps)
    z1 = h @ p["ff1.weight"].T + p["ff1.bias"]
    act = gelu(z1)
    f = act @ p["ff2.weight"].T + p["ff2.bias"]
    _, c2 = _ln_fwd(h + f, p["ln2.weight"], p["ln2.bias"], eps)

    G = {}
    dr2, G["ln2.weight"], G["ln2.bias"] = _ln_bwd(dy, c2, p["ln2.weight"], slip)
    dact, G["ff2.weight"], G["ff2.bias"] = _lin_bwd(dr2, act, p["ff2.weight"], slip)
    if slip == "gelu_Phi_only":
        dz1 = dact * 0.5 * (1.0 + _erf(z1 / SQ2))
    elif slip == "gelu_grad_at_output":
        dz1 = dact * gelu_grad(act)
    else:
        dz1 = dact * gelu_grad(z1)
    dh_ffn, G["ff1.weight"], G["ff1.bias"] = _lin_bwd(dz1, h, p["ff1.weight"], slip)
    dh = dh_ffn if slip == "no_residual_ln2" else dr2 + dh_ffn
    dr1, G["ln1.weight"], G["ln1.bias"] = _ln_bwd(dh, c1, p["ln1.weight"], slip)
    dcm, G["o.weight"], G["o.bias"] = _lin_bwd(dr1, cm, p["o.weight"], slip)
    dctx = _split(dcm, nh)
    dv = P.swapaxes(-1, -2) @ dctx
    dP = dctx @ v.swapaxes(-1, -2)
    dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))
    scale = 1.0 if slip == "attn_no_scale" else 1.0 / math.sqrt(HS)
    dq, dk = dS @ k * scale, dS.swapaxes(-1, -2) @ q * scale
    dx = np.zeros_like(x) if slip == "no_residual_ln1" else dr1.copy()
    for name, d in (("q", dq), ("k", dk), ("v", dv)):
        dxi, G[f"{name}.weight"], G[f"{name}.bias"] = _lin_bwd(_merge(d), x, p[f"{name}.weight"], slip)
        if not (slip == "dx_missing_v_path" and name == "v"):
            dx = dx + dxi
    return dx, G


ENCODER_BLOCK = build("encoder_block", encoder_block_impl, "dy, x, mask, p, num_heads, eps=1e-12", [
    ("no_residual_ln2", "dh = FFN backward only: forgot the residual path around the FFN"),
    ("no_residual_ln1", "dx = attention backward only: forgot the residual path around attention"),
    ("ln_no_var_term", "LayerNorm backward without the variance term (both LNs, one helper)"),
    ("gelu_Phi_only", "GELU derivative Phi(z) only, the z*phi(z) term dropped"),
    ("gelu_grad_at_output", "GELU derivative evaluated at the activation output, not its input"),
    ("attn_no_scale", "attention backward without the 1/sqrt(HS) on dq and dk"),
    ("attn_mask_dropped", "recomputed the attention probs without the padding bias"),
    ("dx_missing_v_path", "dx sums the q and k projections' input grads but forgot v's"),
    ("bias_sum_axis0", "linear helper sums the bias grad over axis 0 only, shape (T, OUT)"),
])

ENTRIES = ENCODER_BLOCK
