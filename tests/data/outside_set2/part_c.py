"""Outside set, verbatim from line 714 to 881 of the original file (hidden_mse, encoder_block); only this header was added."""
# ruff: noqa: F401
import math

import numpy as np

from .common import MISTAKES, SQRT2, SQRT2PI, _Phi, _add, _erf, _phi, _softmax

# ============================================================================= hidden_mse
# correct: e = s W^T - t ; de = 2 e / e.size ; ds = de W ; dW = sum de^T s

@_add("hidden_mse", "mse_no_factor_2", "forgot the factor 2 from differentiating the square")
def hidden_mse_backward_1(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = dloss * e / e.size
    ds = de @ weight
    dW = de.reshape(-1, e.shape[-1]).T @ s_h.reshape(-1, s_h.shape[-1])
    return ds, dW


@_add("hidden_mse", "mse_divide_positions", "divided by the number of positions B * T instead of all B * T * CT elements")
def hidden_mse_backward_2(dloss, s_h, t_h, weight):
    B, T, CS = s_h.shape
    e = s_h @ weight.T - t_h
    de = dloss * 2.0 * e / (B * T)
    ds = de @ weight
    dW = np.einsum("bto,btc->oc", de, s_h)
    return ds, dW


@_add("hidden_mse", "mse_divide_student_size", "divided by s_h.size (student width CS) instead of the error's size (teacher width CT)")
def hidden_mse_backward_3(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = dloss * 2.0 * e / s_h.size
    ds = de @ weight
    dW = np.einsum("bto,btc->oc", de, s_h)
    return ds, dW


@_add("hidden_mse", "mse_dw_batch_mean", "averaged the per-example dweight over the batch instead of summing")
def hidden_mse_backward_4(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = dloss * 2.0 * e / e.size
    ds = de @ weight
    dW = (de.transpose(0, 2, 1) @ s_h).mean(axis=0)
    return ds, dW


@_add("hidden_mse", "mse_sign", "wrote the error as t_h - s_h @ weight.T, flipping the sign of both gradients")
def hidden_mse_backward_5(dloss, s_h, t_h, weight):
    e = t_h - s_h @ weight.T
    de = dloss * 2.0 * e / e.size
    ds = de @ weight
    dW = np.einsum("bto,btc->oc", de, s_h)
    return ds, dW


# ============================================================================= encoder_block

def _lin_f(x, w, b):
    return x @ w.T + b


def _ln_f(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * rstd
    return xhat * g + b, (xhat, rstd)


def _ln_b(dy, cache, g):
    xhat, rstd = cache
    C = xhat.shape[-1]
    gg = dy * g
    dx = rstd * (gg - gg.mean(-1, keepdims=True) - xhat * (gg * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).reshape(-1, C).sum(0), dy.reshape(-1, C).sum(0)


def _lin_b(dy, x, w):
    O, I = w.shape
    return dy @ w, dy.reshape(-1, O).T @ x.reshape(-1, I), dy.reshape(-1, O).sum(0)


def _encoder(dy, x, mask, p, num_heads, eps, bug=None):
    B, T, C = x.shape
    NH = num_heads
    HS = C // NH

    def split(z):
        return z.reshape(B, T, NH, HS).transpose(0, 2, 1, 3)

    def merge(z):
        return z.transpose(0, 2, 1, 3).reshape(B, T, C)

    # forward, keeping what the backward needs
    q = split(_lin_f(x, p["q.weight"], p["q.bias"]))
    k = split(_lin_f(x, p["k.weight"], p["k.bias"]))
    v = split(_lin_f(x, p["v.weight"], p["v.bias"]))
    scores = q @ k.swapaxes(-1, -2) / math.sqrt(HS)
    scores = scores + np.where(np.asarray(mask).astype(bool), 0.0, np.finfo(np.float64).min)[:, None, None, :]
    probs = _softmax(scores)
    ctx = probs @ v
    m = merge(ctx)
    a = _lin_f(m, p["o.weight"], p["o.bias"])
    u1 = x + a
    h, c1 = _ln_f(u1, p["ln1.weight"], p["ln1.bias"], eps)
    z1 = _lin_f(h, p["ff1.weight"], p["ff1.bias"])
    gz = 0.5 * z1 * (1.0 + _erf(z1 / SQRT2))
    f = _lin_f(gz, p["ff2.weight"], p["ff2.bias"])
    u2 = h + f
    _, c2 = _ln_f(u2, p["ln2.weight"], p["ln2.bias"], eps)

    grads = {}
    du2, grads["ln2.weight"], grads["ln2.bias"] = _ln_b(dy, c2, p["ln2.weight"])
    dgz, grads["ff2.weight"], grads["ff2.bias"] = _lin_b(du2, gz, p["ff2.weight"])
    if bug == "gelu_only_cdf":
        dz1 = dgz * _Phi(z1)
    else:
        dz1 = dgz * (_Phi(z1) + z1 * _phi(z1))
    dh_ffn, grads["ff1.weight"], grads["ff1.bias"] = _lin_b(dz1, h, p["ff1.weight"])
    dh = dh_ffn if bug == "no_res2" else dh_ffn + du2
    du1, grads["ln1.weight"], grads["ln1.bias"] = _ln_b(dh, c1, p["ln1.weight"])
    dm, grads["o.weight"], grads["o.bias"] = _lin_b(du1, m, p["o.weight"])
    if bug == "heads_reshape":
        dctx = dm.reshape(B, NH, T, HS)
    else:
        dctx = split(dm)
    dv = probs.swapaxes(-1, -2) @ dctx
    dp = dctx @ v.swapaxes(-1, -2)
    ds = probs * (dp - (dp * probs).sum(-1, keepdims=True))
    scale = 1.0 if bug == "attn_no_scale" else 1.0 / math.sqrt(HS)
    dq = ds @ k * scale
    dk = ds.swapaxes(-1, -2) @ q * scale
    dxq, grads["q.weight"], grads["q.bias"] = _lin_b(merge(dq), x, p["q.weight"])
    dxk, grads["k.weight"], grads["k.bias"] = _lin_b(merge(dk), x, p["k.weight"])
    dxv, grads["v.weight"], grads["v.bias"] = _lin_b(merge(dv), x, p["v.weight"])
    dx = dxq + dxk if bug == "forgot_v_path" else dxq + dxk + dxv
    if bug != "no_res1":
        dx = dx + du1
    return dx, grads


@_add("encoder_block", "enc_no_residual_ffn", "forgot the residual (skip) branch around the FFN, so dh only came through the FFN")
def encoder_block_backward_1(dy, x, mask, p, num_heads, eps=1e-12):
    return _encoder(dy, x, mask, p, num_heads, eps, bug="no_res2")


@_add("encoder_block", "enc_no_residual_attn", "forgot the residual (skip) branch around attention, so dx only came through q, k, v")
def encoder_block_backward_2(dy, x, mask, p, num_heads, eps=1e-12):
    return _encoder(dy, x, mask, p, num_heads, eps, bug="no_res1")


@_add("encoder_block", "enc_heads_reshape", "split the context gradient into heads with a plain reshape to (B, NH, T, HS), no transpose")
def encoder_block_backward_3(dy, x, mask, p, num_heads, eps=1e-12):
    return _encoder(dy, x, mask, p, num_heads, eps, bug="heads_reshape")


@_add("encoder_block", "enc_forgot_v_path", "summed the gradients into x from the q and k projections but forgot the v projection")
def encoder_block_backward_4(dy, x, mask, p, num_heads, eps=1e-12):
    return _encoder(dy, x, mask, p, num_heads, eps, bug="forgot_v_path")


@_add("encoder_block", "enc_gelu_only_cdf", "used Phi(x) as the GELU derivative, forgetting the x * pdf(x) term")
def encoder_block_backward_5(dy, x, mask, p, num_heads, eps=1e-12):
    return _encoder(dy, x, mask, p, num_heads, eps, bug="gelu_only_cdf")


@_add("encoder_block", "enc_attn_no_scale", "forgot the 1/sqrt(HS) attention scale in the q and k gradients")
def encoder_block_backward_6(dy, x, mask, p, num_heads, eps=1e-12):
    return _encoder(dy, x, mask, p, num_heads, eps, bug="attn_no_scale")


@_add("encoder_block", "correct_encoder_block", "correct")
def encoder_block_backward_ok(dy, x, mask, p, num_heads, eps=1e-12):
    return _encoder(dy, x, mask, p, num_heads, eps, bug=None)
