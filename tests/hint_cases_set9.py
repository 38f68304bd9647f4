"""Wrong backward passes for the hint keys of ``exercises/problems_set9.py`` (after sets 9 and 10).

Each function shows one mistake the way a learner writes it (not with the recogniser's code,
nor with the sets' code); ``test_exercise_hints.py`` checks that it fires its key and no other.
"""
import math

import numpy as np

from minidistil.exercises import forwards as F
from minidistil.exercises import solutions as S


def _ln_stats(x, eps):
    mu = x.mean(axis=-1, keepdims=True)
    sd = np.sqrt(x.var(axis=-1, keepdims=True) + eps)
    return (x - mu) / sd, sd


def _ln_batch_means(dy, x, gamma, eps=1e-12):
    xh, sd = _ln_stats(x, eps)
    d = dy * gamma
    rows = tuple(range(x.ndim - 1))  # BatchNorm habit: average over the batch
    dx = (d - d.mean(axis=rows, keepdims=True) - xh * (d * xh).mean(axis=rows, keepdims=True)) / sd
    return dx, (dy * xh).reshape(-1, x.shape[-1]).sum(0), dy.reshape(-1, x.shape[-1]).sum(0)


def _ln_per_row_params(dy, x, gamma, eps=1e-12):
    xh, sd = _ln_stats(x, eps)
    dx = S.layernorm_backward(dy, x, gamma, eps)[0]
    return dx, dy * xh, dy  # forgot to sum over the rows


def _ln_times_sd(dy, x, gamma, eps=1e-12):
    xh, sd = _ln_stats(x, eps)
    C = x.shape[-1]
    d = dy * gamma
    dx = sd / C * (C * d - d.sum(-1, keepdims=True) - xh * (d * xh).sum(-1, keepdims=True))
    lead = tuple(range(x.ndim - 1))
    return dx, (dy * xh).sum(lead), dy.sum(lead)


def _ln_dgamma_centred(dy, x, gamma, eps=1e-12):
    dx, _, db = S.layernorm_backward(dy, x, gamma, eps)
    xc = x - x.mean(-1, keepdims=True)
    return dx, (dy * xc).reshape(-1, x.shape[-1]).sum(0), db


def _sm_diag_only(dp, x, tau):
    s = np.exp(x / tau - (x / tau).max(-1, keepdims=True))
    s /= s.sum(-1, keepdims=True)
    return s * dp / tau  # the i == j part of the Jacobian only, without the -p_i p_j


def _attn_plain_sum(dout, q, k, v, probs):
    dv = np.swapaxes(probs, -1, -2) @ dout
    dP = dout @ np.swapaxes(v, -1, -2)
    dS = probs * (dP - np.sum(dP, axis=-1, keepdims=True)) / math.sqrt(q.shape[-1])
    return dS @ k, np.swapaxes(dS, -1, -2) @ q, dv


def _block_with(dy, x, mask, p, num_heads, eps, ln1=None, ln2=None, softmax=None):
    """A hand-written post-LN block backward; the three hooks hold the slip."""
    c = S.encoder_block_cache(x, mask, p, num_heads, eps)
    ln1 = ln1 or (lambda d, a: S.layernorm_backward(d, a, p["ln1.weight"], eps)[0])
    ln2 = ln2 or (lambda d, a: S.layernorm_backward(d, a, p["ln2.weight"], eps)[0])
    dr2 = ln2(dy, c.r2)
    dgu = dr2 @ p["ff2.weight"]
    du = S.gelu_backward(dgu, c.u)
    dh = dr2 + du @ p["ff1.weight"]
    dr1 = ln1(dh, c.r1)
    dctx = F.split_heads(dr1 @ p["o.weight"], num_heads)
    dv = np.swapaxes(c.probs, -1, -2) @ dctx
    dP = dctx @ np.swapaxes(c.v, -1, -2)
    dS = softmax(dP, c.probs) if softmax else c.probs * (dP - (dP * c.probs).sum(-1, keepdims=True))
    dS = dS / math.sqrt(c.q.shape[-1])
    dq, dk = dS @ c.k, np.swapaxes(dS, -1, -2) @ c.q
    dx = dr1 + sum(F.merge_heads(g) @ p[f"{n}.weight"] for n, g in (("q", dq), ("k", dk), ("v", dv)))
    return dx, S.encoder_block_backward(dy, x, mask, p, num_heads, eps)[1]


def _block_softmax_diag(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_with(dy, x, mask, p, num_heads, eps, softmax=lambda dP, P: P * (1 - P) * dP)


def _ln_no_centering(gamma, eps):
    def back(d, a):
        mu = a.mean(-1, keepdims=True)
        sd = np.sqrt(((a - mu) ** 2).mean(-1, keepdims=True) + eps)
        xh, g = (a - mu) / sd, d * gamma
        return (g - xh * (g * xh).mean(-1, keepdims=True)) / sd  # the -mean(g) forgotten
    return back


def _block_ln2_no_mean(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_with(dy, x, mask, p, num_heads, eps, ln2=_ln_no_centering(p["ln2.weight"], eps))


def _block_ln1_gets_ln2_gamma(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_with(dy, x, mask, p, num_heads, eps,
                       ln1=lambda d, a: S.layernorm_backward(d, a, p["ln2.weight"], eps)[0])


def _emb_ids_column_major(dlogits, ids, weight):
    V, C = weight.shape
    d2 = dlogits.reshape(-1, V)
    h2 = weight[ids].reshape(-1, C)
    dW = d2.T @ h2
    dh = d2 @ weight
    for pos, i in enumerate(ids.ravel(order="F")):  # ids walked column by column, dh row by row
        dW[i] += dh[pos]
    return dW, d2.sum(0)


def _emb_mean_per_id(dlogits, ids, weight):
    V, C = weight.shape
    d2 = dlogits.reshape(-1, V)
    dW = d2.T @ weight[ids].reshape(-1, C)
    dh = d2 @ weight
    flat = ids.ravel()
    for i in np.unique(flat):
        dW[i] += dh[flat == i].mean(0)  # a mean over the id's positions
    return dW, d2.sum(0)


def _ce_one_entry(dloss, logits, labels):
    V = logits.shape[-1]
    z, y = logits.reshape(-1, V), labels.reshape(-1)
    rows = np.flatnonzero(y != -100)
    e = np.exp(z[rows] - z[rows].max(1, keepdims=True))
    py = e[np.arange(len(rows)), y[rows]] / e.sum(1)
    g = np.zeros_like(z)
    g[rows, y[rows]] = (py - 1) * dloss / len(rows)
    return g.reshape(logits.shape)


def _ce_skip_small_labels(dloss, logits, labels):
    V = logits.shape[-1]
    z, y = logits.reshape(-1, V), labels.reshape(-1)
    scored = y > 0  # 0 taken for the pad id
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.flatnonzero(scored), y[scored]] -= 1
    return (p * scored[:, None] * dloss / scored.sum()).reshape(logits.shape)


def _cos_no_teacher_norm(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=float)[..., None]
    ns = np.linalg.norm(s_h, axis=-1, keepdims=True)
    nt = np.linalg.norm(t_h, axis=-1, keepdims=True)
    cos = np.sum(s_h * t_h, -1, keepdims=True) / (ns * nt)
    return -dloss * m * (t_h / ns - cos * s_h / ns ** 2) / m.sum()


def _cos_teacher_in_norm_term(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=float)[..., None]
    ns = np.linalg.norm(s_h, axis=-1, keepdims=True)
    nt = np.linalg.norm(t_h, axis=-1, keepdims=True)
    cos = np.sum(s_h * t_h, -1, keepdims=True) / (ns * nt)
    return -dloss * m * (t_h / (ns * nt) - cos * t_h / (ns * ns)) / m.sum()


def _triple_parts(dloss, h, weight, t_logits, t_h, labels, tau):
    z = h @ weight.T
    P = z.shape[0]
    ps, pt = F.softmax_t(z, tau), F.softmax_t(t_logits, tau)
    d_ce = tau * (ps - pt) / P
    keep = labels != -100
    d_mlm = F.softmax_t(z) * keep[:, None]
    d_mlm[np.flatnonzero(keep), labels[keep]] -= 1
    d_mlm /= keep.sum()
    every = np.ones((1, P))
    d_cos = S.cosine_backward(1.0, h[None], t_h[None], every)[0]
    return d_ce @ weight, d_mlm @ weight, d_cos


def _triple_mlm_minus(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a, b, c = alphas
    dce, dmlm, dcos = _triple_parts(dloss, h, weight, t_logits, t_h, labels, tau)
    return dloss * (a * dce - b * dmlm + c * dcos)  # onehot - softmax for the MLM part


def _triple_cos_of_teacher(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a, b, c = alphas
    dce, dmlm, _ = _triple_parts(dloss, h, weight, t_logits, t_h, labels, tau)
    nh = np.linalg.norm(h, axis=-1, keepdims=True)
    nt = np.linalg.norm(t_h, axis=-1, keepdims=True)
    cos = (h * t_h).sum(-1, keepdims=True) / (nh * nt)
    dcos = -(h / (nh * nt) - cos * t_h / nt ** 2) / h.shape[0]  # differentiated at t_h
    return dloss * (a * dce + b * dmlm + c * dcos)


SET9_KEY_CASES = {
    "layernorm_stats_axis": ("layernorm", _ln_batch_means),
    "layernorm_param_unsummed": ("layernorm", _ln_per_row_params),
    "layernorm_rstd_inverted": ("layernorm", _ln_times_sd),
    "softmax_sum_term": ("softmax_t", _sm_diag_only),
    "block_attention_softmax": ("encoder_block", _block_softmax_diag),
    "block_ln_mean_term": ("encoder_block", _block_ln2_no_mean),
    "block_ln_gamma": ("encoder_block", _block_ln1_gets_ln2_gamma),
    "embedding_duplicates_averaged": ("embedding_tied", _emb_mean_per_id),
    "ce_label_entry_only": ("cross_entropy", _ce_one_entry),
    "ce_scored_labels": ("cross_entropy", _ce_skip_small_labels),
    "cosine_first_term_norm": ("cosine", _cos_no_teacher_norm),
    "cosine_norm_term_vector": ("cosine", _cos_teacher_in_norm_term),
    "triple_term_sign": ("triple_loss", _triple_mlm_minus),
}
SET9_SECOND_EXERCISE_CASES = [
    ("softmax_weighted_sum", "attention", _attn_plain_sum),
    ("layernorm_dgamma_xhat", "layernorm", _ln_dgamma_centred),
    ("embedding_flatten_order", "embedding_tied", _emb_ids_column_major),
    ("cosine_wrt_teacher", "triple_loss", _triple_cos_of_teacher),
]


# ----------------------------------------------------------------- course mistakes (problems_course.py)
def _ln_gamma_last(dy, x, gamma, eps=1e-12):
    xh, sd = _ln_stats(x, eps)
    dx = (dy - dy.mean(-1, keepdims=True) - xh * (dy * xh).mean(-1, keepdims=True)) / sd * gamma
    lead = tuple(range(x.ndim - 1))
    return dx, (dy * xh).sum(lead), dy.sum(lead)


def _ln_mean_of_squares(dy, x, gamma, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    sd = np.sqrt(np.mean(x ** 2, axis=-1, keepdims=True) + eps)  # forgot to centre
    xh = (x - mu) / sd
    d = dy * gamma
    dx = (d - d.mean(-1, keepdims=True) - xh * (d * xh).mean(-1, keepdims=True)) / sd
    lead = tuple(range(x.ndim - 1))
    return dx, (dy * xh).sum(lead), dy.sum(lead)


def _sm_plus(dp, x, tau):
    p = F.softmax_t(x, tau)
    return (p * dp + p * np.sum(p * dp, axis=-1, keepdims=True)) / tau


def _ce_raw_logits(dloss, logits, labels):
    B, T, V = logits.shape
    g = logits.reshape(-1, V).copy()  # forgot the softmax
    y = labels.reshape(-1)
    g[y == -100] = 0
    rows = np.flatnonzero(y != -100)
    g[rows, y[rows]] -= 1
    return (dloss * g / len(rows)).reshape(B, T, V)


def _block_ln1_as_identity(dy, x, mask, p, num_heads, eps=1e-12):
    return _block_with(dy, x, mask, p, num_heads, eps, ln1=lambda d, a: d)


def _block_ln_ddof1(dy, x, mask, p, num_heads, eps=1e-12):
    def back(gamma):
        def f(d, a):
            mu = a.mean(-1, keepdims=True)
            sd = np.sqrt(a.var(-1, ddof=1, keepdims=True) + eps)
            xh, g = (a - mu) / sd, d * gamma
            return (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True)) / sd
        return f
    return _block_with(dy, x, mask, p, num_heads, eps, ln1=back(p["ln1.weight"]), ln2=back(p["ln2.weight"]))


def _block_gelu_sig(dy, x, mask, p, num_heads, eps=1e-12):
    c = S.encoder_block_cache(x, mask, p, num_heads, eps)
    dr2 = S.layernorm_backward(dy, c.r2, p["ln2.weight"], eps)[0]
    s = 1 / (1 + np.exp(-1.702 * c.u))
    du = (dr2 @ p["ff2.weight"]) * (s + 1.702 * c.u * s * (1 - s))
    dh = dr2 + du @ p["ff1.weight"]
    dr1 = S.layernorm_backward(dh, c.r1, p["ln1.weight"], eps)[0]
    dctx = F.split_heads(dr1 @ p["o.weight"], num_heads)
    dq, dk, dv = S.attention_backward(dctx, c.q, c.k, c.v, c.probs)
    dx = dr1 + sum(F.merge_heads(g) @ p[f"{n}.weight"] for n, g in (("q", dq), ("k", dk), ("v", dv)))
    return dx, S.encoder_block_backward(dy, x, mask, p, num_heads, eps)[1]


SET9_KEY_CASES.update({
    "layernorm_gamma_outside": ("layernorm", _ln_gamma_last),
    "layernorm_var_uncentred": ("layernorm", _ln_mean_of_squares),
    "softmax_sum_sign": ("softmax_t", _sm_plus),
    "ce_softmax_missing": ("cross_entropy", _ce_raw_logits),
    "block_ln_skipped": ("encoder_block", _block_ln1_as_identity),
    "block_ln_unbiased_var": ("encoder_block", _block_ln_ddof1),
    "block_gelu_sigmoid": ("encoder_block", _block_gelu_sig),
})


def _ln_forgot_rstd(dy, x, gamma, eps=1e-12):
    xh, sd = _ln_stats(x, eps)
    d = dy * gamma
    lead = tuple(range(x.ndim - 1))
    return d - d.mean(-1, keepdims=True) - xh * (d * xh).mean(-1, keepdims=True), (dy * xh).sum(lead), dy.sum(lead)


def _ln_params_with_gamma(dy, x, gamma, eps=1e-12):
    xh, sd = _ln_stats(x, eps)
    g = dy * gamma  # reused for the parameters too
    lead = tuple(range(x.ndim - 1))
    return S.layernorm_backward(dy, x, gamma, eps)[0], (g * xh).sum(lead), g.sum(lead)


def _sm_like_log_softmax(dp, x, tau):
    p = F.softmax_t(x, tau)
    return (dp - p * np.sum(dp, axis=-1, keepdims=True)) / tau


def _ce_mean_of_sequences(dloss, logits, labels):
    B, T, V = logits.shape
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    g = np.zeros_like(p)
    for b in range(B):
        rows = np.flatnonzero(labels[b] != -100)
        gb = p[b, rows].copy()
        gb[np.arange(len(rows)), labels[b, rows]] -= 1
        g[b, rows] = gb / len(rows) / B  # mean per sentence, then over the batch
    return dloss * g


def _emb_dbias_over_vocab(dlogits, ids, weight):
    dW = S.embedding_tied_backward(dlogits, ids, weight)[0]
    return dW, dlogits.sum(axis=-1)


def _block_o_transposed(dy, x, mask, p, num_heads, eps=1e-12):
    c = S.encoder_block_cache(x, mask, p, num_heads, eps)
    dr2 = S.layernorm_backward(dy, c.r2, p["ln2.weight"], eps)[0]
    dh = dr2 + S.gelu_backward(dr2 @ p["ff2.weight"], c.u) @ p["ff1.weight"]
    dr1 = S.layernorm_backward(dh, c.r1, p["ln1.weight"], eps)[0]
    dctx = F.split_heads(dr1 @ p["o.weight"].T, num_heads)  # W.T: (C, C), so it fits
    dq, dk, dv = S.attention_backward(dctx, c.q, c.k, c.v, c.probs)
    dx = dr1 + sum(F.merge_heads(g) @ p[f"{n}.weight"] for n, g in (("q", dq), ("k", dk), ("v", dv)))
    return dx, S.encoder_block_backward(dy, x, mask, p, num_heads, eps)[1]


SET9_KEY_CASES.update({
    "layernorm_rstd_missing": ("layernorm", _ln_forgot_rstd),
    "layernorm_param_gamma": ("layernorm", _ln_params_with_gamma),
    "softmax_used_log_softmax": ("softmax_t", _sm_like_log_softmax),
    "ce_per_sequence": ("cross_entropy", _ce_mean_of_sequences),
    "embedding_bias_axis": ("embedding_tied", _emb_dbias_over_vocab),
    "block_linear_dx_weight": ("encoder_block", _block_o_transposed),
})
