"""Outside set 7, linear to log-softmax (see ``__init__.py``)."""
from .common import ENTRIES, _Phi, _erf, _flat, _phi, _softmax, entry, math, np  # noqa: F401

# ============================================================================== linear
@entry("linear", "control", "correct", control=True)
def linear_ok(dy, x, weight):
    dx = dy @ weight
    dW = _flat(dy).T @ _flat(x)
    db = _flat(dy).sum(0)
    return dx, dW, db


@entry("linear", "dx_weight_T", "dx = dy @ weight.T (transposed weight in the input gradient)")
def linear_m1(dy, x, weight):
    dx = dy @ weight.T
    dW = _flat(dy).T @ _flat(x)
    db = _flat(dy).sum(0)
    return dx, dW, db


@entry("linear", "dW_xT_dy", "dweight = x.T @ dy, the (IN, OUT) layout instead of (OUT, IN)")
def linear_m2(dy, x, weight):
    dx = dy @ weight
    dW = _flat(x).T @ _flat(dy)
    db = _flat(dy).sum(0)
    return dx, dW, db


@entry("linear", "db_axis1", "dbias = dy.sum(axis=1): summed over the output features, not the rows")
def linear_m3(dy, x, weight):
    dx = dy @ weight
    dW = _flat(dy).T @ _flat(x)
    db = dy.sum(axis=1)
    return dx, dW, db


@entry("linear", "db_mean", "dbias = dy.mean(axis=0) instead of a sum over the rows")
def linear_m4(dy, x, weight):
    dx = dy @ weight
    dW = _flat(dy).T @ _flat(x)
    db = _flat(dy).mean(0)
    return dx, dW, db


@entry("linear", "dW_over_N", "dweight averaged over the batch: (dy.T @ x) / N")
def linear_m5(dy, x, weight):
    dx = dy @ weight
    N = _flat(x).shape[0]
    dW = _flat(dy).T @ _flat(x) / N
    db = _flat(dy).sum(0)
    return dx, dW, db


@entry("linear", "order_dW_dx_db", "returns (dweight, dx, dbias): the first two in the wrong order")
def linear_m6(dy, x, weight):
    dx = dy @ weight
    dW = _flat(dy).T @ _flat(x)
    db = _flat(dy).sum(0)
    return dW, dx, db


@entry("linear", "dW_reshape", "dweight = (x.T @ dy).reshape(OUT, IN): a reshape where a transpose is needed")
def linear_m7(dy, x, weight):
    dx = dy @ weight
    dW = (_flat(x).T @ _flat(dy)).reshape(weight.shape)
    db = _flat(dy).sum(0)
    return dx, dW, db


@entry("linear", "dW_loop_assign", "dweight in a loop over rows with = instead of += (only the last row counts)")
def linear_m8(dy, x, weight):
    dx = dy @ weight
    x2, dy2 = _flat(x), _flat(dy)
    dW = np.zeros_like(weight)
    for n in range(x2.shape[0]):
        dW = np.outer(dy2[n], x2[n])
    db = dy2.sum(0)
    return dx, dW, db


@entry("linear", "db_sum_all", "dbias = dy.sum() with no axis: a scalar")
def linear_m9(dy, x, weight):
    dx = dy @ weight
    dW = _flat(dy).T @ _flat(x)
    db = dy.sum()
    return dx, dW, db


# ============================================================================== gelu
@entry("gelu", "control", "correct", control=True)
def gelu_ok(dy, x):
    return dy * (_Phi(x) + x * _phi(x))


@entry("gelu", "no_product_rule", "dx = dy * Phi(x): forgot the product rule's x * phi(x) term")
def gelu_m1(dy, x):
    return dy * _Phi(x)


@entry("gelu", "no_dy", "returns gelu'(x) without multiplying by dy")
def gelu_m2(dy, x):
    return _Phi(x) + x * _phi(x)


@entry("gelu", "pdf_no_norm", "phi(x) = exp(-x^2/2) without the 1/sqrt(2 pi) normalisation")
def gelu_m3(dy, x):
    return dy * (_Phi(x) + x * np.exp(-0.5 * x * x))


@entry("gelu", "pdf_exp_x2", "phi(x) written exp(-x**2)/sqrt(2 pi): the 1/2 in the exponent dropped")
def gelu_m4(dy, x):
    return dy * (_Phi(x) + x * np.exp(-x * x) / math.sqrt(2 * math.pi))


@entry("gelu", "tanh_derivative", "used the derivative of the tanh approximation for the exact erf GELU")
def gelu_m5(dy, x):
    c = math.sqrt(2 / math.pi)
    u = c * (x + 0.044715 * x ** 3)
    t = np.tanh(u)
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x))


@entry("gelu", "sigmoid_derivative", "used the sigmoid approximation x*sigmoid(1.702x) and its derivative")
def gelu_m6(dy, x):
    s = 1 / (1 + np.exp(-1.702 * x))
    return dy * (s + 1.702 * x * s * (1 - s))


@entry("gelu", "erf_inner_chain", "d/dx erf(x/sqrt2) taken as erf'(x/sqrt2): the inner 1/sqrt(2) forgotten")
def gelu_m7(dy, x):
    derf = 2 / math.sqrt(math.pi) * np.exp(-x * x / 2)  # erf'(u) at u = x/sqrt(2), no 1/sqrt(2)
    return dy * (0.5 * (1 + _erf(x / math.sqrt(2))) + 0.5 * x * derf)


@entry("gelu", "precedence", "dy multiplies only the second term: Phi + x * phi * dy (missing parentheses)")
def gelu_m8(dy, x):
    return _Phi(x) + x * _phi(x) * dy


@entry("gelu", "inplace_dy", "writes into dy: dy *= gelu'(x); return dy")
def gelu_m9(dy, x):
    dy *= _Phi(x) + x * _phi(x)
    return dy


# ============================================================================== layernorm
def _ln_stats(x, eps, ddof=0):
    mu = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True, ddof=ddof)
    r = 1 / np.sqrt(var + eps)
    return mu, var, r, (x - mu) * r


def _lead(a):
    return tuple(range(a.ndim - 1))


@entry("layernorm", "control", "correct", control=True)
def layernorm_ok(dy, x, gamma, eps=1e-12):
    mu, var, r, xhat = _ln_stats(x, eps)
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).sum(_lead(x)), dy.sum(_lead(x))


@entry("layernorm", "no_variance_term", "dx = r * (g - mean(g)): the variance path dropped")
def layernorm_m1(dy, x, gamma, eps=1e-12):
    mu, var, r, xhat = _ln_stats(x, eps)
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True))
    return dx, (dy * xhat).sum(_lead(x)), dy.sum(_lead(x))


@entry("layernorm", "no_mean_term", "dx = r * (g - xhat * mean(g * xhat)): the mean path dropped")
def layernorm_m2(dy, x, gamma, eps=1e-12):
    mu, var, r, xhat = _ln_stats(x, eps)
    g = dy * gamma
    dx = r * (g - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).sum(_lead(x)), dy.sum(_lead(x))


@entry("layernorm", "unbiased_var", "recomputes the variance with np.var(ddof=1) (unbiased) instead of /C")
def layernorm_m3(dy, x, gamma, eps=1e-12):
    mu, var, r, xhat = _ln_stats(x, eps, ddof=1)
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).sum(_lead(x)), dy.sum(_lead(x))


@entry("layernorm", "dgamma_x", "dgamma = sum(dy * x): the raw input instead of the normalised xhat")
def layernorm_m4(dy, x, gamma, eps=1e-12):
    mu, var, r, xhat = _ln_stats(x, eps)
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, (dy * x).sum(_lead(x)), dy.sum(_lead(x))


@entry("layernorm", "dx_no_gamma", "dx uses g = dy, forgetting that dy passes through gamma first")
def layernorm_m5(dy, x, gamma, eps=1e-12):
    mu, var, r, xhat = _ln_stats(x, eps)
    g = dy
    dx = r * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).sum(_lead(x)), dy.sum(_lead(x))


@entry("layernorm", "no_keepdims", "row means taken without keepdims=True (g.mean(-1)), so they broadcast wrong")
def layernorm_m6(dy, x, gamma, eps=1e-12):
    mu, var, r, xhat = _ln_stats(x, eps)
    g = dy * gamma
    dx = r * (g - g.mean(-1) - xhat * (g * xhat).mean(-1))
    return dx, (dy * xhat).sum(_lead(x)), dy.sum(_lead(x))


@entry("layernorm", "dgamma_last_axis", "dgamma summed over the feature axis (axis=-1) instead of the rows")
def layernorm_m7(dy, x, gamma, eps=1e-12):
    mu, var, r, xhat = _ln_stats(x, eps)
    g = dy * gamma
    dx = r * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).sum(-1), dy.sum(_lead(x))


@entry("layernorm", "staged_dvar_no_2", "staged derivation: dx = g*r + dvar * xc / C + dmu / C (the 2 of d var/dx dropped)")
def layernorm_m8(dy, x, gamma, eps=1e-12):
    C = x.shape[-1]
    mu, var, r, xhat = _ln_stats(x, eps)
    xc = x - mu
    g = dy * gamma
    dvar = (g * xc).sum(-1, keepdims=True) * -0.5 * (var + eps) ** -1.5
    dmu = -(g * r).sum(-1, keepdims=True)
    dx = g * r + dvar * xc / C + dmu / C
    return dx, (dy * xhat).sum(_lead(x)), dy.sum(_lead(x))


@entry("layernorm", "staged_dvar_power", "staged derivation: dvar = -0.5 * sum(g * xc) * (var+eps)**-0.5 (power -1/2, not -3/2)")
def layernorm_m9(dy, x, gamma, eps=1e-12):
    C = x.shape[-1]
    mu, var, r, xhat = _ln_stats(x, eps)
    xc = x - mu
    g = dy * gamma
    dvar = (g * xc).sum(-1, keepdims=True) * -0.5 * (var + eps) ** -0.5
    dmu = -(g * r).sum(-1, keepdims=True)
    dx = g * r + dvar * 2 * xc / C + dmu / C
    return dx, (dy * xhat).sum(_lead(x)), dy.sum(_lead(x))


# ============================================================================== softmax_t
@entry("softmax_t", "control", "correct", control=True)
def softmax_t_ok(dp, x, T):
    p = _softmax(x / T)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) / T


@entry("softmax_t", "diagonal_jacobian", "dx = dp * p * (1 - p) / T: only the diagonal of the Jacobian")
def softmax_t_m1(dp, x, T):
    p = _softmax(x / T)
    return dp * p * (1 - p) / T


@entry("softmax_t", "no_1_over_T", "forgot the chain-rule factor 1/T of z = x / T")
def softmax_t_m2(dp, x, T):
    p = _softmax(x / T)
    return p * (dp - (dp * p).sum(-1, keepdims=True))


@entry("softmax_t", "times_T", "multiplied by T instead of dividing by it")
def softmax_t_m3(dp, x, T):
    p = _softmax(x / T)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) * T


@entry("softmax_t", "no_keepdims", "(dp * p).sum(-1) without keepdims, so the row sum broadcasts along the wrong axis")
def softmax_t_m4(dp, x, T):
    p = _softmax(x / T)
    return p * (dp - (dp * p).sum(-1)) / T


@entry("softmax_t", "p_without_T", "recomputed p = softmax(x) without the temperature (the 1/T factor kept)")
def softmax_t_m5(dp, x, T):
    p = _softmax(x)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) / T


@entry("softmax_t", "sum_axis0", "the weighted sum taken over axis 0 (the rows) instead of the last axis")
def softmax_t_m6(dp, x, T):
    p = _softmax(x / T)
    return p * (dp - (dp * p).sum(0, keepdims=True)) / T


@entry("softmax_t", "sign_flip", "dx = p * (sum(dp * p) - dp) / T: the sign flipped")
def softmax_t_m7(dp, x, T):
    p = _softmax(x / T)
    return p * ((dp * p).sum(-1, keepdims=True) - dp) / T


@entry("softmax_t", "unweighted_sum", "dx = p * (dp - sum(dp)) / T: the sum forgets the p_i weights")
def softmax_t_m8(dp, x, T):
    p = _softmax(x / T)
    return p * (dp - dp.sum(-1, keepdims=True)) / T


@entry("softmax_t", "loop_assign", "per-row Jacobian loop that assigns dx = J @ dp[i] / T instead of dx[i] = ...")
def softmax_t_m9(dp, x, T):
    p = _softmax(x / T)
    P2, D2 = _flat(p), _flat(dp)
    dx = np.zeros_like(D2)
    for i in range(P2.shape[0]):
        J = np.diag(P2[i]) - np.outer(P2[i], P2[i])
        dx = J @ D2[i] / T
    return np.broadcast_to(dx, D2.shape).reshape(dp.shape).copy()


# ============================================================================== log_softmax_t
@entry("log_softmax_t", "control", "correct", control=True)
def log_softmax_t_ok(dy, x, T):
    p = _softmax(x / T)
    return (dy - p * dy.sum(-1, keepdims=True)) / T


@entry("log_softmax_t", "no_1_over_T", "forgot the chain-rule factor 1/T")
def log_softmax_t_m1(dy, x, T):
    p = _softmax(x / T)
    return dy - p * dy.sum(-1, keepdims=True)


@entry("log_softmax_t", "p_without_T", "the softmax inside the gradient recomputed as softmax(x), without /T")
def log_softmax_t_m2(dy, x, T):
    p = _softmax(x)
    return (dy - p * dy.sum(-1, keepdims=True)) / T


@entry("log_softmax_t", "no_keepdims", "dy.sum(-1) without keepdims")
def log_softmax_t_m3(dy, x, T):
    p = _softmax(x / T)
    return (dy - p * dy.sum(-1)) / T


@entry("log_softmax_t", "diagonal_only", "dx = dy * (1 - p) / T: only the diagonal of the Jacobian")
def log_softmax_t_m4(dy, x, T):
    p = _softmax(x / T)
    return dy * (1 - p) / T


@entry("log_softmax_t", "sum_all", "dy.sum() over the whole array instead of per row")
def log_softmax_t_m5(dy, x, T):
    p = _softmax(x / T)
    return (dy - p * dy.sum()) / T


@entry("log_softmax_t", "logp_for_p", "used the log-probabilities y = log softmax instead of p = exp(y)")
def log_softmax_t_m6(dy, x, T):
    z = x / T
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return (dy - logp * dy.sum(-1, keepdims=True)) / T


@entry("log_softmax_t", "sign_flip", "dx = (p * sum(dy) - dy) / T: the sign flipped")
def log_softmax_t_m7(dy, x, T):
    p = _softmax(x / T)
    return (p * dy.sum(-1, keepdims=True) - dy) / T


@entry("log_softmax_t", "sum_axis0", "dy summed over axis 0 (the rows) instead of the last axis")
def log_softmax_t_m8(dy, x, T):
    p = _softmax(x / T)
    return (dy - p * dy.sum(0, keepdims=True)) / T


@entry("log_softmax_t", "inplace_dy", "computes in place in dy: dy -= p * dy.sum(-1, keepdims=True); dy /= T")
def log_softmax_t_m9(dy, x, T):
    p = _softmax(x / T)
    dy -= p * dy.sum(-1, keepdims=True)
    dy /= T
    return dy
