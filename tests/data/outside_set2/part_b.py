"""Outside set, verbatim from line 374 to 713 of the original file (embedding_tied, cross_entropy, kl_soft_target, cosine, triple_loss); only this header was added."""
# ruff: noqa: F401
import math

import numpy as np

from .common import MISTAKES, SQRT2, SQRT2PI, _Phi, _add, _erf, _phi, _softmax

# ============================================================================= embedding_tied
# correct: h = W[ids]; dW = dlogits^T h  (output use)  + scatter_add(ids, dlogits @ W)  (lookup use)
#          dbias = sum over (B, T) of dlogits

@_add("embedding_tied", "emb_output_only", "only counted the output projection's gradient and forgot the lookup also uses weight")
def embedding_tied_backward_1(dlogits, ids, weight):
    V, C = weight.shape
    h = weight[ids].reshape(-1, C)
    dl = dlogits.reshape(-1, V)
    dweight = dl.T @ h
    dbias = dl.sum(axis=0)
    return dweight, dbias


@_add("embedding_tied", "emb_lookup_only", "only scattered the lookup's gradient and forgot the output projection's dlogits^T h")
def embedding_tied_backward_2(dlogits, ids, weight):
    V, C = weight.shape
    dl = dlogits.reshape(-1, V)
    dh = dl @ weight
    dweight = np.zeros_like(weight)
    np.add.at(dweight, ids.reshape(-1), dh)
    dbias = dl.sum(axis=0)
    return dweight, dbias


@_add("embedding_tied", "emb_fancy_index_add", "used dweight[ids] += dh, which drops repeated token ids instead of accumulating")
def embedding_tied_backward_3(dlogits, ids, weight):
    V, C = weight.shape
    h = weight[ids].reshape(-1, C)
    dl = dlogits.reshape(-1, V)
    dweight = dl.T @ h
    dh = dl @ weight
    dweight[ids.reshape(-1)] += dh
    dbias = dl.sum(axis=0)
    return dweight, dbias


@_add("embedding_tied", "emb_dbias_mean", "averaged dlogits over the positions for dbias instead of summing")
def embedding_tied_backward_4(dlogits, ids, weight):
    V, C = weight.shape
    h = weight[ids].reshape(-1, C)
    dl = dlogits.reshape(-1, V)
    dweight = dl.T @ h
    np.add.at(dweight, ids.reshape(-1), dl @ weight)
    dbias = dl.mean(axis=0)
    return dweight, dbias


@_add("embedding_tied", "emb_dbias_axis0", "summed dlogits over the batch axis only, so dbias came out (T, V)")
def embedding_tied_backward_5(dlogits, ids, weight):
    V, C = weight.shape
    h = weight[ids]
    dweight = np.einsum("btv,btc->vc", dlogits, h)
    dh = dlogits @ weight
    for b in range(ids.shape[0]):
        for t in range(ids.shape[1]):
            dweight[ids[b, t]] += dh[b, t]
    dbias = dlogits.sum(axis=0)
    return dweight, dbias


# ============================================================================= cross_entropy
# correct: n = #(labels != -100); dlogits = dloss * (softmax - onehot) / n on kept rows, 0 elsewhere

@_add("cross_entropy", "ce_ignored_rows_not_zeroed", "forgot to zero the gradient of the rows whose label is -100")
def cross_entropy_backward_1(dloss, logits, labels):
    V = logits.shape[-1]
    y = np.asarray(labels).reshape(-1)
    keep = y != -100
    p = _softmax(logits.reshape(-1, V))
    idx = np.nonzero(keep)[0]
    p[idx, y[idx]] -= 1.0
    return (dloss * p / keep.sum()).reshape(logits.shape)


@_add("cross_entropy", "ce_divide_all_rows", "divided by the total number of positions instead of the number of scored (non -100) ones")
def cross_entropy_backward_2(dloss, logits, labels):
    V = logits.shape[-1]
    y = np.asarray(labels).reshape(-1)
    keep = y != -100
    g = _softmax(logits.reshape(-1, V))
    idx = np.nonzero(keep)[0]
    g[idx, y[idx]] -= 1.0
    g[~keep] = 0.0
    return (dloss * g / y.size).reshape(logits.shape)


@_add("cross_entropy", "ce_no_mean", "forgot to divide by the number of scored rows (gradient of the sum, not the mean)")
def cross_entropy_backward_3(dloss, logits, labels):
    V = logits.shape[-1]
    y = np.asarray(labels).reshape(-1)
    keep = y != -100
    g = _softmax(logits.reshape(-1, V))
    idx = np.nonzero(keep)[0]
    g[idx, y[idx]] -= 1.0
    g[~keep] = 0.0
    return (dloss * g).reshape(logits.shape)


@_add("cross_entropy", "ce_sign", "got the sign backwards: onehot - softmax instead of softmax - onehot")
def cross_entropy_backward_4(dloss, logits, labels):
    V = logits.shape[-1]
    y = np.asarray(labels).reshape(-1)
    keep = y != -100
    p = _softmax(logits.reshape(-1, V))
    onehot = np.zeros_like(p)
    onehot[np.nonzero(keep)[0], y[keep]] = 1.0
    g = (onehot - p) * keep[:, None]
    return (dloss * g / keep.sum()).reshape(logits.shape)


@_add("cross_entropy", "ce_no_dloss", "forgot to multiply by the upstream gradient dloss")
def cross_entropy_backward_5(dloss, logits, labels):
    V = logits.shape[-1]
    y = np.asarray(labels).reshape(-1)
    keep = y != -100
    p = _softmax(logits.reshape(-1, V))
    onehot = np.zeros_like(p)
    onehot[np.nonzero(keep)[0], y[keep]] = 1.0
    g = (p - onehot) * keep[:, None]
    return (g / keep.sum()).reshape(logits.shape)


@_add("cross_entropy", "ce_inplace_logits", "subtracted the row max from logits in place (logits -= max), writing into the input")
def cross_entropy_backward_6(dloss, logits, labels):
    V = logits.shape[-1]
    y = np.asarray(labels).reshape(-1)
    keep = y != -100
    logits -= logits.max(axis=-1, keepdims=True)
    e = np.exp(logits.reshape(-1, V))
    p = e / e.sum(axis=1, keepdims=True)
    onehot = np.zeros_like(p)
    onehot[np.nonzero(keep)[0], y[keep]] = 1.0
    g = (p - onehot) * keep[:, None]
    return (dloss * g / keep.sum()).reshape(logits.shape)


@_add("cross_entropy", "correct_cross_entropy", "correct")
def cross_entropy_backward_ok(dloss, logits, labels):
    # row loop, like a first attempt
    V = logits.shape[-1]
    flat = logits.reshape(-1, V)
    y = np.asarray(labels).reshape(-1)
    n = int((y != -100).sum())
    out = np.zeros_like(flat)
    for i in range(flat.shape[0]):
        if y[i] == -100:
            continue
        e = np.exp(flat[i] - flat[i].max())
        out[i] = e / e.sum()
        out[i, y[i]] -= 1.0
    return (out * (dloss / n)).reshape(logits.shape)


# ============================================================================= kl_soft_target
# correct: ds = dloss * T**2 / P * (p - q) / T = dloss * T * (p - q) / P

@_add("kl_soft_target", "kl_forgot_T2", "forgot the T**2 factor in front of the KL")
def kl_soft_target_backward_1(dloss, s_logits, t_logits, T):
    P = s_logits.shape[0]
    p = _softmax(s_logits, T)
    q = _softmax(t_logits, T)
    return dloss * (p - q) / (T * P)


@_add("kl_soft_target", "kl_forgot_inv_T", "forgot the 1/T from the student's logits being divided by T (so T**2 instead of T)")
def kl_soft_target_backward_2(dloss, s_logits, t_logits, T):
    P = s_logits.shape[0]
    p = _softmax(s_logits, T)
    q = _softmax(t_logits, T)
    return dloss * T * T * (p - q) / P


@_add("kl_soft_target", "kl_sign", "got the sign backwards: q - p instead of p - q")
def kl_soft_target_backward_3(dloss, s_logits, t_logits, T):
    P = s_logits.shape[0]
    p = _softmax(s_logits, T)
    q = _softmax(t_logits, T)
    return dloss * T * (q - p) / P


@_add("kl_soft_target", "kl_no_mean", "forgot to divide by the number of rows P (the loss is a mean)")
def kl_soft_target_backward_4(dloss, s_logits, t_logits, T):
    p = _softmax(s_logits, T)
    q = _softmax(t_logits, T)
    return dloss * T * (p - q)


@_add("kl_soft_target", "kl_mean_all_elements", "divided by P * V (the number of elements) instead of P")
def kl_soft_target_backward_5(dloss, s_logits, t_logits, T):
    p = _softmax(s_logits, T)
    q = _softmax(t_logits, T)
    return dloss * T * (p - q) / s_logits.size


@_add("kl_soft_target", "kl_student_no_T", "computed the student probabilities as softmax(s) without the temperature")
def kl_soft_target_backward_6(dloss, s_logits, t_logits, T):
    P = s_logits.shape[0]
    p = _softmax(s_logits)
    q = _softmax(t_logits, T)
    return dloss * T * (p - q) / P


# ============================================================================= cosine
# correct: with m = mask, n = m.sum(): ds = -dloss * m/n * (t/(|s||t|) - cos * s/|s|^2)

@_add("cosine", "cos_no_mask", "forgot to zero the gradient at padded positions (still divided by the number of real ones)")
def cosine_backward_1(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    ns = np.sqrt((s_h * s_h).sum(-1, keepdims=True))
    nt = np.sqrt((t_h * t_h).sum(-1, keepdims=True))
    cos = (s_h * t_h).sum(-1, keepdims=True) / (ns * nt)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    return -dloss * dcos / m.sum()


@_add("cosine", "cos_divide_all_positions", "divided by B * T (all positions) instead of the number of real positions")
def cosine_backward_2(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)[..., None]
    ns = np.sqrt((s_h * s_h).sum(-1, keepdims=True))
    nt = np.sqrt((t_h * t_h).sum(-1, keepdims=True))
    cos = (s_h * t_h).sum(-1, keepdims=True) / (ns * nt)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    return -dloss * dcos * m / (s_h.shape[0] * s_h.shape[1])


@_add("cosine", "cos_sign", "forgot the minus sign from 1 - cos (returned the gradient of cos)")
def cosine_backward_3(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)[..., None]
    ns = np.sqrt((s_h * s_h).sum(-1, keepdims=True))
    nt = np.sqrt((t_h * t_h).sum(-1, keepdims=True))
    cos = (s_h * t_h).sum(-1, keepdims=True) / (ns * nt)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    return dloss * dcos * m / m.sum()


@_add("cosine", "cos_norm_constant", "treated the norm of s_h as a constant, so the gradient is only -t / (|s| |t|)")
def cosine_backward_4(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)[..., None]
    ns = np.sqrt((s_h * s_h).sum(-1, keepdims=True))
    nt = np.sqrt((t_h * t_h).sum(-1, keepdims=True))
    dcos = t_h / (ns * nt)
    return -dloss * dcos * m / m.sum()


@_add("cosine", "cos_norm_power", "divided the cos * s term by |s| instead of |s|**2")
def cosine_backward_5(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)[..., None]
    ns = np.sqrt((s_h * s_h).sum(-1, keepdims=True))
    nt = np.sqrt((t_h * t_h).sum(-1, keepdims=True))
    cos = (s_h * t_h).sum(-1, keepdims=True) / (ns * nt)
    dcos = t_h / (ns * nt) - cos * s_h / ns
    return -dloss * dcos * m / m.sum()


@_add("cosine", "cos_keepdims", "computed the norms without keepdims=True, so (B, T, C) / (B, T) does not broadcast per row")
def cosine_backward_6(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)[..., None]
    ns = np.sqrt((s_h * s_h).sum(-1))
    nt = np.sqrt((t_h * t_h).sum(-1))
    cos = (s_h * t_h).sum(-1) / (ns * nt)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    return -dloss * dcos * m / m.sum()


@_add("cosine", "correct_cosine", "correct")
def cosine_backward_ok(dloss, s_h, t_h, mask):
    # via unit vectors: d cos / ds = (t_hat - cos * s_hat) / |s|
    w = np.asarray(mask, dtype=np.float64)
    w = w / w.sum()
    ns = np.linalg.norm(s_h, axis=-1, keepdims=True)
    s_hat = s_h / ns
    t_hat = t_h / np.linalg.norm(t_h, axis=-1, keepdims=True)
    cos = np.einsum("btc,btc->bt", s_hat, t_hat)[..., None]
    return -dloss * w[..., None] * (t_hat - cos * s_hat) / ns


# ============================================================================= triple_loss

def _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, bug=None):
    a_ce, a_mlm, a_cos = alphas
    if bug == "alpha_swap":
        a_ce, a_mlm = a_mlm, a_ce
    P = h.shape[0]
    logits = h @ weight.T
    # soft-target KL
    p_T = _softmax(logits, T)
    q_T = _softmax(t_logits, T)
    if bug == "kl_no_T2":
        g_ce = (p_T - q_T) / (T * P)
    else:
        g_ce = T * (p_T - q_T) / P
    # MLM cross-entropy with -100
    y = np.asarray(labels).reshape(-1)
    keep = y != -100
    g_mlm = _softmax(logits)
    idx = np.nonzero(keep)[0]
    g_mlm[idx, y[idx]] -= 1.0
    if bug != "ce_ignore":
        g_mlm[~keep] = 0.0
    g_mlm /= keep.sum()
    dlogits = a_ce * g_ce + a_mlm * g_mlm
    dh = dlogits @ weight
    # cosine (every position real)
    if bug != "forget_cos":
        ns = np.linalg.norm(h, axis=-1, keepdims=True)
        nt = np.linalg.norm(t_h, axis=-1, keepdims=True)
        cos = (h * t_h).sum(-1, keepdims=True) / (ns * nt)
        g_cos = -(t_h / (ns * nt) - cos * h / ns ** 2)
        if bug != "cos_no_mean":
            g_cos = g_cos / P
        dh = dh + a_cos * g_cos
    return dloss * dh


@_add("triple_loss", "tri_forgot_cos", "only back-propagated through the logits and forgot that the cosine loss reaches h directly")
def triple_loss_backward_1(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, bug="forget_cos")


@_add("triple_loss", "tri_alpha_swap", "mixed up the weights: put a_mlm on the KL term and a_ce on the MLM term")
def triple_loss_backward_2(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, bug="alpha_swap")


@_add("triple_loss", "tri_kl_no_T2", "forgot the T**2 factor of the soft-target KL term")
def triple_loss_backward_3(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, bug="kl_no_T2")


@_add("triple_loss", "tri_ce_ignore", "did not zero the MLM cross-entropy gradient at the -100 positions")
def triple_loss_backward_4(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, bug="ce_ignore")


@_add("triple_loss", "tri_cos_no_mean", "forgot to divide the cosine term's gradient by the number of positions P")
def triple_loss_backward_5(dloss, h, weight, t_logits, t_h, labels, T, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, T, alphas, bug="cos_no_mean")


