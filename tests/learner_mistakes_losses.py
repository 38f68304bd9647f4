"""Learner mistakes, part 2: embedding, cross-entropy, KL, cosine, triple loss, MSE, block."""
import numpy as np

from minidistil.exercises import forwards as F

from learner_mistakes_common import _cdf, _pdf, _softmax, mistake  # noqa: F401


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


@mistake("kl_soft_target", "kl_tau_squared")
def kl_no_T2(dloss, s_logits, t_logits, T):
    p, q = _kl(s_logits, t_logits, T)
    return dloss * (p - q) / T / len(s_logits)


@mistake("kl_soft_target", "kl_chain_tau")
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


@mistake("kl_soft_target", "softmax_times_tau")
def kl_times_T(dloss, s_logits, t_logits, T):
    p, q = _softmax(s_logits * T), _softmax(t_logits * T)
    return dloss * T * (p - q) / len(s_logits)


@mistake("kl_soft_target", "upstream_ignored")
def kl_no_dloss(dloss, s_logits, t_logits, T):
    p, q = _kl(s_logits, t_logits, T)
    return T * (p - q) / len(s_logits)


@mistake("kl_soft_target", "scale_inv_tau")
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


