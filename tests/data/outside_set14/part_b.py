"""Learner answers for softmax_t, log_softmax_t, attention (one control + nine slips each)."""
import math

import numpy as np

from ._common import entry, softmax

# ---------------------------------------------------------------- softmax_t


def sm_control(dp, x, tau):
    p = softmax(x, tau)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) / tau


def sm_diagonal_jacobian(dp, x, tau):
    p = softmax(x, tau)
    return p * (1.0 - p) * dp / tau


def sm_forgot_tau(dp, x, tau):
    p = softmax(x, tau)
    return p * (dp - (dp * p).sum(-1, keepdims=True))


def sm_times_tau(dp, x, tau):
    p = softmax(x, tau)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) * tau


def sm_p_without_tau(dp, x, tau):
    p = softmax(x)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) / tau


def sm_sum_axis0(dp, x, tau):
    p = softmax(x, tau)
    return p * (dp - (dp * p).sum(0, keepdims=True)) / tau


def sm_sum_no_keepdims(dp, x, tau):
    p = softmax(x, tau)
    return p * (dp - (dp * p).sum(-1)) / tau


def sm_sum_dp_only(dp, x, tau):
    p = softmax(x, tau)
    return p * (dp - dp.sum(-1, keepdims=True)) / tau


def sm_sign(dp, x, tau):
    p = softmax(x, tau)
    return p * ((dp * p).sum(-1, keepdims=True) - dp) / tau


def sm_mean_not_sum(dp, x, tau):
    p = softmax(x, tau)
    return p * (dp - (dp * p).mean(-1, keepdims=True)) / tau


# ---------------------------------------------------------------- log_softmax_t


def lsm_control(dy, x, tau):
    p = softmax(x, tau)
    return (dy - p * dy.sum(-1, keepdims=True)) / tau


def lsm_forgot_tau(dy, x, tau):
    p = softmax(x, tau)
    return dy - p * dy.sum(-1, keepdims=True)


def lsm_softmax_formula(dy, x, tau):
    p = softmax(x, tau)
    return p * (dy - (dy * p).sum(-1, keepdims=True)) / tau


def lsm_one_over_p(dy, x, tau):
    p = softmax(x, tau)
    return dy / p / tau


def lsm_sum_axis0(dy, x, tau):
    p = softmax(x, tau)
    return (dy - p * dy.sum(0, keepdims=True)) / tau


def lsm_forgot_p(dy, x, tau):
    return (dy - dy.sum(-1, keepdims=True)) / tau


def lsm_sum_weighted_by_p(dy, x, tau):
    p = softmax(x, tau)
    return (dy - (p * dy).sum(-1, keepdims=True)) / tau


def lsm_p_without_tau(dy, x, tau):
    p = softmax(x)
    return (dy - p * dy.sum(-1, keepdims=True)) / tau


def lsm_identity(dy, x, tau):
    return dy / tau


def lsm_mean_not_sum(dy, x, tau):
    p = softmax(x, tau)
    return (dy - p * dy.mean(-1, keepdims=True)) / tau


# ---------------------------------------------------------------- attention


def _tr(a):
    return a.swapaxes(-1, -2)


def att_control(dout, q, k, v, probs):
    s = 1.0 / math.sqrt(q.shape[-1])
    dv = _tr(probs) @ dout
    dP = dout @ _tr(v)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    return dS @ k * s, _tr(dS) @ q * s, dv


def att_dk_no_transpose(dout, q, k, v, probs):
    s = 1.0 / math.sqrt(q.shape[-1])
    dv = _tr(probs) @ dout
    dP = dout @ _tr(v)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    return dS @ k * s, dS @ q * s, dv


def att_dv_no_transpose(dout, q, k, v, probs):
    s = 1.0 / math.sqrt(q.shape[-1])
    dv = probs @ dout
    dP = dout @ _tr(v)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    return dS @ k * s, _tr(dS) @ q * s, dv


def att_forgot_scale(dout, q, k, v, probs):
    dv = _tr(probs) @ dout
    dP = dout @ _tr(v)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    return dS @ k, _tr(dS) @ q, dv


def att_scale_only_dq(dout, q, k, v, probs):
    s = 1.0 / math.sqrt(q.shape[-1])
    dv = _tr(probs) @ dout
    dP = dout @ _tr(v)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    return dS @ k * s, _tr(dS) @ q, dv


def att_softmax_diagonal(dout, q, k, v, probs):
    s = 1.0 / math.sqrt(q.shape[-1])
    dv = _tr(probs) @ dout
    dP = dout @ _tr(v)
    dS = probs * (1.0 - probs) * dP
    return dS @ k * s, _tr(dS) @ q * s, dv


def att_softmax_sum_axis(dout, q, k, v, probs):
    s = 1.0 / math.sqrt(q.shape[-1])
    dv = _tr(probs) @ dout
    dP = dout @ _tr(v)
    dS = probs * (dP - (dP * probs).sum(-2, keepdims=True))
    return dS @ k * s, _tr(dS) @ q * s, dv


def att_dP_transposed(dout, q, k, v, probs):
    s = 1.0 / math.sqrt(q.shape[-1])
    dv = _tr(probs) @ dout
    dP = v @ _tr(dout)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    return dS @ k * s, _tr(dS) @ q * s, dv


def att_dk_uses_k(dout, q, k, v, probs):
    s = 1.0 / math.sqrt(q.shape[-1])
    dv = _tr(probs) @ dout
    dP = dout @ _tr(v)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    return dS @ k * s, _tr(dS) @ k * s, dv


def att_recompute_probs_no_mask(dout, q, k, v, probs):
    s = 1.0 / math.sqrt(q.shape[-1])
    P = softmax(q @ _tr(k) * s)
    dv = _tr(P) @ dout
    dP = dout @ _tr(v)
    dS = P * (dP - (dP * P).sum(-1, keepdims=True))
    return dS @ k * s, _tr(dS) @ q * s, dv


ENTRIES = [
    entry("softmax_t", "control", "correct", sm_control, True),
    entry("softmax_t", "diagonal_jacobian", "dx = p*(1-p)*dp/tau: kept only the Jacobian's diagonal", sm_diagonal_jacobian),
    entry("softmax_t", "forgot_tau", "forgot the 1/tau chain-rule factor", sm_forgot_tau),
    entry("softmax_t", "times_tau", "multiplied by tau instead of dividing", sm_times_tau),
    entry("softmax_t", "p_without_tau", "recomputed p = softmax(x) without the temperature", sm_p_without_tau),
    entry("softmax_t", "sum_axis0", "the sum(dp*p) taken over axis 0 (rows) instead of the last axis", sm_sum_axis0),
    entry("softmax_t", "sum_no_keepdims", "sum(dp*p, -1) without keepdims: broadcasts along the wrong axis", sm_sum_no_keepdims),
    entry("softmax_t", "sum_dp_only", "dp - sum(dp): forgot the p weights inside the sum", sm_sum_dp_only),
    entry("softmax_t", "sign", "p*(sum(dp*p) - dp)/tau: sign flipped", sm_sign),
    entry("softmax_t", "mean_not_sum", "mean(dp*p) over the row instead of sum", sm_mean_not_sum),
    entry("log_softmax_t", "control", "correct", lsm_control, True),
    entry("log_softmax_t", "forgot_tau", "forgot the 1/tau chain-rule factor", lsm_forgot_tau),
    entry("log_softmax_t", "softmax_formula", "used the softmax backward p*(dy - sum(dy*p))/tau", lsm_softmax_formula),
    entry("log_softmax_t", "one_over_p", "d log p = dp/p read as dx = dy/p/tau", lsm_one_over_p),
    entry("log_softmax_t", "sum_axis0", "sum(dy) over axis 0 instead of the last axis", lsm_sum_axis0),
    entry("log_softmax_t", "forgot_p", "dy - sum(dy): forgot the p multiplying the sum", lsm_forgot_p),
    entry("log_softmax_t", "sum_weighted_by_p", "dy - sum(p*dy): p put inside the sum, not outside", lsm_sum_weighted_by_p),
    entry("log_softmax_t", "p_without_tau", "recomputed p = softmax(x) without the temperature", lsm_p_without_tau),
    entry("log_softmax_t", "identity", "dx = dy/tau: forgot the log-normaliser's derivative", lsm_identity),
    entry("log_softmax_t", "mean_not_sum", "p*mean(dy) instead of p*sum(dy)", lsm_mean_not_sum),
    entry("attention", "control", "correct", att_control, True),
    entry("attention", "dk_no_transpose", "dk = dS @ q (forgot dS transposed)", att_dk_no_transpose),
    entry("attention", "dv_no_transpose", "dv = probs @ dout (forgot probs transposed)", att_dv_no_transpose),
    entry("attention", "forgot_scale", "forgot the 1/sqrt(HS) on dq and dk", att_forgot_scale),
    entry("attention", "scale_only_dq", "applied 1/sqrt(HS) to dq but not dk", att_scale_only_dq),
    entry("attention", "softmax_diagonal", "dS = P*(1-P)*dP: diagonal softmax Jacobian", att_softmax_diagonal),
    entry("attention", "softmax_sum_axis", "softmax backward sum over the query axis (-2)", att_softmax_sum_axis),
    entry("attention", "dP_transposed", "dP = v @ dout^T instead of dout @ v^T", att_dP_transposed),
    entry("attention", "dk_uses_k", "dk = dS^T @ k: used k where q belongs", att_dk_uses_k),
    entry("attention", "recompute_probs_no_mask", "recomputed probs from q, k but forgot the padding mask", att_recompute_probs_no_mask),
]
