"""An outside set of realistic wrong backward passes, written as learners write them.

Each entry is a complete wrong implementation (not a perturbation of the reference) with the
hint key(s) that describe its mistake. Each is written from the exercise's statement as a whole
function and never calls the checker's recognisers; but its author also wrote the hints, so it
is not a blind set: a class's mistakes will find gaps it does not. It measures the checker
the way a class would meet it:

* every mistake must FAIL (at seeds 0 and 1);
* no hint may fire that does not describe the mistake (fired keys within the accepted ones,
  apart from the purely informative ``wrong_shape`` when the shape IS the mistake);
* at least 90% must get a specific hint naming them (measured: printed by the last test).
"""
import math

import numpy as np
import pytest

from minidistil.exercises import check
from minidistil.exercises import forwards as F

GENERIC = {"generic", "exception", "scale_other", "block_first_failure", "missing_gradient"}
MISTAKES = []


def mistake(exercise, *keys):
    def wrap(fn):
        MISTAKES.append((fn.__name__, exercise, fn, set(keys)))
        return fn
    return wrap


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _cdf(x):
    return 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _pdf(x):
    return np.exp(-x * x / 2) / math.sqrt(2 * math.pi)


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


@mistake("layernorm", "layernorm_variance_term")
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


@mistake("softmax_t", "softmax_times_T")
def sm_times_T(dp, x, T):
    p = _softmax(x * T)
    return p * (dp - (dp * p).sum(-1, keepdims=True)) * T


@mistake("softmax_t", "scale_T2")
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


@mistake("log_softmax_t", "softmax_temperature", "scale_T")
def lsm_no_T(dy, x, T):
    p = _softmax(x / T)
    return dy - p * dy.sum(-1, keepdims=True)


@mistake("log_softmax_t", "softmax_times_T")
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


# ----------------------------------------------------------------------------------- tied embedding
@mistake("embedding_tied", "tied_two_gradients")
def emb_output_only(dlogits, ids, weight):
    V, C = weight.shape
    h = weight[ids].reshape(-1, C)
    d = dlogits.reshape(-1, V)
    return d.T @ h, d.sum(0)


@mistake("embedding_tied", "embedding_repeated_ids")
def emb_fancy_assign(dlogits, ids, weight):
    V, C = weight.shape
    h = weight[ids].reshape(-1, C)
    d = dlogits.reshape(-1, V)
    dw = d.T @ h
    dw[ids.reshape(-1)] += (d @ weight)
    return dw, d.sum(0)


@mistake("embedding_tied", "tied_two_gradients")
def emb_lookup_only(dlogits, ids, weight):
    V, C = weight.shape
    dw = np.zeros_like(weight)
    np.add.at(dw, ids.reshape(-1), (dlogits @ weight).reshape(-1, C))
    return dw, dlogits.reshape(-1, V).sum(0)


# ----------------------------------------------------------------------------------- cross-entropy
@mistake("cross_entropy", "ce_ignore_index")
def ce_index_everything(dloss, logits, labels):
    V = logits.shape[-1]
    p = _softmax(logits).reshape(-1, V)
    y = labels.reshape(-1)
    p[np.arange(len(y)), y] -= 1  # -100 is not a class
    return dloss * p.reshape(logits.shape) / (y != -100).sum()


@mistake("cross_entropy", "ce_ignored_rows")
def ce_keep_ignored_rows(dloss, logits, labels):
    V = logits.shape[-1]
    p = _softmax(logits).reshape(-1, V)
    y = labels.reshape(-1)
    keep = y != -100
    p[np.nonzero(keep)[0], y[keep]] -= 1
    return dloss * p.reshape(logits.shape) / keep.sum()


@mistake("cross_entropy", "ce_count")
def ce_mean_all(dloss, logits, labels):
    V = logits.shape[-1]
    p = _softmax(logits).reshape(-1, V)
    y = labels.reshape(-1)
    keep = y != -100
    p[np.nonzero(keep)[0], y[keep]] -= 1
    p[~keep] = 0
    return dloss * p.reshape(logits.shape) / len(y)


@mistake("cross_entropy", "scale_n")
def ce_sum(dloss, logits, labels):
    V = logits.shape[-1]
    p = _softmax(logits).reshape(-1, V)
    y = labels.reshape(-1)
    keep = y != -100
    p[np.nonzero(keep)[0], y[keep]] -= 1
    p[~keep] = 0
    return dloss * p.reshape(logits.shape)


@mistake("cross_entropy", "scale_neg")
def ce_sign(dloss, logits, labels):
    V = logits.shape[-1]
    p = _softmax(logits).reshape(-1, V)
    y = labels.reshape(-1)
    keep = y != -100
    oh = np.zeros_like(p)
    oh[np.nonzero(keep)[0], y[keep]] = 1
    return dloss * ((oh - p) * keep[:, None]).reshape(logits.shape) / keep.sum()


@mistake("cross_entropy", "ce_wrt_probs")
def ce_dprobs(dloss, logits, labels):
    V = logits.shape[-1]
    p = _softmax(logits).reshape(-1, V)
    y = labels.reshape(-1)
    keep = y != -100
    g = np.zeros_like(p)
    rows = np.nonzero(keep)[0]
    g[rows, y[keep]] = -1 / p[rows, y[keep]]
    return dloss * g.reshape(logits.shape) / keep.sum()


@mistake("cross_entropy", "upstream_ignored")
def ce_no_dloss(dloss, logits, labels):
    V = logits.shape[-1]
    p = _softmax(logits).reshape(-1, V)
    y = labels.reshape(-1)
    keep = y != -100
    p[np.nonzero(keep)[0], y[keep]] -= 1
    p[~keep] = 0
    return p.reshape(logits.shape) / keep.sum()


# ----------------------------------------------------------------------------------- KL
def _kl(s, t, T):
    return _softmax(s / T), _softmax(t / T)


@mistake("kl_soft_target", "kl_T_squared")
def kl_no_T2(dloss, s_logits, t_logits, T):
    p, q = _kl(s_logits, t_logits, T)
    return dloss * (p - q) / T / len(s_logits)


@mistake("kl_soft_target", "kl_chain_T")
def kl_no_chain(dloss, s_logits, t_logits, T):
    p, q = _kl(s_logits, t_logits, T)
    return dloss * T * T * (p - q) / len(s_logits)


@mistake("kl_soft_target", "kl_mean")
def kl_no_mean(dloss, s_logits, t_logits, T):
    p, q = _kl(s_logits, t_logits, T)
    return dloss * T * (p - q)


@mistake("kl_soft_target", "kl_batchmean")
def kl_mean_reduction(dloss, s_logits, t_logits, T):
    p, q = _kl(s_logits, t_logits, T)
    return dloss * T * (p - q) / p.size


@mistake("kl_soft_target", "kl_sign")
def kl_sign(dloss, s_logits, t_logits, T):
    p, q = _kl(s_logits, t_logits, T)
    return dloss * T * (q - p) / len(s_logits)


@mistake("kl_soft_target", "softmax_times_T")
def kl_times_T(dloss, s_logits, t_logits, T):
    p, q = _softmax(s_logits * T), _softmax(t_logits * T)
    return dloss * T * (p - q) / len(s_logits)


@mistake("kl_soft_target", "upstream_ignored")
def kl_no_dloss(dloss, s_logits, t_logits, T):
    p, q = _kl(s_logits, t_logits, T)
    return T * (p - q) / len(s_logits)


@mistake("kl_soft_target", "scale_inv_T")
def kl_neither(dloss, s_logits, t_logits, T):
    p, q = _kl(s_logits, t_logits, T)
    return dloss * (p - q) / len(s_logits)


# ----------------------------------------------------------------------------------- cosine
def _cos_parts(s, t):
    ns = np.linalg.norm(s, axis=-1, keepdims=True)
    nt = np.linalg.norm(t, axis=-1, keepdims=True)
    cos = (s * t).sum(-1, keepdims=True) / (ns * nt)
    return t / (ns * nt) - cos * s / ns ** 2


@mistake("cosine", "cosine_padding")
def cos_no_mask(dloss, s_h, t_h, mask):
    return -dloss * _cos_parts(s_h, t_h) / mask.sum()


@mistake("cosine", "cosine_count")
def cos_all_positions(dloss, s_h, t_h, mask):
    return -dloss * _cos_parts(s_h, t_h) * mask[..., None] / mask.size


@mistake("cosine", "cosine_per_sequence")
def cos_per_seq(dloss, s_h, t_h, mask):
    n = mask.sum(-1, keepdims=True)[..., None]
    return -dloss * _cos_parts(s_h, t_h) * mask[..., None] / n / mask.shape[0]


@mistake("cosine", "cosine_norm_term")
def cos_norm_const(dloss, s_h, t_h, mask):
    ns = np.linalg.norm(s_h, axis=-1, keepdims=True)
    nt = np.linalg.norm(t_h, axis=-1, keepdims=True)
    return -dloss * t_h / (ns * nt) * mask[..., None] / mask.sum()


@mistake("cosine", "cosine_sign")
def cos_sign(dloss, s_h, t_h, mask):
    return dloss * _cos_parts(s_h, t_h) * mask[..., None] / mask.sum()


@mistake("cosine", "upstream_ignored")
def cos_no_dloss(dloss, s_h, t_h, mask):
    return -_cos_parts(s_h, t_h) * mask[..., None] / mask.sum()


# ----------------------------------------------------------------------------------- triple loss
def _triple(h, weight, t_logits, t_h, labels, T):
    logits = h @ weight.T
    P = len(h)
    p, q = _softmax(logits / T), _softmax(t_logits / T)
    d_ce = T * (p - q) / P
    keep = labels != -100
    d_mlm = _softmax(logits)
    d_mlm[np.nonzero(keep)[0], labels[keep]] -= 1
    d_mlm[~keep] = 0
    d_mlm /= keep.sum()
    d_cos = -_cos_parts(h, t_h) / P
    return d_ce, d_mlm, d_cos


@mistake("triple_loss", "triple_missing_term")
def tri_no_cos(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    a, b, c = alphas
    d_ce, d_mlm, d_cos = _triple(h, weight, t_logits, t_h, labels, T)
    return dloss * (a * d_ce + b * d_mlm) @ weight


@mistake("triple_loss", "triple_missing_term")
def tri_overwrite(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    a, b, c = alphas
    d_ce, d_mlm, d_cos = _triple(h, weight, t_logits, t_h, labels, T)
    dlogits = a * d_ce
    dlogits = b * d_mlm  # overwrites the Lce gradient
    return dloss * (dlogits @ weight + c * d_cos)


@mistake("triple_loss", "triple_weights")
def tri_unweighted(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    d_ce, d_mlm, d_cos = _triple(h, weight, t_logits, t_h, labels, T)
    return dloss * ((d_ce + d_mlm) @ weight + d_cos)


@mistake("triple_loss", "triple_kl_scale")
def tri_kl_no_T2(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    a, b, c = alphas
    d_ce, d_mlm, d_cos = _triple(h, weight, t_logits, t_h, labels, T)
    return dloss * ((a * d_ce / T ** 2 + b * d_mlm) @ weight + c * d_cos)


@mistake("triple_loss", "triple_projection")
def tri_no_projection(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    a, b, c = alphas
    d_ce, d_mlm, d_cos = _triple(h, weight, t_logits, t_h, labels, T)
    return dloss * (a * d_ce + b * d_mlm + c * d_cos)


# ----------------------------------------------------------------------------------- hidden MSE
@mistake("hidden_mse", "mse_factor_two")
def mse_no_two(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = dloss * e / e.size
    return de @ weight, de.reshape(-1, e.shape[-1]).T @ s_h.reshape(-1, s_h.shape[-1])


@mistake("hidden_mse", "mse_count")
def mse_per_position(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = dloss * 2 * e / (e.shape[0] * e.shape[1])
    return de @ weight, de.reshape(-1, e.shape[-1]).T @ s_h.reshape(-1, s_h.shape[-1])


@mistake("hidden_mse", "mse_projection")
def mse_no_projection(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = dloss * 2 * e / e.size
    return de, de.reshape(-1, e.shape[-1]).T @ s_h.reshape(-1, s_h.shape[-1])


@mistake("hidden_mse", "mse_sign")
def mse_sign(dloss, s_h, t_h, weight):
    e = t_h - s_h @ weight.T
    de = dloss * 2 * e / e.size
    return de @ weight, de.reshape(-1, e.shape[-1]).T @ s_h.reshape(-1, s_h.shape[-1])


@mistake("hidden_mse", "transposed_weight")
def mse_dW_transposed(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = dloss * 2 * e / e.size
    return de @ weight, s_h.reshape(-1, s_h.shape[-1]).T @ de.reshape(-1, e.shape[-1])


# ----------------------------------------------------------------------------------- encoder block
def _block(dy, x, mask, p, nh, eps, res1=True, res2=True, reshape_heads=False, ln_first=False):
    """A learner's block backward built from their own (correct) pieces, with one switch."""
    from minidistil.exercises import solutions as mine  # the pieces a learner has by now
    B, T, C = x.shape

    def split(a):
        return a.reshape(B, nh, T, C // nh) if reshape_heads else \
            a.reshape(B, T, nh, C // nh).transpose(0, 2, 1, 3)

    def merge(a):
        return a.reshape(B, T, C) if reshape_heads else a.transpose(0, 2, 1, 3).reshape(B, T, C)

    lin = lambda a, n: a @ p[f"{n}.weight"].T + p[f"{n}.bias"]
    heads = lambda a: a.reshape(B, T, nh, C // nh).transpose(0, 2, 1, 3)
    q, k, v = heads(lin(x, "q")), heads(lin(x, "k")), heads(lin(x, "v"))
    ctx, probs = F.attention(q, k, v, mask)
    c2 = ctx.transpose(0, 2, 1, 3).reshape(B, T, C)
    r1 = x + lin(c2, "o")
    h = F.layernorm(r1, p["ln1.weight"], p["ln1.bias"], eps)
    u = lin(h, "ff1")
    r2 = h + F.gelu(u) @ p["ff2.weight"].T + p["ff2.bias"]
    g = {}

    def ffn_back(d):
        dgu, g["ff2.weight"], g["ff2.bias"] = mine.linear_backward(d, F.gelu(u), p["ff2.weight"])
        dh_f, g["ff1.weight"], g["ff1.bias"] = mine.linear_backward(mine.gelu_backward(dgu, u), h,
                                                                    p["ff1.weight"])
        return dh_f

    def attn_back(d):
        dc2, g["o.weight"], g["o.bias"] = mine.linear_backward(d, c2, p["o.weight"])
        dq, dk, dv = mine.attention_backward(split(dc2), q, k, v, probs)
        out = 0
        for n, dpart in (("q", dq), ("k", dk), ("v", dv)):
            dxp, g[f"{n}.weight"], g[f"{n}.bias"] = mine.linear_backward(merge(dpart), x, p[f"{n}.weight"])
            out = out + dxp
        return out

    if ln_first:
        dh, g["ln2.weight"], g["ln2.bias"] = mine.layernorm_backward(dy + ffn_back(dy), r2, p["ln2.weight"], eps)
        dx, g["ln1.weight"], g["ln1.bias"] = mine.layernorm_backward(dh + attn_back(dh), r1, p["ln1.weight"], eps)
        return dx, g
    dr2, g["ln2.weight"], g["ln2.bias"] = mine.layernorm_backward(dy, r2, p["ln2.weight"], eps)
    dh = (dr2 if res2 else 0) + ffn_back(dr2)
    dr1, g["ln1.weight"], g["ln1.bias"] = mine.layernorm_backward(dh, r1, p["ln1.weight"], eps)
    dx = (dr1 if res1 else 0) + attn_back(dr1)
    return dx, g


@mistake("encoder_block", "block_residual")
def block_no_ffn_residual(dy, x, mask, p, num_heads, eps=1e-12):
    return _block(dy, x, mask, p, num_heads, eps, res2=False)


@mistake("encoder_block", "block_residual")
def block_no_attn_residual(dy, x, mask, p, num_heads, eps=1e-12):
    return _block(dy, x, mask, p, num_heads, eps, res1=False)


@mistake("encoder_block", "block_ln_order")
def block_ln_swapped(dy, x, mask, p, num_heads, eps=1e-12):
    return _block(dy, x, mask, p, num_heads, eps, ln_first=True)


@mistake("encoder_block", "block_heads_reshaped")
def block_reshape_heads(dy, x, mask, p, num_heads, eps=1e-12):
    return _block(dy, x, mask, p, num_heads, eps, reshape_heads=True)


IDS = [m[0] for m in MISTAKES]


def _run(ex, fn, seed=0):
    return check(ex, fn, seed=seed, verbose=False)


@pytest.mark.parametrize("name,ex,fn,keys", MISTAKES, ids=IDS)
def test_every_outside_mistake_is_caught_and_no_wrong_hint_fires(name, ex, fn, keys):
    for seed in (0, 1):
        res = _run(ex, fn, seed)
        assert not res.passed, f"{name} passed at seed {seed}"
        wrong = [k for k in res.hint_keys if k not in keys | GENERIC]
        assert not wrong, f"{name}: hint(s) {wrong} fired for a mistake they do not describe"


def test_at_least_sixty_mistakes_and_ninety_percent_named():
    assert len(MISTAKES) >= 60
    named, missed = 0, []
    for name, ex, fn, keys in MISTAKES:
        res = _run(ex, fn)
        if set(res.hint_keys) & keys:
            named += 1
        else:
            missed.append((name, res.hint_keys))
    frac = named / len(MISTAKES)
    print(f"outside mistakes named by a specific hint: {named}/{len(MISTAKES)} = {frac:.1%}; "
          f"missed: {missed}")
    assert frac >= 0.9, missed
