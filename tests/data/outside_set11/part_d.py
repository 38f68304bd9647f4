"""cosine, triple_loss, hidden_mse: a control and nine learner-style mistakes each."""
from __future__ import annotations

import numpy as np

from ._util import IGNORE, entry, softmax


# ------------------------------------------------------------------ cosine

def _cos_parts(s_h, t_h):
    ns = np.sqrt((s_h * s_h).sum(-1, keepdims=True))
    nt = np.sqrt((t_h * t_h).sum(-1, keepdims=True))
    cos = (s_h * t_h).sum(-1, keepdims=True) / (ns * nt)
    return ns, nt, cos


def cosine_control(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    ns, nt, cos = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    return np.where(m[..., None], -dloss * dcos / m.sum(), 0.0)


def cosine_no_norm_term(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    ns, nt, cos = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt)  # treated |s| as a constant
    return np.where(m[..., None], -dloss * dcos / m.sum(), 0.0)


def cosine_mean_all_positions(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    ns, nt, cos = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    B, T = m.shape
    return np.where(m[..., None], -dloss * dcos / (B * T), 0.0)  # divided by B*T


def cosine_no_mask(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    ns, nt, cos = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    return -dloss * dcos / m.sum()  # padding positions get a gradient too


def cosine_sign(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    ns, nt, cos = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    return np.where(m[..., None], dloss * dcos / m.sum(), 0.0)  # gradient of cos, not of 1 - cos


def cosine_norm_not_squared(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    ns, nt, cos = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns  # |s| where |s|^2 belongs
    return np.where(m[..., None], -dloss * dcos / m.sum(), 0.0)


def cosine_mask_broadcast(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    ns, nt, cos = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    return np.where(m, -dloss * dcos / m.sum(), 0.0)  # mask (B, T) against (B, T, C)


def cosine_swapped_st(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    ns, nt, cos = _cos_parts(s_h, t_h)
    dcos = s_h / (ns * nt) - cos * t_h / nt ** 2  # d cos / d t, not d s
    return np.where(m[..., None], -dloss * dcos / m.sum(), 0.0)


def cosine_per_row_count(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    ns, nt, cos = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    n = m.sum(axis=1, keepdims=True)[..., None]  # real positions of each sequence
    return np.where(m[..., None], -dloss * dcos / n, 0.0)


def cosine_no_dloss(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    ns, nt, cos = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    return np.where(m[..., None], -dcos / m.sum(), 0.0)


# ------------------------------------------------------------------ triple_loss

def _tl_parts(h, weight, t_logits, labels, tau):
    P, V = h.shape[0], weight.shape[0]
    logits = h @ weight.T
    d_ce = tau / P * (softmax(logits / tau) - softmax(t_logits / tau))
    y = np.asarray(labels)
    keep = y != IGNORE
    oh = np.zeros((P, V))
    oh[np.nonzero(keep)[0], y[keep]] = 1.0
    d_mlm = (softmax(logits) - oh) * keep[:, None] / keep.sum()
    return logits, d_ce, d_mlm, keep, oh


def _tl_cos(h, t_h):
    ns, nt, cos = _cos_parts(h, t_h)
    return -(t_h / (ns * nt) - cos * h / ns ** 2) / h.shape[0]


def triple_loss_control(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_mlm, a_cos = alphas
    logits, d_ce, d_mlm, keep, oh = _tl_parts(h, weight, t_logits, labels, tau)
    return dloss * ((a_ce * d_ce + a_mlm * d_mlm) @ weight + a_cos * _tl_cos(h, t_h))


def triple_loss_no_cos(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_mlm, a_cos = alphas
    logits, d_ce, d_mlm, keep, oh = _tl_parts(h, weight, t_logits, labels, tau)
    return dloss * ((a_ce * d_ce + a_mlm * d_mlm) @ weight)  # forgot Lcos reaches h directly


def triple_loss_alphas_swapped(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_mlm, a_ce, a_cos = alphas  # unpacked in the wrong order
    logits, d_ce, d_mlm, keep, oh = _tl_parts(h, weight, t_logits, labels, tau)
    return dloss * ((a_ce * d_ce + a_mlm * d_mlm) @ weight + a_cos * _tl_cos(h, t_h))


def triple_loss_kl_no_tau2(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_mlm, a_cos = alphas
    logits, d_ce, d_mlm, keep, oh = _tl_parts(h, weight, t_logits, labels, tau)
    d_ce = d_ce / tau ** 2  # KL gradient without the tau**2 of Lce
    return dloss * ((a_ce * d_ce + a_mlm * d_mlm) @ weight + a_cos * _tl_cos(h, t_h))


def triple_loss_mlm_over_P(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_mlm, a_cos = alphas
    logits, d_ce, d_mlm, keep, oh = _tl_parts(h, weight, t_logits, labels, tau)
    d_mlm = d_mlm * keep.sum() / h.shape[0]  # mean over all P rows, not the labelled ones
    return dloss * ((a_ce * d_ce + a_mlm * d_mlm) @ weight + a_cos * _tl_cos(h, t_h))


def triple_loss_no_acos(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_mlm, a_cos = alphas
    logits, d_ce, d_mlm, keep, oh = _tl_parts(h, weight, t_logits, labels, tau)
    return dloss * ((a_ce * d_ce + a_mlm * d_mlm) @ weight + _tl_cos(h, t_h))  # no a_cos


def triple_loss_cos_no_norm_term(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_mlm, a_cos = alphas
    logits, d_ce, d_mlm, keep, oh = _tl_parts(h, weight, t_logits, labels, tau)
    ns, nt, cos = _cos_parts(h, t_h)
    d_cos = -(t_h / (ns * nt)) / h.shape[0]  # |h| treated as constant
    return dloss * ((a_ce * d_ce + a_mlm * d_mlm) @ weight + a_cos * d_cos)


def triple_loss_dloss_logits_only(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_mlm, a_cos = alphas
    logits, d_ce, d_mlm, keep, oh = _tl_parts(h, weight, t_logits, labels, tau)
    dlogits = dloss * (a_ce * d_ce + a_mlm * d_mlm)
    return dlogits @ weight + a_cos * _tl_cos(h, t_h)  # dloss never reaches the cosine part


def triple_loss_ignored_not_zeroed(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_mlm, a_cos = alphas
    logits, d_ce, d_mlm, keep, oh = _tl_parts(h, weight, t_logits, labels, tau)
    d_mlm = (softmax(logits) - oh) / keep.sum()  # rows labelled -100 keep softmax/n
    return dloss * ((a_ce * d_ce + a_mlm * d_mlm) @ weight + a_cos * _tl_cos(h, t_h))


def triple_loss_kl_student_no_tau(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_mlm, a_cos = alphas
    logits, d_ce, d_mlm, keep, oh = _tl_parts(h, weight, t_logits, labels, tau)
    P = h.shape[0]
    d_ce = tau / P * (softmax(logits) - softmax(t_logits / tau))  # student softmax without tau
    return dloss * ((a_ce * d_ce + a_mlm * d_mlm) @ weight + a_cos * _tl_cos(h, t_h))


# ------------------------------------------------------------------ hidden_mse

def _mse_parts(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    return e, 2.0 * e / e.size * dloss


def _dw(de, s_h):
    return de.reshape(-1, de.shape[-1]).T @ s_h.reshape(-1, s_h.shape[-1])


def hidden_mse_control(dloss, s_h, t_h, weight):
    e, de = _mse_parts(dloss, s_h, t_h, weight)
    return de @ weight, _dw(de, s_h)


def hidden_mse_no_two(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = e / e.size * dloss  # forgot the 2 of the square
    return de @ weight, _dw(de, s_h)


def hidden_mse_mean_positions(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    B, T, CT = e.shape
    de = 2.0 * e / (B * T) * dloss  # mean over positions, not elements
    return de @ weight, _dw(de, s_h)


def hidden_mse_dw_transposed(dloss, s_h, t_h, weight):
    e, de = _mse_parts(dloss, s_h, t_h, weight)
    return de @ weight, s_h.reshape(-1, s_h.shape[-1]).T @ de.reshape(-1, de.shape[-1])  # (CS, CT)


def hidden_mse_sign(dloss, s_h, t_h, weight):
    e = t_h - s_h @ weight.T  # residual the other way round
    de = 2.0 * e / e.size * dloss
    return de @ weight, _dw(de, s_h)


def hidden_mse_no_dloss(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = 2.0 * e / e.size
    return de @ weight, _dw(de, s_h)


def hidden_mse_dw_per_batch(dloss, s_h, t_h, weight):
    e, de = _mse_parts(dloss, s_h, t_h, weight)
    return de @ weight, de.swapaxes(1, 2) @ s_h  # (B, CT, CS): batch axis not summed


def hidden_mse_return_order(dloss, s_h, t_h, weight):
    e, de = _mse_parts(dloss, s_h, t_h, weight)
    return _dw(de, s_h), de @ weight


def hidden_mse_no_mean(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = 2.0 * e * dloss  # forgot the 1/n of the mean
    return de @ weight, _dw(de, s_h)


def hidden_mse_dw_extra_mean(dloss, s_h, t_h, weight):
    e, de = _mse_parts(dloss, s_h, t_h, weight)
    return de @ weight, _dw(de, s_h) / e.size  # divided by n a second time for dweight


ENTRIES = [
    entry("cosine", "control", "correct", cosine_control, True),
    entry("cosine", "no_norm_term", "dropped the -cos*s/|s|^2 term", cosine_no_norm_term),
    entry("cosine", "mean_all_positions", "divides by B*T instead of real count", cosine_mean_all_positions),
    entry("cosine", "no_mask", "padding positions not zeroed", cosine_no_mask),
    entry("cosine", "sign", "gradient of cos, not of 1 - cos", cosine_sign),
    entry("cosine", "norm_not_squared", "cos * s/|s| instead of /|s|^2", cosine_norm_not_squared),
    entry("cosine", "mask_broadcast", "mask (B, T) used without [..., None]", cosine_mask_broadcast),
    entry("cosine", "swapped_st", "wrote d cos/d t (s and t swapped)", cosine_swapped_st),
    entry("cosine", "per_row_count", "divides by each row's real count", cosine_per_row_count),
    entry("cosine", "no_dloss", "forgot to multiply by dloss", cosine_no_dloss),
    entry("triple_loss", "control", "correct", triple_loss_control, True),
    entry("triple_loss", "no_cos", "forgot the cosine loss's gradient", triple_loss_no_cos),
    entry("triple_loss", "alphas_swapped", "unpacked alphas as (a_mlm, a_ce, a_cos)", triple_loss_alphas_swapped),
    entry("triple_loss", "kl_no_tau2", "KL part without the tau**2", triple_loss_kl_no_tau2),
    entry("triple_loss", "mlm_over_P", "MLM divided by P rows, not labelled ones", triple_loss_mlm_over_P),
    entry("triple_loss", "no_acos", "cosine part not multiplied by a_cos", triple_loss_no_acos),
    entry("triple_loss", "cos_no_norm_term", "cosine part missing the -cos*h/|h|^2 term", triple_loss_cos_no_norm_term),
    entry("triple_loss", "dloss_logits_only", "dloss applied to logit part only", triple_loss_dloss_logits_only),
    entry("triple_loss", "ignored_not_zeroed", "MLM rows with label -100 not zeroed", triple_loss_ignored_not_zeroed),
    entry("triple_loss", "kl_student_no_tau", "KL student softmax without tau", triple_loss_kl_student_no_tau),
    entry("hidden_mse", "control", "correct", hidden_mse_control, True),
    entry("hidden_mse", "no_two", "forgot the factor 2 of the square", hidden_mse_no_two),
    entry("hidden_mse", "mean_positions", "divides by B*T, not B*T*CT", hidden_mse_mean_positions),
    entry("hidden_mse", "dw_transposed", "dweight = s_h^T de, shape (CS, CT)", hidden_mse_dw_transposed),
    entry("hidden_mse", "sign", "residual t_h - s_h W^T, sign flipped", hidden_mse_sign),
    entry("hidden_mse", "no_dloss", "forgot to multiply by dloss", hidden_mse_no_dloss),
    entry("hidden_mse", "dw_per_batch", "dweight keeps the batch axis (B, CT, CS)", hidden_mse_dw_per_batch),
    entry("hidden_mse", "return_order", "returns (dweight, ds_h)", hidden_mse_return_order),
    entry("hidden_mse", "no_mean", "forgot the 1/n of the mean", hidden_mse_no_mean),
    entry("hidden_mse", "dw_extra_mean", "dweight divided by n a second time", hidden_mse_dw_extra_mean),
]
