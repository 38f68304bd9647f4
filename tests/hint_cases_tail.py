"""Wrong backward passes for the hint keys of ``exercises/problems_tail.py`` (after sets 7 and 8).

Each function shows one mistake the way a learner writes it (not with the recogniser's code);
``test_exercise_hints.py`` checks that it fires its key and no other.
"""
import math

import numpy as np

from minidistil.exercises import forwards as F
from minidistil.exercises import solutions as S


def _gelu_no_half(dy, x):
    Phi = 1 + F._erf(x / math.sqrt(2))  # the 0.5 forgotten
    return dy * (Phi + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi))


def _ln_staged(dy, x, gamma, eps=1e-12, k=-0.5, two=2.0):
    C = x.shape[-1]
    mu = x.mean(-1, keepdims=True)
    xc = x - mu
    var = (xc ** 2).mean(-1, keepdims=True)
    rstd = (var + eps) ** -0.5
    dxh = dy * gamma
    dvar = (dxh * xc).sum(-1, keepdims=True) * k * rstd ** 3
    dmu = -(dxh * rstd).sum(-1, keepdims=True) + dvar * (-2.0 * xc).mean(-1, keepdims=True)
    dx = dxh * rstd + dvar * two * xc / C + dmu / C
    lead = tuple(range(x.ndim - 1))
    return dx, (dy * xc * rstd).sum(axis=lead), dy.sum(axis=lead)


def _ln_dvar_without_half(dy, x, gamma, eps=1e-12):
    return _ln_staged(dy, x, gamma, eps, k=-1.0)


def _ln_no_sqrt(dy, x, gamma, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    rstd = 1 / (((x - mu) ** 2).mean(-1, keepdims=True) + eps)  # no square root
    xh = (x - mu) * rstd
    g = dy * gamma
    dx = rstd * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    lead = tuple(range(x.ndim - 1))
    return dx, (dy * xh).sum(axis=lead), dy.sum(axis=lead)


def _sm_jacobian_loop(dp, x, tau):
    p = F.softmax_t(x, tau)
    p2, d2 = p.reshape(-1, p.shape[-1]), dp.reshape(-1, p.shape[-1])
    dx = np.zeros_like(p2)
    V = p2.shape[1]
    for n in range(p2.shape[0]):
        for i in range(V):
            for j in range(V):
                dx[n, j] = p2[n, i] * ((i == j) - p2[n, j]) / tau * d2[n, i]  # = for +=
    return dx.reshape(x.shape)


def _lsm_mean(dy, x, tau):
    return (dy - F.softmax_t(x, tau) * dy.mean(-1, keepdims=True)) / tau


def _lsm_no_p(dy, x, tau):
    return (dy - dy.sum(-1, keepdims=True)) / tau


def _emb_reshape(dlogits, ids, weight):
    V, C = weight.shape
    d2 = dlogits.reshape(-1, V)
    dw = (weight[ids].reshape(-1, C).T @ d2).reshape(V, C)  # reshape, not .T
    np.add.at(dw, ids.reshape(-1), d2 @ weight)
    return dw, d2.sum(0)


def _emb_ids_transposed(dlogits, ids, weight):
    V, C = weight.shape
    d2 = dlogits.reshape(-1, V)
    h2 = weight[ids.T].reshape(-1, C)  # positions in another order than d2's
    dw = d2.T @ h2
    np.add.at(dw, ids.reshape(-1), d2 @ weight)
    return dw, d2.sum(0)


def _kl_dp(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss * (-tau * F.softmax_t(t_logits, tau) / F.softmax_t(s_logits, tau) / P)


def _kl_column_max(dloss, s_logits, t_logits, tau):
    def sm(z):
        e = np.exp(z - z.max(axis=0, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    P = s_logits.shape[0]
    return dloss * tau * (sm(s_logits / tau) - sm(t_logits / tau)) / P


def _ce_global_sum(dloss, logits, labels):
    e = np.exp(logits - logits.max())
    g = e / e.sum()  # one sum for the whole batch
    keep = labels != -100
    g[keep, labels[keep]] -= 1
    g[~keep] = 0
    return dloss * g / keep.sum()


def _ce_divide_first(dloss, logits, labels):
    keep = labels != -100
    g = F.softmax_t(logits) / keep.sum()
    g[keep, labels[keep]] -= 1  # after the division
    g[~keep] = 0
    return dloss * g


def _triple(dloss, h, weight, t_logits, t_h, labels, tau, alphas, t_tau=True, cos_div=None):
    a_ce, a_mlm, a_cos = alphas
    logits = h @ weight.T
    P = h.shape[0]
    q = F.softmax_t(t_logits, tau if t_tau else 1.0)
    dce = dloss * tau * (F.softmax_t(logits, tau) - q) / P
    dmlm = S.cross_entropy_backward(dloss, logits, labels)
    every = np.ones((1, P), dtype=np.int64)
    dcos = S.cosine_backward(dloss, h[None], t_h[None], every)[0]
    if cos_div is not None:
        dcos = dcos * P / cos_div
    return (a_ce * dce + a_mlm * dmlm) @ weight + a_cos * dcos


def _triple_teacher_plain(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, tau, alphas, t_tau=False)


def _triple_cos_by_labels(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, tau, alphas, cos_div=int((labels != -100).sum()))


def _mse_reshape(dloss, s_h, t_h, weight):
    CT, CS = weight.shape
    e = s_h @ weight.T - t_h
    de = dloss * 2 * e / e.size
    return de @ weight, de.reshape(CT, -1) @ s_h.reshape(-1, CS)


def _lin_reshape(dy, x, weight):
    return dy @ weight, dy.reshape(dy.shape[1], -1) @ x, dy.sum(0)


def _block_pre_ln(dy, x, mask, p, num_heads, eps=1e-12):
    """A pre-LN block's backward, by finite differences of the pre-LN forward (what the learner's
    hand-written pre-LN backward computes)."""
    from minidistil import gradcheck
    from minidistil.exercises.problems_tail import _pre_ln_block
    xx = x.copy()
    dx = gradcheck.numerical_grad(lambda: float(np.sum(_pre_ln_block(xx, mask, p, num_heads, eps) * dy)), xx)
    return dx, S.encoder_block_backward(dy, x, mask, p, num_heads, eps)[1]


def _block_ff2_from_u(dy, x, mask, p, num_heads, eps=1e-12):
    dx, grads = S.encoder_block_backward(dy, x, mask, p, num_heads, eps)
    c = S.encoder_block_cache(x, mask, p, num_heads, eps)
    dr2 = S.layernorm_backward(dy, c.r2, p["ln2.weight"], eps)[0]
    grads = dict(grads)
    grads["ff2.weight"] = dr2.reshape(-1, dr2.shape[-1]).T @ c.u.reshape(-1, c.u.shape[-1])
    return dx, grads


TAIL_KEY_CASES = {
    "gelu_cdf_half": ("gelu", _gelu_no_half),
    "layernorm_variance_stage": ("layernorm", _ln_dvar_without_half),
    "layernorm_rstd_sqrt": ("layernorm", _ln_no_sqrt),
    "log_softmax_mean_for_sum": ("log_softmax_t", _lsm_mean),
    "log_softmax_no_p": ("log_softmax_t", _lsm_no_p),
    "reshape_for_transpose": ("embedding_tied", _emb_reshape),
    "embedding_flatten_order": ("embedding_tied", _emb_ids_transposed),
    "kl_wrt_probs": ("kl_soft_target", _kl_dp),
    "softmax_normalisation": ("kl_soft_target", _kl_column_max),
    "ce_onehot_unscaled": ("cross_entropy", _ce_divide_first),
    "triple_lce_without_tau": ("triple_loss", _triple_teacher_plain),
    "triple_cos_count": ("triple_loss", _triple_cos_by_labels),
    "block_pre_ln": ("encoder_block", _block_pre_ln),
    "block_ff2_input": ("encoder_block", _block_ff2_from_u),
}
TAIL_SECOND_EXERCISE_CASES = [
    ("loop_overwrite", "softmax_t", _sm_jacobian_loop),
    ("reshape_for_transpose", "hidden_mse", _mse_reshape),
    ("reshape_for_transpose", "linear", _lin_reshape),
    ("softmax_normalisation", "cross_entropy", _ce_global_sum),
]
