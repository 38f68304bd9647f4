"""linear, gelu, layernorm, softmax_t, log_softmax_t: a control and 9 single slips each."""
from __future__ import annotations

import math

import numpy as np

from ._common import SQ2, SQ2PI, _erf, build, softmax


def linear_impl(dy, x, weight, slip=None):
    OUT, IN = weight.shape
    dy2, x2 = dy.reshape(-1, OUT), x.reshape(-1, IN)
    N = dy2.shape[0]
    dx = dy @ weight.T if slip == "dx_colvec_habit" else dy @ weight
    if slip == "dw_transposed":
        dW = x2.T @ dy2
    elif slip == "dw_outer_of_sums":
        dW = np.outer(dy2.sum(axis=0), x2.sum(axis=0))
    else:
        dW = dy2.T @ x2
    if slip == "db_axis1":
        db = dy.sum(axis=1)
    elif slip == "db_mean":
        db = dy2.mean(axis=0)
    elif slip == "db_total_sum":
        db = np.sum(dy)
    elif slip == "db_keepdims":
        db = dy2.sum(axis=0, keepdims=True)
    else:
        db = dy2.sum(axis=0)
    if slip == "all_over_n":
        dx, dW, db = dx / N, dW / N, db / N
    if slip == "return_order":
        return dW, dx, db
    return dx, dW, db


LINEAR = build("linear", linear_impl, "dy, x, weight", [
    ("dw_transposed", "dweight = x.T @ dy: the (IN, OUT) transpose of the weight gradient"),
    ("dx_colvec_habit", "column-vector habit: dx = dy @ weight.T instead of dy @ weight"),
    ("db_axis1", "dbias = dy.sum(axis=1): summed over the output axis, not the rows"),
    ("db_mean", "dbias = dy.mean(axis=0): mean over rows instead of sum"),
    ("db_total_sum", "dbias = np.sum(dy): forgot the axis, a scalar"),
    ("db_keepdims", "dbias = dy.sum(axis=0, keepdims=True): shape (1, OUT)"),
    ("dw_outer_of_sums", "dweight = outer(dy.sum(0), x.sum(0)): summed the batch before the product"),
    ("all_over_n", "divided dx, dweight and dbias by N as if the loss were a mean"),
    ("return_order", "returned (dweight, dx, dbias) instead of (dx, dweight, dbias)"),
])


def gelu_impl(dy, x, slip=None):
    Phi = 0.5 * (1.0 + _erf(x / SQ2))
    phi = np.exp(-0.5 * x * x) / SQ2PI
    if slip == "erf_arg_no_sqrt2":
        Phi = 0.5 * (1.0 + _erf(x))
    elif slip == "phi_no_normaliser":
        phi = np.exp(-0.5 * x * x)
    elif slip == "Phi_no_half":
        Phi = 1.0 + _erf(x / SQ2)
    if slip == "dropped_x_phi":
        d = Phi
    elif slip == "dropped_Phi":
        d = x * phi
    elif slip == "phi_without_x":
        d = Phi + phi
    elif slip == "tanh_approx":
        c = math.sqrt(2.0 / math.pi)
        u = c * (x + 0.044715 * x ** 3)
        th = np.tanh(u)
        d = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * c * (1.0 + 3 * 0.044715 * x * x)
    else:
        d = Phi + x * phi
    if slip == "no_dy":
        return d
    if slip == "inplace_dy":
        dy *= d
        return dy
    return dy * d


GELU = build("gelu", gelu_impl, "dy, x", [
    ("dropped_x_phi", "product rule half done: dx = dy * Phi(x), the x*phi(x) term dropped"),
    ("dropped_Phi", "product rule half done: dx = dy * x * phi(x), the Phi(x) term dropped"),
    ("phi_without_x", "dx = dy * (Phi + phi): forgot the x multiplying phi"),
    ("phi_no_normaliser", "phi = exp(-x^2/2) without the 1/sqrt(2 pi)"),
    ("erf_arg_no_sqrt2", "Phi = 0.5 * (1 + erf(x)): dropped the /sqrt(2) inside erf"),
    ("Phi_no_half", "Phi = 1 + erf(x/sqrt 2): forgot the 0.5"),
    ("tanh_approx", "used the derivative of the tanh approximation of GELU"),
    ("no_dy", "returned gelu'(x) without multiplying by dy"),
    ("inplace_dy", "dy *= gelu'(x); return dy (writes into the input)"),
])


def layernorm_impl(dy, x, gamma, eps=1e-12, slip=None):
    C = x.shape[-1]
    mean = x.mean(axis=-1, keepdims=True)
    if slip == "unbiased_var":
        var = x.var(axis=-1, ddof=1, keepdims=True)
    else:
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    r = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean) * r
    g = dy if slip == "g_without_gamma" else dy * gamma
    mean_term = 0.0 if slip == "no_mean_term" else g.mean(axis=-1, keepdims=True)
    if slip == "no_var_term":
        var_term = 0.0
    elif slip == "var_term_sum":
        var_term = xhat * (g * xhat).sum(axis=-1, keepdims=True)
    else:
        var_term = xhat * (g * xhat).mean(axis=-1, keepdims=True)
    dx = g - mean_term - var_term
    if slip != "forgot_rstd":
        dx = r * dx
    if slip == "param_grads_last_axis":
        dgamma, dbeta = (dy * xhat).sum(axis=-1), dy.sum(axis=-1)
    else:
        src = x if slip == "dgamma_with_x" else xhat
        dgamma = (dy * src).reshape(-1, C).sum(axis=0)
        dbeta = dy.reshape(-1, C).sum(axis=0)
    if slip == "return_order":
        return dx, dbeta, dgamma
    return dx, dgamma, dbeta


LAYERNORM = build("layernorm", layernorm_impl, "dy, x, gamma, eps=1e-12", [
    ("no_var_term", "dx = rstd * (g - mean(g)): dropped the variance term"),
    ("no_mean_term", "dx = rstd * (g - xhat * mean(g*xhat)): dropped the mean term"),
    ("g_without_gamma", "used dy instead of dy*gamma as the gradient reaching xhat"),
    ("dgamma_with_x", "dgamma = sum(dy * x): used x instead of the normalised xhat"),
    ("param_grads_last_axis", "dgamma, dbeta summed over the feature axis (-1), not the rows"),
    ("unbiased_var", "recomputed the variance with ddof=1 (torch.var habit)"),
    ("var_term_sum", "variance term xhat * sum(g*xhat): sum where the mean (1/C) belongs"),
    ("forgot_rstd", "forgot the overall rstd factor in dx"),
    ("return_order", "returned (dx, dbeta, dgamma): the two parameter grads swapped"),
])


def softmax_t_impl(dp, x, tau, slip=None):
    p = softmax(x) if slip == "p_without_tau" else softmax(x / tau)
    if slip == "sum_axis0":
        s = (dp * p).sum(axis=0, keepdims=True)
    elif slip == "no_keepdims":
        s = (dp * p).sum(axis=-1)
    elif slip == "sum_without_p":
        s = dp.sum(axis=-1, keepdims=True)
    else:
        s = (dp * p).sum(axis=-1, keepdims=True)
    if slip == "diagonal_jacobian":
        dz = dp * p * (1.0 - p)
    elif slip == "sign_flipped":
        dz = p * (s - dp)
    else:
        dz = p * (dp - s)
    if slip == "no_tau_factor":
        return dz
    if slip == "times_tau":
        return dz * tau
    if slip == "tau_squared":
        return dz / tau ** 2
    return dz / tau


SOFTMAX_T = build("softmax_t", softmax_t_impl, "dp, x, tau", [
    ("diagonal_jacobian", "dx = dp * p * (1 - p) / tau: only the Jacobian's diagonal"),
    ("no_tau_factor", "forgot the chain-rule 1/tau"),
    ("times_tau", "multiplied by tau instead of dividing"),
    ("tau_squared", "divided by tau**2 (applied the temperature twice)"),
    ("sum_axis0", "sum(dp * p) over axis 0 instead of the last axis"),
    ("no_keepdims", "sum(dp * p, axis=-1) without keepdims (broadcasting slip)"),
    ("p_without_tau", "recomputed p = softmax(x) without the temperature"),
    ("sign_flipped", "dx = p * (sum(dp*p) - dp) / tau: sign slip"),
    ("sum_without_p", "subtracted sum(dp) instead of sum(dp * p)"),
])


def log_softmax_t_impl(dy, x, tau, slip=None):
    p = softmax(x) if slip == "p_without_tau" else softmax(x / tau)
    if slip == "ce_shortcut":
        dz = dy - p
    elif slip == "sum_axis0":
        dz = dy - p * dy.sum(axis=0, keepdims=True)
    elif slip == "softmax_formula":
        dz = p * (dy - (dy * p).sum(axis=-1, keepdims=True))
    elif slip == "diagonal_only":
        dz = dy * (1.0 - p)
    elif slip == "sign_flipped":
        dz = p * dy.sum(axis=-1, keepdims=True) - dy
    elif slip == "mean_not_sum":
        dz = dy - p * dy.mean(axis=-1, keepdims=True)
    else:
        dz = dy - p * dy.sum(axis=-1, keepdims=True)
    if slip == "no_tau_factor":
        return dz
    if slip == "times_tau":
        return dz * tau
    return dz / tau


LOG_SOFTMAX_T = build("log_softmax_t", log_softmax_t_impl, "dy, x, tau", [
    ("no_tau_factor", "forgot the chain-rule 1/tau"),
    ("times_tau", "multiplied by tau instead of dividing"),
    ("ce_shortcut", "dx = (dy - p) / tau: the cross-entropy shortcut, sum(dy) taken as 1"),
    ("sum_axis0", "sum(dy) over axis 0 instead of the last axis"),
    ("softmax_formula", "used the softmax backward p*(dy - sum(dy*p)) for log-softmax"),
    ("p_without_tau", "recomputed p = softmax(x) without the temperature"),
    ("diagonal_only", "dx = dy * (1 - p) / tau: only the Jacobian's diagonal"),
    ("sign_flipped", "dx = (p * sum(dy) - dy) / tau: sign slip"),
    ("mean_not_sum", "dx = (dy - p * mean(dy)) / tau: mean where the sum belongs"),
])

ENTRIES = LINEAR + GELU + LAYERNORM + SOFTMAX_T + LOG_SOFTMAX_T
