"""Outside set, verbatim from line 82 to 421 of the original file (linear, gelu, layernorm, softmax_t, log_softmax_t, attention, embedding_tied); only this header was added."""
# ruff: noqa: F401
import math

import numpy as np

from .common import _Phi, _SQRT2, _SQRT2PI, _add, _ce_grad_rows, _cos_grad, _erf, _ln_backward, _log_softmax, _phi, _rows, _softmax

# ============================================================================ linear

@_add("linear", "linear_dweight_transposed", "computed dweight as x^T dy, the transpose of what it should be")
def linear_dweight_transposed(dy, x, weight):
    dy2, x2 = _rows(dy), _rows(x)
    return dy @ weight, x2.T @ dy2, dy2.sum(axis=0)


@_add("linear", "linear_dx_weight_transposed", "multiplied dy by weight.T instead of weight for dx")
def linear_dx_weight_transposed(dy, x, weight):
    dy2, x2 = _rows(dy), _rows(x)
    return dy @ weight.T, dy2.T @ x2, dy2.sum(axis=0)


@_add("linear", "linear_dbias_not_summed", "returned dy itself as dbias instead of summing it over the rows")
def linear_dbias_not_summed(dy, x, weight):
    dy2, x2 = _rows(dy), _rows(x)
    return dy @ weight, dy2.T @ x2, dy.copy()


@_add("linear", "linear_dweight_mean", "divided dweight by the number of rows (averaged instead of summed over the batch)")
def linear_dweight_mean(dy, x, weight):
    dy2, x2 = _rows(dy), _rows(x)
    return dy @ weight, dy2.T @ x2 / dy2.shape[0], dy2.sum(axis=0)


# ============================================================================ gelu

@_add("gelu", "gelu_only_Phi", "forgot the product rule and returned only dy * Phi(x), without the x * phi(x) term")
def gelu_only_Phi(dy, x):
    return dy * _Phi(x)


@_add("gelu", "gelu_tanh_derivative", "used the derivative of the tanh approximation of GELU instead of the exact erf GELU")
def gelu_tanh_derivative(dy, x):
    c = math.sqrt(2.0 / math.pi)
    u = c * (x + 0.044715 * x ** 3)
    th = np.tanh(u)
    d = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * c * (1.0 + 3 * 0.044715 * x * x)
    return dy * d


@_add("gelu", "gelu_no_dy", "returned the local derivative Phi(x) + x phi(x) and forgot to multiply by dy")
def gelu_no_dy(dy, x):
    return _Phi(x) + x * _phi(x)


@_add("gelu", "gelu_erf_chain", "forgot the 1/sqrt(2) chain factor of erf(x/sqrt(2)) when differentiating it")
def gelu_erf_chain(dy, x):
    # d/dx erf(x/sqrt2) taken as 2/sqrt(pi) exp(-x^2/2) (missing 1/sqrt2)
    return dy * (_Phi(x) + 0.5 * x * (2.0 / math.sqrt(math.pi)) * np.exp(-0.5 * x * x))


# ============================================================================ layernorm

@_add("layernorm", "ln_no_mean_term", "dropped the -mean(g) term of the LayerNorm dx (forgot the mean depends on x)")
def ln_no_mean_term(dy, x, gamma, eps=1e-12):
    mu = x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + eps)
    xhat = (x - mu) * rstd
    g = dy * gamma
    dx = rstd * (g - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, _rows(dy * xhat).sum(axis=0), _rows(dy).sum(axis=0)


@_add("layernorm", "ln_no_variance_term", "dropped the -xhat * mean(g * xhat) term (forgot the variance depends on x)")
def ln_no_variance_term(dy, x, gamma, eps=1e-12):
    mu = x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + eps)
    xhat = (x - mu) * rstd
    g = dy * gamma
    dx = rstd * (g - g.mean(axis=-1, keepdims=True))
    return dx, _rows(dy * xhat).sum(axis=0), _rows(dy).sum(axis=0)


@_add("layernorm", "ln_gamma_forgotten", "forgot to multiply dy by gamma before going back through the normalisation")
def ln_gamma_forgotten(dy, x, gamma, eps=1e-12):
    mu = x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + eps)
    xhat = (x - mu) * rstd
    g = dy
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, _rows(dy * xhat).sum(axis=0), _rows(dy).sum(axis=0)


@_add("layernorm", "ln_dgamma_from_x", "computed dgamma as sum(dy * x) using the raw input instead of the normalised xhat")
def ln_dgamma_from_x(dy, x, gamma, eps=1e-12):
    dx, _, dbeta = _ln_backward(dy, x, gamma, eps)
    return dx, _rows(dy * x).sum(axis=0), dbeta


@_add("layernorm", "ln_unbiased_var", "recomputed the variance with ddof=1 (unbiased, / (C-1)) instead of the biased / C")
def ln_unbiased_var(dy, x, gamma, eps=1e-12):
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, ddof=1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * rstd
    g = dy * gamma
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, _rows(dy * xhat).sum(axis=0), _rows(dy).sum(axis=0)


@_add("layernorm", "ln_stats_constant", "treated mean and rstd as constants, so dx = dy * gamma * rstd")
def ln_stats_constant(dy, x, gamma, eps=1e-12):
    mu = x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + eps)
    xhat = (x - mu) * rstd
    return dy * gamma * rstd, _rows(dy * xhat).sum(axis=0), _rows(dy).sum(axis=0)


@_add("layernorm", "ln_var_term_sum", "used sum(g * xhat) instead of mean(g * xhat) in the variance term (lost the 1/C)")
def ln_var_term_sum(dy, x, gamma, eps=1e-12):
    mu = x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + eps)
    xhat = (x - mu) * rstd
    g = dy * gamma
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).sum(axis=-1, keepdims=True))
    return dx, _rows(dy * xhat).sum(axis=0), _rows(dy).sum(axis=0)


@_add("layernorm", "ln_inplace_center", "centred x in place (x -= mean), writing into the input")
def ln_inplace_center(dy, x, gamma, eps=1e-12):
    mu = x.mean(axis=-1, keepdims=True)
    xc = x
    xc -= mu
    rstd = 1.0 / np.sqrt((xc ** 2).mean(axis=-1, keepdims=True) + eps)
    xhat = xc * rstd
    g = dy * gamma
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, _rows(dy * xhat).sum(axis=0), _rows(dy).sum(axis=0)


@_add("layernorm", "correct_layernorm", "correct")
def correct_layernorm(dy, x, gamma, eps=1e-12):
    C = x.shape[-1]
    xc = x - x.sum(axis=-1, keepdims=True) / C
    rstd = (np.einsum("...c,...c->...", xc, xc)[..., None] / C + eps) ** -0.5
    xhat = xc * rstd
    g = dy * gamma
    dx = (rstd / C) * (C * g - g.sum(axis=-1, keepdims=True)
                       - xhat * np.einsum("...c,...c->...", g, xhat)[..., None])
    axes = tuple(range(dy.ndim - 1))
    return dx, (dy * xhat).sum(axis=axes), dy.sum(axis=axes)


# ============================================================================ softmax_t

@_add("softmax_t", "sm_no_T", "forgot the 1/T chain factor from x / T")
def sm_no_T(dp, x, T):
    p = _softmax(x / T)
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True))


@_add("softmax_t", "sm_diagonal", "used only the diagonal of the softmax Jacobian, dx = dp * p * (1 - p) / T")
def sm_diagonal(dp, x, T):
    p = _softmax(x / T)
    return dp * p * (1.0 - p) / T


@_add("softmax_t", "sm_x_times_T", "recomputed the probabilities as softmax(x * T) instead of softmax(x / T)")
def sm_x_times_T(dp, x, T):
    p = _softmax(x * T)
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True)) / T


@_add("softmax_t", "sm_no_keepdims", "summed dp * p over the last axis without keepdims=True")
def sm_no_keepdims(dp, x, T):
    p = _softmax(x / T)
    return p * (dp - (dp * p).sum(axis=-1)) / T


@_add("softmax_t", "sm_sum_dp", "subtracted sum(dp) instead of the weighted sum(dp * p)")
def sm_sum_dp(dp, x, T):
    p = _softmax(x / T)
    return p * (dp - dp.sum(axis=-1, keepdims=True)) / T


@_add("softmax_t", "sm_inplace", "subtracted the weighted sum from dp in place (dp -= ...), writing into the upstream gradient")
def sm_inplace(dp, x, T):
    p = _softmax(x / T)
    s = (dp * p).sum(axis=-1, keepdims=True)
    d = dp
    d -= s
    return p * d / T


# ============================================================================ log_softmax_t

@_add("log_softmax_t", "lsm_sum_dy_one", "took sum(dy) as 1, writing dx = (dy - p) / T")
def lsm_sum_dy_one(dy, x, T):
    p = _softmax(x / T)
    return (dy - p) / T


@_add("log_softmax_t", "lsm_diagonal", "used only the diagonal of the Jacobian, dx = dy * (1 - p) / T")
def lsm_diagonal(dy, x, T):
    p = _softmax(x / T)
    return dy * (1.0 - p) / T


@_add("log_softmax_t", "lsm_no_T", "forgot the 1/T chain factor from x / T")
def lsm_no_T(dy, x, T):
    p = _softmax(x / T)
    return dy - p * dy.sum(axis=-1, keepdims=True)


@_add("log_softmax_t", "lsm_p_without_T", "recomputed p as softmax(x) without the temperature")
def lsm_p_without_T(dy, x, T):
    p = _softmax(x)
    return (dy - p * dy.sum(axis=-1, keepdims=True)) / T


@_add("log_softmax_t", "lsm_softmax_formula", "used the softmax backward p * (dy - sum(dy * p)) / T instead of the log-softmax one")
def lsm_softmax_formula(dy, x, T):
    p = _softmax(x / T)
    return p * (dy - (dy * p).sum(axis=-1, keepdims=True)) / T


# ============================================================================ attention

def _att_parts(dout, q, k, v, probs):
    HS = q.shape[-1]
    dv = probs.swapaxes(-1, -2) @ dout
    dP = dout @ v.swapaxes(-1, -2)
    dS = probs * (dP - (dP * probs).sum(axis=-1, keepdims=True))
    return HS, dv, dP, dS


@_add("attention", "att_no_scale", "forgot the 1/sqrt(HS) scale in dq and dk")
def att_no_scale(dout, q, k, v, probs):
    HS, dv, dP, dS = _att_parts(dout, q, k, v, probs)
    return dS @ k, dS.swapaxes(-1, -2) @ q, dv


@_add("attention", "att_no_softmax_backward", "skipped the softmax backward and used dprobs directly as dscores")
def att_no_softmax_backward(dout, q, k, v, probs):
    HS, dv, dP, dS = _att_parts(dout, q, k, v, probs)
    dS = dP
    s = 1.0 / math.sqrt(HS)
    return dS @ k * s, dS.swapaxes(-1, -2) @ q * s, dv


@_add("attention", "att_dk_not_transposed", "computed dk as dscores @ q without transposing dscores")
def att_dk_not_transposed(dout, q, k, v, probs):
    HS, dv, dP, dS = _att_parts(dout, q, k, v, probs)
    s = 1.0 / math.sqrt(HS)
    return dS @ k * s, dS @ q * s, dv


@_add("attention", "att_dv_not_transposed", "computed dv as probs @ dout without transposing probs")
def att_dv_not_transposed(dout, q, k, v, probs):
    HS, dv, dP, dS = _att_parts(dout, q, k, v, probs)
    s = 1.0 / math.sqrt(HS)
    return dS @ k * s, dS.swapaxes(-1, -2) @ q * s, probs @ dout


@_add("attention", "att_scale_HS", "scaled dq and dk by 1/HS instead of 1/sqrt(HS)")
def att_scale_HS(dout, q, k, v, probs):
    HS, dv, dP, dS = _att_parts(dout, q, k, v, probs)
    s = 1.0 / HS
    return dS @ k * s, dS.swapaxes(-1, -2) @ q * s, dv


@_add("attention", "att_recompute_no_mask", "recomputed the probabilities from q and k, forgetting the padding mask")
def att_recompute_no_mask(dout, q, k, v, probs):
    HS = q.shape[-1]
    P = _softmax(q @ k.swapaxes(-1, -2) / math.sqrt(HS))
    dv = P.swapaxes(-1, -2) @ dout
    dP = dout @ v.swapaxes(-1, -2)
    dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))
    s = 1.0 / math.sqrt(HS)
    return dS @ k * s, dS.swapaxes(-1, -2) @ q * s, dv


@_add("attention", "att_softmax_sum_wrong_axis", "summed dprobs * probs over the query axis (-2) instead of the key axis in the softmax backward")
def att_softmax_sum_wrong_axis(dout, q, k, v, probs):
    HS, dv, dP, _ = _att_parts(dout, q, k, v, probs)
    dS = probs * (dP - (dP * probs).sum(axis=-2, keepdims=True))
    s = 1.0 / math.sqrt(HS)
    return dS @ k * s, dS.swapaxes(-1, -2) @ q * s, dv


@_add("attention", "att_dk_no_scale", "applied the 1/sqrt(HS) scale to dq but forgot it on dk")
def att_dk_no_scale(dout, q, k, v, probs):
    HS, dv, dP, dS = _att_parts(dout, q, k, v, probs)
    s = 1.0 / math.sqrt(HS)
    return dS @ k * s, dS.swapaxes(-1, -2) @ q, dv


@_add("attention", "correct_attention", "correct")
def correct_attention(dout, q, k, v, probs):
    scale = q.shape[-1] ** -0.5
    dv = np.einsum("bhqk,bhqd->bhkd", probs, dout)
    dP = np.einsum("bhqd,bhkd->bhqk", dout, v)
    row = np.einsum("bhqk,bhqk->bhq", dP, probs)
    dS = probs * (dP - row[..., None]) * scale
    dq = np.einsum("bhqk,bhkd->bhqd", dS, k)
    dk = np.einsum("bhqk,bhqd->bhkd", dS, q)
    return dq, dk, dv


# ============================================================================ embedding_tied

@_add("embedding_tied", "emb_output_only", "kept only the output-projection gradient dlogits^T h and forgot the embedding lookup's")
def emb_output_only(dlogits, ids, weight):
    V, C = weight.shape
    h = weight[ids]
    dl2 = dlogits.reshape(-1, V)
    return dl2.T @ h.reshape(-1, C), dl2.sum(axis=0)


@_add("embedding_tied", "emb_input_only", "kept only the embedding lookup's gradient and forgot the output projection's")
def emb_input_only(dlogits, ids, weight):
    V, C = weight.shape
    dl2 = dlogits.reshape(-1, V)
    dW = np.zeros_like(weight)
    np.add.at(dW, np.asarray(ids).reshape(-1), dl2 @ weight)
    return dW, dl2.sum(axis=0)


@_add("embedding_tied", "emb_fancy_assign", "scattered with dW[ids] += dh, which drops repeated ids, instead of np.add.at")
def emb_fancy_assign(dlogits, ids, weight):
    V, C = weight.shape
    h = weight[ids]
    dl2 = dlogits.reshape(-1, V)
    dW = dl2.T @ h.reshape(-1, C)
    dW[ids] += dlogits @ weight
    return dW, dl2.sum(axis=0)


@_add("embedding_tied", "emb_dh_wrong_weight", "took dh as dlogits @ weight.T instead of dlogits @ weight")
def emb_dh_wrong_weight(dlogits, ids, weight):
    V, C = weight.shape
    h = weight[ids]
    dl2 = dlogits.reshape(-1, V)
    dW = dl2.T @ h.reshape(-1, C)
    np.add.at(dW, np.asarray(ids).reshape(-1), (dlogits @ weight.T).reshape(-1, C))
    return dW, dl2.sum(axis=0)


