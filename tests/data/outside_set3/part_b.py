"""Outside set 3, verbatim from line 332 to 620 of the original file (attention, embedding_tied, cross_entropy, kl_soft_target); only this header was added."""
# ruff: noqa: F401, F811
import math

import numpy as np

from .common import SQ2PI, _Phi, _erf, _phi, _softmax, entry


# ============================================================================ attention
def _att_core(dout, q, k, v, probs, scale=None, dS_fn=None):
    HS = q.shape[-1]
    s = 1.0 / math.sqrt(HS) if scale is None else scale
    dv = probs.swapaxes(-1, -2) @ dout
    dP = dout @ v.swapaxes(-1, -2)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True)) if dS_fn is None else dS_fn(dP, probs)
    return dS @ k * s, dS.swapaxes(-1, -2) @ q * s, dv


@entry("attention", "attention_ok", "correct control")
def _(dout, q, k, v, probs):
    return _att_core(dout, q, k, v, probs)


@entry("attention", "att_no_scale", "the 1/sqrt(HS) of the scores forgotten in dq and dk")
def _(dout, q, k, v, probs):
    return _att_core(dout, q, k, v, probs, scale=1.0)


@entry("attention", "att_scale_HS", "scaled by 1/HS instead of 1/sqrt(HS)")
def _(dout, q, k, v, probs):
    return _att_core(dout, q, k, v, probs, scale=1.0 / q.shape[-1])


@entry("attention", "att_no_softmax_bwd", "dS taken equal to dP, the softmax backward skipped")
def _(dout, q, k, v, probs):
    return _att_core(dout, q, k, v, probs, dS_fn=lambda dP, P: dP)


@entry("attention", "att_dk_not_transposed", "dk computed as dS @ q, without transposing dS")
def _(dout, q, k, v, probs):
    dq, dk, dv = _att_core(dout, q, k, v, probs)
    HS = q.shape[-1]
    dP = dout @ v.swapaxes(-1, -2)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    return dq, dS @ q / math.sqrt(HS), dv


@entry("attention", "att_dv_not_transposed", "dv computed as probs @ dout, without transposing probs")
def _(dout, q, k, v, probs):
    dq, dk, dv = _att_core(dout, q, k, v, probs)
    return dq, dk, probs @ dout


@entry("attention", "att_recomputed_no_mask", "probs recomputed from q and k without the padding mask")
def _(dout, q, k, v, probs):
    HS = q.shape[-1]
    P = _softmax(q @ k.swapaxes(-1, -2) / math.sqrt(HS))
    return _att_core(dout, q, k, v, P)


@entry("attention", "att_softmax_axis", "the softmax backward sums dP*P over the query axis (-2) instead of the keys")
def _(dout, q, k, v, probs):
    return _att_core(dout, q, k, v, probs,
                     dS_fn=lambda dP, P: P * (dP - (dP * P).sum(-2, keepdims=True)))


@entry("attention", "att_dotT_4d", "NumPy's .T used on the 4-D arrays (reverses all axes) instead of swapaxes(-1, -2)")
def _(dout, q, k, v, probs):
    HS = q.shape[-1]
    dv = probs.T @ dout
    dP = dout @ v.T
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    return dS @ k / math.sqrt(HS), dS.T @ q / math.sqrt(HS), dv


# ============================================================================ embedding_tied
def _emb_parts(dlogits, ids, weight):
    h = weight[ids]  # (B, T, C)
    C, V = weight.shape[1], weight.shape[0]
    dW_dec = dlogits.reshape(-1, V).T @ h.reshape(-1, C)  # (V, C)
    dh = dlogits @ weight  # (B, T, C)
    return h, dW_dec, dh


@entry("embedding_tied", "embedding_tied_ok", "correct control")
def _(dlogits, ids, weight):
    h, dW, dh = _emb_parts(dlogits, ids, weight)
    dW = dW.copy()
    np.add.at(dW, ids.reshape(-1), dh.reshape(-1, weight.shape[1]))
    return dW, dlogits.sum(axis=(0, 1))


@entry("embedding_tied", "emb_decoder_only", "dweight from the output projection only, the lookup's gradient forgotten")
def _(dlogits, ids, weight):
    h, dW, dh = _emb_parts(dlogits, ids, weight)
    return dW, dlogits.sum(axis=(0, 1))


@entry("embedding_tied", "emb_lookup_only", "dweight from the embedding lookup only, the output projection's gradient forgotten")
def _(dlogits, ids, weight):
    h, dW, dh = _emb_parts(dlogits, ids, weight)
    dWl = np.zeros_like(weight)
    np.add.at(dWl, ids.reshape(-1), dh.reshape(-1, weight.shape[1]))
    return dWl, dlogits.sum(axis=(0, 1))


@entry("embedding_tied", "emb_fancy_index_add", "dW[ids] += dh with fancy indexing, so repeated ids keep only one write")
def _(dlogits, ids, weight):
    h, dW, dh = _emb_parts(dlogits, ids, weight)
    dW = dW.copy()
    dW[ids] += dh
    return dW, dlogits.sum(axis=(0, 1))


@entry("embedding_tied", "emb_dbias_mean", "dbias averaged over the B*T positions instead of summed")
def _(dlogits, ids, weight):
    h, dW, dh = _emb_parts(dlogits, ids, weight)
    dW = dW.copy()
    np.add.at(dW, ids.reshape(-1), dh.reshape(-1, weight.shape[1]))
    return dW, dlogits.mean(axis=(0, 1))


@entry("embedding_tied", "emb_dh_WT", "dh computed as dlogits @ weight.T (matmul with the wrong orientation)")
def _(dlogits, ids, weight):
    h, dW, _ = _emb_parts(dlogits, ids, weight)
    dh = dlogits @ weight.T
    dW = dW.copy()
    np.add.at(dW, ids.reshape(-1), dh.reshape(-1, weight.shape[1]))
    return dW, dlogits.sum(axis=(0, 1))


@entry("embedding_tied", "emb_dbias_axis0", "dbias summed over the batch axis only, leaving shape (T, V)")
def _(dlogits, ids, weight):
    h, dW, dh = _emb_parts(dlogits, ids, weight)
    dW = dW.copy()
    np.add.at(dW, ids.reshape(-1), dh.reshape(-1, weight.shape[1]))
    return dW, dlogits.sum(axis=0)


@entry("embedding_tied", "emb_decoder_transposed", "the decoder's gradient written h^T dlogits, shape (C, V), then added")
def _(dlogits, ids, weight):
    V, C = weight.shape
    h = weight[ids]
    dW = h.reshape(-1, C).T @ dlogits.reshape(-1, V)
    dh = dlogits @ weight
    np.add.at(dW, ids.reshape(-1), dh.reshape(-1, C))
    return dW, dlogits.sum(axis=(0, 1))


@entry("embedding_tied", "emb_3d_dotT", "the decoder's gradient as dlogits.T @ h on the 3-D arrays, without flattening")
def _(dlogits, ids, weight):
    h = weight[ids]
    dW = dlogits.T @ h
    dh = dlogits @ weight
    np.add.at(dW, ids.reshape(-1), dh.reshape(-1, weight.shape[1]))
    return dW, dlogits.sum(axis=(0, 1))


# ============================================================================ cross_entropy
def _ce_parts(logits, labels):
    V = logits.shape[-1]
    z = logits.reshape(-1, V)
    y = np.asarray(labels).reshape(-1)
    keep = y != -100
    p = _softmax(z)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y))[keep], y[keep]] = 1.0
    return p, onehot, keep


@entry("cross_entropy", "cross_entropy_ok", "correct control")
def _(dloss, logits, labels):
    p, oh, keep = _ce_parts(logits, labels)
    g = (p - oh) * keep[:, None] / keep.sum()
    return dloss * g.reshape(logits.shape)


@entry("cross_entropy", "ce_minus100_index", "one-hot built with np.eye(V)[labels], -100 used as an index")
def _(dloss, logits, labels):
    V = logits.shape[-1]
    p = _softmax(logits)
    oh = np.eye(V)[labels]
    keep = labels != -100
    return dloss * (p - oh) * keep[..., None] / keep.sum()


@entry("cross_entropy", "ce_ignored_rows_kept", "the -100 rows get softmax(logits) too (only their one-hot is zero)")
def _(dloss, logits, labels):
    p, oh, keep = _ce_parts(logits, labels)
    g = (p - oh) / keep.sum()
    return dloss * g.reshape(logits.shape)


@entry("cross_entropy", "ce_mean_all_rows", "the mean taken over all B*T rows, not just the scored ones")
def _(dloss, logits, labels):
    p, oh, keep = _ce_parts(logits, labels)
    g = (p - oh) * keep[:, None] / keep.size
    return dloss * g.reshape(logits.shape)


@entry("cross_entropy", "ce_wrt_probs", "gradient with respect to the probabilities, -onehot / p, not the logits")
def _(dloss, logits, labels):
    p, oh, keep = _ce_parts(logits, labels)
    g = -oh / p * keep[:, None] / keep.sum()
    return dloss * g.reshape(logits.shape)


@entry("cross_entropy", "ce_inplace_shift", "logits shifted in place by their max for stability (writes into the input)")
def _(dloss, logits, labels):
    logits -= logits.max(axis=-1, keepdims=True)
    p, oh, keep = _ce_parts(logits, labels)
    g = (p - oh) * keep[:, None] / keep.sum()
    return dloss * g.reshape(logits.shape)


@entry("cross_entropy", "ce_sign", "the sign flipped: onehot - softmax")
def _(dloss, logits, labels):
    p, oh, keep = _ce_parts(logits, labels)
    g = (oh - p) * keep[:, None] / keep.sum()
    return dloss * g.reshape(logits.shape)


@entry("cross_entropy", "ce_no_mean", "no division by the number of scored rows (the gradient of the sum)")
def _(dloss, logits, labels):
    p, oh, keep = _ce_parts(logits, labels)
    g = (p - oh) * keep[:, None]
    return dloss * g.reshape(logits.shape)


@entry("cross_entropy", "ce_div_B", "divided by the batch size B instead of the number of scored tokens")
def _(dloss, logits, labels):
    p, oh, keep = _ce_parts(logits, labels)
    g = (p - oh) * keep[:, None] / logits.shape[0]
    return dloss * g.reshape(logits.shape)


# ============================================================================ kl_soft_target
def _kl_pq(s, t, T, ts=None, tt=None):
    ts = T if ts is None else ts
    tt = T if tt is None else tt
    return _softmax(s / ts), _softmax(t / tt)


@entry("kl_soft_target", "kl_soft_target_ok", "correct control")
def _(dloss, s_logits, t_logits, T):
    p, q = _kl_pq(s_logits, t_logits, T)
    return dloss * T / s_logits.shape[0] * (p - q)


@entry("kl_soft_target", "kl_no_T2", "the T**2 factor of the loss forgotten: (p - q) / (T P)")
def _(dloss, s_logits, t_logits, T):
    p, q = _kl_pq(s_logits, t_logits, T)
    return dloss / (T * s_logits.shape[0]) * (p - q)


@entry("kl_soft_target", "kl_no_chain_T", "the 1/T of s/T forgotten: T**2 (p - q) / P")
def _(dloss, s_logits, t_logits, T):
    p, q = _kl_pq(s_logits, t_logits, T)
    return dloss * T * T / s_logits.shape[0] * (p - q)


@entry("kl_soft_target", "kl_no_rowmean", "the mean over the P rows forgotten: T (p - q)")
def _(dloss, s_logits, t_logits, T):
    p, q = _kl_pq(s_logits, t_logits, T)
    return dloss * T * (p - q)


@entry("kl_soft_target", "kl_mean_all", "mean over all P*V elements (reduction='mean') instead of the P rows")
def _(dloss, s_logits, t_logits, T):
    p, q = _kl_pq(s_logits, t_logits, T)
    return dloss * T / s_logits.size * (p - q)


@entry("kl_soft_target", "kl_sign", "the sign flipped: q - p")
def _(dloss, s_logits, t_logits, T):
    p, q = _kl_pq(s_logits, t_logits, T)
    return dloss * T / s_logits.shape[0] * (q - p)


@entry("kl_soft_target", "kl_softmax_times_T", "both softmaxes computed of logits * T instead of logits / T")
def _(dloss, s_logits, t_logits, T):
    p, q = _softmax(s_logits * T), _softmax(t_logits * T)
    return dloss * T / s_logits.shape[0] * (p - q)


@entry("kl_soft_target", "kl_teacher_no_T", "the teacher's softmax taken without the temperature")
def _(dloss, s_logits, t_logits, T):
    p, q = _kl_pq(s_logits, t_logits, T, tt=1.0)
    return dloss * T / s_logits.shape[0] * (p - q)


@entry("kl_soft_target", "kl_no_T_at_all", "no T factor at all: (p - q) / P (both T**2 and 1/T forgotten)")
def _(dloss, s_logits, t_logits, T):
    p, q = _kl_pq(s_logits, t_logits, T)
    return dloss / s_logits.shape[0] * (p - q)
