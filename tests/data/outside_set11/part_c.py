"""embedding_tied, cross_entropy, kl_soft_target: a control and nine learner-style mistakes each."""
from __future__ import annotations

import numpy as np

from ._util import IGNORE, entry, log_softmax, softmax


# ------------------------------------------------------------------ embedding_tied

def _emb_parts(dlogits, ids, weight):
    V, C = weight.shape
    h = weight[ids]  # (B, T, C)
    dl2 = dlogits.reshape(-1, V)
    d_dec = dl2.T @ h.reshape(-1, C)  # (V, C)
    dh = dlogits @ weight  # (B, T, C)
    d_emb = np.zeros_like(weight)
    np.add.at(d_emb, ids.reshape(-1), dh.reshape(-1, C))
    return d_dec, d_emb, dh, dl2


def embedding_tied_control(dlogits, ids, weight):
    d_dec, d_emb, dh, dl2 = _emb_parts(dlogits, ids, weight)
    return d_dec + d_emb, dl2.sum(axis=0)


def embedding_tied_decoder_only(dlogits, ids, weight):
    d_dec, d_emb, dh, dl2 = _emb_parts(dlogits, ids, weight)
    return d_dec, dl2.sum(axis=0)  # forgot the lookup path


def embedding_tied_lookup_only(dlogits, ids, weight):
    d_dec, d_emb, dh, dl2 = _emb_parts(dlogits, ids, weight)
    return d_emb, dl2.sum(axis=0)  # forgot the decoder path


def embedding_tied_fancy_assign(dlogits, ids, weight):
    V, C = weight.shape
    d_dec, _, dh, dl2 = _emb_parts(dlogits, ids, weight)
    d_emb = np.zeros_like(weight)
    d_emb[ids.reshape(-1)] += dh.reshape(-1, C)  # repeated ids keep one write
    return d_dec + d_emb, dl2.sum(axis=0)


def embedding_tied_dbias_axis0(dlogits, ids, weight):
    d_dec, d_emb, dh, dl2 = _emb_parts(dlogits, ids, weight)
    return d_dec + d_emb, dlogits.sum(axis=0)  # (T, V): summed over batch only


def embedding_tied_dec_transposed(dlogits, ids, weight):
    V, C = weight.shape
    _, d_emb, dh, dl2 = _emb_parts(dlogits, ids, weight)
    d_dec = weight[ids].reshape(-1, C).T @ dl2  # (C, V): h^T dlogits
    return d_dec + d_emb, dl2.sum(axis=0)


def embedding_tied_dbias_mean(dlogits, ids, weight):
    d_dec, d_emb, dh, dl2 = _emb_parts(dlogits, ids, weight)
    return d_dec + d_emb, dl2.mean(axis=0)


def embedding_tied_return_order(dlogits, ids, weight):
    d_dec, d_emb, dh, dl2 = _emb_parts(dlogits, ids, weight)
    return dl2.sum(axis=0), d_dec + d_emb


def embedding_tied_average(dlogits, ids, weight):
    d_dec, d_emb, dh, dl2 = _emb_parts(dlogits, ids, weight)
    return 0.5 * (d_dec + d_emb), dl2.sum(axis=0)  # averaged the two uses of the shared matrix


def embedding_tied_dh_broadcast(dlogits, ids, weight):
    V, C = weight.shape
    d_dec, _, dh, dl2 = _emb_parts(dlogits, ids, weight)
    dW = d_dec + dh.reshape(-1, C).sum(axis=0)  # added the summed dh to every row, no scatter
    return dW, dl2.sum(axis=0)


# ------------------------------------------------------------------ cross_entropy

def _ce_setup(logits, labels):
    V = logits.shape[-1]
    l2 = logits.reshape(-1, V)
    y = np.asarray(labels).reshape(-1)
    keep = y != IGNORE
    return V, l2, y, keep


def _onehot(y, keep, V):
    oh = np.zeros((y.size, V))
    oh[np.nonzero(keep)[0], y[keep]] = 1.0
    return oh


def cross_entropy_control(dloss, logits, labels):
    V, l2, y, keep = _ce_setup(logits, labels)
    d = (softmax(l2) - _onehot(y, keep, V)) * keep[:, None] / keep.sum()
    return (dloss * d).reshape(logits.shape)


def cross_entropy_mean_all_rows(dloss, logits, labels):
    V, l2, y, keep = _ce_setup(logits, labels)
    d = (softmax(l2) - _onehot(y, keep, V)) * keep[:, None] / y.size  # divided by every row
    return (dloss * d).reshape(logits.shape)


def cross_entropy_ignored_not_zeroed(dloss, logits, labels):
    V, l2, y, keep = _ce_setup(logits, labels)
    d = (softmax(l2) - _onehot(y, keep, V)) / keep.sum()  # ignored rows keep softmax/n
    return (dloss * d).reshape(logits.shape)


def cross_entropy_sign(dloss, logits, labels):
    V, l2, y, keep = _ce_setup(logits, labels)
    d = (_onehot(y, keep, V) - softmax(l2)) * keep[:, None] / keep.sum()
    return (dloss * d).reshape(logits.shape)


def cross_entropy_no_dloss(dloss, logits, labels):
    V, l2, y, keep = _ce_setup(logits, labels)
    d = (softmax(l2) - _onehot(y, keep, V)) * keep[:, None] / keep.sum()
    return d.reshape(logits.shape)


def cross_entropy_flat_shape(dloss, logits, labels):
    V, l2, y, keep = _ce_setup(logits, labels)
    d = (softmax(l2) - _onehot(y, keep, V)) * keep[:, None] / keep.sum()
    return dloss * d  # (B*T, V), not reshaped back


def cross_entropy_over_batch(dloss, logits, labels):
    V, l2, y, keep = _ce_setup(logits, labels)
    B = logits.shape[0]
    d = (softmax(l2) - _onehot(y, keep, V)) * keep[:, None] / B  # divided by the batch size
    return (dloss * d).reshape(logits.shape)


def cross_entropy_softmax_axis1(dloss, logits, labels):
    V, l2, y, keep = _ce_setup(logits, labels)
    p = softmax(logits, axis=1).reshape(-1, V)  # axis=1 from 2-D code; here that is T
    d = (p - _onehot(y, keep, V)) * keep[:, None] / keep.sum()
    return (dloss * d).reshape(logits.shape)


def cross_entropy_label_gt0(dloss, logits, labels):
    V = logits.shape[-1]
    l2 = logits.reshape(-1, V)
    y = np.asarray(labels).reshape(-1)
    keep = y > 0  # treated label 0 like padding as well
    d = (softmax(l2) - _onehot(y, keep, V)) * keep[:, None] / keep.sum()
    return (dloss * d).reshape(logits.shape)


def cross_entropy_inplace_shift(dloss, logits, labels):
    logits -= logits.max(axis=-1, keepdims=True)  # "for stability", in place
    V, l2, y, keep = _ce_setup(logits, labels)
    d = (softmax(l2) - _onehot(y, keep, V)) * keep[:, None] / keep.sum()
    return (dloss * d).reshape(logits.shape)


# ------------------------------------------------------------------ kl_soft_target

def kl_soft_target_control(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss * tau / P * (softmax(s_logits / tau) - softmax(t_logits / tau))


def kl_soft_target_no_tau2(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss / (tau * P) * (softmax(s_logits / tau) - softmax(t_logits / tau))


def kl_soft_target_no_inner_tau(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss * tau ** 2 / P * (softmax(s_logits / tau) - softmax(t_logits / tau))


def kl_soft_target_sign(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss * tau / P * (softmax(t_logits / tau) - softmax(s_logits / tau))


def kl_soft_target_sum_rows(dloss, s_logits, t_logits, tau):
    return dloss * tau * (softmax(s_logits / tau) - softmax(t_logits / tau))  # no 1/P


def kl_soft_target_softmax_no_tau(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss * tau / P * (softmax(s_logits) - softmax(t_logits))  # tau dropped in both softmaxes


def kl_soft_target_mean_elements(dloss, s_logits, t_logits, tau):
    P, V = s_logits.shape
    return dloss * tau / (P * V) * (softmax(s_logits / tau) - softmax(t_logits / tau))  # "mean"


def kl_soft_target_no_dloss(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return tau / P * (softmax(s_logits / tau) - softmax(t_logits / tau))


def kl_soft_target_log_diff(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    # d KL: wrote log p - log q (the KL's integrand) instead of p - q
    return dloss * tau / P * (log_softmax(s_logits / tau) - log_softmax(t_logits / tau))


def kl_soft_target_inplace_scale(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    s = s_logits
    s /= tau  # scaled the logits in place
    return dloss * tau / P * (softmax(s) - softmax(t_logits / tau))


ENTRIES = [
    entry("embedding_tied", "control", "correct", embedding_tied_control, True),
    entry("embedding_tied", "decoder_only", "dweight has only the decoder term", embedding_tied_decoder_only),
    entry("embedding_tied", "lookup_only", "dweight has only the lookup (scatter) term", embedding_tied_lookup_only),
    entry("embedding_tied", "fancy_assign", "dW[ids] += dh, repeated ids lose writes", embedding_tied_fancy_assign),
    entry("embedding_tied", "dbias_axis0", "dbias = dlogits.sum(axis=0), shape (T, V)", embedding_tied_dbias_axis0),
    entry("embedding_tied", "dec_transposed", "decoder term h^T dlogits, shape (C, V)", embedding_tied_dec_transposed),
    entry("embedding_tied", "dbias_mean", "dbias is a mean over positions", embedding_tied_dbias_mean),
    entry("embedding_tied", "return_order", "returns (dbias, dweight)", embedding_tied_return_order),
    entry("embedding_tied", "average", "averages the two gradients of the tied matrix", embedding_tied_average),
    entry("embedding_tied", "dh_broadcast", "adds sum of dh to every row, no scatter by ids", embedding_tied_dh_broadcast),
    entry("cross_entropy", "control", "correct", cross_entropy_control, True),
    entry("cross_entropy", "mean_all_rows", "divides by all B*T rows, not the scored ones", cross_entropy_mean_all_rows),
    entry("cross_entropy", "ignored_not_zeroed", "ignored rows keep softmax/n", cross_entropy_ignored_not_zeroed),
    entry("cross_entropy", "sign", "onehot - softmax, sign flipped", cross_entropy_sign),
    entry("cross_entropy", "no_dloss", "forgot to multiply by dloss", cross_entropy_no_dloss),
    entry("cross_entropy", "flat_shape", "returns the flattened (B*T, V)", cross_entropy_flat_shape),
    entry("cross_entropy", "over_batch", "divides by B (logits.shape[0])", cross_entropy_over_batch),
    entry("cross_entropy", "softmax_axis1", "softmax over axis=1 (T) of the 3-D logits", cross_entropy_softmax_axis1),
    entry("cross_entropy", "label_gt0", "keep = labels > 0, label 0 dropped too", cross_entropy_label_gt0),
    entry("cross_entropy", "inplace_shift", "logits -= max in place for stability", cross_entropy_inplace_shift),
    entry("kl_soft_target", "control", "correct", kl_soft_target_control, True),
    entry("kl_soft_target", "no_tau2", "forgot the tau**2 of the loss", kl_soft_target_no_tau2),
    entry("kl_soft_target", "no_inner_tau", "forgot the 1/tau of the softmax chain rule", kl_soft_target_no_inner_tau),
    entry("kl_soft_target", "sign", "q - p instead of p - q", kl_soft_target_sign),
    entry("kl_soft_target", "sum_rows", "no 1/P: summed over rows", kl_soft_target_sum_rows),
    entry("kl_soft_target", "softmax_no_tau", "p, q computed without tau", kl_soft_target_softmax_no_tau),
    entry("kl_soft_target", "mean_elements", "divides by P*V (mean over elements)", kl_soft_target_mean_elements),
    entry("kl_soft_target", "no_dloss", "forgot to multiply by dloss", kl_soft_target_no_dloss),
    entry("kl_soft_target", "log_diff", "log p - log q instead of p - q", kl_soft_target_log_diff),
    entry("kl_soft_target", "inplace_scale", "s_logits /= tau in place", kl_soft_target_inplace_scale),
]
