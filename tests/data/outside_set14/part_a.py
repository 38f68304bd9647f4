"""Learner answers for linear, gelu, layernorm (one control + nine slips each)."""
import math

import numpy as np

from ._common import entry, erf

# ---------------------------------------------------------------- linear


def lin_control(dy, x, weight):
    dy2 = dy.reshape(-1, dy.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    return (dy2 @ weight).reshape(x.shape), dy2.T @ x2, dy2.sum(axis=0)


def lin_dweight_transposed(dy, x, weight):
    dy2 = dy.reshape(-1, dy.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    return (dy2 @ weight).reshape(x.shape), x2.T @ dy2, dy2.sum(axis=0)


def lin_dx_weight_T(dy, x, weight):
    dy2 = dy.reshape(-1, dy.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    return (dy2 @ weight.T).reshape(x.shape), dy2.T @ x2, dy2.sum(axis=0)


def lin_dbias_axis1(dy, x, weight):
    dy2 = dy.reshape(-1, dy.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    return (dy2 @ weight).reshape(x.shape), dy2.T @ x2, dy2.sum(axis=1)


def lin_dbias_mean(dy, x, weight):
    dy2 = dy.reshape(-1, dy.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    return (dy2 @ weight).reshape(x.shape), dy2.T @ x2, dy2.mean(axis=0)


def lin_return_order(dy, x, weight):
    dy2 = dy.reshape(-1, dy.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    return (dy2 @ weight).reshape(x.shape), dy2.sum(axis=0), dy2.T @ x2


def lin_dbias_sum0_unflattened(dy, x, weight):
    dy2 = dy.reshape(-1, dy.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    return (dy2 @ weight).reshape(x.shape), dy2.T @ x2, dy.sum(axis=0)


def lin_dweight_over_N(dy, x, weight):
    dy2 = dy.reshape(-1, dy.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    return (dy2 @ weight).reshape(x.shape), dy2.T @ x2 / x2.shape[0], dy2.sum(axis=0)


def lin_dbias_keepdims(dy, x, weight):
    dy2 = dy.reshape(-1, dy.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    return (dy2 @ weight).reshape(x.shape), dy2.T @ x2, dy2.sum(axis=0, keepdims=True)


def lin_dweight_outer_of_sums(dy, x, weight):
    dy2 = dy.reshape(-1, dy.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    return (dy2 @ weight).reshape(x.shape), np.outer(dy2.sum(0), x2.sum(0)), dy2.sum(axis=0)


# ---------------------------------------------------------------- gelu
S2 = math.sqrt(2.0)
S2PI = math.sqrt(2.0 * math.pi)


def gelu_control(dy, x):
    Phi = 0.5 * (1.0 + erf(x / S2))
    phi = np.exp(-0.5 * x * x) / S2PI
    return dy * (Phi + x * phi)


def gelu_no_product_rule(dy, x):
    Phi = 0.5 * (1.0 + erf(x / S2))
    return dy * Phi


def gelu_only_x_phi(dy, x):
    phi = np.exp(-0.5 * x * x) / S2PI
    return dy * (x * phi)


def gelu_pdf_no_sqrt(dy, x):
    Phi = 0.5 * (1.0 + erf(x / S2))
    phi = np.exp(-0.5 * x * x) / (2.0 * math.pi)
    return dy * (Phi + x * phi)


def gelu_pdf_no_half_exponent(dy, x):
    Phi = 0.5 * (1.0 + erf(x / S2))
    phi = np.exp(-x * x) / S2PI
    return dy * (Phi + x * phi)


def gelu_cdf_no_half(dy, x):
    Phi = 1.0 + erf(x / S2)
    phi = np.exp(-0.5 * x * x) / S2PI
    return dy * (Phi + x * phi)


def gelu_erf_no_sqrt2(dy, x):
    Phi = 0.5 * (1.0 + erf(x))
    phi = np.exp(-0.5 * x * x) / S2PI
    return dy * (Phi + x * phi)


def gelu_tanh_derivative(dy, x):
    c = math.sqrt(2.0 / math.pi)
    u = c * (x + 0.044715 * x ** 3)
    t = np.tanh(u)
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * x * x))


def gelu_forgot_dy(dy, x):
    Phi = 0.5 * (1.0 + erf(x / S2))
    phi = np.exp(-0.5 * x * x) / S2PI
    return Phi + x * phi


def gelu_sign_x_phi(dy, x):
    Phi = 0.5 * (1.0 + erf(x / S2))
    phi = np.exp(-0.5 * x * x) / S2PI
    return dy * (Phi - x * phi)


# ---------------------------------------------------------------- layernorm


def _ln_stats(x, eps):
    mean = x.mean(axis=-1, keepdims=True)
    xc = x - mean
    var = (xc * xc).mean(axis=-1, keepdims=True)
    r = 1.0 / np.sqrt(var + eps)
    return xc, var, r


def _lead(x):
    return tuple(range(x.ndim - 1))


def ln_control(dy, x, gamma, eps=1e-12):
    xc, var, r = _ln_stats(x, eps)
    xhat = xc * r
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).sum(_lead(x)), dy.sum(_lead(x))


def ln_no_variance_term(dy, x, gamma, eps=1e-12):
    xc, var, r = _ln_stats(x, eps)
    xhat = xc * r
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True))
    return dx, (dy * xhat).sum(_lead(x)), dy.sum(_lead(x))


def ln_no_mean_term(dy, x, gamma, eps=1e-12):
    xc, var, r = _ln_stats(x, eps)
    xhat = xc * r
    g = dy * gamma
    dx = r * (g - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).sum(_lead(x)), dy.sum(_lead(x))


def ln_forgot_gamma(dy, x, gamma, eps=1e-12):
    xc, var, r = _ln_stats(x, eps)
    xhat = xc * r
    g = dy
    dx = r * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).sum(_lead(x)), dy.sum(_lead(x))


def ln_unbiased_var(dy, x, gamma, eps=1e-12):
    mean = x.mean(axis=-1, keepdims=True)
    xc = x - mean
    var = x.var(axis=-1, ddof=1, keepdims=True)
    r = 1.0 / np.sqrt(var + eps)
    xhat = xc * r
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).sum(_lead(x)), dy.sum(_lead(x))


def ln_dgamma_uses_xc(dy, x, gamma, eps=1e-12):
    xc, var, r = _ln_stats(x, eps)
    xhat = xc * r
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, (dy * xc).sum(_lead(x)), dy.sum(_lead(x))


def ln_return_order(dy, x, gamma, eps=1e-12):
    xc, var, r = _ln_stats(x, eps)
    xhat = xc * r
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, dy.sum(_lead(x)), (dy * xhat).sum(_lead(x))


def ln_dvar_wrong_power(dy, x, gamma, eps=1e-12):
    xc, var, r = _ln_stats(x, eps)
    C = x.shape[-1]
    g = dy * gamma
    dvar = (g * xc).sum(-1, keepdims=True) * -0.5 * (var + eps) ** -0.5
    dmean = -(g * r).sum(-1, keepdims=True)
    dx = g * r + dvar * 2.0 * xc / C + dmean / C
    return dx, (dy * xc * r).sum(_lead(x)), dy.sum(_lead(x))


def ln_dgamma_sum_last_axis(dy, x, gamma, eps=1e-12):
    xc, var, r = _ln_stats(x, eps)
    xhat = xc * r
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).sum(-1), dy.sum(_lead(x))


def ln_mean_term_sum(dy, x, gamma, eps=1e-12):
    xc, var, r = _ln_stats(x, eps)
    xhat = xc * r
    g = dy * gamma
    dx = r * (g - g.sum(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).sum(_lead(x)), dy.sum(_lead(x))


ENTRIES = [
    entry("linear", "control", "correct", lin_control, True),
    entry("linear", "dweight_transposed", "dweight = x.T @ dy, shape (IN, OUT)", lin_dweight_transposed),
    entry("linear", "dx_weight_T", "dx = dy @ weight.T (copied the forward's transpose)", lin_dx_weight_T),
    entry("linear", "dbias_axis1", "dbias summed over axis 1 (features) instead of rows", lin_dbias_axis1),
    entry("linear", "dbias_mean", "dbias averaged over rows instead of summed", lin_dbias_mean),
    entry("linear", "return_order", "returned (dx, dbias, dweight)", lin_return_order),
    entry("linear", "dbias_sum0_unflattened", "dbias = dy.sum(axis=0) on the unflattened dy (keeps T)", lin_dbias_sum0_unflattened),
    entry("linear", "dweight_over_N", "dweight divided by the number of rows (a mean)", lin_dweight_over_N),
    entry("linear", "dbias_keepdims", "dbias summed with keepdims=True, shape (1, OUT)", lin_dbias_keepdims),
    entry("linear", "dweight_outer_of_sums", "dweight = outer(sum of dy, sum of x) over rows", lin_dweight_outer_of_sums),
    entry("gelu", "control", "correct", gelu_control, True),
    entry("gelu", "no_product_rule", "dx = dy * Phi(x): forgot the x*phi(x) product-rule term", gelu_no_product_rule),
    entry("gelu", "only_x_phi", "dx = dy * x*phi(x): forgot the Phi(x) term", gelu_only_x_phi),
    entry("gelu", "pdf_no_sqrt", "normal pdf divided by 2*pi instead of sqrt(2*pi)", gelu_pdf_no_sqrt),
    entry("gelu", "pdf_no_half_exponent", "normal pdf written exp(-x**2) (dropped the 1/2)", gelu_pdf_no_half_exponent),
    entry("gelu", "cdf_no_half", "Phi written 1 + erf(x/sqrt 2) (dropped the 1/2)", gelu_cdf_no_half),
    entry("gelu", "erf_no_sqrt2", "Phi written 0.5*(1 + erf(x)) (dropped the /sqrt 2)", gelu_erf_no_sqrt2),
    entry("gelu", "tanh_derivative", "used the derivative of the tanh approximation", gelu_tanh_derivative),
    entry("gelu", "forgot_dy", "returned gelu'(x) without multiplying by dy", gelu_forgot_dy),
    entry("gelu", "sign_x_phi", "Phi(x) - x*phi(x): sign of the product-rule term", gelu_sign_x_phi),
    entry("layernorm", "control", "correct", ln_control, True),
    entry("layernorm", "no_variance_term", "dropped the -xhat*mean(g*xhat) variance term", ln_no_variance_term),
    entry("layernorm", "no_mean_term", "dropped the -mean(g) mean term", ln_no_mean_term),
    entry("layernorm", "forgot_gamma", "g = dy: forgot to multiply by gamma before the LN backward", ln_forgot_gamma),
    entry("layernorm", "unbiased_var", "recomputed var with ddof=1 (torch.var default)", ln_unbiased_var),
    entry("layernorm", "dgamma_uses_xc", "dgamma = sum(dy * (x - mean)): xhat not normalised", ln_dgamma_uses_xc),
    entry("layernorm", "return_order", "returned (dx, dbeta, dgamma)", ln_return_order),
    entry("layernorm", "dvar_wrong_power", "dvar uses (var+eps)**-0.5 instead of **-1.5", ln_dvar_wrong_power),
    entry("layernorm", "dgamma_sum_last_axis", "dgamma summed over the feature axis instead of rows", ln_dgamma_sum_last_axis),
    entry("layernorm", "mean_term_sum", "mean term written sum(g) instead of mean(g) (Σ_j read as sum)", ln_mean_term_sum),
]
