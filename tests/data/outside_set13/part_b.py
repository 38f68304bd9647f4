"""attention, embedding_tied, cross_entropy, kl_soft_target: one control and nine slips each."""
from __future__ import annotations

import math

import numpy as np

from .common import entry, softmax

# ---------------------------------------------------------------- attention
E = "attention"


def _att(dout, q, k, v, probs, sm_sum=True, sum_axis=-1):
    s = math.sqrt(q.shape[-1])
    dv = probs.swapaxes(-1, -2) @ dout
    dP = dout @ v.swapaxes(-1, -2)
    if sm_sum:
        dS = probs * (dP - (dP * probs).sum(sum_axis, keepdims=True))
    else:
        dS = probs * dP
    dq = dS @ k / s
    dk = dS.swapaxes(-1, -2) @ q / s
    return dq, dk, dv


@entry(E, "control")
def attention_control(dout, q, k, v, probs):
    return _att(dout, q, k, v, probs)


@entry(E, "dv_no_transpose", "dv = probs @ dout: forgot to transpose probs")
def attention_m1(dout, q, k, v, probs):
    dq, dk, _ = _att(dout, q, k, v, probs)
    return dq, dk, probs @ dout


@entry(E, "dk_no_transpose", "dk = dS @ q / sqrt(HS): forgot the transpose of dS")
def attention_m2(dout, q, k, v, probs):
    s = math.sqrt(q.shape[-1])
    dv = probs.swapaxes(-1, -2) @ dout
    dP = dout @ v.swapaxes(-1, -2)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    return dS @ k / s, dS @ q / s, dv


@entry(E, "no_scale", "forgot the 1/sqrt(HS) scale in dq and dk")
def attention_m3(dout, q, k, v, probs):
    dq, dk, dv = _att(dout, q, k, v, probs)
    s = math.sqrt(q.shape[-1])
    return dq * s, dk * s, dv


@entry(E, "scale_HS", "divided dq and dk by HS instead of sqrt(HS)")
def attention_m4(dout, q, k, v, probs):
    dq, dk, dv = _att(dout, q, k, v, probs)
    s = math.sqrt(q.shape[-1])
    return dq / s, dk / s, dv


@entry(E, "softmax_no_sum", "dS = probs * dP: dropped the row-sum term of the softmax backward")
def attention_m5(dout, q, k, v, probs):
    return _att(dout, q, k, v, probs, sm_sum=False)


@entry(E, "dq_from_dP", "dq = dP @ k / sqrt(HS): skipped the softmax backward for dq only")
def attention_m6(dout, q, k, v, probs):
    _, dk, dv = _att(dout, q, k, v, probs)
    dP = dout @ v.swapaxes(-1, -2)
    return dP @ k / math.sqrt(q.shape[-1]), dk, dv


@entry(E, "dotT_on_4d", "dv = probs.T @ dout: .T on a 4-D array reverses every axis")
def attention_m7(dout, q, k, v, probs):
    dq, dk, _ = _att(dout, q, k, v, probs)
    return dq, dk, probs.T @ dout


@entry(E, "softmax_sum_axis", "softmax backward's row sum taken over axis=-2 instead of -1")
def attention_m8(dout, q, k, v, probs):
    return _att(dout, q, k, v, probs, sum_axis=-2)


@entry(E, "recomputed_probs_no_mask", "recomputed probs from q, k without the padding mask")
def attention_m9(dout, q, k, v, probs):
    p2 = softmax(q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1]))
    return _att(dout, q, k, v, p2)


# ---------------------------------------------------------------- embedding_tied
E = "embedding_tied"


def _emb_parts(dlogits, ids, weight):
    h = weight[ids]  # (B, T, C)
    V, C = weight.shape
    dec = dlogits.reshape(-1, V).T @ h.reshape(-1, C)  # (V, C)
    dh = dlogits @ weight  # (B, T, C)
    emb = np.zeros_like(weight)
    np.add.at(emb, ids.reshape(-1), dh.reshape(-1, C))
    return dec, emb, dh


def _db(dlogits):
    return dlogits.reshape(-1, dlogits.shape[-1]).sum(0)


@entry(E, "control")
def embedding_tied_control(dlogits, ids, weight):
    dec, emb, _ = _emb_parts(dlogits, ids, weight)
    return dec + emb, _db(dlogits)


@entry(E, "only_decoder", "dweight = dlogits^T h only: forgot the lookup path of the tied matrix")
def embedding_tied_m1(dlogits, ids, weight):
    dec, _, _ = _emb_parts(dlogits, ids, weight)
    return dec, _db(dlogits)


@entry(E, "only_embedding", "dweight = scatter-add of dh only: forgot the decoder's use of weight")
def embedding_tied_m2(dlogits, ids, weight):
    _, emb, _ = _emb_parts(dlogits, ids, weight)
    return emb, _db(dlogits)


@entry(E, "fancy_assign", "scatter written dW[ids] += dh (repeated ids keep one write)")
def embedding_tied_m3(dlogits, ids, weight):
    dec, _, dh = _emb_parts(dlogits, ids, weight)
    dW = dec.copy()
    dW[ids] += dh
    return dW, _db(dlogits)


@entry(E, "dbias_axis0", "dbias = dlogits.sum(axis=0): summed the batch only, shape (T, V)")
def embedding_tied_m4(dlogits, ids, weight):
    dec, emb, _ = _emb_parts(dlogits, ids, weight)
    return dec + emb, dlogits.sum(axis=0)


@entry(E, "flatten_order", "flattened ids with ids.T.reshape(-1) but dh in row order")
def embedding_tied_m5(dlogits, ids, weight):
    dec, _, dh = _emb_parts(dlogits, ids, weight)
    emb = np.zeros_like(weight)
    np.add.at(emb, ids.T.reshape(-1), dh.reshape(-1, weight.shape[1]))
    return dec + emb, _db(dlogits)


@entry(E, "decoder_mean", "decoder term averaged over the B*T positions instead of summed")
def embedding_tied_m6(dlogits, ids, weight):
    dec, emb, _ = _emb_parts(dlogits, ids, weight)
    return dec / ids.size + emb, _db(dlogits)


@entry(E, "doubled_decoder", "used twice so dweight = 2 * (dlogits^T h): doubled one path")
def embedding_tied_m7(dlogits, ids, weight):
    dec, _, _ = _emb_parts(dlogits, ids, weight)
    return 2.0 * dec, _db(dlogits)


@entry(E, "return_order", "returned (dbias, dweight)")
def embedding_tied_m8(dlogits, ids, weight):
    dec, emb, _ = _emb_parts(dlogits, ids, weight)
    return _db(dlogits), dec + emb


@entry(E, "alias_weight", "dW = weight; dW *= 0 to get zeros: wrote into the weight argument")
def embedding_tied_m9(dlogits, ids, weight):
    dec, _, dh = _emb_parts(dlogits, ids, weight)
    dW = weight
    dW *= 0.0
    np.add.at(dW, ids.reshape(-1), dh.reshape(-1, weight.shape[1]))
    return dW + dec, _db(dlogits)


# ---------------------------------------------------------------- cross_entropy
E = "cross_entropy"


def _ce(dloss, logits, labels, divide="kept", mask_rows=True, sign=1.0, use_dloss=True):
    V = logits.shape[-1]
    z = logits.reshape(-1, V)
    y = np.asarray(labels).reshape(-1)
    keep = y != -100
    g = softmax(z)
    r = np.nonzero(keep)[0]
    g[r, y[keep]] -= 1.0
    if mask_rows:
        g[~keep] = 0.0
    n = {"kept": keep.sum(), "all": y.size, "none": 1, "B": logits.shape[0]}[divide]
    g = sign * g / n
    if use_dloss:
        g = g * dloss
    return g.reshape(logits.shape)


@entry(E, "control")
def cross_entropy_control(dloss, logits, labels):
    return _ce(dloss, logits, labels)


@entry(E, "ignored_rows_kept", "subtracted the one-hot at scored rows but left softmax in ignored rows")
def cross_entropy_m1(dloss, logits, labels):
    return _ce(dloss, logits, labels, mask_rows=False)


@entry(E, "divide_by_all_rows", "divided by B*T, all rows, instead of the number of scored labels")
def cross_entropy_m2(dloss, logits, labels):
    return _ce(dloss, logits, labels, divide="all")


@entry(E, "no_dloss", "forgot to multiply by the upstream dloss")
def cross_entropy_m3(dloss, logits, labels):
    return _ce(dloss, logits, labels, use_dloss=False)


@entry(E, "sign", "wrote one_hot - softmax instead of softmax - one_hot")
def cross_entropy_m4(dloss, logits, labels):
    return _ce(dloss, logits, labels, sign=-1.0)


@entry(E, "sum_not_mean", "no division at all: gradient of the summed loss")
def cross_entropy_m5(dloss, logits, labels):
    return _ce(dloss, logits, labels, divide="none")


@entry(E, "divide_by_B", "divided by the batch size B instead of the number of scored labels")
def cross_entropy_m6(dloss, logits, labels):
    return _ce(dloss, logits, labels, divide="B")


@entry(E, "softmax_axis1", "softmax(logits, axis=1) on the 3-D logits: normalised over T, not V")
def cross_entropy_m7(dloss, logits, labels):
    B, T, V = logits.shape
    g = softmax(logits, axis=1).reshape(-1, V)
    y = np.asarray(labels).reshape(-1)
    keep = y != -100
    g[np.nonzero(keep)[0], y[keep]] -= 1.0
    g[~keep] = 0.0
    return (g / keep.sum() * dloss).reshape(B, T, V)


@entry(E, "colon_index", "g[keep][:, y] -= 1 style: subtracted 1 at every scored label in every row")
def cross_entropy_m8(dloss, logits, labels):
    V = logits.shape[-1]
    g = softmax(logits.reshape(-1, V))
    y = np.asarray(labels).reshape(-1)
    keep = y != -100
    g[:, y[keep]] -= 1.0
    g[~keep] = 0.0
    return (g / keep.sum() * dloss).reshape(logits.shape)


@entry(E, "inplace_shift", "logits -= logits.max(-1, keepdims=True): shifted the input in place")
def cross_entropy_m9(dloss, logits, labels):
    logits -= logits.max(axis=-1, keepdims=True)
    return _ce(dloss, logits, labels)


# ---------------------------------------------------------------- kl_soft_target
E = "kl_soft_target"


@entry(E, "control")
def kl_soft_target_control(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss * tau / P * (softmax(s_logits / tau) - softmax(t_logits / tau))


@entry(E, "no_tau2", "forgot the tau**2 factor: (p - q) / (tau * P)")
def kl_soft_target_m1(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss / (tau * P) * (softmax(s_logits / tau) - softmax(t_logits / tau))


@entry(E, "no_inner_1_over_tau", "kept tau**2 but forgot the 1/tau from d(s/tau)/ds")
def kl_soft_target_m2(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss * tau ** 2 / P * (softmax(s_logits / tau) - softmax(t_logits / tau))


@entry(E, "teacher_minus_student", "wrote q - p (teacher minus student) instead of p - q")
def kl_soft_target_m3(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss * tau / P * (softmax(t_logits / tau) - softmax(s_logits / tau))


@entry(E, "no_mean", "forgot the 1/P of the mean over rows")
def kl_soft_target_m4(dloss, s_logits, t_logits, tau):
    return dloss * tau * (softmax(s_logits / tau) - softmax(t_logits / tau))


@entry(E, "softmax_no_tau", "p and q recomputed as softmax(s), softmax(t) without the temperature")
def kl_soft_target_m5(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss * tau / P * (softmax(s_logits) - softmax(t_logits))


@entry(E, "mean_over_elements", "divided by P*V (a mean over every element) instead of P")
def kl_soft_target_m6(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss * tau / s_logits.size * (softmax(s_logits / tau) - softmax(t_logits / tau))


@entry(E, "no_dloss", "forgot to multiply by the upstream dloss")
def kl_soft_target_m7(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return tau / P * (softmax(s_logits / tau) - softmax(t_logits / tau))


@entry(E, "dropped_p_term", "log-softmax backward of -q without its p * sum(q) term: -q * tau / P")
def kl_soft_target_m8(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return -dloss * tau / P * softmax(t_logits / tau)


@entry(E, "plain_ce_form", "wrote (p - q) / P as for hard-label cross-entropy: no tau factor at all")
def kl_soft_target_m9(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss / P * (softmax(s_logits / tau) - softmax(t_logits / tau))
