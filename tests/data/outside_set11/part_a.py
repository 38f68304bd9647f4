"""linear, gelu, layernorm: a control and nine learner-style mistakes each."""
from __future__ import annotations

import math

import numpy as np

from ._util import Phi, entry, erf, phi


# ------------------------------------------------------------------ linear

def _flat(dy, x):
    return dy.reshape(-1, dy.shape[-1]), x.reshape(-1, x.shape[-1])


def linear_control(dy, x, weight):
    d2, x2 = _flat(dy, x)
    return dy @ weight, d2.T @ x2, d2.sum(axis=0)


def linear_dw_transposed(dy, x, weight):
    d2, x2 = _flat(dy, x)
    return dy @ weight, x2.T @ d2, d2.sum(axis=0)  # (IN, OUT)


def linear_dx_weight_T(dy, x, weight):
    d2, x2 = _flat(dy, x)
    return dy @ weight.T, d2.T @ x2, d2.sum(axis=0)  # copied the forward's weight.T


def linear_db_axis1(dy, x, weight):
    d2, x2 = _flat(dy, x)
    return dy @ weight, d2.T @ x2, d2.sum(axis=1)


def linear_db_mean(dy, x, weight):
    d2, x2 = _flat(dy, x)
    return dy @ weight, d2.T @ x2, d2.mean(axis=0)


def linear_return_order(dy, x, weight):
    d2, x2 = _flat(dy, x)
    return d2.T @ x2, dy @ weight, d2.sum(axis=0)


def linear_db_keepdims(dy, x, weight):
    d2, x2 = _flat(dy, x)
    return dy @ weight, d2.T @ x2, d2.sum(axis=0, keepdims=True)  # (1, OUT)


def linear_dw_over_n(dy, x, weight):
    d2, x2 = _flat(dy, x)
    N = x2.shape[0]
    return dy @ weight, d2.T @ x2 / N, d2.sum(axis=0)


def linear_no_dbias(dy, x, weight):
    d2, x2 = _flat(dy, x)
    return dy @ weight, d2.T @ x2  # "the bias is not an argument, so no dbias"


def linear_l2_reg(dy, x, weight):
    d2, x2 = _flat(dy, x)
    reg = 1e-3
    dW = d2.T @ x2
    dW += reg * weight  # CS231n habit: regularisation gradient
    return dy @ weight, dW, d2.sum(axis=0)


# ------------------------------------------------------------------ gelu

def gelu_control(dy, x):
    return dy * (Phi(x) + x * phi(x))


def gelu_no_product_rule(dy, x):
    return dy * Phi(x)  # derivative of x * Phi(x) taken as Phi(x)


def gelu_pdf_unnormalised(dy, x):
    return dy * (Phi(x) + x * np.exp(-0.5 * x * x))  # forgot 1/sqrt(2 pi)


def gelu_tanh_approx(dy, x):
    u = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)
    t = np.tanh(u)
    d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * math.sqrt(2.0 / math.pi) * (1.0 + 3 * 0.044715 * x * x)
    return dy * d  # BERT "gelu" is the erf one, but the tanh formula is what the blog had


def gelu_erf_inner_chain(dy, x):
    # d/dx erf(x/sqrt2) = 2/sqrt(pi) exp(-x^2/2), forgetting the inner 1/sqrt(2)
    derf = 2.0 / math.sqrt(math.pi) * np.exp(-0.5 * x * x)
    return dy * (0.5 * (1.0 + erf(x / math.sqrt(2.0))) + 0.5 * x * derf)


def gelu_pdf_exp_x2(dy, x):
    return dy * (Phi(x) + x * np.exp(-x * x) / math.sqrt(2.0 * math.pi))  # exp(-x^2) not exp(-x^2/2)


def gelu_no_dy(dy, x):
    return Phi(x) + x * phi(x)  # returned gelu'(x), forgot to multiply by dy


def gelu_sign(dy, x):
    return dy * (Phi(x) - x * phi(x))


def gelu_cdf_no_sqrt2(dy, x):
    return dy * (0.5 * (1.0 + erf(x)) + x * phi(x))  # Phi written as (1 + erf(x)) / 2


def gelu_inplace_dy(dy, x):
    dx = dy  # alias, not a copy
    dx *= Phi(x) + x * phi(x)
    return dx


# ------------------------------------------------------------------ layernorm

def _ln_stats(x, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    r = 1.0 / np.sqrt(var + eps)
    return mu, var, r, (x - mu) * r


def _ln_params(dy, xhat):
    C = xhat.shape[-1]
    return (dy * xhat).reshape(-1, C).sum(axis=0), dy.reshape(-1, C).sum(axis=0)


def layernorm_control(dy, x, gamma, eps=1e-12):
    mu, var, r, xhat = _ln_stats(x, eps)
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return (dx, *_ln_params(dy, xhat))


def layernorm_no_var_term(dy, x, gamma, eps=1e-12):
    mu, var, r, xhat = _ln_stats(x, eps)
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True))  # treated rstd as a constant
    return (dx, *_ln_params(dy, xhat))


def layernorm_no_mean_term(dy, x, gamma, eps=1e-12):
    mu, var, r, xhat = _ln_stats(x, eps)
    g = dy * gamma
    dx = r * (g - xhat * (g * xhat).mean(-1, keepdims=True))  # treated the mean as a constant
    return (dx, *_ln_params(dy, xhat))


def layernorm_no_gamma(dy, x, gamma, eps=1e-12):
    mu, var, r, xhat = _ln_stats(x, eps)
    g = dy  # forgot that dxhat = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return (dx, *_ln_params(dy, xhat))


def layernorm_dgamma_x(dy, x, gamma, eps=1e-12):
    mu, var, r, xhat = _ln_stats(x, eps)
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    C = x.shape[-1]
    return dx, (dy * x).reshape(-1, C).sum(axis=0), dy.reshape(-1, C).sum(axis=0)  # x, not xhat


def layernorm_param_axis(dy, x, gamma, eps=1e-12):
    mu, var, r, xhat = _ln_stats(x, eps)
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).sum(axis=-1), dy.sum(axis=-1)  # summed over features, not rows


def layernorm_unbiased_var(dy, x, gamma, eps=1e-12):
    C = x.shape[-1]
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, ddof=1, keepdims=True)  # torch.var habit: unbiased
    r = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * r
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).reshape(-1, C).sum(0), dy.reshape(-1, C).sum(0)


def layernorm_staged_dvar(dy, x, gamma, eps=1e-12):
    # makemore-style staged derivation; the dvar stage lost the -1/2 of the power rule
    C = x.shape[-1]
    mu, var, r, xhat = _ln_stats(x, eps)
    xc = x - mu
    dxhat = dy * gamma
    dvar = (dxhat * xc).sum(-1, keepdims=True) * (var + eps) ** -1.5  # should be * -0.5
    dmu = -(dxhat * r).sum(-1, keepdims=True) + dvar * (-2.0 * xc).mean(-1, keepdims=True)
    dx = dxhat * r + dvar * 2.0 * xc / C + dmu / C
    return (dx, *_ln_params(dy, xhat))


def layernorm_batchnorm_axis(dy, x, gamma, eps=1e-12):
    mu, var, r, xhat = _ln_stats(x, eps)
    g = dy * gamma
    # copied from a BatchNorm backward: the means run over the batch axis
    dx = r * (g - g.mean(0, keepdims=True) - xhat * (g * xhat).mean(0, keepdims=True))
    return (dx, *_ln_params(dy, xhat))


def layernorm_no_rstd(dy, x, gamma, eps=1e-12):
    mu, var, r, xhat = _ln_stats(x, eps)
    g = dy * gamma
    dx = g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True)  # forgot r *
    return (dx, *_ln_params(dy, xhat))


ENTRIES = [
    entry("linear", "control", "correct", linear_control, True),
    entry("linear", "dw_transposed", "dweight = x.T @ dy, shape (IN, OUT)", linear_dw_transposed),
    entry("linear", "dx_weight_T", "dx = dy @ weight.T, copying the forward", linear_dx_weight_T),
    entry("linear", "db_axis1", "dbias = dy.sum(axis=1), wrong axis", linear_db_axis1),
    entry("linear", "db_mean", "dbias = dy.mean(axis=0) instead of sum", linear_db_mean),
    entry("linear", "return_order", "returns (dweight, dx, dbias)", linear_return_order),
    entry("linear", "db_keepdims", "dbias keepdims=True, shape (1, OUT)", linear_db_keepdims),
    entry("linear", "dw_over_n", "dweight divided by N (averaged over the batch)", linear_dw_over_n),
    entry("linear", "no_dbias", "returns only (dx, dweight), no dbias", linear_no_dbias),
    entry("linear", "l2_reg", "adds an L2 term reg*weight to dweight (CS231n habit)", linear_l2_reg),
    entry("gelu", "control", "correct", gelu_control, True),
    entry("gelu", "no_product_rule", "dx = dy * Phi(x), forgot the x*phi(x) term", gelu_no_product_rule),
    entry("gelu", "pdf_unnormalised", "phi without the 1/sqrt(2 pi)", gelu_pdf_unnormalised),
    entry("gelu", "tanh_approx", "used the tanh-approximation derivative", gelu_tanh_approx),
    entry("gelu", "erf_inner_chain", "d erf(x/sqrt2) forgot the inner 1/sqrt(2)", gelu_erf_inner_chain),
    entry("gelu", "pdf_exp_x2", "phi with exp(-x^2) instead of exp(-x^2/2)", gelu_pdf_exp_x2),
    entry("gelu", "no_dy", "returns gelu'(x), forgot to multiply by dy", gelu_no_dy),
    entry("gelu", "sign", "Phi - x*phi, sign slip", gelu_sign),
    entry("gelu", "cdf_no_sqrt2", "Phi written as (1 + erf(x))/2", gelu_cdf_no_sqrt2),
    entry("gelu", "inplace_dy", "dx = dy; dx *= ... writes into dy", gelu_inplace_dy),
    entry("layernorm", "control", "correct", layernorm_control, True),
    entry("layernorm", "no_var_term", "dropped the variance term (rstd as constant)", layernorm_no_var_term),
    entry("layernorm", "no_mean_term", "dropped the mean term (mean as constant)", layernorm_no_mean_term),
    entry("layernorm", "no_gamma", "dxhat = dy, forgot gamma", layernorm_no_gamma),
    entry("layernorm", "dgamma_x", "dgamma = sum(dy * x) not dy * xhat", layernorm_dgamma_x),
    entry("layernorm", "param_axis", "dgamma, dbeta summed over axis -1", layernorm_param_axis),
    entry("layernorm", "unbiased_var", "recomputed var with ddof=1", layernorm_unbiased_var),
    entry("layernorm", "staged_dvar", "staged derivation: dvar lost the -1/2", layernorm_staged_dvar),
    entry("layernorm", "batchnorm_axis", "dx means over axis 0 (BatchNorm copy)", layernorm_batchnorm_axis),
    entry("layernorm", "no_rstd", "dx missing the overall rstd factor", layernorm_no_rstd),
]
