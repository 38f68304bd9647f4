"""Outside set, verbatim from line 422 to 710 of the original file (cross_entropy, kl_soft_target, cosine, triple_loss, hidden_mse); only this header was added."""
# ruff: noqa: F401
import math

import numpy as np

from .common import _Phi, _SQRT2, _SQRT2PI, _add, _ce_grad_rows, _cos_grad, _erf, _ln_backward, _log_softmax, _phi, _rows, _softmax

# ============================================================================ cross_entropy

@_add("cross_entropy", "ce_minus100_index", "built the one-hot with labels as indices before masking, so -100 is used as an index")
def ce_minus100_index(dloss, logits, labels):
    V = logits.shape[-1]
    z = logits.reshape(-1, V)
    y = np.asarray(labels).reshape(-1)
    keep = y != -100
    g = _softmax(z)
    g[np.arange(len(y)), y] -= 1.0
    g[~keep] = 0.0
    return (dloss * g / keep.sum()).reshape(logits.shape)


@_add("cross_entropy", "ce_ignored_rows", "left the softmax gradient p on the ignored (-100) rows instead of zeroing them")
def ce_ignored_rows(dloss, logits, labels):
    V = logits.shape[-1]
    z = logits.reshape(-1, V)
    y = np.asarray(labels).reshape(-1)
    keep = y != -100
    g = _softmax(z)
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] -= 1.0
    return (dloss * g / keep.sum()).reshape(logits.shape)


@_add("cross_entropy", "ce_count_all_rows", "divided by the number of all rows instead of the non-ignored rows")
def ce_count_all_rows(dloss, logits, labels):
    V = logits.shape[-1]
    y = np.asarray(labels).reshape(-1)
    g = _ce_grad_rows(logits.reshape(-1, V), y) * (y != -100).sum() / len(y)
    return (dloss * g).reshape(logits.shape)


@_add("cross_entropy", "ce_wrt_probs", "returned the gradient with respect to the probabilities (-1/p at the label) instead of the logits")
def ce_wrt_probs(dloss, logits, labels):
    V = logits.shape[-1]
    z = logits.reshape(-1, V)
    y = np.asarray(labels).reshape(-1)
    keep = y != -100
    p = _softmax(z)
    g = np.zeros_like(p)
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] = -1.0 / p[rows, y[rows]]
    return (dloss * g / keep.sum()).reshape(logits.shape)


@_add("cross_entropy", "ce_no_dloss", "forgot to multiply by the upstream dloss")
def ce_no_dloss(dloss, logits, labels):
    V = logits.shape[-1]
    return _ce_grad_rows(logits.reshape(-1, V), np.asarray(labels).reshape(-1)).reshape(logits.shape)


@_add("cross_entropy", "ce_sign", "got the sign backwards: one_hot - p instead of p - one_hot")
def ce_sign(dloss, logits, labels):
    V = logits.shape[-1]
    g = -_ce_grad_rows(logits.reshape(-1, V), np.asarray(labels).reshape(-1))
    return (dloss * g).reshape(logits.shape)


@_add("cross_entropy", "ce_inplace_shift", "subtracted the row max from logits in place for stability, writing into the input")
def ce_inplace_shift(dloss, logits, labels):
    V = logits.shape[-1]
    z = logits
    z -= logits.max(axis=-1, keepdims=True)
    g = _ce_grad_rows(z.reshape(-1, V), np.asarray(labels).reshape(-1))
    return (dloss * g).reshape(logits.shape)


# ============================================================================ kl_soft_target

@_add("kl_soft_target", "kl_no_T2", "forgot the T**2 factor in front of the KL")
def kl_no_T2(dloss, s_logits, t_logits, T):
    P = s_logits.shape[0]
    return dloss * (_softmax(s_logits / T) - _softmax(t_logits / T)) / (T * P)


@_add("kl_soft_target", "kl_no_chain_T", "forgot the 1/T chain factor from s / T (kept only T**2)")
def kl_no_chain_T(dloss, s_logits, t_logits, T):
    P = s_logits.shape[0]
    return dloss * T * T * (_softmax(s_logits / T) - _softmax(t_logits / T)) / P


@_add("kl_soft_target", "kl_no_mean", "forgot to divide by the number of rows P (summed instead of averaged)")
def kl_no_mean(dloss, s_logits, t_logits, T):
    return dloss * T * (_softmax(s_logits / T) - _softmax(t_logits / T))


@_add("kl_soft_target", "kl_mean_elements", "averaged over all P*V elements (reduction='mean') instead of over the P rows (batchmean)")
def kl_mean_elements(dloss, s_logits, t_logits, T):
    return dloss * T * (_softmax(s_logits / T) - _softmax(t_logits / T)) / s_logits.size


@_add("kl_soft_target", "kl_sign", "got the sign backwards: q - p instead of p - q")
def kl_sign(dloss, s_logits, t_logits, T):
    P = s_logits.shape[0]
    return dloss * T * (_softmax(t_logits / T) - _softmax(s_logits / T)) / P


@_add("kl_soft_target", "kl_x_times_T", "computed the soft distributions as softmax(logits * T) instead of softmax(logits / T)")
def kl_x_times_T(dloss, s_logits, t_logits, T):
    P = s_logits.shape[0]
    return dloss * T * (_softmax(s_logits * T) - _softmax(t_logits * T)) / P


@_add("kl_soft_target", "kl_reversed", "differentiated KL(p || q) (student first) instead of KL(q || p)")
def kl_reversed(dloss, s_logits, t_logits, T):
    P = s_logits.shape[0]
    lp, lq = _log_softmax(s_logits / T), _log_softmax(t_logits / T)
    p = np.exp(lp)
    r = lp - lq
    dz = p * (r - (p * r).sum(axis=-1, keepdims=True))
    return dloss * T * dz / P


@_add("kl_soft_target", "correct_kl_soft_target", "correct")
def correct_kl_soft_target(dloss, s_logits, t_logits, T):
    # chain: L = T^2/P sum_i KL_i; dKL_i/dz = p - q; dz/ds = 1/T
    ls = s_logits / T - np.log(np.exp(s_logits / T - (s_logits / T).max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - (s_logits / T).max(-1, keepdims=True)
    lt = t_logits / T - np.log(np.exp(t_logits / T - (t_logits / T).max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - (t_logits / T).max(-1, keepdims=True)
    coef = float(dloss) * T * T / s_logits.shape[0] / T
    return coef * (np.exp(ls) - np.exp(lt))


# ============================================================================ cosine

@_add("cosine", "cos_padding", "forgot to zero the gradient at padded positions")
def cos_padding(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    return dloss * _cos_grad(s_h, t_h, np.ones_like(m, dtype=float), m.sum())


@_add("cosine", "cos_count_all", "divided by B*T (all positions) instead of the number of real positions")
def cos_count_all(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    return dloss * _cos_grad(s_h, t_h, m.astype(float), m.size)


@_add("cosine", "cos_per_sequence", "averaged per sequence then over the batch, instead of one mean over all real positions")
def cos_per_sequence(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    B = m.shape[0]
    w = m / (B * m.sum(axis=1, keepdims=True))  # (B, T)
    return dloss * _cos_grad(s_h, t_h, w, 1.0)


@_add("cosine", "cos_norm_constant", "treated |s| as a constant, keeping only the -t / (|s| |t|) term")
def cos_norm_constant(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    ns = np.sqrt((s_h * s_h).sum(axis=-1, keepdims=True))
    nt = np.sqrt((t_h * t_h).sum(axis=-1, keepdims=True))
    return dloss * (-(t_h / (ns * nt))) * m[..., None] / m.sum()


@_add("cosine", "cos_sign", "differentiated cos instead of 1 - cos (sign flipped)")
def cos_sign(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    return -dloss * _cos_grad(s_h, t_h, m.astype(float), m.sum())


@_add("cosine", "cos_norm_power", "wrote cos * s / |s| instead of cos * s / |s|**2 in the norm term")
def cos_norm_power(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    ns = np.sqrt((s_h * s_h).sum(axis=-1, keepdims=True))
    nt = np.sqrt((t_h * t_h).sum(axis=-1, keepdims=True))
    cos = (s_h * t_h).sum(axis=-1, keepdims=True) / (ns * nt)
    g = -(t_h / (ns * nt) - cos * s_h / ns)
    return dloss * g * m[..., None] / m.sum()


@_add("cosine", "cos_no_keepdims", "computed the norms without keepdims=True, so they do not broadcast against (B, T, C)")
def cos_no_keepdims(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    ns = np.sqrt((s_h * s_h).sum(axis=-1))
    nt = np.sqrt((t_h * t_h).sum(axis=-1))
    cos = (s_h * t_h).sum(axis=-1) / (ns * nt)
    g = -(t_h / (ns * nt) - cos * s_h / (ns * ns))
    return dloss * g * m[..., None] / m.sum()


@_add("cosine", "correct_cosine", "correct")
def correct_cosine(dloss, s_h, t_h, mask):
    m = np.asarray(mask).astype(np.float64)
    ns = np.linalg.norm(s_h, axis=-1, keepdims=True)
    shat = s_h / ns
    that = t_h / np.linalg.norm(t_h, axis=-1, keepdims=True)
    cos = np.sum(shat * that, axis=-1, keepdims=True)
    # d cos / d s = (that - cos * shat) / |s|
    dcos = (that - cos * shat) / ns
    return -float(dloss) / m.sum() * m[..., None] * dcos


# ============================================================================ triple_loss

def _triple_parts(h, weight, t_logits, t_h, labels, T):
    P = h.shape[0]
    logits = h @ weight.T
    d_kl = T * (_softmax(logits / T) - _softmax(t_logits / T)) / P
    d_ce = _ce_grad_rows(logits, np.asarray(labels).reshape(-1))
    d_cos = _cos_grad(h, t_h, np.ones(P), P)
    return d_kl, d_ce, d_cos


@_add("triple_loss", "tri_no_cos", "forgot to add the cosine loss's gradient at h")
def tri_no_cos(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    a_ce, a_mlm, a_cos = alphas
    d_kl, d_ce, d_cos = _triple_parts(h, weight, t_logits, t_h, labels, T)
    return dloss * ((a_ce * d_kl + a_mlm * d_ce) @ weight)


@_add("triple_loss", "tri_no_mlm", "forgot the MLM cross-entropy's gradient")
def tri_no_mlm(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    a_ce, a_mlm, a_cos = alphas
    d_kl, d_ce, d_cos = _triple_parts(h, weight, t_logits, t_h, labels, T)
    return dloss * ((a_ce * d_kl) @ weight + a_cos * d_cos)


@_add("triple_loss", "tri_overwrite_kl", "overwrote the KL's logit gradient with the MLM's (= instead of +=)")
def tri_overwrite_kl(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    a_ce, a_mlm, a_cos = alphas
    d_kl, d_ce, d_cos = _triple_parts(h, weight, t_logits, t_h, labels, T)
    dlogits = a_ce * d_kl
    dlogits = a_mlm * d_ce
    return dloss * (dlogits @ weight + a_cos * d_cos)


@_add("triple_loss", "tri_no_alphas", "forgot to weight the three gradients by the alphas")
def tri_no_alphas(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    d_kl, d_ce, d_cos = _triple_parts(h, weight, t_logits, t_h, labels, T)
    return dloss * ((d_kl + d_ce) @ weight + d_cos)


@_add("triple_loss", "tri_kl_no_T2", "forgot the T**2 of the distillation loss (kept only the 1/T)")
def tri_kl_no_T2(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    a_ce, a_mlm, a_cos = alphas
    d_kl, d_ce, d_cos = _triple_parts(h, weight, t_logits, t_h, labels, T)
    return dloss * ((a_ce * d_kl / (T * T) + a_mlm * d_ce) @ weight + a_cos * d_cos)


@_add("triple_loss", "tri_mlm_count_all", "averaged the MLM loss over all P positions instead of the ones with a label")
def tri_mlm_count_all(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    a_ce, a_mlm, a_cos = alphas
    d_kl, d_ce, d_cos = _triple_parts(h, weight, t_logits, t_h, labels, T)
    n = (np.asarray(labels) != -100).sum()
    d_ce = d_ce * n / h.shape[0]
    return dloss * ((a_ce * d_kl + a_mlm * d_ce) @ weight + a_cos * d_cos)


@_add("triple_loss", "tri_cos_label_mask", "applied the MLM's -100 label mask to the cosine loss too, though every position counts")
def tri_cos_label_mask(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    a_ce, a_mlm, a_cos = alphas
    d_kl, d_ce, _ = _triple_parts(h, weight, t_logits, t_h, labels, T)
    keep = np.asarray(labels).reshape(-1) != -100
    d_cos = _cos_grad(h, t_h, keep.astype(float), keep.sum())
    return dloss * ((a_ce * d_kl + a_mlm * d_ce) @ weight + a_cos * d_cos)


# ============================================================================ hidden_mse

@_add("hidden_mse", "mse_no_two", "forgot the factor 2 from the square")
def mse_no_two(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = dloss * e / e.size
    return de @ weight, _rows(de).T @ _rows(s_h)


@_add("hidden_mse", "mse_count_positions", "divided by the number of positions B*T instead of the number of elements B*T*CT")
def mse_count_positions(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = dloss * 2.0 * e / (e.shape[0] * e.shape[1])
    return de @ weight, _rows(de).T @ _rows(s_h)


@_add("hidden_mse", "mse_sign", "used the error t - s W^T instead of s W^T - t (sign flipped)")
def mse_sign(dloss, s_h, t_h, weight):
    e = t_h - s_h @ weight.T
    de = dloss * 2.0 * e / e.size
    return de @ weight, _rows(de).T @ _rows(s_h)


@_add("hidden_mse", "mse_dweight_transposed", "computed dweight as s^T de, the transpose (CS, CT) of what it should be")
def mse_dweight_transposed(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = dloss * 2.0 * e / e.size
    return de @ weight, _rows(s_h).T @ _rows(de)


