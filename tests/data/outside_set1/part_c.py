"""Outside set, verbatim from line 711 to 829 of the original file (encoder_block); only this header was added."""
# ruff: noqa: F401
import math

import numpy as np

from .common import _Phi, _SQRT2, _SQRT2PI, _add, _ce_grad_rows, _cos_grad, _erf, _ln_backward, _log_softmax, _phi, _rows, _softmax

# ============================================================================ encoder_block

def _split(x, nh):
    B, T, C = x.shape
    return x.reshape(B, T, nh, C // nh).transpose(0, 2, 1, 3)


def _merge(x):
    B, NH, T, HS = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, NH * HS)


def _ln_fwd(x, g, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _block_backward(dy, x, mask, p, num_heads, eps, bug=None):
    B, T, C = x.shape
    nh = num_heads
    HS = C // nh
    lin = lambda a, n: a @ p[n + ".weight"].T + p[n + ".bias"]
    # ---- forward recompute
    q, k, v = (_split(lin(x, n), nh) for n in ("q", "k", "v"))
    scores = q @ k.swapaxes(-1, -2) / math.sqrt(HS)
    if bug != "no_mask":
        scores = scores + np.where(np.asarray(mask, dtype=bool), 0.0, np.finfo(x.dtype).min)[:, None, None, :]
    P = _softmax(scores)
    ctx = P @ v
    m = _merge(ctx)
    a = lin(m, "o")
    r1 = x + a
    h = _ln_fwd(r1, p["ln1.weight"], p["ln1.bias"], eps)
    u = lin(h, "ff1")
    gl = 0.5 * u * (1.0 + _erf(u / _SQRT2))
    f = lin(gl, "ff2")
    r2 = h + f
    grads = {}
    rows = lambda a_: a_.reshape(-1, a_.shape[-1])

    def lin_bw(dout, inp, n):
        grads[n + ".weight"] = rows(dout).T @ rows(inp)
        grads[n + ".bias"] = rows(dout).sum(axis=0)
        return dout @ p[n + ".weight"]

    # ---- LN2
    ln2_in = h if bug == "ln2_at_h" else r2
    dr2, grads["ln2.weight"], grads["ln2.bias"] = _ln_backward(dy, ln2_in, p["ln2.weight"], eps)
    # ---- FFN
    dg = lin_bw(dr2, gl, "ff2")
    if bug == "gelu_phi":
        du = dg * _Phi(u)
    else:
        du = dg * (_Phi(u) + u * _phi(u))
    dh = lin_bw(du, h, "ff1")
    if bug != "res2":
        dh = dh + dr2
    # ---- LN1
    dr1, grads["ln1.weight"], grads["ln1.bias"] = _ln_backward(dh, r1, p["ln1.weight"], eps)
    # ---- attention output projection
    dm = lin_bw(dr1, m, "o")
    if bug == "heads_reshape":
        dctx = dm.reshape(B, nh, T, HS)
    else:
        dctx = _split(dm, nh)
    dv = P.swapaxes(-1, -2) @ dctx
    dP = dctx @ v.swapaxes(-1, -2)
    dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True)) / math.sqrt(HS)
    dq = dS @ k
    dk = dS.swapaxes(-1, -2) @ q
    mg = (lambda t_: t_.reshape(B, T, C)) if bug == "heads_reshape" else _merge
    dx = np.zeros_like(x) if bug == "res1" else dr1.copy()
    for n, d in (("q", dq), ("k", dk), ("v", dv)):
        dxn = lin_bw(mg(d), x, n)
        if bug == "v_only" and n != "v":
            continue
        dx = dx + dxn
    return dx, {kk: grads[kk] for kk in p}


@_add("encoder_block", "blk_res2", "forgot the residual path around the FFN (h + FFN(h)) in the backward")
def blk_res2(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_backward(dy, x, mask, p, num_heads, eps, "res2")


@_add("encoder_block", "blk_res1", "forgot the residual path around attention (x + Attn(x)), so dx only flows through q, k, v")
def blk_res1(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_backward(dy, x, mask, p, num_heads, eps, "res1")


@_add("encoder_block", "blk_heads_reshape", "split and merged the heads with a plain reshape instead of reshape + transpose in the backward")
def blk_heads_reshape(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_backward(dy, x, mask, p, num_heads, eps, "heads_reshape")


@_add("encoder_block", "blk_gelu_phi", "used only Phi(u) as the GELU derivative inside the FFN (dropped u * phi(u))")
def blk_gelu_phi(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_backward(dy, x, mask, p, num_heads, eps, "gelu_phi")


@_add("encoder_block", "blk_no_mask", "recomputed the attention probabilities without the padding mask")
def blk_no_mask(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_backward(dy, x, mask, p, num_heads, eps, "no_mask")


@_add("encoder_block", "blk_v_only", "added only the value projection's dx and forgot the query and key paths back to x")
def blk_v_only(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_backward(dy, x, mask, p, num_heads, eps, "v_only")


@_add("encoder_block", "blk_ln2_at_h", "ran the LN2 backward with h as its input instead of the residual sum h + FFN(h)")
def blk_ln2_at_h(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_backward(dy, x, mask, p, num_heads, eps, "ln2_at_h")


@_add("encoder_block", "correct_encoder_block", "correct")
def correct_encoder_block(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_backward(dy, x, mask, p, num_heads, eps, None)
