"""Wrong backward passes for the hint keys added after outside set 3 was measured.

Each function shows one mistake, written here independently of the set's code (which lives in
``tests/data/outside_set3``); ``test_exercise_hints.py`` checks that it fires its key and no
other. ``SECOND_EXERCISE_CASES`` are keys shared by two exercises, on their second one.
"""
import math

import numpy as np

from minidistil.exercises import forwards as F
from minidistil.exercises import problems_attention as PA
from minidistil.exercises import solutions as S


def _lin_outer(dy, x, weight):
    dx, _, db = S.linear_backward(dy, x, weight)
    return dx, np.outer(dy.sum(axis=0), x.sum(axis=0)), db


def _gelu_no_x(dy, x):
    cdf = 0.5 * (1 + F._erf(x / math.sqrt(2)))
    return dy * (cdf + np.exp(-x * x / 2) / math.sqrt(2 * math.pi))


def _ln_feature_sums(dy, x, gamma, eps=1e-12):
    dx = S.layernorm_backward(dy, x, gamma, eps)[0]
    xhat = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)
    return dx, (dy * xhat).sum(-1), dy.sum(-1)


def _sm_rows_sum(dp, x, T):
    p = F.softmax_t(x, T)
    return p * (dp - (dp * p).sum(axis=0, keepdims=True)) / T


def _lsm_rows_sum(dy, x, T):
    return (dy - F.softmax_t(x, T) * dy.sum(axis=0)) / T


def _att_dot_t(dout, q, k, v, probs):
    dq, dk, _ = S.attention_backward(dout, q, k, v, probs)
    dv = probs.T @ dout  # .T of a 4-D array: every axis reversed
    return dq, dk, dv


def _emb_bias_batch(dlogits, ids, weight):
    dw, _ = S.embedding_tied_backward(dlogits, ids, weight)
    return dw, dlogits.sum(axis=1)  # (B, V): the batch axis kept


def _emb_wrong_layout(dlogits, ids, weight):
    V, C = weight.shape
    dw = weight[ids].reshape(-1, C).T @ dlogits.reshape(-1, V)  # (C, V)
    np.add.at(dw, ids.reshape(-1), (dlogits @ weight).reshape(-1, C))
    return dw, dlogits.sum(axis=(0, 1))


def _ce_over_batch(dloss, logits, labels):
    n = (labels != -100).sum()
    return S.cross_entropy_backward(dloss, logits, labels) * n / logits.shape[0]


def _mse_ds_wrong_side(dloss, s_h, t_h, weight):
    de = 2 * dloss * (s_h @ weight.T - t_h) / t_h.size
    return de @ weight.T, S.hidden_mse_backward(dloss, s_h, t_h, weight)[1]


def _block_ff1_bias_per_position(dy, x, mask, p, num_heads, eps=1e-12):
    dx, g = S.encoder_block_backward(dy, x, mask, p, num_heads, eps)
    g = dict(g)
    g["ff1.bias"] = np.broadcast_to(g["ff1.bias"] / x.shape[0], (x.shape[0],) + g["ff1.bias"].shape).copy()
    return dx, g


def _block_probs_unmasked(dy, x, mask, p, num_heads, eps=1e-12):
    return (PA.block_backward_variant(dy, x, mask, p, num_heads, eps, masked="forward"),
            S.encoder_block_backward(dy, x, mask, p, num_heads, eps)[1])


SET3_KEY_CASES = {
    "linear_dweight_outer_sums": ("linear", _lin_outer),
    "gelu_pdf_no_x": ("gelu", _gelu_no_x),
    "layernorm_param_axes": ("layernorm", _ln_feature_sums),
    "softmax_sum_axis": ("softmax_t", _sm_rows_sum),
    "transpose_nd": ("attention", _att_dot_t),
    "bias_sum_axes": ("embedding_tied", _emb_bias_batch),
    "embedding_dweight_layout": ("embedding_tied", _emb_wrong_layout),
    "ce_batch_mean": ("cross_entropy", _ce_over_batch),
    "mse_ds_weight": ("hidden_mse", _mse_ds_wrong_side),
}
SECOND_EXERCISE_CASES = [
    ("softmax_sum_axis", "log_softmax_t", _lsm_rows_sum),
    ("bias_sum_axes", "encoder_block", _block_ff1_bias_per_position),
    ("block_mask", "encoder_block", _block_probs_unmasked),  # the probs only, not the forward
]
