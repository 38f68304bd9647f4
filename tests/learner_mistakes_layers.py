"""Learner mistakes, part 1: linear, GELU, LayerNorm, softmax, log-softmax, attention."""
import math

import numpy as np

from learner_mistakes_common import _cdf, _pdf, _softmax, mistake  # noqa: F401


# ----------------------------------------------------------------------------------- linear
@mistake("linear", "linear_dx_weight")
def lin_dx_WT(dy, x, weight):
    return dy @ weight.T, dy.T @ x, dy.sum(0)


@mistake("linear", "transposed_weight")
def lin_dW_xTdy(dy, x, weight):
    return dy @ weight, x.T @ dy, dy.sum(0)


@mistake("linear", "bias_not_summed")
def lin_bias_copy(dy, x, weight):
    return dy @ weight, dy.T @ x, dy


@mistake("linear", "bias_not_summed")
def lin_bias_axis1(dy, x, weight):
    return dy @ weight, dy.T @ x, dy.sum(axis=1)


@mistake("linear", "scale_inv_B")
def lin_mean_rows(dy, x, weight):
    n = x.shape[0]
    return dy @ weight, dy.T @ x / n, dy.mean(0)


@mistake("linear", "scale_neg")
def lin_sign(dy, x, weight):
    return -(dy @ weight), -(dy.T @ x), -dy.sum(0)


# ----------------------------------------------------------------------------------- GELU
@mistake("gelu", "gelu_product_rule")
def gelu_cdf_only(dy, x):
    return dy * _cdf(x)


@mistake("gelu", "gelu_product_rule")
def gelu_xpdf_only(dy, x):
    return dy * x * _pdf(x)


@mistake("gelu", "gelu_tanh")
def gelu_tanh(dy, x):
    c = math.sqrt(2 / math.pi)
    u = c * (x + 0.044715 * x ** 3)
    t = np.tanh(u)
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t ** 2) * c * (1 + 3 * 0.044715 * x ** 2))


@mistake("gelu", "gelu_sigmoid")
def gelu_sigmoid(dy, x):
    s = 1 / (1 + np.exp(-1.702 * x))
    return dy * (s + 1.702 * x * s * (1 - s))


@mistake("gelu", "dy_ignored")
def gelu_no_dy(dy, x):
    return _cdf(x) + x * _pdf(x)


@mistake("gelu", "scale_2")
def gelu_no_half(dy, x):
    return dy * ((1 + np.vectorize(math.erf)(x / math.sqrt(2))) + 2 * x * _pdf(x))


# ----------------------------------------------------------------------------------- LayerNorm
def _ln(x, eps, ddof=0):
    mu = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True, ddof=ddof)
    r = 1 / np.sqrt(var + eps)
    return mu, r, (x - mu) * r


def _lead(x):
    return tuple(range(x.ndim - 1))


@mistake("layernorm", "layernorm_mean_term")
def ln_no_mean(dy, x, gamma, eps=1e-12):
    mu, r, xh = _ln(x, eps)
    g = dy * gamma
    return r * (g - xh * (g * xh).mean(-1, keepdims=True)), (dy * xh).sum(_lead(x)), dy.sum(_lead(x))


@mistake("layernorm", "layernorm_variance_term")
def ln_no_var(dy, x, gamma, eps=1e-12):
    mu, r, xh = _ln(x, eps)
    g = dy * gamma
    return r * (g - g.mean(-1, keepdims=True)), (dy * xh).sum(_lead(x)), dy.sum(_lead(x))


@mistake("layernorm", "layernorm_stats_constant")
def ln_only_direct(dy, x, gamma, eps=1e-12):
    mu, r, xh = _ln(x, eps)
    return dy * gamma * r, (dy * xh).sum(_lead(x)), dy.sum(_lead(x))


@mistake("layernorm", "layernorm_gamma")
def ln_no_gamma(dy, x, gamma, eps=1e-12):
    mu, r, xh = _ln(x, eps)
    g = dy
    dx = r * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    return dx, (dy * xh).sum(_lead(x)), dy.sum(_lead(x))


@mistake("layernorm", "layernorm_dgamma_xhat")
def ln_dgamma_x(dy, x, gamma, eps=1e-12):
    mu, r, xh = _ln(x, eps)
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    return dx, (dy * x).sum(_lead(x)), dy.sum(_lead(x))


@mistake("layernorm", "layernorm_unbiased_var")
def ln_ddof1(dy, x, gamma, eps=1e-12):
    mu, r, xh = _ln(x, eps, ddof=1)
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    return dx, (dy * xh).sum(_lead(x)), dy.sum(_lead(x))


@mistake("layernorm", "keepdims")
def ln_no_keepdims(dy, x, gamma, eps=1e-12):
    mu = x.mean(-1)
    xc = x - mu  # broadcasting error: (N, C) - (N,)
    r = 1 / np.sqrt((xc ** 2).mean(-1) + eps)
    xh = xc * r
    g = dy * gamma
    return r * (g - g.mean(-1) - xh * (g * xh).mean(-1)), (dy * xh).sum(0), dy.sum(0)


@mistake("layernorm", "scale_C")
def ln_sums(dy, x, gamma, eps=1e-12):
    mu, r, xh = _ln(x, eps)
    g = dy * gamma
    C = x.shape[-1]
    dx = r * (C * g - g.sum(-1, keepdims=True) - xh * (g * xh).sum(-1, keepdims=True))
    return dx, (dy * xh).sum(_lead(x)), dy.sum(_lead(x))


@mistake("layernorm", "scale_inv_C")
def ln_dparams_mean(dy, x, gamma, eps=1e-12):
    mu, r, xh = _ln(x, eps)
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    return dx / x.shape[-1], (dy * xh).sum(_lead(x)), dy.sum(_lead(x))


# ----------------------------------------------------------------------------------- softmax(T)
@mistake("softmax_t", "softmax_temperature")
def sm_no_T(dp, x, T):
    p = _softmax(x / T)
    return p * (dp - (dp * p).sum(-1, keepdims=True))


@mistake("softmax_t", "softmax_jacobian")
def sm_diag(dp, x, T):
    p = _softmax(x / T)
    return p * (1 - p) * dp / T


@mistake("softmax_t", "softmax_times_tau")
def sm_times_T(dp, x, T):
    p = _softmax(x * T)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) * T


@mistake("softmax_t", "scale_tau2")
def sm_mul_T(dp, x, T):
    p = _softmax(x / T)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) * T


@mistake("softmax_t", "keepdims")
def sm_no_keepdims(dp, x, T):
    p = _softmax(x / T)
    return p * (dp - (dp * p).sum(-1)) / T


@mistake("softmax_t", "scale_neg")
def sm_sign(dp, x, T):
    p = _softmax(x / T)
    return p * ((dp * p).sum(-1, keepdims=True) - dp) / T


# ----------------------------------------------------------------------------------- log-softmax(T)
@mistake("log_softmax_t", "log_softmax_sum")
def lsm_sum_is_one(dy, x, T):
    return (dy - _softmax(x / T)) / T


@mistake("log_softmax_t", "log_softmax_jacobian")
def lsm_diag(dy, x, T):
    return dy * (1 - _softmax(x / T)) / T


@mistake("log_softmax_t", "softmax_temperature", "scale_tau")
def lsm_no_T(dy, x, T):
    p = _softmax(x / T)
    return dy - p * dy.sum(-1, keepdims=True)


@mistake("log_softmax_t", "softmax_times_tau")
def lsm_times_T(dy, x, T):
    p = _softmax(x * T)
    return (dy - p * dy.sum(-1, keepdims=True)) * T


@mistake("log_softmax_t", "keepdims")
def lsm_no_keepdims(dy, x, T):
    p = _softmax(x / T)
    return (dy - p * dy.sum(-1)) / T


# ----------------------------------------------------------------------------------- attention
def _att_parts(dout, q, k, v, probs):
    dv = probs.swapaxes(-1, -2) @ dout
    dp = dout @ v.swapaxes(-1, -2)
    ds = probs * (dp - (dp * probs).sum(-1, keepdims=True))
    return dv, dp, ds


@mistake("attention", "attention_scale")
def att_no_scale(dout, q, k, v, probs):
    dv, dp, ds = _att_parts(dout, q, k, v, probs)
    return ds @ k, ds.swapaxes(-1, -2) @ q, dv


@mistake("attention", "attention_softmax")
def att_no_softmax(dout, q, k, v, probs):
    s = 1 / math.sqrt(q.shape[-1])
    dv, dp, ds = _att_parts(dout, q, k, v, probs)
    return dp @ k * s, dp.swapaxes(-1, -2) @ q * s, dv


@mistake("attention", "attention_softmax")
def att_softmax_diag(dout, q, k, v, probs):
    s = 1 / math.sqrt(q.shape[-1])
    dv, dp, ds = _att_parts(dout, q, k, v, probs)
    ds = probs * dp
    return ds @ k * s, ds.swapaxes(-1, -2) @ q * s, dv


@mistake("attention", "attention_dk_transposed")
def att_dk_no_T(dout, q, k, v, probs):
    s = 1 / math.sqrt(q.shape[-1])
    dv, dp, ds = _att_parts(dout, q, k, v, probs)
    return ds @ k * s, ds @ q * s, dv


@mistake("attention", "attention_dv_transposed")
def att_dv_no_T(dout, q, k, v, probs):
    s = 1 / math.sqrt(q.shape[-1])
    dv, dp, ds = _att_parts(dout, q, k, v, probs)
    return ds @ k * s, ds.swapaxes(-1, -2) @ q * s, probs @ dout


@mistake("attention", "attention_mask_dropped")
def att_recompute_no_mask(dout, q, k, v, probs):
    s = 1 / math.sqrt(q.shape[-1])
    probs = _softmax(q @ k.swapaxes(-1, -2) * s)  # forgot the padding bias
    dv, dp, ds = _att_parts(dout, q, k, v, probs)
    return ds @ k * s, ds.swapaxes(-1, -2) @ q * s, dv


@mistake("attention", "scale_inv_sqrtHS")
def att_scale_twice(dout, q, k, v, probs):
    s = 1 / q.shape[-1]
    dv, dp, ds = _att_parts(dout, q, k, v, probs)
    return ds @ k * s, ds.swapaxes(-1, -2) @ q * s, dv


@mistake("attention", "keepdims")
def att_no_keepdims(dout, q, k, v, probs):
    s = 1 / math.sqrt(q.shape[-1])
    dv = probs.swapaxes(-1, -2) @ dout
    dp = dout @ v.swapaxes(-1, -2)
    ds = probs * (dp - (dp * probs).sum(-1))  # broadcasts wrongly or fails
    return ds @ k * s, ds.swapaxes(-1, -2) @ q * s, dv


