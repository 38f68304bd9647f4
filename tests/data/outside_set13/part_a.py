"""linear, gelu, layernorm, softmax_t, log_softmax_t: one control and nine slips each."""
from __future__ import annotations

import math

import numpy as np

from .common import entry, erf, softmax

# ---------------------------------------------------------------- linear
E = "linear"


@entry(E, "control")
def linear_control(dy, x, weight):
    return dy @ weight, dy.T @ x, dy.sum(axis=0)


@entry(E, "dweight_in_out", "wrote dweight = x.T @ dy, shaped (IN, OUT) instead of (OUT, IN)")
def linear_m1(dy, x, weight):
    return dy @ weight, x.T @ dy, dy.sum(axis=0)


@entry(E, "dx_weight_T", "dx = dy @ weight.T (transposed weight, as if the forward were x @ W)")
def linear_m2(dy, x, weight):
    return dy @ weight.T, dy.T @ x, dy.sum(axis=0)


@entry(E, "dbias_axis1", "dbias summed over axis=1 (the output features) instead of the rows")
def linear_m3(dy, x, weight):
    return dy @ weight, dy.T @ x, dy.sum(axis=1)


@entry(E, "dbias_mean", "dbias = dy.mean(axis=0): averaged the rows instead of summing them")
def linear_m4(dy, x, weight):
    return dy @ weight, dy.T @ x, dy.mean(axis=0)


@entry(E, "return_order", "returned (dweight, dx, dbias): the first two swapped")
def linear_m5(dy, x, weight):
    return dy.T @ x, dy @ weight, dy.sum(axis=0)


@entry(E, "dbias_keepdims", "dbias = dy.sum(axis=0, keepdims=True): shape (1, OUT)")
def linear_m6(dy, x, weight):
    return dy @ weight, dy.T @ x, dy.sum(axis=0, keepdims=True)


@entry(E, "dweight_over_N", "divided dweight by the batch size N (as if averaging over rows)")
def linear_m7(dy, x, weight):
    return dy @ weight, dy.T @ x / x.shape[0], dy.sum(axis=0)


@entry(E, "dbias_total_sum", "dbias = dy.sum() with no axis: one scalar")
def linear_m8(dy, x, weight):
    return dy @ weight, dy.T @ x, dy.sum()


@entry(E, "outer_of_sums", "dweight = outer(dy.sum(0), x.sum(0)): summed the rows before the product")
def linear_m9(dy, x, weight):
    return dy @ weight, np.outer(dy.sum(axis=0), x.sum(axis=0)), dy.sum(axis=0)


# ---------------------------------------------------------------- gelu
E = "gelu"
S2 = math.sqrt(2.0)
S2PI = math.sqrt(2.0 * math.pi)


def _Phi(x):
    return 0.5 * (1.0 + erf(x / S2))


def _phi(x):
    return np.exp(-0.5 * x * x) / S2PI


@entry(E, "control")
def gelu_control(dy, x):
    return dy * (_Phi(x) + x * _phi(x))


@entry(E, "no_product_rule", "dx = dy * Phi(x): forgot the x * phi(x) term of the product rule")
def gelu_m1(dy, x):
    return dy * _Phi(x)


@entry(E, "erf_chain_sqrt2", "erf'(x/sqrt2) without the inner 1/sqrt(2) of the chain rule")
def gelu_m2(dy, x):
    d = 0.5 * (1.0 + erf(x / S2)) + 0.5 * x * (2.0 / math.sqrt(math.pi)) * np.exp(-0.5 * x * x)
    return dy * d


@entry(E, "exp_minus_x2", "phi written with exp(-x**2) instead of exp(-x**2 / 2)")
def gelu_m3(dy, x):
    return dy * (_Phi(x) + x * np.exp(-x * x) / S2PI)


@entry(E, "tanh_approx", "differentiated the tanh approximation of GELU, not the exact erf one")
def gelu_m4(dy, x):
    c = math.sqrt(2.0 / math.pi)
    u = c * (x + 0.044715 * x ** 3)
    t = np.tanh(u)
    d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * x * x)
    return dy * d


@entry(E, "no_dy", "returned the local derivative Phi + x phi without multiplying by dy")
def gelu_m5(dy, x):
    return _Phi(x) + x * _phi(x)


@entry(E, "pdf_no_normaliser", "phi = exp(-x**2/2) without the 1/sqrt(2 pi)")
def gelu_m6(dy, x):
    return dy * (_Phi(x) + x * np.exp(-0.5 * x * x))


@entry(E, "cdf_missing_half", "Phi = 1 + erf(x/sqrt2), dropped the 0.5 of the CDF")
def gelu_m7(dy, x):
    return dy * ((1.0 + erf(x / S2)) + x * _phi(x))


@entry(E, "phi_without_x", "dx = dy * (Phi + phi): dropped the factor x on the pdf term")
def gelu_m8(dy, x):
    return dy * (_Phi(x) + _phi(x))


@entry(E, "erf_arg_no_sqrt2", "Phi recomputed as 0.5 * (1 + erf(x)), the /sqrt(2) left out")
def gelu_m9(dy, x):
    return dy * (0.5 * (1.0 + erf(x)) + x * _phi(x))


# ---------------------------------------------------------------- layernorm
E = "layernorm"


def _ln_parts(x, eps, ddof=0):
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True, ddof=ddof)
    rstd = 1.0 / np.sqrt(var + eps)
    return (x - mean) * rstd, rstd


def _flat_sum(a):
    return a.reshape(-1, a.shape[-1]).sum(axis=0)


@entry(E, "control")
def layernorm_control(dy, x, gamma, eps=1e-12):
    xhat, rstd = _ln_parts(x, eps)
    g = dy * gamma
    dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, _flat_sum(dy * xhat), _flat_sum(dy)


@entry(E, "dxhat_no_gamma", "dxhat = dy: forgot to multiply by gamma before the normalisation")
def layernorm_m1(dy, x, gamma, eps=1e-12):
    xhat, rstd = _ln_parts(x, eps)
    g = dy
    dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, _flat_sum(dy * xhat), _flat_sum(dy)


@entry(E, "no_mean_term", "dropped the -mean(dxhat) term (the mean's dependence on x)")
def layernorm_m2(dy, x, gamma, eps=1e-12):
    xhat, rstd = _ln_parts(x, eps)
    g = dy * gamma
    dx = rstd * (g - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, _flat_sum(dy * xhat), _flat_sum(dy)


@entry(E, "no_var_term", "dropped the -xhat*mean(dxhat*xhat) term (the variance's dependence on x)")
def layernorm_m3(dy, x, gamma, eps=1e-12):
    xhat, rstd = _ln_parts(x, eps)
    g = dy * gamma
    dx = rstd * (g - g.mean(-1, keepdims=True))
    return dx, _flat_sum(dy * xhat), _flat_sum(dy)


@entry(E, "diagonal_only", "dx = dy * gamma * rstd: treated mean and rstd as constants")
def layernorm_m4(dy, x, gamma, eps=1e-12):
    xhat, rstd = _ln_parts(x, eps)
    return dy * gamma * rstd, _flat_sum(dy * xhat), _flat_sum(dy)


@entry(E, "sums_without_1_over_C", "Karpathy's C*g - sum - xhat*sum form but forgot to divide by C")
def layernorm_m5(dy, x, gamma, eps=1e-12):
    xhat, rstd = _ln_parts(x, eps)
    g = dy * gamma
    C = x.shape[-1]
    dx = rstd * (C * g - g.sum(-1, keepdims=True) - xhat * (g * xhat).sum(-1, keepdims=True))
    return dx, _flat_sum(dy * xhat), _flat_sum(dy)


@entry(E, "dgamma_uses_x", "dgamma = sum(dy * x) with the raw x instead of the normalised xhat")
def layernorm_m6(dy, x, gamma, eps=1e-12):
    xhat, rstd = _ln_parts(x, eps)
    g = dy * gamma
    dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, _flat_sum(dy * x), _flat_sum(dy)


@entry(E, "return_order", "returned (dx, dbeta, dgamma): gamma's and beta's gradients swapped")
def layernorm_m7(dy, x, gamma, eps=1e-12):
    xhat, rstd = _ln_parts(x, eps)
    g = dy * gamma
    dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, _flat_sum(dy), _flat_sum(dy * xhat)


@entry(E, "var_ddof1", "recomputed the variance with ddof=1 (unbiased) instead of the forward's /C")
def layernorm_m8(dy, x, gamma, eps=1e-12):
    xhat, rstd = _ln_parts(x, eps, ddof=1)
    g = dy * gamma
    dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, _flat_sum(dy * xhat), _flat_sum(dy)


@entry(E, "means_axis0", "the two means in dx taken over axis=0 (rows) instead of the features")
def layernorm_m9(dy, x, gamma, eps=1e-12):
    xhat, rstd = _ln_parts(x, eps)
    g = dy * gamma
    dx = rstd * (g - g.mean(0, keepdims=True) - xhat * (g * xhat).mean(0, keepdims=True))
    return dx, _flat_sum(dy * xhat), _flat_sum(dy)


# ---------------------------------------------------------------- softmax_t
E = "softmax_t"


@entry(E, "control")
def softmax_t_control(dp, x, tau):
    p = softmax(x / tau)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) / tau


@entry(E, "no_tau", "forgot the 1/tau of the chain rule through x / tau")
def softmax_t_m1(dp, x, tau):
    p = softmax(x / tau)
    return p * (dp - (dp * p).sum(-1, keepdims=True))


@entry(E, "times_tau", "multiplied by tau instead of dividing")
def softmax_t_m2(dp, x, tau):
    p = softmax(x / tau)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) * tau


@entry(E, "tau_squared", "divided by tau**2 (mixed up with the KL loss's tau**2)")
def softmax_t_m3(dp, x, tau):
    p = softmax(x / tau)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) / tau ** 2


@entry(E, "no_sum_term", "dx = p * dp / tau: only the diagonal of the softmax Jacobian")
def softmax_t_m4(dp, x, tau):
    p = softmax(x / tau)
    return p * dp / tau


@entry(E, "sum_no_keepdims", "(dp * p).sum(-1) without keepdims, broadcast against (N, V)")
def softmax_t_m5(dp, x, tau):
    p = softmax(x / tau)
    return p * (dp - (dp * p).sum(-1)) / tau


@entry(E, "sum_axis0", "the dot product (dp * p).sum taken over axis=0 instead of the last axis")
def softmax_t_m6(dp, x, tau):
    p = softmax(x / tau)
    return p * (dp - (dp * p).sum(0, keepdims=True)) / tau


@entry(E, "p_without_tau", "recomputed p = softmax(x), forgetting the temperature (kept the 1/tau)")
def softmax_t_m7(dp, x, tau):
    p = softmax(x)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) / tau


@entry(E, "p_one_minus_p", "dx = p * (1 - p) * dp / tau: the scalar-sigmoid derivative")
def softmax_t_m8(dp, x, tau):
    p = softmax(x / tau)
    return p * (1.0 - p) * dp / tau


@entry(E, "sum_dp_not_weighted", "subtracted dp.sum(-1) instead of (dp * p).sum(-1)")
def softmax_t_m9(dp, x, tau):
    p = softmax(x / tau)
    return p * (dp - dp.sum(-1, keepdims=True)) / tau


# ---------------------------------------------------------------- log_softmax_t
E = "log_softmax_t"


@entry(E, "control")
def log_softmax_t_control(dy, x, tau):
    p = softmax(x / tau)
    return (dy - p * dy.sum(-1, keepdims=True)) / tau


@entry(E, "no_tau", "forgot the 1/tau of the chain rule through x / tau")
def log_softmax_t_m1(dy, x, tau):
    p = softmax(x / tau)
    return dy - p * dy.sum(-1, keepdims=True)


@entry(E, "times_tau", "multiplied by tau instead of dividing")
def log_softmax_t_m2(dy, x, tau):
    p = softmax(x / tau)
    return (dy - p * dy.sum(-1, keepdims=True)) * tau


@entry(E, "identity", "dx = dy / tau: treated the log-sum-exp as a constant")
def log_softmax_t_m3(dy, x, tau):
    return dy / tau


@entry(E, "softmax_jacobian", "used the softmax backward p * (dy - sum(dy * p)) instead")
def log_softmax_t_m4(dy, x, tau):
    p = softmax(x / tau)
    return p * (dy - (dy * p).sum(-1, keepdims=True)) / tau


@entry(E, "no_row_sum", "dx = (dy - p * dy) / tau: used dy instead of its row sum")
def log_softmax_t_m5(dy, x, tau):
    p = softmax(x / tau)
    return (dy - p * dy) / tau


@entry(E, "sum_no_keepdims", "dy.sum(-1) without keepdims, broadcast against (N, V)")
def log_softmax_t_m6(dy, x, tau):
    p = softmax(x / tau)
    return (dy - p * dy.sum(-1)) / tau


@entry(E, "p_without_tau", "recomputed p = softmax(x), forgetting the temperature")
def log_softmax_t_m7(dy, x, tau):
    p = softmax(x)
    return (dy - p * dy.sum(-1, keepdims=True)) / tau


@entry(E, "sum_axis0", "the row sum of dy taken over axis=0 (keepdims) instead of the last axis")
def log_softmax_t_m8(dy, x, tau):
    p = softmax(x / tau)
    return (dy - p * dy.sum(0, keepdims=True)) / tau


@entry(E, "sum_all", "dy.sum() over the whole array instead of per row")
def log_softmax_t_m9(dy, x, tau):
    p = softmax(x / tau)
    return (dy - p * dy.sum()) / tau
