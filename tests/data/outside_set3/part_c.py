"""Outside set 3, verbatim from line 621 to 922 of the original file (cosine, triple_loss, hidden_mse, encoder_block); only this header was added."""
# ruff: noqa: F401, F811
import math

import numpy as np

from .common import SQ2PI, _Phi, _erf, _phi, _softmax, entry
from .common import ENTRIES
from .part_a import _ln_stats, _rows

# ============================================================================ cosine
def _cos_grad(s, t):
    ns = np.sqrt((s * s).sum(-1, keepdims=True))
    nt = np.sqrt((t * t).sum(-1, keepdims=True))
    cos = (s * t).sum(-1, keepdims=True) / (ns * nt)
    return ns, nt, cos, t / (ns * nt) - cos * s / (ns * ns)  # dcos/ds


@entry("cosine", "cosine_ok", "correct control")
def _(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    *_, dc = _cos_grad(s_h, t_h)
    return -dloss * dc * m[..., None] / m.sum()


@entry("cosine", "cos_no_mask", "the gradient also flows at padding positions (mask only used in the count)")
def _(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    *_, dc = _cos_grad(s_h, t_h)
    return -dloss * dc / m.sum()


@entry("cosine", "cos_count_all", "divided by B*T instead of the number of real positions")
def _(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    *_, dc = _cos_grad(s_h, t_h)
    return -dloss * dc * m[..., None] / m.size


@entry("cosine", "cos_per_sequence", "a mean per sequence (divide by each row's real count) then over the batch")
def _(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    *_, dc = _cos_grad(s_h, t_h)
    per = m.sum(axis=1, keepdims=True)  # (B, 1)
    return -dloss * dc * (m / per)[..., None] / m.shape[0]


@entry("cosine", "cos_norm_constant", "|s| treated as a constant: only t / (|s||t|)")
def _(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    ns, nt, cos, _ = _cos_grad(s_h, t_h)
    return -dloss * (t_h / (ns * nt)) * m[..., None] / m.sum()


@entry("cosine", "cos_norm_power", "the second term written cos * s / |s| instead of cos * s / |s|**2")
def _(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    ns, nt, cos, _ = _cos_grad(s_h, t_h)
    return -dloss * (t_h / (ns * nt) - cos * s_h / ns) * m[..., None] / m.sum()


@entry("cosine", "cos_sign", "the sign flipped: the gradient of cos instead of 1 - cos")
def _(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    *_, dc = _cos_grad(s_h, t_h)
    return dloss * dc * m[..., None] / m.sum()


@entry("cosine", "cos_norm_no_keepdims", "the norms computed without keepdims, so s / |s| does not broadcast")
def _(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    ns = np.sqrt((s_h * s_h).sum(-1))
    nt = np.sqrt((t_h * t_h).sum(-1))
    cos = (s_h * t_h).sum(-1) / (ns * nt)
    dc = t_h / (ns * nt) - cos * s_h / (ns * ns)
    return -dloss * dc * m[..., None] / m.sum()


@entry("cosine", "cos_no_dloss", "the upstream dloss not multiplied in")
def _(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    *_, dc = _cos_grad(s_h, t_h)
    return -dc * m[..., None] / m.sum()


# ============================================================================ triple_loss
def _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, *, kl=None, mlm=None,
            cos=None, order=(0, 1, 2), overwrite=False, skip_W=False, alphas_off=False):
    a = (1.0, 1.0, 1.0) if alphas_off else tuple(alphas[i] for i in order)
    P = h.shape[0]
    logits = h @ weight.T  # (P, V)
    ps, pt = _softmax(logits / T), _softmax(t_logits / T)
    g_kl = (T / P) * (ps - pt) if kl is None else kl(ps, pt, T, P)
    y = np.asarray(labels)
    keep = y != -100
    oh = np.zeros_like(logits)
    oh[np.arange(P)[keep], y[keep]] = 1.0
    pm = _softmax(logits)
    g_mlm = (pm - oh) * keep[:, None] / keep.sum() if mlm is None else mlm(pm, oh, keep)
    *_, dc = _cos_grad(h, t_h)
    g_cos = -dc / P if cos is None else cos(dc, keep)
    dlogits = a[0] * g_kl + a[1] * g_mlm
    dh = dlogits if skip_W else dlogits @ weight
    dh = a[2] * g_cos if overwrite else dh + a[2] * g_cos
    return dloss * dh


@entry("triple_loss", "triple_loss_ok", "correct control")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas)


@entry("triple_loss", "tri_no_cos", "the cosine loss's gradient never added to dh (only the logits path)")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas,
                   cos=lambda dc, keep: np.zeros_like(dc))


@entry("triple_loss", "tri_no_alphas", "the three gradients summed without their alpha weights")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, alphas_off=True)


@entry("triple_loss", "tri_kl_no_T2", "the Lce part without its T**2: (ps - pt) / (T P)")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas,
                   kl=lambda ps, pt, T, P: (ps - pt) / (T * P))


@entry("triple_loss", "tri_mlm_ignored_rows", "the Lmlm gradient also at the -100 positions (softmax not masked)")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas,
                   mlm=lambda pm, oh, keep: (pm - oh) / keep.sum())


@entry("triple_loss", "tri_mlm_mean_P", "the Lmlm gradient averaged over all P positions, not the scored ones")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas,
                   mlm=lambda pm, oh, keep: (pm - oh) * keep[:, None] / keep.size)


@entry("triple_loss", "tri_skip_W", "dlogits added to dh without going back through weight (shape error)")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, skip_W=True)


@entry("triple_loss", "tri_overwrite", "dh = ... assigned twice, so the cosine gradient overwrites the logits' one")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, overwrite=True)


@entry("triple_loss", "tri_alpha_swap", "a_ce and a_mlm swapped (a_mlm on the KL part, a_ce on the MLM part)")
def _(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, order=(1, 0, 2))


# ============================================================================ hidden_mse
def _mse(dloss, s_h, t_h, weight, *, two=2.0, n=None, sign=1.0):
    e = sign * (s_h @ weight.T - t_h)  # (B, T, CT)
    n = e.size if n is None else n
    de = dloss * two * e / n
    return de, weight, s_h


@entry("hidden_mse", "hidden_mse_ok", "correct control")
def _(dloss, s_h, t_h, weight):
    de, W, s = _mse(dloss, s_h, t_h, weight)
    return de @ W, de.reshape(-1, W.shape[0]).T @ s.reshape(-1, W.shape[1])


@entry("hidden_mse", "mse_no_two", "the factor 2 from the square forgotten")
def _(dloss, s_h, t_h, weight):
    de, W, s = _mse(dloss, s_h, t_h, weight, two=1.0)
    return de @ W, de.reshape(-1, W.shape[0]).T @ s.reshape(-1, W.shape[1])


@entry("hidden_mse", "mse_mean_positions", "divided by the B*T positions instead of every element")
def _(dloss, s_h, t_h, weight):
    de, W, s = _mse(dloss, s_h, t_h, weight, n=s_h.shape[0] * s_h.shape[1])
    return de @ W, de.reshape(-1, W.shape[0]).T @ s.reshape(-1, W.shape[1])


@entry("hidden_mse", "mse_sign", "the error written t - s instead of s - t")
def _(dloss, s_h, t_h, weight):
    de, W, s = _mse(dloss, s_h, t_h, weight, sign=-1.0)
    return de @ W, de.reshape(-1, W.shape[0]).T @ s.reshape(-1, W.shape[1])


@entry("hidden_mse", "mse_dw_transposed", "dweight as s^T de, shape (CS, CT), the transpose of the right one")
def _(dloss, s_h, t_h, weight):
    de, W, s = _mse(dloss, s_h, t_h, weight)
    return de @ W, s.reshape(-1, W.shape[1]).T @ de.reshape(-1, W.shape[0])


@entry("hidden_mse", "mse_ds_WT", "ds_h as de @ weight.T (the projection applied the wrong way round)")
def _(dloss, s_h, t_h, weight):
    de, W, s = _mse(dloss, s_h, t_h, weight)
    return de @ W.T, de.reshape(-1, W.shape[0]).T @ s.reshape(-1, W.shape[1])


@entry("hidden_mse", "mse_dw_batchmean", "dweight additionally divided by the batch size")
def _(dloss, s_h, t_h, weight):
    de, W, s = _mse(dloss, s_h, t_h, weight)
    return de @ W, de.reshape(-1, W.shape[0]).T @ s.reshape(-1, W.shape[1]) / s_h.shape[0]


@entry("hidden_mse", "mse_no_projection", "ds_h returned as de itself, not taken back through the projection")
def _(dloss, s_h, t_h, weight):
    de, W, s = _mse(dloss, s_h, t_h, weight)
    return de, de.reshape(-1, W.shape[0]).T @ s.reshape(-1, W.shape[1])


@entry("hidden_mse", "mse_no_dloss", "the upstream dloss not multiplied in")
def _(dloss, s_h, t_h, weight):
    de, W, s = _mse(1.0, s_h, t_h, weight)
    return de @ W, de.reshape(-1, W.shape[0]).T @ s.reshape(-1, W.shape[1])


# ============================================================================ encoder_block
def _lin_bwd(dy, x, W, bias_axes="rows"):
    C_in, C_out = x.shape[-1], dy.shape[-1]
    dW = dy.reshape(-1, C_out).T @ x.reshape(-1, C_in)  # (OUT, IN)
    db = dy.reshape(-1, C_out).sum(0) if bias_axes == "rows" else dy.sum(axis=0)
    return dy @ W, dW, db


def _ln_fwd(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    r = 1.0 / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps)
    return (x - mu) * r * g + b


def _ln_bwd(dy, x, gamma, eps):
    mu, r, xh = _ln_stats(x, eps)
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    return dx, _rows(dy * xh).sum(0), _rows(dy).sum(0)


def _split(x, nh):
    B, T, C = x.shape
    return x.reshape(B, T, nh, C // nh).transpose(0, 2, 1, 3)


def _merge(x):
    B, NH, T, HS = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, NH * HS)


def _block(dy, x, mask, p, nh, eps, *, res2=True, res1=True, heads_reshape=False,
           gelu_phi_only=False, nomask=False, ln1_at_x=False, no_k=False, bias_axes="rows"):
    B, T, C = x.shape
    HS = C // nh
    lin = lambda a, n: a @ p[n + ".weight"].T + p[n + ".bias"]
    ql, kl, vl = lin(x, "q"), lin(x, "k"), lin(x, "v")  # (B, T, C)
    q, k, v = _split(ql, nh), _split(kl, nh), _split(vl, nh)  # (B, NH, T, HS)
    S = q @ k.swapaxes(-1, -2) / math.sqrt(HS)
    bias = np.where(np.asarray(mask, bool), 0.0, np.finfo(x.dtype).min)[:, None, None, :]
    P = _softmax(S + bias)
    ctx = _merge(P @ v)  # (B, T, C)
    a = lin(ctx, "o")
    r1 = x + a
    h = _ln_fwd(r1, p["ln1.weight"], p["ln1.bias"], eps)
    u = lin(h, "ff1")  # (B, T, F)
    gu = 0.5 * u * (1 + _erf(u / math.sqrt(2.0)))
    f = lin(gu, "ff2")
    r2 = h + f
    g = {}
    dr2, g["ln2.weight"], g["ln2.bias"] = _ln_bwd(dy, r2, p["ln2.weight"], eps)
    dgu, g["ff2.weight"], g["ff2.bias"] = _lin_bwd(dr2, gu, p["ff2.weight"], bias_axes)
    gp = _Phi(u) if gelu_phi_only else _Phi(u) + u * _phi(u)
    dh_ffn, g["ff1.weight"], g["ff1.bias"] = _lin_bwd(dgu * gp, h, p["ff1.weight"], bias_axes)
    dh = dr2 + dh_ffn if res2 else dh_ffn
    dr1, g["ln1.weight"], g["ln1.bias"] = _ln_bwd(dh, x if ln1_at_x else r1, p["ln1.weight"], eps)
    dctx, g["o.weight"], g["o.bias"] = _lin_bwd(dr1, ctx, p["o.weight"], bias_axes)
    if nomask:
        P = _softmax(S)
    dctx4 = dctx.reshape(B, nh, T, HS) if heads_reshape else _split(dctx, nh)
    dv = P.swapaxes(-1, -2) @ dctx4
    dP = dctx4 @ v.swapaxes(-1, -2)
    dS = P * (dP - (dP * P).sum(-1, keepdims=True))
    dq, dk = dS @ k / math.sqrt(HS), dS.swapaxes(-1, -2) @ q / math.sqrt(HS)
    mg = (lambda z: z.reshape(B, T, C)) if heads_reshape else _merge
    dx = dr1.copy() if res1 else np.zeros_like(x)
    for n, d in (("q", dq), ("k", dk), ("v", dv)):
        dxn, g[n + ".weight"], g[n + ".bias"] = _lin_bwd(mg(d), x, p[n + ".weight"], bias_axes)
        if not (no_k and n == "k"):
            dx = dx + dxn
    return dx, g


_BLOCK = [
    ("encoder_block_ok", {}, "correct control"),
    ("blk_no_res2", {"res2": False}, "the residual around the feed-forward forgotten in the backward (dh lacks dr2)"),
    ("blk_no_res1", {"res1": False}, "the residual around attention forgotten in the backward (dx lacks dr1)"),
    ("blk_heads_reshape", {"heads_reshape": True}, "heads split and merged with a plain reshape instead of a transpose, in the backward"),
    ("blk_gelu_phi", {"gelu_phi_only": True}, "GELU's derivative taken as Phi(u) only"),
    ("blk_probs_nomask", {"nomask": True}, "attention probabilities recomputed without the padding mask in the backward"),
    ("blk_ln1_at_x", {"ln1_at_x": True}, "LN1's backward evaluated at x instead of its input x + attn(x)"),
    ("blk_no_k_path", {"no_k": True}, "the key projection's path to dx forgotten (only q and v added)"),
    ("blk_bias_axis0", {"bias_axes": "axis0"}, "bias gradients summed over the batch axis only, leaving shape (T, C)"),
]


def _make_block(kw):
    def fn(dy, x, mask, p, num_heads, eps=1e-12):
        return _block(dy, x, mask, p, num_heads, eps, **kw)
    return fn


for _id, _kw, _what in _BLOCK:
    ENTRIES.append({"exercise": "encoder_block", "id": _id, "fn": _make_block(_kw), "what": _what})
