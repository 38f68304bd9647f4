"""Outside set 3, verbatim from line 41 to 331 of the original file (linear, gelu, layernorm, softmax_t, log_softmax_t); only this header was added."""
# ruff: noqa: F401, F811
import math

import numpy as np

from .common import SQ2PI, _Phi, _erf, _phi, _softmax, entry


# ============================================================================ linear
@entry("linear", "linear_ok", "correct control")
def _(dy, x, weight):
    return dy @ weight, dy.T @ x, dy.sum(axis=0)


@entry("linear", "lin_dw_xT_dy", "dweight computed as x.T @ dy, the transpose of the right answer")
def _(dy, x, weight):
    return dy @ weight, x.T @ dy, dy.sum(axis=0)


@entry("linear", "lin_db_unsummed", "dbias returned as dy itself, not summed over the rows")
def _(dy, x, weight):
    return dy @ weight, dy.T @ x, dy


@entry("linear", "lin_db_mean", "dbias averaged over the rows instead of summed")
def _(dy, x, weight):
    return dy @ weight, dy.T @ x, dy.mean(axis=0)


@entry("linear", "lin_dx_WT", "dx computed as dy @ weight.T (weight treated as (IN, OUT))")
def _(dy, x, weight):
    return dy @ weight.T, dy.T @ x, dy.sum(axis=0)


@entry("linear", "lin_dw_batchmean", "dweight divided by the number of rows N (batch-averaged)")
def _(dy, x, weight):
    return dy @ weight, dy.T @ x / x.shape[0], dy.sum(axis=0)


@entry("linear", "lin_db_axis1", "dbias summed over the wrong axis (axis=1, the features)")
def _(dy, x, weight):
    return dy @ weight, dy.T @ x, dy.sum(axis=1)


@entry("linear", "lin_dw_outer_of_sums", "dweight as the outer product of dy summed over rows and x summed over rows")
def _(dy, x, weight):
    return dy @ weight, np.outer(dy.sum(axis=0), x.sum(axis=0)), dy.sum(axis=0)


# ============================================================================ gelu
@entry("gelu", "gelu_ok", "correct control")
def _(dy, x):
    return dy * (_Phi(x) + x * _phi(x))


@entry("gelu", "gelu_only_Phi", "only the Phi(x) term of the product rule, x*phi(x) forgotten")
def _(dy, x):
    return dy * _Phi(x)


@entry("gelu", "gelu_only_xphi", "only the x*phi(x) term of the product rule, Phi(x) forgotten")
def _(dy, x):
    return dy * x * _phi(x)


@entry("gelu", "gelu_tanh_deriv", "derivative of the tanh approximation of GELU used instead of the exact one")
def _(dy, x):
    c = math.sqrt(2.0 / math.pi)
    u = c * (x + 0.044715 * x ** 3)
    t = np.tanh(u)
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x))


@entry("gelu", "gelu_no_dy", "returns gelu'(x) without multiplying by the upstream dy")
def _(dy, x):
    return _Phi(x) + x * _phi(x)


@entry("gelu", "gelu_pdf_no_norm", "the normal density written exp(-x^2/2) without the 1/sqrt(2 pi)")
def _(dy, x):
    return dy * (_Phi(x) + x * np.exp(-0.5 * x * x))


@entry("gelu", "gelu_erf_chain_dropped", "d/dx erf(x/sqrt2) taken as 2/sqrt(pi) exp(-x^2/2), the inner 1/sqrt2 dropped")
def _(dy, x):
    return dy * (_Phi(x) + 0.5 * x * 2.0 / math.sqrt(math.pi) * np.exp(-0.5 * x * x))


@entry("gelu", "gelu_phi_no_x", "the second term written phi(x) instead of x*phi(x)")
def _(dy, x):
    return dy * (_Phi(x) + _phi(x))


@entry("gelu", "gelu_sigmoid_deriv", "derivative of the sigmoid approximation x*sigmoid(1.702x) used")
def _(dy, x):
    s = 1.0 / (1.0 + np.exp(-1.702 * x))
    return dy * (s + 1.702 * x * s * (1 - s))


# ============================================================================ layernorm
def _ln_stats(x, eps, ddof=0):
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, ddof=ddof, keepdims=True)
    r = 1.0 / np.sqrt(var + eps)
    return mu, r, (x - mu) * r


def _rows(a):
    return a.reshape(-1, a.shape[-1])


@entry("layernorm", "layernorm_ok", "correct control")
def _(dy, x, gamma, eps=1e-12):
    mu, r, xh = _ln_stats(x, eps)
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    return dx, _rows(dy * xh).sum(0), _rows(dy).sum(0)


@entry("layernorm", "ln_no_mean_term", "the mean term -mean(g) of dx dropped (mu treated as a constant)")
def _(dy, x, gamma, eps=1e-12):
    mu, r, xh = _ln_stats(x, eps)
    g = dy * gamma
    dx = r * (g - xh * (g * xh).mean(-1, keepdims=True))
    return dx, _rows(dy * xh).sum(0), _rows(dy).sum(0)


@entry("layernorm", "ln_no_var_term", "the variance term -xhat*mean(g*xhat) dropped (rstd treated as a constant)")
def _(dy, x, gamma, eps=1e-12):
    mu, r, xh = _ln_stats(x, eps)
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True))
    return dx, _rows(dy * xh).sum(0), _rows(dy).sum(0)


@entry("layernorm", "ln_unbiased_var", "variance recomputed with ddof=1 (unbiased, as torch.var defaults to)")
def _(dy, x, gamma, eps=1e-12):
    mu, r, xh = _ln_stats(x, eps, ddof=1)
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    return dx, _rows(dy * xh).sum(0), _rows(dy).sum(0)


@entry("layernorm", "ln_gamma_forgotten", "dx computed from dy instead of dy*gamma (gamma forgotten)")
def _(dy, x, gamma, eps=1e-12):
    mu, r, xh = _ln_stats(x, eps)
    g = dy
    dx = r * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    return dx, _rows(dy * xh).sum(0), _rows(dy).sum(0)


@entry("layernorm", "ln_dgamma_from_x", "dgamma summed from dy*x instead of dy*xhat")
def _(dy, x, gamma, eps=1e-12):
    mu, r, xh = _ln_stats(x, eps)
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    return dx, _rows(dy * x).sum(0), _rows(dy).sum(0)


@entry("layernorm", "ln_no_keepdims", "the row means taken without keepdims=True, so they broadcast against the wrong axis")
def _(dy, x, gamma, eps=1e-12):
    mu = x.mean(axis=-1)
    var = ((x - mu[..., None]) ** 2).mean(axis=-1, keepdims=True)
    r = 1.0 / np.sqrt(var + eps)
    xh = (x - mu[..., None]) * r
    g = dy * gamma
    dx = r * (g - g.mean(-1) - xh * (g * xh).mean(-1))
    return dx, _rows(dy * xh).sum(0), _rows(dy).sum(0)


@entry("layernorm", "ln_param_axis", "dgamma and dbeta summed over the last axis (features) instead of the rows")
def _(dy, x, gamma, eps=1e-12):
    mu, r, xh = _ln_stats(x, eps)
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    return dx, (dy * xh).sum(-1), dy.sum(-1)


@entry("layernorm", "ln_inplace_center", "x centred in place with x -= mean (writes into the input)")
def _(dy, x, gamma, eps=1e-12):
    x -= x.mean(axis=-1, keepdims=True)
    r = 1.0 / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
    xh = x * r
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    return dx, _rows(dy * xh).sum(0), _rows(dy).sum(0)


# ============================================================================ softmax_t
@entry("softmax_t", "softmax_t_ok", "correct control")
def _(dp, x, T):
    p = _softmax(x / T)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) / T


@entry("softmax_t", "sm_no_invT", "the chain-rule factor 1/T of x/T forgotten")
def _(dp, x, T):
    p = _softmax(x / T)
    return p * (dp - (dp * p).sum(-1, keepdims=True))


@entry("softmax_t", "sm_diag_jacobian", "only the diagonal of the Jacobian: dp * p * (1 - p) / T")
def _(dp, x, T):
    p = _softmax(x / T)
    return dp * p * (1 - p) / T


@entry("softmax_t", "sm_times_T", "multiplied by T instead of divided by T")
def _(dp, x, T):
    p = _softmax(x / T)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) * T


@entry("softmax_t", "sm_p_without_T", "p recomputed as softmax(x) without the temperature (1/T kept)")
def _(dp, x, T):
    p = _softmax(x)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) / T


@entry("softmax_t", "sm_no_keepdims", "the row sum of dp*p taken without keepdims")
def _(dp, x, T):
    p = _softmax(x / T)
    return p * (dp - (dp * p).sum(-1)) / T


@entry("softmax_t", "sm_sum_axis0", "the sum of dp*p taken over axis 0 (the rows) instead of the last axis")
def _(dp, x, T):
    p = _softmax(x / T)
    return p * (dp - (dp * p).sum(0, keepdims=True)) / T


@entry("softmax_t", "sm_sum_dp", "sum(dp) used where sum(dp * p) belongs")
def _(dp, x, T):
    p = _softmax(x / T)
    return p * (dp - dp.sum(-1, keepdims=True)) / T


@entry("softmax_t", "sm_inplace_dp", "dp updated in place (dp -= sum(dp*p)) to save memory")
def _(dp, x, T):
    p = _softmax(x / T)
    dp -= (dp * p).sum(-1, keepdims=True)
    return p * dp / T


# ============================================================================ log_softmax_t
@entry("log_softmax_t", "log_softmax_t_ok", "correct control")
def _(dy, x, T):
    p = _softmax(x / T)
    return (dy - p * dy.sum(-1, keepdims=True)) / T


@entry("log_softmax_t", "lsm_no_invT", "the chain-rule factor 1/T forgotten")
def _(dy, x, T):
    p = _softmax(x / T)
    return dy - p * dy.sum(-1, keepdims=True)


@entry("log_softmax_t", "lsm_diag", "only the diagonal of the Jacobian: dy * (1 - p) / T")
def _(dy, x, T):
    p = _softmax(x / T)
    return dy * (1 - p) / T


@entry("log_softmax_t", "lsm_sum_is_one", "sum(dy) assumed to be 1, so dx = (dy - p) / T")
def _(dy, x, T):
    p = _softmax(x / T)
    return (dy - p) / T


@entry("log_softmax_t", "lsm_softmax_bwd", "the softmax backward p * (dy - sum(dy * p)) / T used instead")
def _(dy, x, T):
    p = _softmax(x / T)
    return p * (dy - (dy * p).sum(-1, keepdims=True)) / T


@entry("log_softmax_t", "lsm_p_without_T", "p recomputed as softmax(x), the temperature forgotten inside")
def _(dy, x, T):
    p = _softmax(x)
    return (dy - p * dy.sum(-1, keepdims=True)) / T


@entry("log_softmax_t", "lsm_no_keepdims", "sum(dy) over the last axis taken without keepdims")
def _(dy, x, T):
    p = _softmax(x / T)
    return (dy - p * dy.sum(-1)) / T


@entry("log_softmax_t", "lsm_unnormalised_p", "p taken as exp(x / T) without dividing by the sum")
def _(dy, x, T):
    p = np.exp(x / T)
    return (dy - p * dy.sum(-1, keepdims=True)) / T


@entry("log_softmax_t", "lsm_times_T", "multiplied by T instead of divided by T")
def _(dy, x, T):
    p = _softmax(x / T)
    return (dy - p * dy.sum(-1, keepdims=True)) * T
