"""Wrong backward passes for the hint keys added after outside sets 13 and 14.

Each function shows one mistake the way a learner writes it (not with the recogniser's code, nor
with the sets' code); ``test_exercise_hints.py`` checks that it fires its key and no other, and
``test_exercise_hint_texts.py`` that the sharpened texts say which part is wrong.
"""
import math

import numpy as np

from minidistil.exercises import solutions as S


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _ln_sum_for_mean(dy, x, gamma, eps=1e-12):
    C = x.shape[-1]
    mu = x.sum(-1, keepdims=True) / C
    var = ((x - mu) ** 2).sum(-1, keepdims=True) / C
    inv = (var + eps) ** -0.5
    xh = (x - mu) * inv
    dxh = dy * gamma
    # "minus the mean of dxhat" written as the plain sum over the features
    dx = inv * (dxh - np.sum(dxh, axis=-1, keepdims=True) - xh * np.sum(dxh * xh, -1, keepdims=True) / C)
    axes = tuple(range(x.ndim - 1))
    return dx, np.sum(dy * xh, axis=axes), np.sum(dy, axis=axes)


def _sm_row_mean(dp, x, tau):
    p = _softmax(x / tau)
    inner = np.mean(p * dp, axis=1, keepdims=True)  # should be the row SUM
    return p * (dp - inner) / tau


def _lsm_dy_over_p(dy, x, tau):
    p = _softmax(x / tau)
    return dy / (p * tau)  # d log p = dp / p, taken as the whole backward


def _lsm_weighted_sum(dy, x, tau):
    p = _softmax(x / tau)
    s = np.sum(p * dy, axis=-1)[..., None]  # p inside the sum
    return (dy - s) / tau


def _attn_dk_with_k(dout, q, k, v, probs):
    HS = q.shape[-1]
    dv = np.einsum("bhqk,bhqd->bhkd", probs, dout)
    dprobs = np.einsum("bhqd,bhkd->bhqk", dout, v)
    ds = probs * (dprobs - np.sum(dprobs * probs, -1, keepdims=True))
    dq = np.einsum("bhqk,bhkd->bhqd", ds, k) / math.sqrt(HS)
    dk = np.einsum("bhqk,bhqd->bhkd", ds, k) / math.sqrt(HS)  # k where q belongs
    return dq, dk, dv


def _attn_dq_no_softmax(dout, q, k, v, probs):
    _, dk, dv = S.attention_backward(dout, q, k, v, probs)
    dprobs = np.einsum("bhqd,bhkd->bhqk", dout, v)
    return np.einsum("bhqk,bhkd->bhqd", dprobs, k) / math.sqrt(q.shape[-1]), dk, dv


def _attn_dk_unscaled(dout, q, k, v, probs):
    dq, dk, dv = S.attention_backward(dout, q, k, v, probs)
    return dq, dk * math.sqrt(q.shape[-1]), dv  # forgot the 1/sqrt(HS) on dk only


def _kl_over_vocab(dloss, s_logits, t_logits, tau):
    n = s_logits.shape[1]  # the vocabulary, where the rows belong
    return dloss * tau * (_softmax(s_logits / tau) - _softmax(t_logits / tau)) / n


def _kl_cross_term_only(dloss, s_logits, t_logits, tau):
    q = _softmax(t_logits / tau)
    # d/ds of -sum q log softmax(s/tau), keeping the -q and dropping p * sum(q)
    return -dloss * tau * q / len(s_logits)


def _mse_first_sequence(dloss, s_h, t_h, weight):
    err = np.einsum("btj,kj->btk", s_h, weight) - t_h
    de = dloss * 2 * err / err.size
    return np.einsum("btk,kj->btj", de, weight), de[0].T @ s_h[0]  # loop body without the loop


def _triple_no_cos_weight(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    al = np.array(alphas, dtype=float)
    return S.triple_loss_backward(dloss, h, weight, t_logits, t_h, labels, tau, (al[0], al[1], 1.0))


SET13_KEY_CASES = {
    "layernorm_mean_as_sum": ("layernorm", _ln_sum_for_mean),
    "softmax_mean_for_sum": ("softmax_t", _sm_row_mean),
    "log_softmax_over_p": ("log_softmax_t", _lsm_dy_over_p),
    "log_softmax_p_in_sum": ("log_softmax_t", _lsm_weighted_sum),
    "attention_dk_uses_k": ("attention", _attn_dk_with_k),
    "kl_divided_by_V": ("kl_soft_target", _kl_over_vocab),
    "kl_only_q_term": ("kl_soft_target", _kl_cross_term_only),
    "mse_dweight_one_row": ("hidden_mse", _mse_first_sequence),
}
# sharpened texts: (exercise, learner, key, a phrase its text must hold)
SET13_TEXT_CASES = [
    ("attention", _attn_dq_no_softmax, "attention_softmax", "skips the softmax backward"),
    ("attention", _attn_dk_unscaled, "attention_scale", "Your dk lacks it"),
    ("triple_loss", _triple_no_cos_weight, "triple_weights", "Yours lacks a_cos"),
    ("hidden_mse", _mse_first_sequence, "mse_dweight_one_row", "batch row 0 only"),
]
