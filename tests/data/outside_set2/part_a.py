"""Outside set, verbatim from line 43 to 373 of the original file (linear, gelu, layernorm, softmax_t, log_softmax_t, attention); only this header was added."""
# ruff: noqa: F401
import math

import numpy as np

from .common import MISTAKES, SQRT2, SQRT2PI, _Phi, _add, _erf, _phi, _softmax

# ============================================================================= linear
# correct: dx = dy @ W ; dW = dy^T x ; db = sum_rows dy

@_add("linear", "lin_dw_transposed", "wrote dweight as x.T @ dy, which is the transpose of the right (OUT, IN) shape")
def linear_backward_1(dy, x, weight):
    dx = dy @ weight
    dweight = x.T @ dy
    dbias = dy.sum(axis=0)
    return dx, dweight, dbias


@_add("linear", "lin_db_mean", "averaged dy over the rows for dbias instead of summing")
def linear_backward_2(dy, x, weight):
    dx = dy @ weight
    dweight = dy.T @ x
    dbias = dy.mean(axis=0)
    return dx, dweight, dbias


@_add("linear", "lin_dx_weight_T", "multiplied dy by weight.T (copying the forward) instead of by weight for dx")
def linear_backward_3(dy, x, weight):
    dx = dy @ weight.T
    dweight = dy.T @ x
    dbias = dy.sum(axis=0)
    return dx, dweight, dbias


@_add("linear", "lin_db_wrong_axis", "summed dy over the wrong axis (axis=1) for dbias")
def linear_backward_4(dy, x, weight):
    dx = dy @ weight
    dweight = dy.T @ x
    dbias = dy.sum(axis=1)
    return dx, dweight, dbias


@_add("linear", "lin_db_keepdims", "kept the summed axis for dbias, returning shape (1, OUT) instead of (OUT,)")
def linear_backward_5(dy, x, weight):
    dx = dy @ weight
    dweight = dy.T @ x
    dbias = dy.sum(axis=0, keepdims=True)
    return dx, dweight, dbias


# ============================================================================= gelu
# correct: dx = dy * (Phi(x) + x * phi(x))

@_add("gelu", "gelu_only_cdf", "forgot the product rule: used only Phi(x) and dropped the x * pdf(x) term")
def gelu_backward_1(dy, x):
    return dy * 0.5 * (1.0 + _erf(x / SQRT2))


@_add("gelu", "gelu_tanh_approx", "differentiated the tanh approximation of GELU instead of the exact erf GELU")
def gelu_backward_2(dy, x):
    c = math.sqrt(2.0 / math.pi)
    u = c * (x + 0.044715 * x ** 3)
    t = np.tanh(u)
    du = c * (1.0 + 3 * 0.044715 * x ** 2)
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


@_add("gelu", "gelu_pdf_no_norm", "left out the 1/sqrt(2*pi) normalisation of the Gaussian pdf")
def gelu_backward_3(dy, x):
    pdf = np.exp(-x ** 2 / 2)
    return dy * (0.5 * (1.0 + _erf(x / SQRT2)) + x * pdf)


@_add("gelu", "gelu_pdf_exp_x2", "wrote the pdf as exp(-x^2) (forgot the 1/2 in the exponent)")
def gelu_backward_4(dy, x):
    pdf = np.exp(-x ** 2) / np.sqrt(2 * np.pi)
    return dy * (0.5 * (1.0 + _erf(x / SQRT2)) + x * pdf)


# ============================================================================= layernorm
# correct: xhat = (x-mu)*rstd ; g = dy*gamma ;
#   dx = rstd * (g - mean(g) - xhat * mean(g*xhat)) ; dgamma = sum dy*xhat ; dbeta = sum dy

def _ln_stats(x, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    return mu, rstd, (x - mu) * rstd


@_add("layernorm", "ln_stats_constant", "treated the mean and the variance as constants, so dx is just dy * gamma / std")
def layernorm_backward_1(dy, x, gamma, eps=1e-12):
    mu, rstd, xhat = _ln_stats(x, eps)
    C = x.shape[-1]
    dx = dy * gamma * rstd
    dgamma = (dy * xhat).reshape(-1, C).sum(axis=0)
    dbeta = dy.reshape(-1, C).sum(axis=0)
    return dx, dgamma, dbeta


@_add("layernorm", "ln_no_var_path", "forgot the gradient that flows through the variance (only subtracted the mean of g)")
def layernorm_backward_2(dy, x, gamma, eps=1e-12):
    mu, rstd, xhat = _ln_stats(x, eps)
    C = x.shape[-1]
    g = dy * gamma
    dx = rstd * (g - g.mean(axis=-1, keepdims=True))
    dgamma = (dy * xhat).reshape(-1, C).sum(axis=0)
    dbeta = dy.reshape(-1, C).sum(axis=0)
    return dx, dgamma, dbeta


@_add("layernorm", "ln_no_mean_path", "forgot the gradient that flows through the mean (kept only the variance term)")
def layernorm_backward_3(dy, x, gamma, eps=1e-12):
    mu, rstd, xhat = _ln_stats(x, eps)
    C = x.shape[-1]
    g = dy * gamma
    dx = rstd * (g - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    dgamma = (dy * xhat).reshape(-1, C).sum(axis=0)
    dbeta = dy.reshape(-1, C).sum(axis=0)
    return dx, dgamma, dbeta


@_add("layernorm", "ln_dgamma_no_xhat", "wrote dgamma as the sum of dy, forgetting to multiply by the normalised x")
def layernorm_backward_4(dy, x, gamma, eps=1e-12):
    mu, rstd, xhat = _ln_stats(x, eps)
    C = x.shape[-1]
    g = dy * gamma
    dx = rstd * (g - g.mean(axis=-1, keepdims=True)
                 - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    dgamma = dy.reshape(-1, C).sum(axis=0)
    dbeta = dy.reshape(-1, C).sum(axis=0)
    return dx, dgamma, dbeta


@_add("layernorm", "ln_forgot_gamma", "forgot to multiply dy by gamma before back-propagating into x")
def layernorm_backward_5(dy, x, gamma, eps=1e-12):
    mu, rstd, xhat = _ln_stats(x, eps)
    C = x.shape[-1]
    g = dy
    dx = rstd * (g - g.mean(axis=-1, keepdims=True)
                 - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    dgamma = (dy * xhat).reshape(-1, C).sum(axis=0)
    dbeta = dy.reshape(-1, C).sum(axis=0)
    return dx, dgamma, dbeta


@_add("layernorm", "ln_unbiased_var", "recomputed the variance with the unbiased 1/(C-1) estimator instead of 1/C")
def layernorm_backward_6(dy, x, gamma, eps=1e-12):
    C = x.shape[-1]
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, ddof=1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * rstd
    g = dy * gamma
    dx = rstd * (g - g.mean(axis=-1, keepdims=True)
                 - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    dgamma = (dy * xhat).reshape(-1, C).sum(axis=0)
    dbeta = dy.reshape(-1, C).sum(axis=0)
    return dx, dgamma, dbeta


@_add("layernorm", "ln_missing_1_over_C", "used the N*g - sum(g) - xhat*sum(g*xhat) form but forgot the overall 1/C")
def layernorm_backward_7(dy, x, gamma, eps=1e-12):
    mu, rstd, xhat = _ln_stats(x, eps)
    C = x.shape[-1]
    g = dy * gamma
    dx = rstd * (C * g - g.sum(axis=-1, keepdims=True)
                 - xhat * (g * xhat).sum(axis=-1, keepdims=True))
    dgamma = (dy * xhat).reshape(-1, C).sum(axis=0)
    dbeta = dy.reshape(-1, C).sum(axis=0)
    return dx, dgamma, dbeta


@_add("layernorm", "correct_layernorm", "correct")
def layernorm_backward_ok(dy, x, gamma, eps=1e-12):
    # written via the explicit chain through mean and variance, the "backprop ninja" way
    C = x.shape[-1]
    x2 = x.reshape(-1, C)
    d2 = dy.reshape(-1, C)
    mu = x2.sum(axis=1, keepdims=True) / C
    xm = x2 - mu
    var = (xm ** 2).sum(axis=1, keepdims=True) / C
    std = np.sqrt(var + eps)
    xhat = xm / std
    dgamma = (d2 * xhat).sum(axis=0)
    dbeta = d2.sum(axis=0)
    dxhat = d2 * gamma
    dstd = -(dxhat * xm / std ** 2).sum(axis=1, keepdims=True)
    dvar = dstd * 0.5 / std
    dxm = dxhat / std + dvar * 2.0 * xm / C
    dmu = -dxm.sum(axis=1, keepdims=True)
    dx2 = dxm + dmu / C
    return dx2.reshape(x.shape), dgamma, dbeta


# ============================================================================= softmax_t
# correct: p = softmax(x/T) ; dx = p * (dp - sum(dp*p)) / T

@_add("softmax_t", "sm_forgot_T", "forgot the 1/T chain-rule factor from x / T")
def softmax_t_backward_1(dp, x, T):
    p = _softmax(x, T)
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True))


@_add("softmax_t", "sm_times_T", "multiplied by T instead of dividing by T")
def softmax_t_backward_2(dp, x, T):
    p = _softmax(x, T)
    return T * p * (dp - (dp * p).sum(axis=-1, keepdims=True))


@_add("softmax_t", "sm_diag_jacobian", "used only the diagonal of the softmax Jacobian, p * (1 - p) * dp")
def softmax_t_backward_3(dp, x, T):
    p = _softmax(x, T)
    return p * (1.0 - p) * dp / T


@_add("softmax_t", "sm_recompute_no_T", "recomputed the probabilities as softmax(x) without the temperature")
def softmax_t_backward_4(dp, x, T):
    p = _softmax(x)
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True)) / T


@_add("softmax_t", "sm_keepdims", "forgot keepdims=True on the row sum, so it broadcast against the wrong axis")
def softmax_t_backward_5(dp, x, T):
    p = _softmax(x, T)
    s = (dp * p).sum(axis=-1)
    return p * (dp - s) / T


# ============================================================================= log_softmax_t
# correct: p = softmax(x/T) ; dx = (dy - p * sum(dy)) / T

@_add("log_softmax_t", "lsm_softmax_formula", "used the softmax backward formula p * (dy - sum(dy * p)) for log-softmax")
def log_softmax_t_backward_1(dy, x, T):
    p = _softmax(x, T)
    return p * (dy - (dy * p).sum(axis=-1, keepdims=True)) / T


@_add("log_softmax_t", "lsm_forgot_T", "forgot the 1/T chain-rule factor from x / T")
def log_softmax_t_backward_2(dy, x, T):
    p = _softmax(x, T)
    return dy - p * dy.sum(axis=-1, keepdims=True)


@_add("log_softmax_t", "lsm_dy_minus_p", "wrote dy - p (the cross-entropy shortcut) instead of dy - p * sum(dy)")
def log_softmax_t_backward_3(dy, x, T):
    p = _softmax(x, T)
    return (dy - p) / T


@_add("log_softmax_t", "lsm_exp_x", "used exp(x / T) instead of the normalised softmax in the correction term")
def log_softmax_t_backward_5(dy, x, T):
    e = np.exp(x / T)
    return (dy - e * dy.sum(axis=-1, keepdims=True)) / T


# ============================================================================= attention
# correct: dv = P^T dout ; dP = dout v^T ; dS = P*(dP - sum(dP*P)) ; dq = dS k / sqrt(HS) ;
#          dk = dS^T q / sqrt(HS)

@_add("attention", "att_no_scale", "forgot the 1/sqrt(HS) scale when back-propagating into q and k")
def attention_backward_1(dout, q, k, v, probs):
    dv = probs.swapaxes(-1, -2) @ dout
    dp = dout @ v.swapaxes(-1, -2)
    ds = probs * (dp - (dp * probs).sum(axis=-1, keepdims=True))
    dq = ds @ k
    dk = ds.swapaxes(-1, -2) @ q
    return dq, dk, dv


@_add("attention", "att_dv_no_transpose", "computed dv as probs @ dout without transposing probs")
def attention_backward_2(dout, q, k, v, probs):
    HS = q.shape[-1]
    dv = probs @ dout
    dp = dout @ v.swapaxes(-1, -2)
    ds = probs * (dp - (dp * probs).sum(axis=-1, keepdims=True))
    dq = ds @ k / math.sqrt(HS)
    dk = ds.swapaxes(-1, -2) @ q / math.sqrt(HS)
    return dq, dk, dv


@_add("attention", "att_skip_softmax", "skipped the softmax backward and used dprobs directly as dscores")
def attention_backward_3(dout, q, k, v, probs):
    HS = q.shape[-1]
    dv = probs.swapaxes(-1, -2) @ dout
    ds = dout @ v.swapaxes(-1, -2)
    dq = ds @ k / math.sqrt(HS)
    dk = ds.swapaxes(-1, -2) @ q / math.sqrt(HS)
    return dq, dk, dv


@_add("attention", "att_dk_no_transpose", "computed dk as dscores @ q without transposing dscores")
def attention_backward_4(dout, q, k, v, probs):
    HS = q.shape[-1]
    dv = probs.swapaxes(-1, -2) @ dout
    dp = dout @ v.swapaxes(-1, -2)
    ds = probs * (dp - (dp * probs).sum(axis=-1, keepdims=True))
    dq = ds @ k / math.sqrt(HS)
    dk = ds @ q / math.sqrt(HS)
    return dq, dk, dv


@_add("attention", "att_recompute_no_mask", "recomputed probs from q and k instead of using the given probs, losing the padding mask")
def attention_backward_5(dout, q, k, v, probs):
    HS = q.shape[-1]
    P = _softmax(q @ k.swapaxes(-1, -2) / math.sqrt(HS))
    dv = P.swapaxes(-1, -2) @ dout
    dp = dout @ v.swapaxes(-1, -2)
    ds = P * (dp - (dp * P).sum(axis=-1, keepdims=True))
    dq = ds @ k / math.sqrt(HS)
    dk = ds.swapaxes(-1, -2) @ q / math.sqrt(HS)
    return dq, dk, dv


@_add("attention", "att_einsum_swapped", "swapped the output indices in the einsum for dprobs (got its transpose)")
def attention_backward_6(dout, q, k, v, probs):
    HS = q.shape[-1]
    dv = np.einsum("bhij,bhid->bhjd", probs, dout)
    dp = np.einsum("bhid,bhjd->bhji", dout, v)
    ds = probs * (dp - (dp * probs).sum(axis=-1, keepdims=True))
    dq = np.einsum("bhij,bhjd->bhid", ds, k) / math.sqrt(HS)
    dk = np.einsum("bhij,bhid->bhjd", ds, q) / math.sqrt(HS)
    return dq, dk, dv


@_add("attention", "correct_attention", "correct")
def attention_backward_ok(dout, q, k, v, probs):
    # einsum version, softmax backward via the explicit Jacobian-vector product per row
    scale = 1.0 / math.sqrt(q.shape[-1])
    dv = np.einsum("bhij,bhid->bhjd", probs, dout)
    dp = np.einsum("bhid,bhjd->bhij", dout, v)
    rowdot = np.einsum("bhij,bhij->bhi", dp, probs)[..., None]
    ds = probs * (dp - rowdot)
    dq = np.einsum("bhij,bhjd->bhid", ds, k) * scale
    dk = np.einsum("bhij,bhid->bhjd", ds, q) * scale
    return dq, dk, dv


