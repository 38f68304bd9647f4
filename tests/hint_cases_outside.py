"""Wrong backward passes for the hint keys added after the outside sets were measured.

Each function shows one mistake, written here independently of the outside sets' code (which
lives in ``tests/data/``); ``test_exercise_hints.py`` checks that it fires its key and no other.
"""
import math

import numpy as np

from minidistil.exercises import forwards as F
from minidistil.exercises import problems_attention as PA
from minidistil.exercises import solutions as S


def _cdf(x):
    return 0.5 * (1 + F._erf(x / math.sqrt(2)))


def _gelu_pdf(pdf):
    return lambda dy, x: dy * (_cdf(x) + x * pdf(x))


def _ln(x, eps):
    mu = x.mean(-1, keepdims=True)
    r = 1 / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps)
    return r, (x - mu) * r, tuple(range(x.ndim - 1))


def _ln_dx(dx_of):
    def fn(dy, x, gamma, eps=1e-12):
        r, xh, lead = _ln(x, eps)
        return dx_of(dy * gamma, r, xh), (dy * xh).sum(lead), dy.sum(lead)
    return fn


def _softmax_like(dp, x, T, p_of, combine):
    return combine(p_of(x, T), dp) / T


def _att_from_ds(q, k, ds):
    s = 1 / math.sqrt(q.shape[-1])
    return ds @ k * s, ds.swapaxes(-1, -2) @ q * s


def _att_axis(dout, q, k, v, probs):
    dp = dout @ v.swapaxes(-1, -2)
    ds = probs * (dp - (dp * probs).sum(-2, keepdims=True))
    return _att_from_ds(q, k, ds) + (probs.swapaxes(-1, -2) @ dout,)


def _att_dprobs_t(dout, q, k, v, probs):
    dp = np.einsum("bhqd,bhkd->bhkq", dout, v)
    ds = probs * (dp - (dp * probs).sum(-1, keepdims=True))
    return _att_from_ds(q, k, ds) + (probs.swapaxes(-1, -2) @ dout,)


def _emb_dh_t(dlogits, ids, weight):
    V, C = weight.shape
    dw = dlogits.reshape(-1, V).T @ weight[ids].reshape(-1, C)
    np.add.at(dw, ids.reshape(-1), (dlogits @ weight.T).reshape(-1, C))
    return dw, dlogits.reshape(-1, V).sum(0)


def _emb_bias_mean(dlogits, ids, weight):
    dw, db = S.embedding_tied_backward(dlogits, ids, weight)
    return dw, db / ids.size


def _kl_rev(dloss, s_logits, t_logits, T):
    ls = np.log(F.softmax_t(s_logits, T))
    d = ls - np.log(F.softmax_t(t_logits, T))
    p = np.exp(ls)
    return dloss * T / len(s_logits) * p * (d - (p * d).sum(-1, keepdims=True))


def _kl_teacher_no_T(dloss, s_logits, t_logits, T):
    return dloss * T / len(s_logits) * (F.softmax_t(s_logits, T) - F.softmax_t(t_logits))


def _cos_power3(dloss, s_h, t_h, mask):
    ns = np.linalg.norm(s_h, axis=-1, keepdims=True)
    nt = np.linalg.norm(t_h, axis=-1, keepdims=True)
    cos = (s_h * t_h).sum(-1, keepdims=True) / (ns * nt)
    return -dloss * (t_h / (ns * nt) - cos * s_h / ns ** 3) * mask[..., None] / mask.sum()


def _tri_parts(h, weight, t_logits, t_h, labels, T, dloss):
    logits = h @ weight.T
    every = np.ones((1, len(h)), dtype=np.int64)
    return (dloss * S.kl_soft_target_backward(1.0, logits, t_logits, T) @ weight,
            dloss * S.cross_entropy_backward(1.0, logits, labels) @ weight,
            dloss * S.cosine_backward(1.0, h[None], t_h[None], every)[0])


def _tri(combine):
    def fn(dloss, h, weight, t_logits, t_h, labels, T, alphas):
        d = _tri_parts(h, weight, t_logits, t_h, labels, T, dloss)
        return combine(d, alphas, dict(dloss=dloss, h=h, weight=weight, t_h=t_h, labels=labels))
    return fn


def _tri_mlm_unzeroed(d, al, a):
    logits = a["h"] @ a["weight"].T
    ign = a["labels"] == -100
    extra = a["dloss"] * (F.softmax_t(logits) * ign[:, None] / (~ign).sum()) @ a["weight"]
    return al[0] * d[0] + al[1] * (d[1] + extra) + al[2] * d[2]


def _tri_cos_on_labels(d, al, a):
    keep = (a["labels"] != -100).astype(np.int64)[None]
    cos = a["dloss"] * S.cosine_backward(1.0, a["h"][None], a["t_h"][None], keep)[0]
    return al[0] * d[0] + al[1] * d[1] + al[2] * cos


def _mse(scale_ds, scale_dw):
    def fn(dloss, s_h, t_h, weight):
        ds, dw = S.hidden_mse_backward(dloss, s_h, t_h, weight)
        return ds * scale_ds(s_h, t_h), dw * scale_dw(s_h, t_h)
    return fn


def _block(**kw):
    return lambda dy, x, mask, p, num_heads, eps=1e-12: (
        PA.block_backward_variant(dy, x, mask, p, num_heads, eps, **kw),
        S.encoder_block_backward(dy, x, mask, p, num_heads, eps)[1])


MORE_KEY_CASES = {
    "gelu_erf_chain": ("gelu", _gelu_pdf(lambda x: np.exp(-x * x / 2) / math.sqrt(math.pi))),
    "gelu_pdf_norm": ("gelu", _gelu_pdf(lambda x: np.exp(-x * x / 2))),
    "gelu_pdf_exponent": ("gelu", _gelu_pdf(lambda x: np.exp(-x * x) / math.sqrt(2 * math.pi))),
    "layernorm_stats_constant": ("layernorm", _ln_dx(lambda g, r, xh: g * r)),
    "layernorm_variance_sum": ("layernorm", _ln_dx(lambda g, r, xh: r * (
        g - g.mean(-1, keepdims=True) - xh * (g * xh).sum(-1, keepdims=True)))),
    "softmax_weighted_sum": ("softmax_t", lambda dp, x, T: _softmax_like(
        dp, x, T, F.softmax_t, lambda p, d: p * (d - d.sum(-1, keepdims=True)))),
    "softmax_p_without_tau": ("log_softmax_t", lambda dy, x, T: _softmax_like(
        dy, x, T, lambda x_, T_: F.softmax_t(x_), lambda p, d: d - p * d.sum(-1, keepdims=True))),
    "log_softmax_used_softmax": ("log_softmax_t", lambda dy, x, T: _softmax_like(
        dy, x, T, F.softmax_t, lambda p, d: p * (d - (d * p).sum(-1, keepdims=True)))),
    "log_softmax_unnormalised": ("log_softmax_t", lambda dy, x, T: _softmax_like(
        dy, x, T, lambda x_, T_: np.exp(x_ / T_), lambda p, d: d - p * d.sum(-1, keepdims=True))),
    "attention_softmax_axis": ("attention", _att_axis),
    "attention_dprobs_transposed": ("attention", _att_dprobs_t),
    "embedding_dh_weight": ("embedding_tied", _emb_dh_t),
    "embedding_bias_mean": ("embedding_tied", _emb_bias_mean),
    "kl_reversed": ("kl_soft_target", _kl_rev),
    "kl_softmax_without_tau": ("kl_soft_target", _kl_teacher_no_T),
    "cosine_norm_power": ("cosine", _cos_power3),
    "triple_alpha_order": ("triple_loss", _tri(lambda d, al, a: al[2] * d[0] + al[1] * d[1] + al[0] * d[2])),
    "triple_mlm_ignore": ("triple_loss", _tri(_tri_mlm_unzeroed)),
    "triple_mlm_count": ("triple_loss", _tri(lambda d, al, a: al[0] * d[0] + al[2] * d[2] + al[1] * d[1]
                                             * (a["labels"] != -100).sum() / len(a["labels"]))),
    "triple_cos_mean": ("triple_loss", _tri(lambda d, al, a: al[0] * d[0] + al[1] * d[1]
                                            + al[2] * d[2] * len(a["h"]))),
    "triple_cos_labels": ("triple_loss", _tri(_tri_cos_on_labels)),
    "mse_dweight_mean": ("hidden_mse", _mse(lambda s, t: 1.0, lambda s, t: 1.0 / s.shape[0])),
    "mse_count_student": ("hidden_mse", _mse(lambda s, t: t.shape[-1] / s.shape[-1],
                                             lambda s, t: t.shape[-1] / s.shape[-1])),
    "block_gelu": ("encoder_block", _block(gelu="cdf")),
    "block_mask": ("encoder_block", _block(masked=False)),
    "block_qkv_paths": ("encoder_block", _block(paths=("q", "v"))),
    "block_ln_input": ("encoder_block", _block(ln_input="x")),
    "block_attention_scale": ("encoder_block", _block(attn_scale=False)),
}
