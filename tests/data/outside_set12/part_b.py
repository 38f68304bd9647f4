"""attention, embedding_tied, cross_entropy, kl_soft_target: a control and 9 slips each."""
from __future__ import annotations

import math

import numpy as np

from ._common import build, softmax

IGNORE = -100


def attention_impl(dout, q, k, v, probs, slip=None):
    HS = q.shape[-1]
    scale = 1.0 / math.sqrt(HS)
    if slip == "no_scale":
        scale = 1.0
    elif slip == "scale_by_HS":
        scale = 1.0 / HS
    P = probs
    if slip == "recomputed_probs_no_mask":
        P = softmax(q @ k.swapaxes(-1, -2) / math.sqrt(HS))
    if slip == "dv_no_transpose":
        dv = P @ dout
    elif slip == "dot_T_on_4d":
        dv = P.T @ dout
    else:
        dv = P.swapaxes(-1, -2) @ dout
    dP = dout @ v.swapaxes(-1, -2)
    if slip == "softmax_diagonal":
        dS = P * (1.0 - P) * dP
    elif slip == "softmax_sum_axis_-2":
        dS = P * (dP - (dP * P).sum(axis=-2, keepdims=True))
    else:
        dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))
    if slip == "transposes_swapped":
        dq = dS.swapaxes(-1, -2) @ k * scale
        dk = dS @ q * scale
    else:
        dq = dS @ k * scale
        dk = (dS @ q if slip == "dk_no_transpose" else dS.swapaxes(-1, -2) @ q) * scale
    return dq, dk, dv


ATTENTION = build("attention", attention_impl, "dout, q, k, v, probs", [
    ("dv_no_transpose", "dv = probs @ dout: forgot to transpose probs"),
    ("no_scale", "forgot the 1/sqrt(HS) on dq and dk"),
    ("scale_by_HS", "scaled dq and dk by 1/HS instead of 1/sqrt(HS)"),
    ("dk_no_transpose", "dk = dS @ q: forgot the transpose of dS"),
    ("transposes_swapped", "dq = dS^T @ k and dk = dS @ q: transposes on the wrong side"),
    ("softmax_diagonal", "dS = P * (1 - P) * dP: diagonal of the softmax Jacobian only"),
    ("softmax_sum_axis_-2", "softmax backward summed over the query axis (-2)"),
    ("recomputed_probs_no_mask", "recomputed probs from q, k without the padding bias"),
    ("dot_T_on_4d", "dv = probs.T @ dout: .T on a 4-D array reverses every axis"),
])


def embedding_tied_impl(dlogits, ids, weight, slip=None):
    V, C = weight.shape
    flat = ids.reshape(-1)
    dl2 = dlogits.reshape(-1, V)
    h2 = weight[flat]
    dW = np.zeros_like(weight)
    if slip != "no_decoder_path":
        if slip == "decoder_transposed":
            dW = dW + h2.T @ dl2
        else:
            dW = dW + dl2.T @ h2
        if slip == "decoder_doubled":
            dW = 2.0 * dW
    if slip != "no_embedding_path":
        dh2 = dl2 @ weight
        if slip == "fancy_index_add":
            dW[flat] += dh2
        elif slip == "ids_flat_dh_not":
            np.add.at(dW, flat, dh2.reshape(dlogits.shape[:-1] + (C,)))
        elif slip == "mean_over_repeats":
            acc = np.zeros_like(weight)
            np.add.at(acc, flat, dh2)
            cnt = np.bincount(flat, minlength=V).astype(np.float64)
            dW += acc / np.maximum(cnt, 1.0)[:, None]
        else:
            np.add.at(dW, flat, dh2)
    if slip == "dbias_axis0":
        db = dlogits.sum(axis=0)
    elif slip == "dbias_mean":
        db = dl2.mean(axis=0)
    elif slip == "dbias_last_axis":
        db = dlogits.sum(axis=-1)
    else:
        db = dl2.sum(axis=0)
    return dW, db


EMBEDDING_TIED = build("embedding_tied", embedding_tied_impl, "dlogits, ids, weight", [
    ("no_embedding_path", "only the decoder's gradient: forgot the lookup also uses weight"),
    ("no_decoder_path", "only the scatter-add of the lookup: forgot the decoder's dlogits^T h"),
    ("fancy_index_add", "dweight[ids] += dh: fancy-index add loses repeated ids"),
    ("decoder_transposed", "decoder gradient h^T @ dlogits, (C, V), added to a (V, C) array"),
    ("decoder_doubled", "tied weight used twice, so doubled the decoder gradient"),
    ("mean_over_repeats", "averaged (not summed) the gradients of positions sharing an id"),
    ("ids_flat_dh_not", "np.add.at(dweight, ids.ravel(), dh) with dh still (B, T, C)"),
    ("dbias_axis0", "dbias = dlogits.sum(axis=0): summed the batch only, shape (T, V)"),
    ("dbias_mean", "dbias = mean over positions instead of sum"),
])


def cross_entropy_impl(dloss, logits, labels, slip=None):
    B, T, V = logits.shape
    y = np.asarray(labels).reshape(-1)
    if slip == "softmax_axis1":
        p = softmax(logits, axis=1).reshape(-1, V)
    elif slip == "unstable_softmax":
        e = np.exp(logits.reshape(-1, V))
        p = e / e.sum(axis=-1, keepdims=True)
    else:
        p = softmax(logits.reshape(-1, V))
    keep = y > 0 if slip == "label0_ignored" else y != IGNORE
    g = p.copy()
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] -= 1.0
    if slip != "ignored_rows_keep_softmax":
        g[~keep] = 0.0
    if slip == "sign_flipped":
        g = -g
    if slip == "divide_by_all_rows":
        n = y.size
    elif slip == "divide_by_batch":
        n = B
    elif slip == "no_mean":
        n = 1
    else:
        n = keep.sum()
    g = g / n
    if slip != "no_dloss":
        g = g * dloss
    return g.reshape(B, T, V)


CROSS_ENTROPY = build("cross_entropy", cross_entropy_impl, "dloss, logits, labels", [
    ("ignored_rows_keep_softmax", "zeroed the one-hot at ignored rows but left their softmax"),
    ("divide_by_all_rows", "divided by all B*T rows, not the scored ones"),
    ("divide_by_batch", "divided by the batch size B (mean over the batch)"),
    ("no_mean", "forgot to divide by the number of scored rows (sum, not mean)"),
    ("no_dloss", "forgot to multiply by dloss"),
    ("sign_flipped", "one-hot minus softmax: sign slip"),
    ("softmax_axis1", "softmax over axis=1 (the sequence) of the (B, T, V) logits"),
    ("label0_ignored", "keep = labels > 0: label 0 treated as ignored too"),
    ("unstable_softmax", "exp(logits) without subtracting the max: overflows"),
])


def kl_soft_target_impl(dloss, s_logits, t_logits, tau, slip=None):
    P, V = s_logits.shape
    p = softmax(s_logits / tau)
    q = softmax(t_logits / tau)
    if slip == "student_no_tau":
        p = softmax(s_logits)
    elif slip == "both_no_tau":
        p, q = softmax(s_logits), softmax(t_logits)
    if slip == "reverse_kl":
        a = np.log(p) - np.log(q)
        d = p * (a - (p * a).sum(axis=-1, keepdims=True))
    elif slip == "teacher_minus_student":
        d = q - p
    else:
        d = p - q
    if slip == "no_tau_squared":
        f = 1.0 / (tau * P)
    elif slip == "no_inverse_tau":
        f = tau * tau / P
    elif slip == "no_row_mean":
        f = tau
    elif slip == "mean_over_elements":
        f = tau / (P * V)
    else:
        f = tau / P
    g = f * d
    return g if slip == "no_dloss" else g * dloss


KL_SOFT_TARGET = build("kl_soft_target", kl_soft_target_impl, "dloss, s_logits, t_logits, tau", [
    ("no_tau_squared", "forgot the tau**2 factor: (p - q) / (tau * P)"),
    ("no_inverse_tau", "forgot the chain-rule 1/tau of softmax(s/tau): tau**2 (p - q) / P"),
    ("teacher_minus_student", "q - p instead of p - q: student and teacher swapped"),
    ("no_row_mean", "forgot the 1/P of the mean over rows"),
    ("mean_over_elements", "divided by P*V: mean over every element instead of rows"),
    ("student_no_tau", "student p = softmax(s) without the temperature"),
    ("both_no_tau", "both softmaxes without the temperature"),
    ("no_dloss", "forgot to multiply by dloss"),
    ("reverse_kl", "differentiated KL(p || q) (reverse direction) instead of KL(q || p)"),
])

ENTRIES = ATTENTION + EMBEDDING_TIED + CROSS_ENTROPY + KL_SOFT_TARGET
