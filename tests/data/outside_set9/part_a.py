"""Outside set 9, part 1 of 3 (see ``__init__.py``)."""
"""A blind outside set of learner mistakes for the 13 gradient exercises.

Each entry: id, exercise, what (one line), fn (takes the stub's parameters by name), control.
"""
import math
import numpy as np

from .common import (Phi, attn_bwd, ce_grad, cos_grad, gelu, gelu_grad, kl_grad, lin_grads,  # noqa: E402
                    ln_bwd, ln_fwd, merge, phi, softmax, split)
from .common import erf  # noqa: E402

ENTRIES = []


def E(ex, short, what, control=False):
    def deco(fn):
        ENTRIES.append({"id": f"{ex}/{short}", "exercise": ex, "what": what, "fn": fn,
                        "control": control})
        return fn
    return deco


# ------------------------------------------------------------------ linear
@E("linear", "control", "correct", True)
def _(dy, x, weight):
    return lin_grads(dy, x, weight)


@E("linear", "dx_uses_WT", "dx = dy @ weight.T (transposes the weight, as if it were (IN, OUT))")
def _(dy, x, weight):
    _, dW, db = lin_grads(dy, x, weight)
    return dy @ weight.T, dW, db


@E("linear", "dW_transposed", "dweight = x.T @ dy, shape (IN, OUT) instead of (OUT, IN)")
def _(dy, x, weight):
    dx, _, db = lin_grads(dy, x, weight)
    return dx, x.reshape(-1, x.shape[-1]).T @ dy.reshape(-1, dy.shape[-1]), db


@E("linear", "dbias_wrong_axis", "dbias = dy.sum(axis=1): sums over the outputs instead of the rows")
def _(dy, x, weight):
    dx, dW, _ = lin_grads(dy, x, weight)
    return dx, dW, dy.sum(axis=-1)


@E("linear", "dbias_mean", "dbias = dy.mean(axis=0): averages the rows instead of summing them")
def _(dy, x, weight):
    dx, dW, _ = lin_grads(dy, x, weight)
    return dx, dW, dy.reshape(-1, dy.shape[-1]).mean(0)


@E("linear", "dW_divided_by_N", "dweight = dy.T @ x / N: divides by the batch size as if averaging")
def _(dy, x, weight):
    dx, dW, db = lin_grads(dy, x, weight)
    N = int(np.prod(x.shape[:-1]))
    return dx, dW / N, db


@E("linear", "no_dbias_returned", "returns only (dx, dweight): forgot the bias gradient")
def _(dy, x, weight):
    dx, dW, _ = lin_grads(dy, x, weight)
    return dx, dW


@E("linear", "order_swapped", "returns (dweight, dx, dbias) in the wrong order")
def _(dy, x, weight):
    dx, dW, db = lin_grads(dy, x, weight)
    return dW, dx, db


@E("linear", "dW_outer_of_sums", "dweight = outer(dy.sum(0), x.sum(0)): sums over the batch before the product")
def _(dy, x, weight):
    dx, _, db = lin_grads(dy, x, weight)
    d2 = dy.reshape(-1, dy.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    return dx, np.outer(d2.sum(0), x2.sum(0)), db


@E("linear", "dW_reshape_not_transpose", "dweight = (x.T @ dy).reshape(OUT, IN): reshape used instead of a transpose")
def _(dy, x, weight):
    dx, _, db = lin_grads(dy, x, weight)
    OUT, IN = weight.shape
    return dx, (x.reshape(-1, IN).T @ dy.reshape(-1, OUT)).reshape(OUT, IN), db


# ------------------------------------------------------------------ gelu
@E("gelu", "control", "correct", True)
def _(dy, x):
    return dy * gelu_grad(x)


@E("gelu", "only_Phi", "dx = dy * Phi(x): treats x as a constant in x * Phi(x) (drops x * phi(x))")
def _(dy, x):
    return dy * Phi(x)


@E("gelu", "tanh_approx", "uses the derivative of the tanh approximation of GELU")
def _(dy, x):
    c = math.sqrt(2.0 / math.pi)
    u = c * (x + 0.044715 * x ** 3)
    t = np.tanh(u)
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x))


@E("gelu", "sigmoid_approx", "uses the derivative of the sigmoid approximation x * sigmoid(1.702 x)")
def _(dy, x):
    s = 1.0 / (1.0 + np.exp(-1.702 * x))
    return dy * (s + 1.702 * x * s * (1 - s))


@E("gelu", "pdf_unnormalised", "phi(x) = exp(-x^2/2) without the 1/sqrt(2 pi) factor")
def _(dy, x):
    return dy * (Phi(x) + x * np.exp(-0.5 * x * x))


@E("gelu", "erf_no_sqrt2", "Phi(x) written as 0.5 * (1 + erf(x)), forgetting the / sqrt(2)")
def _(dy, x):
    return dy * (0.5 * (1 + erf(x)) + x * phi(x))


@E("gelu", "no_upstream", "returns Phi(x) + x * phi(x): forgot to multiply by dy")
def _(dy, x):
    return gelu_grad(x)


@E("gelu", "pdf_exp_x2", "phi(x) with exp(-x^2) instead of exp(-x^2 / 2)")
def _(dy, x):
    return dy * (Phi(x) + x * np.exp(-x * x) / math.sqrt(2 * math.pi))


@E("gelu", "half_only_first_term", "product rule on 0.5 x (1+erf(x/sqrt2)): the 0.5 applied to the first term only")
def _(dy, x):
    return dy * (Phi(x) + 2.0 * x * phi(x))


@E("gelu", "minus_sign", "dx = dy * (Phi(x) - x * phi(x)): sign slip in the product rule")
def _(dy, x):
    return dy * (Phi(x) - x * phi(x))


# ------------------------------------------------------------------ layernorm
@E("layernorm", "control", "correct", True)
def _(dy, x, gamma, eps=1e-12):
    return ln_bwd(dy, x, gamma, eps)


def _ln_parts(dy, x, gamma, eps):
    _, xhat, rstd = ln_fwd(x, gamma, 0.0, eps)
    C = x.shape[-1]
    return xhat, rstd, dy * gamma, (dy * xhat).reshape(-1, C).sum(0), dy.reshape(-1, C).sum(0)


@E("layernorm", "unbiased_var", "recomputes the variance with np.var(ddof=1) / (C - 1)")
def _(dy, x, gamma, eps=1e-12):
    C = x.shape[-1]
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).sum(-1, keepdims=True) / (C - 1)
    rstd = 1 / np.sqrt(var + eps)
    xhat = (x - mu) * rstd
    dxhat = dy * gamma
    dx = rstd * (dxhat - dxhat.mean(-1, keepdims=True) - xhat * (dxhat * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).reshape(-1, C).sum(0), dy.reshape(-1, C).sum(0)


@E("layernorm", "stats_constant", "treats mean and variance as constants: dx = dy * gamma * rstd")
def _(dy, x, gamma, eps=1e-12):
    xhat, rstd, dxhat, dg, db = _ln_parts(dy, x, gamma, eps)
    return dxhat * rstd, dg, db


@E("layernorm", "no_var_path", "drops the gradient through the variance (keeps only the mean term)")
def _(dy, x, gamma, eps=1e-12):
    xhat, rstd, dxhat, dg, db = _ln_parts(dy, x, gamma, eps)
    return rstd * (dxhat - dxhat.mean(-1, keepdims=True)), dg, db


@E("layernorm", "no_mean_path", "drops the gradient through the mean (keeps only the variance term)")
def _(dy, x, gamma, eps=1e-12):
    xhat, rstd, dxhat, dg, db = _ln_parts(dy, x, gamma, eps)
    return rstd * (dxhat - xhat * (dxhat * xhat).mean(-1, keepdims=True)), dg, db


@E("layernorm", "dgamma_uses_x", "dgamma = sum(dy * x) with the raw input instead of the normalised x_hat")
def _(dy, x, gamma, eps=1e-12):
    xhat, rstd, dxhat, dg, db = _ln_parts(dy, x, gamma, eps)
    dx, _, _ = ln_bwd(dy, x, gamma, eps)
    return dx, (dy * x).reshape(-1, x.shape[-1]).sum(0), db


@E("layernorm", "inplace_dy", "writes dy *= gamma in place to get dxhat (mutates the upstream gradient)")
def _(dy, x, gamma, eps=1e-12):
    C = x.shape[-1]
    _, xhat, rstd = ln_fwd(x, gamma, 0.0, eps)
    db = dy.reshape(-1, C).sum(0)
    dg = (dy * xhat).reshape(-1, C).sum(0)
    dy *= gamma
    dxhat = dy
    dx = rstd * (dxhat - dxhat.mean(-1, keepdims=True) - xhat * (dxhat * xhat).mean(-1, keepdims=True))
    return dx, dg, db


@E("layernorm", "dvar_wrong_power", "dvar = sum(dxhat * (x - mu)) * -0.5 * (var + eps)^(-1/2) instead of ^(-3/2)")
def _(dy, x, gamma, eps=1e-12):
    xhat, rstd, dxhat, dg, db = _ln_parts(dy, x, gamma, eps)
    C = x.shape[-1]
    mu = x.mean(-1, keepdims=True)
    xm = x - mu
    dvar = (dxhat * xm).sum(-1, keepdims=True) * -0.5 * rstd
    dmu = -(dxhat * rstd).sum(-1, keepdims=True)
    dx = dxhat * rstd + dvar * 2 * xm / C + dmu / C
    return dx, dg, db


@E("layernorm", "forgot_gamma", "dxhat = dy: forgets to multiply by gamma before the normalisation backward")
def _(dy, x, gamma, eps=1e-12):
    xhat, rstd, dxhat, dg, db = _ln_parts(dy, x, gamma, eps)
    d = dy
    return rstd * (d - d.mean(-1, keepdims=True) - xhat * (d * xhat).mean(-1, keepdims=True)), dg, db


@E("layernorm", "mean_axis0", "the two means in the dx formula taken over axis=0 (rows) instead of the last axis")
def _(dy, x, gamma, eps=1e-12):
    xhat, rstd, dxhat, dg, db = _ln_parts(dy, x, gamma, eps)
    dx = rstd * (dxhat - dxhat.mean(0, keepdims=True) - xhat * (dxhat * xhat).mean(0, keepdims=True))
    return dx, dg, db


# ------------------------------------------------------------------ softmax_t
@E("softmax_t", "control", "correct", True)
def _(dp, x, T):
    p = softmax(x, T)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) / T


@E("softmax_t", "no_1_over_T", "forgets the chain-rule factor 1/T from x / T")
def _(dp, x, T):
    p = softmax(x, T)
    return p * (dp - (dp * p).sum(-1, keepdims=True))


@E("softmax_t", "times_T", "multiplies by T instead of dividing")
def _(dp, x, T):
    p = softmax(x, T)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) * T


@E("softmax_t", "diagonal_only", "uses only the Jacobian diagonal: dx = dp * p * (1 - p) / T")
def _(dp, x, T):
    p = softmax(x, T)
    return dp * p * (1 - p) / T


@E("softmax_t", "no_sum_term", "dx = p * dp / T: drops the - sum(dp * p) term")
def _(dp, x, T):
    p = softmax(x, T)
    return p * dp / T


@E("softmax_t", "sum_no_keepdims", "(dp * p).sum(axis=-1) without keepdims, broadcast against the rows")
def _(dp, x, T):
    p = softmax(x, T)
    return p * (dp - (dp * p).sum(-1)) / T


@E("softmax_t", "p_without_T", "recomputes p = softmax(x) without the temperature (then divides by T)")
def _(dp, x, T):
    p = softmax(x, 1.0)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) / T


@E("softmax_t", "sum_axis0", "the sum(dp * p) taken over axis=0 instead of the last axis")
def _(dp, x, T):
    p = softmax(x, T)
    return p * (dp - (dp * p).sum(0, keepdims=True)) / T


@E("softmax_t", "sign_flipped", "dx = p * (sum(dp * p) - dp) / T: the two terms in the wrong order")
def _(dp, x, T):
    p = softmax(x, T)
    return p * ((dp * p).sum(-1, keepdims=True) - dp) / T


@E("softmax_t", "one_big_jacobian", "builds diag(p) - outer(p, p) on the flattened array, mixing rows")
def _(dp, x, T):
    p = softmax(x, T).reshape(-1)
    J = np.diag(p) - np.outer(p, p)
    return (J @ dp.reshape(-1)).reshape(x.shape) / T


# ------------------------------------------------------------------ log_softmax_t
@E("log_softmax_t", "control", "correct", True)
def _(dy, x, T):
    p = softmax(x, T)
    return (dy - p * dy.sum(-1, keepdims=True)) / T


@E("log_softmax_t", "no_1_over_T", "forgets the chain-rule factor 1/T")
def _(dy, x, T):
    p = softmax(x, T)
    return dy - p * dy.sum(-1, keepdims=True)


@E("log_softmax_t", "times_T", "multiplies by T instead of dividing")
def _(dy, x, T):
    p = softmax(x, T)
    return (dy - p * dy.sum(-1, keepdims=True)) * T


@E("log_softmax_t", "no_normaliser", "differentiates only x/T, forgets the log-sum-exp term: dx = dy / T")
def _(dy, x, T):
    return dy / T


@E("log_softmax_t", "no_sum", "dx = (dy - p * dy) / T: forgets that every output depends on every input")
def _(dy, x, T):
    p = softmax(x, T)
    return (dy - p * dy) / T
