"""Outside set 10, part 1 of 3 (see ``__init__.py``)."""
"""Blind outside set of learner mistakes for the 13 gradient exercises.

Written only from the stubs' signatures/docstrings, the forwards and the derivation notes.
Each exercise: one correct control, nine wrong backward passes (one mistake each, on
otherwise correct code). Functions take the stubs' parameters by name.
"""
import math

import numpy as np
erf = np.vectorize(math.erf, otypes=[np.float64])

SQ2PI = math.sqrt(2.0 * math.pi)


def _softmax(x, T=1.0, axis=-1):
    z = (x - x.max(axis=axis, keepdims=True)) / T
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


E = []


def add(ex, name, what, control=False):
    def deco(fn):
        E.append({"id": f"{ex}/{name}", "exercise": ex, "what": what, "fn": fn, "control": control})
        return fn
    return deco


# ----------------------------------------------------------------------------- linear
def _flat(dy, x):
    return dy.reshape(-1, dy.shape[-1]), x.reshape(-1, x.shape[-1])


@add("linear", "control", "correct", True)
def _(dy, x, weight):
    d2, x2 = _flat(dy, x)
    return dy @ weight, d2.T @ x2, d2.sum(0)


@add("linear", "dweight_transposed", "dweight = x.T @ dy, shape (IN, OUT) instead of (OUT, IN)")
def _(dy, x, weight):
    d2, x2 = _flat(dy, x)
    return dy @ weight, x2.T @ d2, d2.sum(0)


@add("linear", "dx_weight_T", "dx = dy @ weight.T (transpose put on the wrong side)")
def _(dy, x, weight):
    d2, x2 = _flat(dy, x)
    return dy @ weight.T, d2.T @ x2, d2.sum(0)


@add("linear", "dbias_mean", "dbias = dy.mean(axis=0): averaged over rows instead of summed")
def _(dy, x, weight):
    d2, x2 = _flat(dy, x)
    return dy @ weight, d2.T @ x2, d2.mean(0)


@add("linear", "dbias_unsummed", "dbias = dy: forgot to sum the bias gradient over the rows")
def _(dy, x, weight):
    d2, x2 = _flat(dy, x)
    return dy @ weight, d2.T @ x2, dy.copy()


@add("linear", "dbias_wrong_axis", "dbias = dy.sum(axis=-1): summed over the output axis, not rows")
def _(dy, x, weight):
    d2, x2 = _flat(dy, x)
    return dy @ weight, d2.T @ x2, dy.sum(axis=-1)


@add("linear", "dweight_over_N", "dweight divided by the number of rows N (thinks it must be averaged)")
def _(dy, x, weight):
    d2, x2 = _flat(dy, x)
    return dy @ weight, d2.T @ x2 / x2.shape[0], d2.sum(0)


@add("linear", "dweight_loop_overwrite", "loop over rows with dW = np.outer(dy[i], x[i]) (= instead of +=)")
def _(dy, x, weight):
    d2, x2 = _flat(dy, x)
    dW = np.zeros_like(weight)
    for i in range(x2.shape[0]):
        dW = np.outer(d2[i], x2[i])
    return dy @ weight, dW, d2.sum(0)


@add("linear", "dx_transposed", "dx = weight.T @ dy.T, returns (IN, N) the transpose of dx")
def _(dy, x, weight):
    d2, x2 = _flat(dy, x)
    return weight.T @ d2.T, d2.T @ x2, d2.sum(0)


@add("linear", "order_swapped", "returns (dweight, dx, dbias): gradients in the wrong order")
def _(dy, x, weight):
    d2, x2 = _flat(dy, x)
    return d2.T @ x2, dy @ weight, d2.sum(0)


# ----------------------------------------------------------------------------- gelu
def _Phi(x):
    return 0.5 * (1.0 + erf(x / math.sqrt(2.0)))


def _phi(x):
    return np.exp(-0.5 * x * x) / SQ2PI


@add("gelu", "control", "correct", True)
def _(dy, x):
    return dy * (_Phi(x) + x * _phi(x))


@add("gelu", "no_product_rule", "dx = dy * Phi(x): forgot the x * phi(x) term of the product rule")
def _(dy, x):
    return dy * _Phi(x)


@add("gelu", "cdf_missing_half", "Phi written as 1 + erf(x/sqrt2), forgot the 0.5")
def _(dy, x):
    return dy * ((1.0 + erf(x / math.sqrt(2.0))) + x * _phi(x))


@add("gelu", "pdf_unnormalised", "phi(x) = exp(-x^2/2) without the 1/sqrt(2 pi)")
def _(dy, x):
    return dy * (_Phi(x) + x * np.exp(-0.5 * x * x))


@add("gelu", "pdf_exponent", "phi(x) = exp(-x^2)/sqrt(2 pi): lost the /2 in the exponent")
def _(dy, x):
    return dy * (_Phi(x) + x * np.exp(-x * x) / SQ2PI)


@add("gelu", "tanh_approx", "used the derivative of the tanh approximation of GELU, not the exact erf form")
def _(dy, x):
    c = math.sqrt(2.0 / math.pi)
    u = c * (x + 0.044715 * x ** 3)
    t = np.tanh(u)
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x))


@add("gelu", "no_upstream", "returns the local derivative Phi + x phi, forgot to multiply by dy")
def _(dy, x):
    return _Phi(x) + x * _phi(x)


@add("gelu", "erf_chain_factor", "d/dx erf(x/sqrt2) taken as 2/sqrt(pi) exp(-x^2/2), forgot the 1/sqrt2")
def _(dy, x):
    return dy * (_Phi(x) + 0.5 * x * (2.0 / math.sqrt(math.pi)) * np.exp(-0.5 * x * x))


@add("gelu", "sign_pdf_term", "dx = dy * (Phi - x phi): sign error on the product-rule term")
def _(dy, x):
    return dy * (_Phi(x) - x * _phi(x))


@add("gelu", "inplace_alias", "dx = dy; dx *= Phi + x phi: in-place on an alias, writes into dy")
def _(dy, x):
    dx = dy
    dx *= _Phi(x) + x * _phi(x)
    return dx


# ----------------------------------------------------------------------------- layernorm
def _ln_parts(x, eps, ddof=0):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True, ddof=ddof)
    rstd = 1.0 / np.sqrt(var + eps)
    return (x - mean) * rstd, rstd, var


def _rows(a):
    return a.reshape(-1, a.shape[-1]).sum(0)


@add("layernorm", "control", "correct", True)
def _(dy, x, gamma, eps=1e-12):
    xh, rstd, _v = _ln_parts(x, eps)
    g = dy * gamma
    dx = rstd * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    return dx, _rows(dy * xh), _rows(dy)


@add("layernorm", "no_mean_term", "dx drops the -mean(dxhat) term (treated the mean as a constant)")
def _(dy, x, gamma, eps=1e-12):
    xh, rstd, _v = _ln_parts(x, eps)
    g = dy * gamma
    dx = rstd * (g - xh * (g * xh).mean(-1, keepdims=True))
    return dx, _rows(dy * xh), _rows(dy)


@add("layernorm", "no_var_term", "dx drops the -xhat*mean(dxhat*xhat) term (treated the variance as a constant)")
def _(dy, x, gamma, eps=1e-12):
    xh, rstd, _v = _ln_parts(x, eps)
    g = dy * gamma
    dx = rstd * (g - g.mean(-1, keepdims=True))
    return dx, _rows(dy * xh), _rows(dy)


@add("layernorm", "dgamma_unsummed", "dgamma = dy * xhat not summed over rows (shape (N, C))")
def _(dy, x, gamma, eps=1e-12):
    xh, rstd, _v = _ln_parts(x, eps)
    g = dy * gamma
    dx = rstd * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    return dx, dy * xh, _rows(dy)


@add("layernorm", "dgamma_no_xhat", "dgamma = sum(dy): forgot the xhat factor (same as dbeta)")
def _(dy, x, gamma, eps=1e-12):
    xh, rstd, _v = _ln_parts(x, eps)
    g = dy * gamma
    dx = rstd * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    return dx, _rows(dy), _rows(dy)


@add("layernorm", "forgot_gamma", "dxhat = dy: forgot to multiply by gamma before going through the norm")
def _(dy, x, gamma, eps=1e-12):
    xh, rstd, _v = _ln_parts(x, eps)
    g = dy
    dx = rstd * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    return dx, _rows(dy * xh), _rows(dy)


@add("layernorm", "unbiased_var", "recomputed the variance with ddof=1 (np.var(..., ddof=1)) in the backward")
def _(dy, x, gamma, eps=1e-12):
    xh, rstd, _v = _ln_parts(x, eps, ddof=1)
    g = dy * gamma
    dx = rstd * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    return dx, _rows(dy * xh), _rows(dy)


@add("layernorm", "times_std", "multiplied by sqrt(var+eps) instead of dividing by it")
def _(dy, x, gamma, eps=1e-12):
    xh, rstd, var = _ln_parts(x, eps)
    g = dy * gamma
    dx = np.sqrt(var + eps) * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    return dx, _rows(dy * xh), _rows(dy)


@add("layernorm", "batchnorm_axis", "the backward means taken over axis 0 (the batch, BatchNorm-style) instead of the feature axis")
def _(dy, x, gamma, eps=1e-12):
    xh, rstd, _v = _ln_parts(x, eps)
    g = (dy * gamma).reshape(-1, x.shape[-1])
    x2 = xh.reshape(-1, x.shape[-1])
    dx = rstd * (g - g.mean(0, keepdims=True) - x2 * (g * x2).mean(0, keepdims=True)).reshape(x.shape)
    return dx, _rows(dy * xh), _rows(dy)


@add("layernorm", "dgamma_centered_not_normalised", "dgamma = sum(dy * (x - mean)): used the centred x, not xhat")
def _(dy, x, gamma, eps=1e-12):
    xh, rstd, _v = _ln_parts(x, eps)
    g = dy * gamma
    dx = rstd * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    return dx, _rows(dy * (x - x.mean(-1, keepdims=True))), _rows(dy)


# ----------------------------------------------------------------------------- softmax_t
@add("softmax_t", "control", "correct", True)
def _(dp, x, T):
    p = _softmax(x, T)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) / T


@add("softmax_t", "forgot_1_over_T", "forgot the 1/T of the chain rule through x/T")
def _(dp, x, T):
    p = _softmax(x, T)
    return p * (dp - (dp * p).sum(-1, keepdims=True))


@add("softmax_t", "times_T", "multiplied by T instead of dividing by T")
def _(dp, x, T):
    p = _softmax(x, T)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) * T


@add("softmax_t", "diagonal_jacobian", "used only the diagonal of the Jacobian: dx = dp * p * (1 - p) / T")
def _(dp, x, T):
    p = _softmax(x, T)
    return dp * p * (1 - p) / T


@add("softmax_t", "sum_axis0", "the sum(dp * p) taken over axis 0 instead of the last axis")
def _(dp, x, T):
    p = _softmax(x, T)
    return p * (dp - (dp * p).sum(0, keepdims=True)) / T


@add("softmax_t", "no_subtract", "dx = p * dp / T: dropped the -sum(dp * p) term")
def _(dp, x, T):
    p = _softmax(x, T)
    return p * dp / T


@add("softmax_t", "p_without_T", "recomputed p = softmax(x) without the temperature, then divided by T")
def _(dp, x, T):
    p = _softmax(x, 1.0)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) / T


@add("softmax_t", "over_T_squared", "divided by T**2 (mixed up with the T^2 of the distillation loss)")
def _(dp, x, T):
    p = _softmax(x, T)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) / T ** 2


@add("softmax_t", "sum_dp_not_weighted", "subtracted sum(dp) instead of sum(dp * p)")
def _(dp, x, T):
    p = _softmax(x, T)
    return p * (dp - dp.sum(-1, keepdims=True)) / T


@add("softmax_t", "no_keepdims", "sum(dp * p, axis=-1) without keepdims=True, so it broadcasts wrongly")
def _(dp, x, T):
    p = _softmax(x, T)
    return p * (dp - (dp * p).sum(-1)) / T


# ----------------------------------------------------------------------------- log_softmax_t
@add("log_softmax_t", "control", "correct", True)
def _(dy, x, T):
    p = _softmax(x, T)
    return (dy - p * dy.sum(-1, keepdims=True)) / T


@add("log_softmax_t", "forgot_1_over_T", "forgot the 1/T of the chain rule through x/T")
def _(dy, x, T):
    p = _softmax(x, T)
    return dy - p * dy.sum(-1, keepdims=True)


@add("log_softmax_t", "times_T", "multiplied by T instead of dividing")
def _(dy, x, T):
    p = _softmax(x, T)
    return (dy - p * dy.sum(-1, keepdims=True)) * T
