"""Wrong backward passes for the hint keys added after outside set 6 was measured.

Each function shows one mistake the way a learner writes it (not with the recogniser's code);
``test_exercise_hints.py`` checks that it fires its key and no other.
"""
import numpy as np

from minidistil.exercises import forwards as F
from minidistil.exercises import solutions as S

from hint_cases_set4 import _block  # the block with one slip, every parameter gradient right


def _lin_rows_loop(dy, x, weight):
    dx = dy @ weight
    for n in range(x.shape[0]):
        dw = np.outer(dy[n], x[n])  # = where += is needed
    return dx, dw, dy.sum(0)


def _ln_mean_of_everything(dy, x, gamma, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    r = 1 / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps)
    xhat = (x - mu) * r
    g = dy * gamma
    dx = r * (g - np.mean(g) - xhat * (g * xhat).mean(-1, keepdims=True))
    lead = tuple(range(x.ndim - 1))
    return dx, (dy * xhat).sum(axis=lead), dy.sum(axis=lead)


def _sm_one_term_over_tau(dp, x, tau):
    p = F.softmax_t(x, tau)
    return p * dp - p * (dp * p).sum(-1, keepdims=True) / tau


def _lsm_one_term_over_tau(dy, x, tau):
    return dy - F.softmax_t(x, tau) * dy.sum(-1, keepdims=True) / tau


def _emb_assign_rows(dlogits, ids, weight):
    V, C = weight.shape
    dw = dlogits.reshape(-1, V).T @ weight[ids].reshape(-1, C)
    dw[ids.reshape(-1)] = (dlogits @ weight).reshape(-1, C)  # = instead of add.at
    return dw, dlogits.reshape(-1, V).sum(0)


def _ce_chained(dloss, logits, labels):
    B, T, V = logits.shape
    d = F.softmax_t(logits).reshape(-1, V)
    y = labels.reshape(-1)
    keep = y != -100
    d[keep][np.arange(keep.sum()), y[keep]] -= 1  # writes into a copy
    d[~keep] = 0
    return (dloss * d / keep.sum()).reshape(B, T, V)


def _cos_over_both_norms(dloss, s_h, t_h, mask):
    ns = np.linalg.norm(s_h, axis=-1, keepdims=True)
    nt = np.linalg.norm(t_h, axis=-1, keepdims=True)
    cos = (s_h * t_h).sum(-1, keepdims=True) / (ns * nt)
    return -dloss * (t_h - cos * s_h) / (ns * nt) * mask[..., None] / mask.sum()


def _triple_dlogits_out(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    logits = h @ weight.T
    return dloss * (alphas[0] * S.kl_soft_target_backward(1.0, logits, t_logits, tau)
                    + alphas[1] * S.cross_entropy_backward(1.0, logits, labels))


def _mse_raw_e(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    ds = dloss * 2 * e / e.size @ weight
    return ds, np.einsum("btk,btc->kc", e, s_h)


def _mse_mean_again(dloss, s_h, t_h, weight):
    ds, dw = S.hidden_mse_backward(dloss, s_h, t_h, weight)
    B, T = s_h.shape[:2]
    return ds, dw / (B * T)


def _block_pre_ln_residual(dy, x, mask, p, num_heads, eps=1e-12):
    return _block(dy, x, mask, p, num_heads, eps, residual_dy=("ffn",))


def _block_dk_untransposed(dy, x, mask, p, num_heads, eps=1e-12):
    return _block(dy, x, mask, p, num_heads, eps, dk_transposed=False)


SET6_KEY_CASES = {
    "layernorm_global_mean": ("layernorm", _ln_mean_of_everything),
    "tau_partial": ("softmax_t", _sm_one_term_over_tau),
    "embedding_lookup_assign": ("embedding_tied", _emb_assign_rows),
    "ce_onehot_missing": ("cross_entropy", _ce_chained),
    "triple_returns_dlogits": ("triple_loss", _triple_dlogits_out),
    "mse_dweight_raw_error": ("hidden_mse", _mse_raw_e),
    "mse_dweight_mean_twice": ("hidden_mse", _mse_mean_again),
    "block_residual_before_ln": ("encoder_block", _block_pre_ln_residual),
    "block_attention_dk": ("encoder_block", _block_dk_untransposed),
}
SET6_SECOND_EXERCISE_CASES = [
    ("tau_partial", "log_softmax_t", _lsm_one_term_over_tau),
    ("loop_overwrite", "linear", _lin_rows_loop),
    ("cosine_norm_power", "cosine", _cos_over_both_norms),
]


def write_into_logits(dloss, logits, labels):
    """An in-place write into an input that is not dy: the hint must name the line."""
    d = logits
    d -= 1.0  # writes into logits
    return d
