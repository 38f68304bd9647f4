"""Outside set 9, part 2 of 3 (see ``__init__.py``)."""
from . import part_a
for _m in (part_a,):
    globals().update({k: v for k, v in vars(_m).items() if not k.startswith('__')})

@E("log_softmax_t", "sum_no_keepdims", "dy.sum(axis=-1) without keepdims, broadcast against the rows")
def _(dy, x, T):
    p = softmax(x, T)
    return (dy - p * dy.sum(-1)) / T


@E("log_softmax_t", "p_without_T", "uses p = softmax(x) without the temperature in the backward")
def _(dy, x, T):
    p = softmax(x, 1.0)
    return (dy - p * dy.sum(-1, keepdims=True)) / T


@E("log_softmax_t", "softmax_formula", "uses the softmax backward p * (dy - sum(dy * p)) / T for log-softmax")
def _(dy, x, T):
    p = softmax(x, T)
    return p * (dy - (dy * p).sum(-1, keepdims=True)) / T


@E("log_softmax_t", "uses_logprobs", "uses the output y = log p instead of p = exp(y) in the correction term")
def _(dy, x, T):
    y = np.log(softmax(x, T))
    return (dy - y * dy.sum(-1, keepdims=True)) / T


@E("log_softmax_t", "sum_axis0", "the sum of dy taken over axis=0 instead of the last axis")
def _(dy, x, T):
    p = softmax(x, T)
    return (dy - p * dy.sum(0, keepdims=True)) / T


# ------------------------------------------------------------------ attention
@E("attention", "control", "correct", True)
def _(dout, q, k, v, probs):
    return attn_bwd(dout, q, k, v, probs)


@E("attention", "dv_no_transpose", "dv = probs @ dout: forgets to transpose the probabilities")
def _(dout, q, k, v, probs):
    dq, dk, _ = attn_bwd(dout, q, k, v, probs)
    return dq, dk, probs @ dout


@E("attention", "no_scale", "forgets the 1/sqrt(HS) scale in dq and dk")
def _(dout, q, k, v, probs):
    return attn_bwd(dout, q, k, v, probs, scale=1.0)


@E("attention", "scale_times_sqrt", "multiplies dq and dk by sqrt(HS) instead of dividing")
def _(dout, q, k, v, probs):
    return attn_bwd(dout, q, k, v, probs, scale=math.sqrt(q.shape[-1]))


@E("attention", "softmax_diag_only", "softmax backward with only the diagonal: dS = dP * P * (1 - P)")
def _(dout, q, k, v, probs):
    HS = q.shape[-1]
    dv = probs.swapaxes(-1, -2) @ dout
    dP = dout @ v.swapaxes(-1, -2)
    dS = dP * probs * (1 - probs)
    return dS @ k / math.sqrt(HS), dS.swapaxes(-1, -2) @ q / math.sqrt(HS), dv


@E("attention", "dk_no_transpose", "dk = dS @ q / sqrt(HS): forgets to transpose dS for the keys")
def _(dout, q, k, v, probs):
    dq, _, dv = attn_bwd(dout, q, k, v, probs)
    dP = dout @ v.swapaxes(-1, -2)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    return dq, dS @ q / math.sqrt(q.shape[-1]), dv


@E("attention", "recompute_no_mask", "recomputes probs = softmax(q k^T / sqrt(HS)) itself, without the padding mask")
def _(dout, q, k, v, probs):
    HS = q.shape[-1]
    p = softmax(q @ k.swapaxes(-1, -2) / math.sqrt(HS))
    return attn_bwd(dout, q, k, v, p)


@E("attention", "v_dot_T", "dP = dout @ v.T on 4-D arrays (.T reverses all axes, not the last two)")
def _(dout, q, k, v, probs):
    HS = q.shape[-1]
    dv = probs.swapaxes(-1, -2) @ dout
    dP = dout @ v.T
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    return dS @ k / math.sqrt(HS), dS.swapaxes(-1, -2) @ q / math.sqrt(HS), dv


@E("attention", "softmax_no_sum", "softmax backward without the row-sum term: dS = P * dP")
def _(dout, q, k, v, probs):
    HS = q.shape[-1]
    dv = probs.swapaxes(-1, -2) @ dout
    dS = probs * (dout @ v.swapaxes(-1, -2))
    return dS @ k / math.sqrt(HS), dS.swapaxes(-1, -2) @ q / math.sqrt(HS), dv


@E("attention", "dq_dk_swapped", "dq = dS^T @ k and dk = dS @ q: the transposes put on the wrong one")
def _(dout, q, k, v, probs):
    HS = q.shape[-1]
    dv = probs.swapaxes(-1, -2) @ dout
    dP = dout @ v.swapaxes(-1, -2)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    return dS.swapaxes(-1, -2) @ k / math.sqrt(HS), dS @ q / math.sqrt(HS), dv


# ------------------------------------------------------------------ embedding_tied
def _emb_parts(dlogits, ids, weight):
    V, C = weight.shape
    h = weight[ids]
    d2 = dlogits.reshape(-1, V)
    dW_out = d2.T @ h.reshape(-1, C)
    dh = dlogits @ weight
    dW_emb = np.zeros_like(weight)
    np.add.at(dW_emb, ids.reshape(-1), dh.reshape(-1, C))
    return h, dW_out, dW_emb, dh, d2.sum(0)


@E("embedding_tied", "control", "correct", True)
def _(dlogits, ids, weight):
    h, dW_out, dW_emb, dh, db = _emb_parts(dlogits, ids, weight)
    return dW_out + dW_emb, db


@E("embedding_tied", "only_output_path", "dweight from the output projection only: forgets the embedding lookup use")
def _(dlogits, ids, weight):
    h, dW_out, dW_emb, dh, db = _emb_parts(dlogits, ids, weight)
    return dW_out, db


@E("embedding_tied", "only_embedding_path", "dweight from the embedding lookup only: forgets the output projection use")
def _(dlogits, ids, weight):
    h, dW_out, dW_emb, dh, db = _emb_parts(dlogits, ids, weight)
    return dW_emb, db


@E("embedding_tied", "fancy_index_no_accumulate", "dW[ids] += dh with fancy indexing: repeated ids are counted once")
def _(dlogits, ids, weight):
    h, dW_out, dW_emb, dh, db = _emb_parts(dlogits, ids, weight)
    de = np.zeros_like(weight)
    de[ids.reshape(-1)] += dh.reshape(-1, weight.shape[1])
    return dW_out + de, db


@E("embedding_tied", "dW_out_transposed", "output-projection gradient h^T @ dlogits, shape (C, V)")
def _(dlogits, ids, weight):
    V, C = weight.shape
    h, dW_out, dW_emb, dh, db = _emb_parts(dlogits, ids, weight)
    return h.reshape(-1, C).T @ dlogits.reshape(-1, V) + dW_emb.T, db


@E("embedding_tied", "dbias_sum_axis0", "dbias = dlogits.sum(axis=0): sums the batch but not the sequence")
def _(dlogits, ids, weight):
    h, dW_out, dW_emb, dh, db = _emb_parts(dlogits, ids, weight)
    return dW_out + dW_emb, dlogits.sum(axis=0)


@E("embedding_tied", "dbias_mean", "dbias = dlogits.mean(axis=(0, 1)) instead of the sum")
def _(dlogits, ids, weight):
    h, dW_out, dW_emb, dh, db = _emb_parts(dlogits, ids, weight)
    return dW_out + dW_emb, dlogits.mean(axis=(0, 1))


@E("embedding_tied", "loop_overwrites", "loops over the batch with dW_out = dlogits[b].T @ h[b] (= instead of +=)")
def _(dlogits, ids, weight):
    h, dW_out, dW_emb, dh, db = _emb_parts(dlogits, ids, weight)
    for b in range(ids.shape[0]):
        dWo = dlogits[b].T @ h[b]
    return dWo + dW_emb, db


@E("embedding_tied", "doubled_output_path", "dweight = 2 * dlogits^T h 'because weight is used twice'")
def _(dlogits, ids, weight):
    h, dW_out, dW_emb, dh, db = _emb_parts(dlogits, ids, weight)
    return 2 * dW_out, db


@E("embedding_tied", "ids_order_mismatch", "scatters with ids.flatten('F') while dh is flattened in C order")
def _(dlogits, ids, weight):
    V, C = weight.shape
    h, dW_out, dW_emb, dh, db = _emb_parts(dlogits, ids, weight)
    de = np.zeros_like(weight)
    np.add.at(de, ids.flatten("F"), dh.reshape(-1, C))
    return dW_out + de, db


# ------------------------------------------------------------------ kl_soft_target
@E("kl_soft_target", "control", "correct", True)
def _(dloss, s_logits, t_logits, T):
    return dloss * kl_grad(s_logits, t_logits, T)


@E("kl_soft_target", "no_T_at_all", "ds = (p - q) / P: forgets both the T^2 factor and the 1/T chain rule")
def _(dloss, s_logits, t_logits, T):
    return dloss * (softmax(s_logits, T) - softmax(t_logits, T)) / s_logits.shape[0]


@E("kl_soft_target", "T_squared_no_chain", "ds = T^2 (p - q) / P: keeps T^2 but forgets the 1/T from s / T")
def _(dloss, s_logits, t_logits, T):
    return dloss * T * kl_grad(s_logits, t_logits, T)


@E("kl_soft_target", "sum_not_mean", "ds = T (p - q): forgets the mean over the P rows")
def _(dloss, s_logits, t_logits, T):
    return dloss * kl_grad(s_logits, t_logits, T) * s_logits.shape[0]


@E("kl_soft_target", "sign_flipped", "ds = T (q - p) / P: teacher minus student")
def _(dloss, s_logits, t_logits, T):
    return -dloss * kl_grad(s_logits, t_logits, T)


@E("kl_soft_target", "mean_over_elements", "divides by P * V (reduction='mean') instead of P ('batchmean')")
def _(dloss, s_logits, t_logits, T):
    return dloss * kl_grad(s_logits, t_logits, T) / s_logits.shape[1]


@E("kl_soft_target", "softmax_without_T", "p and q computed as softmax(s) and softmax(t), without the temperature")
def _(dloss, s_logits, t_logits, T):
    return dloss * T * (softmax(s_logits) - softmax(t_logits)) / s_logits.shape[0]


@E("kl_soft_target", "no_upstream", "forgets to multiply by dloss")
def _(dloss, s_logits, t_logits, T):
    return kl_grad(s_logits, t_logits, T)


@E("kl_soft_target", "divides_by_T", "ds = (p - q) / (T P): divides by T where it should multiply")
def _(dloss, s_logits, t_logits, T):
    return dloss * (softmax(s_logits, T) - softmax(t_logits, T)) / (T * s_logits.shape[0])


@E("kl_soft_target", "stops_at_dp", "returns dL/dp = -T^2 q / (p P): stops before the softmax backward")
def _(dloss, s_logits, t_logits, T):
    p = softmax(s_logits, T)
    q = softmax(t_logits, T)
    return dloss * (-T * T * q / p) / s_logits.shape[0]


# ------------------------------------------------------------------ cross_entropy
@E("cross_entropy", "control", "correct", True)
def _(dloss, logits, labels):
    return dloss * ce_grad(logits, labels)


def _ce_raw(logits, labels):
    V = logits.shape[-1]
    z = logits.reshape(-1, V)
    y = np.asarray(labels).reshape(-1)
    keep = y != -100
    return z, y, keep, V


@E("cross_entropy", "divide_by_all_rows", "divides by the number of rows B*T instead of the scored rows")
def _(dloss, logits, labels):
    z, y, keep, V = _ce_raw(logits, labels)
    return dloss * ce_grad(logits, labels) * keep.sum() / keep.size


@E("cross_entropy", "ignored_rows_keep_softmax", "subtracts the one-hot only on scored rows but leaves softmax on ignored rows")
def _(dloss, logits, labels):
    z, y, keep, V = _ce_raw(logits, labels)
    g = softmax(z)
    g[keep, y[keep]] -= 1.0
    return (dloss * g / keep.sum()).reshape(logits.shape)


@E("cross_entropy", "no_mean", "forgets to divide by the number of scored rows")
def _(dloss, logits, labels):
    z, y, keep, V = _ce_raw(logits, labels)
    return dloss * ce_grad(logits, labels) * keep.sum()


@E("cross_entropy", "sign_flipped", "dlogits = onehot - softmax (sign flipped)")
def _(dloss, logits, labels):
    return -dloss * ce_grad(logits, labels)


@E("cross_entropy", "no_upstream", "forgets to multiply by dloss")
def _(dloss, logits, labels):
    return ce_grad(logits, labels)


@E("cross_entropy", "eye_with_minus100", "one-hot built as np.eye(V)[labels] without handling -100")
def _(dloss, logits, labels):
    z, y, keep, V = _ce_raw(logits, labels)
    oh = np.eye(V)[y]
    g = (softmax(z) - oh) * keep[:, None] / keep.sum()
    return (dloss * g).reshape(logits.shape)


@E("cross_entropy", "log_softmax_minus_onehot", "dlogits = log_softmax - onehot: uses log-probabilities instead of probabilities")
def _(dloss, logits, labels):
    z, y, keep, V = _ce_raw(logits, labels)
    g = np.log(softmax(z))
    g[keep, y[keep]] -= 1.0
    g[~keep] = 0.0
    return (dloss * g / keep.sum()).reshape(logits.shape)


@E("cross_entropy", "softmax_wrong_axis", "softmax over axis=1 (the sequence) of the (B, T, V) logits")
def _(dloss, logits, labels):
    z, y, keep, V = _ce_raw(logits, labels)
    p = softmax(logits, axis=1).reshape(-1, V)
    p[keep, y[keep]] -= 1.0
    p[~keep] = 0.0
    return (dloss * p / keep.sum()).reshape(logits.shape)


@E("cross_entropy", "only_label_entry", "writes p - 1 only at the label entry and zero elsewhere")
def _(dloss, logits, labels):
    z, y, keep, V = _ce_raw(logits, labels)
    p = softmax(z)
    g = np.zeros_like(z)
    g[keep, y[keep]] = p[keep, y[keep]] - 1.0
    return (dloss * g / keep.sum()).reshape(logits.shape)


# ------------------------------------------------------------------ cosine
