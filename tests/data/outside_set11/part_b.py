"""softmax_t, log_softmax_t, attention: a control and nine learner-style mistakes each."""
from __future__ import annotations

import math

import numpy as np

from ._util import entry, log_softmax, softmax


# ------------------------------------------------------------------ softmax_t

def softmax_t_control(dp, x, tau):
    p = softmax(x / tau)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) / tau


def softmax_t_no_tau(dp, x, tau):
    p = softmax(x / tau)
    return p * (dp - (dp * p).sum(-1, keepdims=True))  # forgot the chain factor 1/tau


def softmax_t_times_tau(dp, x, tau):
    p = softmax(x / tau)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) * tau


def softmax_t_diagonal(dp, x, tau):
    p = softmax(x / tau)
    return dp * p * (1.0 - p) / tau  # only the diagonal of the Jacobian


def softmax_t_sum_axis0(dp, x, tau):
    p = softmax(x / tau)
    return p * (dp - (dp * p).sum(0, keepdims=True)) / tau


def softmax_t_no_keepdims(dp, x, tau):
    p = softmax(x / tau)
    s = (dp * p).sum(-1)  # (N,) without keepdims
    return p * (dp - s) / tau


def softmax_t_recompute_no_tau(dp, x, tau):
    p = softmax(x)  # recomputed p forgetting the temperature
    return p * (dp - (dp * p).sum(-1, keepdims=True)) / tau


def softmax_t_sign(dp, x, tau):
    p = softmax(x / tau)
    return p * ((dp * p).sum(-1, keepdims=True) - dp) / tau


def softmax_t_unweighted_sum(dp, x, tau):
    p = softmax(x / tau)
    return p * (dp - dp.sum(-1, keepdims=True)) / tau  # sum of dp, not of dp * p


def softmax_t_no_leading_p(dp, x, tau):
    p = softmax(x / tau)
    return (dp - (dp * p).sum(-1, keepdims=True)) / tau  # forgot the leading p *


# ------------------------------------------------------------------ log_softmax_t

def log_softmax_t_control(dy, x, tau):
    p = softmax(x / tau)
    return (dy - p * dy.sum(-1, keepdims=True)) / tau


def log_softmax_t_no_tau(dy, x, tau):
    p = softmax(x / tau)
    return dy - p * dy.sum(-1, keepdims=True)


def log_softmax_t_ce_shortcut(dy, x, tau):
    p = softmax(x / tau)
    return (dy - p) / tau  # assumed sum(dy) == 1 as in the cross-entropy shortcut


def log_softmax_t_softmax_formula(dy, x, tau):
    p = softmax(x / tau)
    return p * (dy - (dy * p).sum(-1, keepdims=True)) / tau  # softmax's backward


def log_softmax_t_sum_axis0(dy, x, tau):
    p = softmax(x / tau)
    return (dy - p * dy.sum(0, keepdims=True)) / tau


def log_softmax_t_recompute_no_tau(dy, x, tau):
    p = softmax(x)
    return (dy - p * dy.sum(-1, keepdims=True)) / tau


def log_softmax_t_sign(dy, x, tau):
    p = softmax(x / tau)
    return (dy + p * dy.sum(-1, keepdims=True)) / tau


def log_softmax_t_times_tau(dy, x, tau):
    p = softmax(x / tau)
    return (dy - p * dy.sum(-1, keepdims=True)) * tau


def log_softmax_t_lse_const(dy, x, tau):
    return dy / tau  # "log-softmax is z minus a constant": treated logsumexp as constant


def log_softmax_t_logp_as_p(dy, x, tau):
    y = log_softmax(x / tau)  # the forward output
    return (dy - y * dy.sum(-1, keepdims=True)) / tau  # used y (log p) where p belongs


# ------------------------------------------------------------------ attention

def _attn_core(dout, q, k, v, probs, scale):
    dv = probs.swapaxes(-1, -2) @ dout
    dP = dout @ v.swapaxes(-1, -2)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    return dS @ k * scale, dS.swapaxes(-1, -2) @ q * scale, dv


def attention_control(dout, q, k, v, probs):
    return _attn_core(dout, q, k, v, probs, 1.0 / math.sqrt(q.shape[-1]))


def attention_no_scale(dout, q, k, v, probs):
    return _attn_core(dout, q, k, v, probs, 1.0)  # forgot 1/sqrt(HS)


def attention_dk_no_transpose(dout, q, k, v, probs):
    s = 1.0 / math.sqrt(q.shape[-1])
    dv = probs.swapaxes(-1, -2) @ dout
    dP = dout @ v.swapaxes(-1, -2)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    return dS @ k * s, dS @ q * s, dv  # dk without transposing dS


def attention_dv_no_transpose(dout, q, k, v, probs):
    s = 1.0 / math.sqrt(q.shape[-1])
    dv = probs @ dout  # forgot probs^T
    dP = dout @ v.swapaxes(-1, -2)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    return dS @ k * s, dS.swapaxes(-1, -2) @ q * s, dv


def attention_softmax_diag(dout, q, k, v, probs):
    s = 1.0 / math.sqrt(q.shape[-1])
    dv = probs.swapaxes(-1, -2) @ dout
    dP = dout @ v.swapaxes(-1, -2)
    dS = probs * (1.0 - probs) * dP  # diagonal softmax Jacobian
    return dS @ k * s, dS.swapaxes(-1, -2) @ q * s, dv


def attention_softmax_axis(dout, q, k, v, probs):
    s = 1.0 / math.sqrt(q.shape[-1])
    dv = probs.swapaxes(-1, -2) @ dout
    dP = dout @ v.swapaxes(-1, -2)
    dS = probs * (dP - (dP * probs).sum(-2, keepdims=True))  # summed over queries
    return dS @ k * s, dS.swapaxes(-1, -2) @ q * s, dv


def attention_times_sqrt(dout, q, k, v, probs):
    return _attn_core(dout, q, k, v, probs, math.sqrt(q.shape[-1]))  # multiplied by sqrt(HS)


def attention_hs_from_T(dout, q, k, v, probs):
    return _attn_core(dout, q, k, v, probs, 1.0 / math.sqrt(q.shape[-2]))  # shape[-2] is T


def attention_recompute_no_mask(dout, q, k, v, probs):
    HS = q.shape[-1]
    P = softmax(q @ k.swapaxes(-1, -2) / math.sqrt(HS))  # recomputed, without the padding bias
    return _attn_core(dout, q, k, v, P, 1.0 / math.sqrt(HS))


def attention_dot_T_4d(dout, q, k, v, probs):
    s = 1.0 / math.sqrt(q.shape[-1])
    dv = probs.swapaxes(-1, -2) @ dout
    dP = dout @ v.T  # .T on a 4-D array reverses all four axes
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    return dS @ k * s, dS.swapaxes(-1, -2) @ q * s, dv


ENTRIES = [
    entry("softmax_t", "control", "correct", softmax_t_control, True),
    entry("softmax_t", "no_tau", "forgot the chain-rule factor 1/tau", softmax_t_no_tau),
    entry("softmax_t", "times_tau", "multiplied by tau instead of dividing", softmax_t_times_tau),
    entry("softmax_t", "diagonal", "dp * p * (1 - p): diagonal Jacobian only", softmax_t_diagonal),
    entry("softmax_t", "sum_axis0", "sum(dp * p) over axis 0", softmax_t_sum_axis0),
    entry("softmax_t", "no_keepdims", "sum(dp * p, -1) without keepdims, broadcast slip", softmax_t_no_keepdims),
    entry("softmax_t", "recompute_no_tau", "recomputed p = softmax(x), no tau", softmax_t_recompute_no_tau),
    entry("softmax_t", "sign", "p * (sum(dp p) - dp): sign flipped", softmax_t_sign),
    entry("softmax_t", "unweighted_sum", "subtracts sum(dp), not sum(dp * p)", softmax_t_unweighted_sum),
    entry("softmax_t", "no_leading_p", "forgot the leading p * in p * (dp - s)", softmax_t_no_leading_p),
    entry("log_softmax_t", "control", "correct", log_softmax_t_control, True),
    entry("log_softmax_t", "no_tau", "forgot the factor 1/tau", log_softmax_t_no_tau),
    entry("log_softmax_t", "ce_shortcut", "dy - p, assuming sum(dy) = 1", log_softmax_t_ce_shortcut),
    entry("log_softmax_t", "softmax_formula", "used softmax's backward p*(dy - sum(dy p))", log_softmax_t_softmax_formula),
    entry("log_softmax_t", "sum_axis0", "sum(dy) over axis 0", log_softmax_t_sum_axis0),
    entry("log_softmax_t", "recompute_no_tau", "p = softmax(x) without tau", log_softmax_t_recompute_no_tau),
    entry("log_softmax_t", "sign", "dy + p * sum(dy): sign flipped", log_softmax_t_sign),
    entry("log_softmax_t", "times_tau", "multiplied by tau instead of dividing", log_softmax_t_times_tau),
    entry("log_softmax_t", "lse_const", "dy / tau: logsumexp treated as a constant", log_softmax_t_lse_const),
    entry("log_softmax_t", "logp_as_p", "used the output log p in place of p", log_softmax_t_logp_as_p),
    entry("attention", "control", "correct", attention_control, True),
    entry("attention", "no_scale", "forgot 1/sqrt(HS) in dq and dk", attention_no_scale),
    entry("attention", "dk_no_transpose", "dk = dS @ q, dS not transposed", attention_dk_no_transpose),
    entry("attention", "dv_no_transpose", "dv = probs @ dout, probs not transposed", attention_dv_no_transpose),
    entry("attention", "softmax_diag", "dS = P(1-P) dP, diagonal softmax Jacobian", attention_softmax_diag),
    entry("attention", "softmax_axis", "softmax backward sums over axis -2", attention_softmax_axis),
    entry("attention", "times_sqrt", "multiplied by sqrt(HS) instead of dividing", attention_times_sqrt),
    entry("attention", "hs_from_T", "HS read as q.shape[-2] (that is T)", attention_hs_from_T),
    entry("attention", "recompute_no_mask", "recomputed probs without the padding mask", attention_recompute_no_mask),
    entry("attention", "dot_T_4d", "dP = dout @ v.T on a 4-D array", attention_dot_T_4d),
]
