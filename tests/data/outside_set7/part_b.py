"""Outside set 7, attention to the cosine loss (see ``__init__.py``)."""
from .common import ENTRIES, _Phi, _erf, _flat, _phi, _softmax, entry, math, np  # noqa: F401

# ============================================================================== attention
def _attn_core(dout, q, k, v, probs, *, scale=None, dS_fn=None):
    HS = q.shape[-1]
    s = 1 / math.sqrt(HS) if scale is None else scale
    dv = probs.swapaxes(-1, -2) @ dout
    dP = dout @ v.swapaxes(-1, -2)
    if dS_fn is None:
        dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    else:
        dS = dS_fn(dP, probs)
    dq = dS @ k * s
    dk = dS.swapaxes(-1, -2) @ q * s
    return dq, dk, dv


@entry("attention", "control", "correct", control=True)
def attention_ok(dout, q, k, v, probs):
    return _attn_core(dout, q, k, v, probs)


@entry("attention", "dk_no_transpose", "dk = dS @ q / sqrt(HS): dS not transposed for the keys")
def attention_m1(dout, q, k, v, probs):
    HS = q.shape[-1]
    dv = probs.swapaxes(-1, -2) @ dout
    dP = dout @ v.swapaxes(-1, -2)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    return dS @ k / math.sqrt(HS), dS @ q / math.sqrt(HS), dv


@entry("attention", "no_scale", "forgot the 1/sqrt(HS) scale in dq and dk")
def attention_m2(dout, q, k, v, probs):
    return _attn_core(dout, q, k, v, probs, scale=1.0)


@entry("attention", "times_sqrt_HS", "multiplied dq and dk by sqrt(HS) instead of dividing")
def attention_m3(dout, q, k, v, probs):
    return _attn_core(dout, q, k, v, probs, scale=math.sqrt(q.shape[-1]))


@entry("attention", "dv_no_transpose", "dv = probs @ dout: probs not transposed")
def attention_m4(dout, q, k, v, probs):
    dq, dk, dv = _attn_core(dout, q, k, v, probs)
    return dq, dk, probs @ dout


@entry("attention", "recomputed_probs_no_mask", "recomputed probs = softmax(q k^T / sqrt(HS)) without the padding bias")
def attention_m5(dout, q, k, v, probs):
    HS = q.shape[-1]
    P = _softmax(q @ k.swapaxes(-1, -2) / math.sqrt(HS))
    return _attn_core(dout, q, k, v, P)


@entry("attention", "softmax_diagonal", "dS = dP * P * (1 - P): only the diagonal of the softmax Jacobian")
def attention_m6(dout, q, k, v, probs):
    return _attn_core(dout, q, k, v, probs, dS_fn=lambda dP, P: dP * P * (1 - P))


@entry("attention", "softmax_sum_axis_minus2", "the softmax row sum (dP * P).sum over axis -2 (the queries) instead of -1")
def attention_m7(dout, q, k, v, probs):
    return _attn_core(dout, q, k, v, probs,
                      dS_fn=lambda dP, P: P * (dP - (dP * P).sum(-2, keepdims=True)))


@entry("attention", "dotT_4d", "used .T on 4-D arrays (probs.T @ dout), which reverses all four axes")
def attention_m8(dout, q, k, v, probs):
    HS = q.shape[-1]
    dv = probs.T @ dout
    dP = dout @ v.swapaxes(-1, -2)
    dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    return dS @ k / math.sqrt(HS), dS.swapaxes(-1, -2) @ q / math.sqrt(HS), dv


@entry("attention", "order_dq_dv_dk", "returns (dq, dv, dk) instead of (dq, dk, dv)")
def attention_m9(dout, q, k, v, probs):
    dq, dk, dv = _attn_core(dout, q, k, v, probs)
    return dq, dv, dk


# ============================================================================== embedding_tied
def _emb_parts(dlogits, ids, weight):
    V, C = weight.shape
    h = weight[ids]  # (B, T, C)
    d_dec = _flat(dlogits).T @ _flat(h)  # (V, C)
    dh = dlogits @ weight  # (B, T, C)
    d_emb = np.zeros_like(weight)
    np.add.at(d_emb, ids.reshape(-1), _flat(dh))
    return h, dh, d_dec, d_emb


@entry("embedding_tied", "control", "correct", control=True)
def embedding_tied_ok(dlogits, ids, weight):
    h, dh, d_dec, d_emb = _emb_parts(dlogits, ids, weight)
    return d_dec + d_emb, dlogits.sum(axis=(0, 1))


@entry("embedding_tied", "decoder_only", "only the decoder's gradient dlogits^T h: the lookup's use of weight forgotten")
def embedding_tied_m1(dlogits, ids, weight):
    h, dh, d_dec, d_emb = _emb_parts(dlogits, ids, weight)
    return d_dec, dlogits.sum(axis=(0, 1))


@entry("embedding_tied", "lookup_only", "only the scatter-add of the lookup: the decoder's use of weight forgotten")
def embedding_tied_m2(dlogits, ids, weight):
    h, dh, d_dec, d_emb = _emb_parts(dlogits, ids, weight)
    return d_emb, dlogits.sum(axis=(0, 1))


@entry("embedding_tied", "fancy_plus_equal", "dW[ids] += dh (fancy-index +=, so a repeated id counts once)")
def embedding_tied_m3(dlogits, ids, weight):
    h, dh, d_dec, _ = _emb_parts(dlogits, ids, weight)
    d_emb = np.zeros_like(weight)
    d_emb[ids] += dh
    return d_dec + d_emb, dlogits.sum(axis=(0, 1))


@entry("embedding_tied", "dbias_axis0", "dbias = dlogits.sum(axis=0): summed over the batch but not the sequence")
def embedding_tied_m4(dlogits, ids, weight):
    h, dh, d_dec, d_emb = _emb_parts(dlogits, ids, weight)
    return d_dec + d_emb, dlogits.sum(axis=0)


@entry("embedding_tied", "decoder_hT_dlogits", "decoder part written h^T dlogits, the (C, V) layout")
def embedding_tied_m5(dlogits, ids, weight):
    h, dh, _, d_emb = _emb_parts(dlogits, ids, weight)
    d_dec = _flat(h).T @ _flat(dlogits)
    return d_dec + d_emb, dlogits.sum(axis=(0, 1))


@entry("embedding_tied", "dbias_mean", "dbias = dlogits.mean(axis=(0, 1)) instead of a sum")
def embedding_tied_m6(dlogits, ids, weight):
    h, dh, d_dec, d_emb = _emb_parts(dlogits, ids, weight)
    return d_dec + d_emb, dlogits.mean(axis=(0, 1))


@entry("embedding_tied", "reshape_not_transpose", "decoder part dlogits.reshape(V, -1) @ h.reshape(-1, C): reshape for a transpose")
def embedding_tied_m7(dlogits, ids, weight):
    V, C = weight.shape
    h, dh, _, d_emb = _emb_parts(dlogits, ids, weight)
    d_dec = dlogits.reshape(V, -1) @ h.reshape(-1, C)
    return d_dec + d_emb, dlogits.sum(axis=(0, 1))


@entry("embedding_tied", "twice_decoder", "'weight is used twice' taken as dW = 2 * dlogits^T h")
def embedding_tied_m8(dlogits, ids, weight):
    h, dh, d_dec, d_emb = _emb_parts(dlogits, ids, weight)
    return 2 * d_dec, dlogits.sum(axis=(0, 1))


@entry("embedding_tied", "add_at_into_weight", "np.add.at(weight, ids, dh): the scatter-add written into weight, not dW")
def embedding_tied_m9(dlogits, ids, weight):
    h, dh, d_dec, _ = _emb_parts(dlogits, ids, weight)
    dW = d_dec.copy()
    np.add.at(weight, ids.reshape(-1), _flat(dh))
    return dW, dlogits.sum(axis=(0, 1))


# ============================================================================== kl_soft_target
@entry("kl_soft_target", "control", "correct", control=True)
def kl_ok(dloss, s_logits, t_logits, T):
    P = s_logits.shape[0]
    return dloss * T / P * (_softmax(s_logits / T) - _softmax(t_logits / T))


@entry("kl_soft_target", "no_T_squared", "forgot the T**2 factor of the loss: dloss * (p - q) / (T * P)")
def kl_m1(dloss, s_logits, t_logits, T):
    P = s_logits.shape[0]
    return dloss / (T * P) * (_softmax(s_logits / T) - _softmax(t_logits / T))


@entry("kl_soft_target", "no_chain_1_over_T", "forgot the 1/T of d(s/T)/ds: dloss * T**2 * (p - q) / P")
def kl_m2(dloss, s_logits, t_logits, T):
    P = s_logits.shape[0]
    return dloss * T * T / P * (_softmax(s_logits / T) - _softmax(t_logits / T))


@entry("kl_soft_target", "no_mean_over_P", "forgot the mean over the P rows (a sum)")
def kl_m3(dloss, s_logits, t_logits, T):
    return dloss * T * (_softmax(s_logits / T) - _softmax(t_logits / T))


@entry("kl_soft_target", "mean_over_PV", "reduction='mean' over all P*V entries instead of 'batchmean' over P")
def kl_m4(dloss, s_logits, t_logits, T):
    return dloss * T / s_logits.size * (_softmax(s_logits / T) - _softmax(t_logits / T))


@entry("kl_soft_target", "sign_flip", "ds = (q - p): teacher minus student")
def kl_m5(dloss, s_logits, t_logits, T):
    P = s_logits.shape[0]
    return dloss * T / P * (_softmax(t_logits / T) - _softmax(s_logits / T))


@entry("kl_soft_target", "no_dloss", "forgot to multiply by the upstream dloss")
def kl_m6(dloss, s_logits, t_logits, T):
    P = s_logits.shape[0]
    return T / P * (_softmax(s_logits / T) - _softmax(t_logits / T))


@entry("kl_soft_target", "student_no_T", "student p recomputed as softmax(s) without the temperature")
def kl_m7(dloss, s_logits, t_logits, T):
    P = s_logits.shape[0]
    return dloss * T / P * (_softmax(s_logits) - _softmax(t_logits / T))


@entry("kl_soft_target", "softmax_times_T", "softmax(s * T), softmax(t * T): multiplied by T instead of divided")
def kl_m8(dloss, s_logits, t_logits, T):
    P = s_logits.shape[0]
    return dloss * T / P * (_softmax(s_logits * T) - _softmax(t_logits * T))


@entry("kl_soft_target", "softmax_no_keepdims", "own softmax e / e.sum(-1) without keepdims")
def kl_m9(dloss, s_logits, t_logits, T):
    P = s_logits.shape[0]

    def sm(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1)
    return dloss * T / P * (sm(s_logits / T) - sm(t_logits / T))


# ============================================================================== cross_entropy
@entry("cross_entropy", "control", "correct", control=True)
def ce_ok(dloss, logits, labels):
    V = logits.shape[-1]
    y = labels.reshape(-1)
    keep = y != -100
    g = _softmax(_flat(logits))
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] -= 1
    g[~keep] = 0
    return (dloss * g / keep.sum()).reshape(logits.shape)


@entry("cross_entropy", "ignore_label_indexed", "no -100 handling: g[arange(N), labels] -= 1 indexes with -100")
def ce_m1(dloss, logits, labels):
    y = labels.reshape(-1)
    keep = y != -100
    g = _softmax(_flat(logits))
    g[np.arange(len(y)), y] -= 1
    g[~keep] = 0
    return (dloss * g / keep.sum()).reshape(logits.shape)


@entry("cross_entropy", "ignored_rows_keep_softmax", "skips the one-hot at -100 rows but leaves their softmax in the gradient")
def ce_m2(dloss, logits, labels):
    y = labels.reshape(-1)
    keep = y != -100
    g = _softmax(_flat(logits))
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] -= 1
    return (dloss * g / keep.sum()).reshape(logits.shape)


@entry("cross_entropy", "divide_by_all_rows", "divides by all B*T rows instead of the rows with a label")
def ce_m3(dloss, logits, labels):
    y = labels.reshape(-1)
    keep = y != -100
    g = _softmax(_flat(logits))
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] -= 1
    g[~keep] = 0
    return (dloss * g / len(y)).reshape(logits.shape)


@entry("cross_entropy", "divide_by_B", "divides by the batch size B")
def ce_m4(dloss, logits, labels):
    y = labels.reshape(-1)
    keep = y != -100
    g = _softmax(_flat(logits))
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] -= 1
    g[~keep] = 0
    return (dloss * g / logits.shape[0]).reshape(logits.shape)


@entry("cross_entropy", "no_dloss", "forgot to multiply by dloss")
def ce_m5(dloss, logits, labels):
    y = labels.reshape(-1)
    keep = y != -100
    g = _softmax(_flat(logits))
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] -= 1
    g[~keep] = 0
    return (g / keep.sum()).reshape(logits.shape)


@entry("cross_entropy", "log_softmax_for_softmax", "dlogits = log_softmax(logits) - onehot: log-probabilities where probabilities belong")
def ce_m6(dloss, logits, labels):
    y = labels.reshape(-1)
    keep = y != -100
    L = _flat(logits)
    z = L - L.max(-1, keepdims=True)
    g = z - np.log(np.exp(z).sum(-1, keepdims=True))
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] -= 1
    g[~keep] = 0
    return (dloss * g / keep.sum()).reshape(logits.shape)


@entry("cross_entropy", "chained_index_copy", "g[keep][arange(n), y[keep]] -= 1: chained fancy indexing writes into a copy")
def ce_m7(dloss, logits, labels):
    y = labels.reshape(-1)
    keep = y != -100
    g = _softmax(_flat(logits))
    g[keep][np.arange(keep.sum()), y[keep]] -= 1
    g[~keep] = 0
    return (dloss * g / keep.sum()).reshape(logits.shape)


@entry("cross_entropy", "softmax_global_sum", "own softmax divides by e.sum() over the whole array, not per row")
def ce_m8(dloss, logits, labels):
    y = labels.reshape(-1)
    keep = y != -100
    L = _flat(logits)
    e = np.exp(L - L.max())
    g = e / e.sum()
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] -= 1
    g[~keep] = 0
    return (dloss * g / keep.sum()).reshape(logits.shape)


@entry("cross_entropy", "flat_return", "returns the flattened (B*T, V) gradient without reshaping to (B, T, V)")
def ce_m9(dloss, logits, labels):
    y = labels.reshape(-1)
    keep = y != -100
    g = _softmax(_flat(logits))
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] -= 1
    g[~keep] = 0
    return dloss * g / keep.sum()


# ============================================================================== cosine
def _cos_parts(s_h, t_h):
    ns = np.sqrt((s_h * s_h).sum(-1, keepdims=True))
    nt = np.sqrt((t_h * t_h).sum(-1, keepdims=True))
    cos = (s_h * t_h).sum(-1, keepdims=True) / (ns * nt)
    return ns, nt, cos


@entry("cosine", "control", "correct", control=True)
def cosine_ok(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)[..., None]
    ns, nt, cos = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    return -dloss * dcos * m / m.sum()


@entry("cosine", "no_norm_term", "dcos/ds = t / (|s||t|): forgot that |s| depends on s")
def cosine_m1(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)[..., None]
    ns, nt, cos = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt)
    return -dloss * dcos * m / m.sum()


@entry("cosine", "sign_flip", "returns +dcos/ds: forgot the minus of 1 - cos")
def cosine_m2(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)[..., None]
    ns, nt, cos = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    return dloss * dcos * m / m.sum()


@entry("cosine", "mean_over_all_BT", "divides by B*T, padding included, instead of the number of real positions")
def cosine_m3(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)[..., None]
    ns, nt, cos = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    return -dloss * dcos * m / (mask.shape[0] * mask.shape[1])


@entry("cosine", "pads_not_zeroed", "forgot to zero the padded positions (the count of real ones is right)")
def cosine_m4(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)[..., None]
    ns, nt, cos = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    return -dloss * dcos / m.sum()


@entry("cosine", "per_sequence_mean", "mean per sequence, then over the batch (mean of means)")
def cosine_m5(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)[..., None]
    ns, nt, cos = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    per_seq = m.sum(axis=1, keepdims=True)  # (B, 1, 1)
    return -dloss * dcos * m / per_seq / mask.shape[0]


@entry("cosine", "norms_no_keepdims", "norms computed with .sum(-1) without keepdims")
def cosine_m6(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)[..., None]
    ns = np.sqrt((s_h * s_h).sum(-1))
    nt = np.sqrt((t_h * t_h).sum(-1))
    cos = (s_h * t_h).sum(-1) / (ns * nt)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    return -dloss * dcos * m / m.sum()


@entry("cosine", "second_term_st", "second term cos * s / (|s||t|) instead of cos * s / |s|^2")
def cosine_m7(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)[..., None]
    ns, nt, cos = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / (ns * nt)
    return -dloss * dcos * m / m.sum()


@entry("cosine", "no_dloss", "forgot to multiply by dloss")
def cosine_m8(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)[..., None]
    ns, nt, cos = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    return -dcos * m / m.sum()


@entry("cosine", "wrt_teacher", "roles of s and t swapped: s / (|s||t|) - cos * t / |t|^2 (the gradient for t)")
def cosine_m9(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)[..., None]
    ns, nt, cos = _cos_parts(s_h, t_h)
    dcos = s_h / (ns * nt) - cos * t_h / nt ** 2
    return -dloss * dcos * m / m.sum()
