"""Wrong backward passes for the hint keys added after outside set 5 was measured.

Each function shows one mistake the way a learner writes it (not with the recogniser's code);
``test_exercise_hints.py`` checks that it fires its key and no other.
"""
import math

import numpy as np

from minidistil.exercises import forwards as F
from minidistil.exercises import solutions as S

from hint_cases_set4 import _block  # the block with one slip, every parameter gradient right


def _phi(x):
    return np.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def _cdf(x):
    return 0.5 * (1 + F._erf(x / math.sqrt(2)))


def _gelu_precedence(dy, x):
    return dy * _cdf(x) + x * _phi(x)


def _gelu_at_y(dy, x):
    y = x * _cdf(x)
    return dy * (_cdf(y) + y * _phi(y))


def _att_scale_by_seq(dout, q, k, v, probs):
    scale = 1 / math.sqrt(q.shape[2])  # (B, NH, T, HS): axis 2 is T
    dprobs = dout @ np.swapaxes(v, -1, -2)
    ds = probs * (dprobs - np.sum(dprobs * probs, axis=-1, keepdims=True))
    return ds @ k * scale, np.swapaxes(ds, -1, -2) @ q * scale, np.swapaxes(probs, -1, -2) @ dout


def _emb_twice_the_projection(dlogits, ids, weight):
    V, C = weight.shape
    d2, h2 = dlogits.reshape(-1, V), weight[ids].reshape(-1, C)
    return 2 * d2.T @ h2, d2.sum(0)  # "used twice, so times two"


def _emb_loop_assign(dlogits, ids, weight):
    V, C = weight.shape
    h = weight[ids]
    dw = np.zeros((V, C))
    for b in range(ids.shape[0]):
        dw = dlogits[b].T @ h[b]  # = where += is needed
    np.add.at(dw, ids.reshape(-1), (dlogits @ weight).reshape(-1, C))
    return dw, dlogits.reshape(-1, V).sum(0)


def _emb_add_at_3d(dlogits, ids, weight):
    V, C = weight.shape
    dw = dlogits.reshape(-1, V).T @ weight[ids].reshape(-1, C)
    np.add.at(dw, ids.flatten(), dlogits @ weight)  # dh still (B, T, C)
    return dw, dlogits.reshape(-1, V).sum(0)


def _kl_through_dp(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    p, q = F.softmax_t(s_logits, tau), F.softmax_t(t_logits, tau)
    dp = -q / p  # d/dp of -sum q log p
    return dloss * tau * tau / P * dp * p * (1 - p) / tau  # the diagonal of the Jacobian only


def _ce_softmax_over_sequence(dloss, logits, labels):
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = z / z.sum(axis=1, keepdims=True)  # over T, not V
    keep = labels != -100
    p[keep, labels[keep]] -= 1
    p[~keep] = 0
    return dloss * p / keep.sum()


def _ce_columns(dloss, logits, labels):
    B, T, V = logits.shape
    g = F.softmax_t(logits).reshape(-1, V)
    y = labels.reshape(-1)
    keep = y != -100
    g[:, y[keep]] -= 1  # every row, the label columns
    g[~keep] = 0
    return (dloss * g / keep.sum()).reshape(B, T, V)


def _ce_flat(dloss, logits, labels):
    B, T, V = logits.shape
    return S.cross_entropy_backward(dloss, logits, labels).reshape(B * T, V)


def _cos_unit(dloss, s_h, t_h, mask):
    ns = np.linalg.norm(s_h, axis=-1, keepdims=True)
    nt = np.linalg.norm(t_h, axis=-1, keepdims=True)
    cos = np.sum(s_h * t_h, axis=-1, keepdims=True) / (ns * nt)
    m = mask[..., None]
    return -dloss * (t_h / nt - cos * s_h / ns) * m / mask.sum()


def _triple_mlm_at_tau(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_mlm, a_cos = alphas
    logits = h @ weight.T
    dce = S.kl_soft_target_backward(dloss, logits, t_logits, tau)
    dmlm = S.cross_entropy_backward(dloss, logits / tau, labels)  # the tempered softmax reused
    every = np.ones((1, h.shape[0]), dtype=np.int64)
    dcos = S.cosine_backward(dloss, h[None], t_h[None], every)[0]
    return (a_ce * dce + a_mlm * dmlm) @ weight + a_cos * dcos


def _block_gelu_of_output(dy, x, mask, p, num_heads, eps=1e-12):
    return _block(dy, x, mask, p, num_heads, eps, gelu="at_output")


SET5_KEY_CASES = {
    "gelu_upstream_partial": ("gelu", _gelu_precedence),
    "gelu_at_output": ("gelu", _gelu_at_y),
    "attention_scale_size": ("attention", _att_scale_by_seq),
    "embedding_doubled": ("embedding_tied", _emb_twice_the_projection),
    "loop_overwrite": ("embedding_tied", _emb_loop_assign),
    "embedding_add_at_shape": ("embedding_tied", _emb_add_at_3d),
    "kl_softmax_jacobian": ("kl_soft_target", _kl_through_dp),
    "ce_softmax_axis": ("cross_entropy", _ce_softmax_over_sequence),
    "ce_onehot_columns": ("cross_entropy", _ce_columns),
    "reshape_needed": ("cross_entropy", _ce_flat),
    "cosine_unit_vectors": ("cosine", _cos_unit),
    "triple_mlm_temperature": ("triple_loss", _triple_mlm_at_tau),
    "block_gelu_at_output": ("encoder_block", _block_gelu_of_output),
}


def return_order_with_a_bias(dy, x, weight):
    """(dx, dbias, dweight): every number right, only the order wrong."""
    dx, dw, db = S.linear_backward(dy, x, weight)
    return dx, db, dw


# keys added before outside set 6 was measured, for mistakes no set had shown yet


def _gelu_pdf_twice(dy, x):
    return dy * (_cdf(x) + x * 2 * np.exp(-x ** 2 / 2) / math.sqrt(2 * math.pi))  # a stray 2


def _gelu_minus(dy, x):
    return dy * (_cdf(x) - x * _phi(x))


def _ln_gamma_once(dy, x, gamma, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    r = 1 / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps)
    xhat = (x - mu) * r
    dx = r * (dy * gamma - dy.mean(-1, keepdims=True) - xhat * (dy * gamma * xhat).mean(-1, keepdims=True))
    lead = tuple(range(x.ndim - 1))
    return dx, (dy * xhat).sum(axis=lead), dy.sum(axis=lead)


def _sm_with_logits(dp, x, tau):
    return x * (dp - (dp * x).sum(-1, keepdims=True)) / tau  # x where p belongs


def _lsm_with_logits(dy, x, tau):
    return (dy - x * dy.sum(-1, keepdims=True)) / tau


def _att_no_leading_p(dout, q, k, v, probs):
    dprobs = dout @ np.swapaxes(v, -1, -2)
    ds = dprobs - (dprobs * probs).sum(-1, keepdims=True)
    s = 1 / math.sqrt(q.shape[-1])
    return ds @ k * s, np.swapaxes(ds, -1, -2) @ q * s, np.swapaxes(probs, -1, -2) @ dout


def _kl_log_difference(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss * tau * (F.log_softmax_t(s_logits, tau) - F.log_softmax_t(t_logits, tau)) / P


def _cos_plus(dloss, s_h, t_h, mask):
    ns = np.linalg.norm(s_h, axis=-1, keepdims=True)
    nt = np.linalg.norm(t_h, axis=-1, keepdims=True)
    cos = (s_h * t_h).sum(-1, keepdims=True) / (ns * nt)
    return -dloss * (t_h / (ns * nt) + cos * s_h / ns ** 2) * mask[..., None] / mask.sum()


def _cos_for_t(dloss, s_h, t_h, mask):
    ns = np.linalg.norm(s_h, axis=-1, keepdims=True)
    nt = np.linalg.norm(t_h, axis=-1, keepdims=True)
    cos = (s_h * t_h).sum(-1, keepdims=True) / (ns * nt)
    return -dloss * (s_h / (ns * nt) - cos * t_h / nt ** 2) * mask[..., None] / mask.sum()


def _triple_ce_at_masked(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_mlm, a_cos = alphas
    logits = h @ weight.T
    keep = labels != -100
    dce = S.kl_soft_target_backward(dloss, logits, t_logits, tau) * keep[:, None]  # masked rows only
    dmlm = S.cross_entropy_backward(dloss, logits, labels)
    every = np.ones((1, h.shape[0]), dtype=np.int64)
    return (a_ce * dce + a_mlm * dmlm) @ weight + a_cos * S.cosine_backward(dloss, h[None], t_h[None], every)[0]


SET5_KEY_CASES.update({
    "gelu_pdf_constant": ("gelu", _gelu_pdf_twice),
    "gelu_pdf_sign": ("gelu", _gelu_minus),
    "layernorm_gamma_partial": ("layernorm", _ln_gamma_once),
    "softmax_used_logits": ("softmax_t", _sm_with_logits),
    "attention_softmax_missing_p": ("attention", _att_no_leading_p),
    "kl_log_probs": ("kl_soft_target", _kl_log_difference),
    "cosine_norm_term_sign": ("cosine", _cos_plus),
    "cosine_wrt_teacher": ("cosine", _cos_for_t),
    "triple_ce_masked": ("triple_loss", _triple_ce_at_masked),
})
SET5_SECOND_EXERCISE_CASES = [("softmax_used_logits", "log_softmax_t", _lsm_with_logits)]
