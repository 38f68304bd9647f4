"""Wrong backward passes for the hint keys added after outside set 4 was measured.

Each function shows one mistake the way a learner writes it (not with the recogniser's code);
``test_exercise_hints.py`` checks that it fires its key and no other.
"""
import math

import numpy as np

from minidistil.exercises import forwards as F
from minidistil.exercises import solutions as S


def _gelu_erf_no_sqrt2(dy, x):
    cdf = 0.5 * (1.0 + F._erf(x))  # erf(x), not erf(x / sqrt 2)
    return dy * (cdf + x * np.exp(-x ** 2) / math.sqrt(math.pi))


def _ln_r_not_squared(dy, x, gamma, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    r = 1.0 / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps)
    xhat = (x - mu) * r
    g = dy * gamma
    C = x.shape[-1]
    dxhat_sum = (g * xhat).sum(-1, keepdims=True)
    dx = r * (g - g.mean(-1, keepdims=True)) - (1.0 / C) * xhat * dxhat_sum  # d r/dx = -(r/C) xhat
    lead = tuple(range(x.ndim - 1))
    return dx, (dy * xhat).sum(axis=lead), dy.sum(axis=lead)


def _sm_sum_everything(dp, x, tau):
    p = F.softmax_t(x, tau)
    return p * (dp - np.sum(dp * p)) / tau


def _lsm_logp(dy, x, tau):
    logp = F.log_softmax_t(x, tau)
    return (dy - logp * dy.sum(-1, keepdims=True)) / tau


def _lsm_plus_sign(dy, x, tau):
    return (dy + F.softmax_t(x, tau) * dy.sum(-1, keepdims=True)) / tau


def _lsm_sum_everything(dy, x, tau):
    return (dy - F.softmax_t(x, tau) * np.sum(dy)) / tau


def _att_diagonal(dout, q, k, v, probs):
    dprobs = np.einsum("bhqd,bhkd->bhqk", dout, v)
    ds = probs * (1 - probs) * dprobs
    s = 1 / math.sqrt(q.shape[-1])
    return ds @ k * s, np.swapaxes(ds, -1, -2) @ q * s, np.swapaxes(probs, -1, -2) @ dout


def _att_q_for_q(dout, q, k, v, probs):
    dprobs = dout @ np.swapaxes(v, -1, -2)
    ds = probs * (dprobs - (dprobs * probs).sum(-1, keepdims=True))
    s = 1 / math.sqrt(q.shape[-1])
    return ds @ q * s, np.swapaxes(ds, -1, -2) @ k * s, np.swapaxes(probs, -1, -2) @ dout


def _att_times_root(dout, q, k, v, probs):
    dprobs = dout @ np.swapaxes(v, -1, -2)
    ds = probs * (dprobs - (dprobs * probs).sum(-1, keepdims=True))
    s = math.sqrt(q.shape[-1])
    return ds @ k * s, np.swapaxes(ds, -1, -2) @ q * s, np.swapaxes(probs, -1, -2) @ dout


def _emb_decoder_averaged(dlogits, ids, weight):
    B, T, V = dlogits.shape
    h = weight[ids]
    dw = np.einsum("btv,btc->vc", dlogits, h) / (B * T)
    np.add.at(dw, ids.ravel(), (dlogits @ weight).reshape(B * T, -1))
    return dw, dlogits.sum(axis=(0, 1))


def _kl_plain_softmaxes(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss * tau * (F.softmax_t(s_logits) - F.softmax_t(t_logits)) / P


def _ce_logp_minus_onehot(dloss, logits, labels):
    B, T, V = logits.shape
    keep = labels != -100
    target = np.zeros((B, T, V))
    target[keep, labels[keep]] = 1
    return dloss * (F.log_softmax_t(logits) - target) * keep[..., None] / keep.sum()


def _triple(dloss, h, weight, t_logits, t_h, labels, tau, alphas, cos_sign=1.0, up=(True,) * 3):
    a_ce, a_mlm, a_cos = alphas
    logits = h @ weight.T
    d_ce = S.kl_soft_target_backward(dloss if up[0] else 1.0, logits, t_logits, tau)
    d_mlm = S.cross_entropy_backward(dloss if up[1] else 1.0, logits, labels)
    every = np.ones((1, h.shape[0]), dtype=np.int64)
    d_cos = S.cosine_backward(dloss if up[2] else 1.0, h[None], t_h[None], every)[0]
    return (a_ce * d_ce + a_mlm * d_mlm) @ weight + cos_sign * a_cos * d_cos


def _triple_cos_flipped(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, tau, alphas, cos_sign=-1.0)


def _triple_dloss_on_cos_only(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, tau, alphas, up=(False, False, True))


def _triple_decoder_transposed(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    logits = h @ weight.T
    dlogits = alphas[0] * S.kl_soft_target_backward(dloss, logits, t_logits, tau)
    return dlogits @ weight.T  # (P, V) @ (C, V): does not fit


def _block(dy, x, mask, p, num_heads, eps=1e-12, **kw):
    from minidistil.exercises import problems_attention as PA
    dx = PA.block_backward_variant(dy, x, mask, p, num_heads, eps, **kw)
    grads = S.encoder_block_backward(dy, x, mask, p, num_heads, eps)[1]
    return dx, grads


def _block_tanh(dy, x, mask, p, num_heads, eps=1e-12):
    return _block(dy, x, mask, p, num_heads, eps, gelu="tanh")


def _block_ln2_no_variance(dy, x, mask, p, num_heads, eps=1e-12):
    def ln_back(d, xin, gamma, e):
        mu = xin.mean(-1, keepdims=True)
        r = 1.0 / np.sqrt(xin.var(-1, keepdims=True) + e)
        g = d * gamma
        return (r * (g - g.mean(-1, keepdims=True)),)
    return _block(dy, x, mask, p, num_heads, eps, ln2_backward=ln_back)


def _lin_swapped_order(dy, x, weight):
    dx, dw, db = S.linear_backward(dy, x, weight)
    return dw, dx, db


def _lin_bias_keepdims(dy, x, weight):
    dx, dw, _ = S.linear_backward(dy, x, weight)
    return dx, dw, dy.sum(axis=0, keepdims=True)


def _lin_dx_for_columns(dy, x, weight):
    _, dw, db = S.linear_backward(dy, x, weight)
    return weight.T @ dy.T, dw, db  # (IN, N): written for column vectors


def _mse_per_example_weight(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = dloss * 2 * e / e.size
    return de @ weight, np.swapaxes(de, -1, -2) @ s_h  # (B, CT, CS): the batch not summed


SET4_KEY_CASES = {
    "gelu_erf_sqrt2": ("gelu", _gelu_erf_no_sqrt2),
    "layernorm_rstd_power": ("layernorm", _ln_r_not_squared),
    "softmax_global_sum": ("softmax_t", _sm_sum_everything),
    "log_softmax_used_logp": ("log_softmax_t", _lsm_logp),
    "log_softmax_sign": ("log_softmax_t", _lsm_plus_sign),
    "log_softmax_global_sum": ("log_softmax_t", _lsm_sum_everything),
    "attention_softmax_jacobian": ("attention", _att_diagonal),
    "attention_qk_swapped": ("attention", _att_q_for_q),
    "attention_scale_inverted": ("attention", _att_times_root),
    "embedding_decoder_mean": ("embedding_tied", _emb_decoder_averaged),
    "kl_softmaxes_without_tau": ("kl_soft_target", _kl_plain_softmaxes),
    "ce_log_probs": ("cross_entropy", _ce_logp_minus_onehot),
    "triple_cos_sign": ("triple_loss", _triple_cos_flipped),
    "triple_upstream_partial": ("triple_loss", _triple_dloss_on_cos_only),
    "triple_projection_weight": ("triple_loss", _triple_decoder_transposed),
    "block_gelu_tanh": ("encoder_block", _block_tanh),
    "block_ln_variance": ("encoder_block", _block_ln2_no_variance),
    "return_order": ("linear", _lin_swapped_order),
    "keepdims_extra": ("linear", _lin_bias_keepdims),
    "transposed_grad": ("linear", _lin_dx_for_columns),
    "leading_axes_not_summed": ("hidden_mse", _mse_per_example_weight),
}
