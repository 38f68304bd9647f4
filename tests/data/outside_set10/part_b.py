"""Outside set 10, part 2 of 3 (see ``__init__.py``)."""
from . import part_a
for _m in (part_a,):
    globals().update({k: v for k, v in vars(_m).items() if not k.startswith('__')})

@add("log_softmax_t", "softmax_formula", "used the softmax backward p * (dy - sum(dy * p)) / T instead of log-softmax's")
def _(dy, x, T):
    p = _softmax(x, T)
    return p * (dy - (dy * p).sum(-1, keepdims=True)) / T


@add("log_softmax_t", "assumes_sum_one", "dx = (dy - p) / T: assumed dy sums to 1 over the row (as for a one-hot target)")
def _(dy, x, T):
    p = _softmax(x, T)
    return (dy - p) / T


@add("log_softmax_t", "lse_constant", "dx = dy / T: treated the log-sum-exp as a constant")
def _(dy, x, T):
    return dy / T


@add("log_softmax_t", "p_without_T", "recomputed p = softmax(x) without the temperature")
def _(dy, x, T):
    p = _softmax(x, 1.0)
    return (dy - p * dy.sum(-1, keepdims=True)) / T


@add("log_softmax_t", "sum_axis0", "sum(dy) taken over axis 0 instead of the last axis")
def _(dy, x, T):
    p = _softmax(x, T)
    return (dy - p * dy.sum(0, keepdims=True)) / T


@add("log_softmax_t", "diagonal_only", "kept only the diagonal of the Jacobian: dx = dy * (1 - p) / T")
def _(dy, x, T):
    p = _softmax(x, T)
    return dy * (1 - p) / T


@add("log_softmax_t", "sign_flipped", "dx = (p * sum(dy) - dy) / T: overall sign flipped")
def _(dy, x, T):
    p = _softmax(x, T)
    return (p * dy.sum(-1, keepdims=True) - dy) / T


# ----------------------------------------------------------------------------- attention
def _attn(dout, q, k, v, probs, scale=None, dv_fn=None, dscore_fn=None, dk_fn=None, dprobs_fn=None):
    HS = q.shape[-1]
    s = 1.0 / math.sqrt(HS) if scale is None else scale
    kT = lambda a: np.swapaxes(a, -1, -2)  # noqa: E731
    dv = kT(probs) @ dout if dv_fn is None else dv_fn(probs, dout)
    dP = dout @ kT(v) if dprobs_fn is None else dprobs_fn(dout, v)
    if dscore_fn is None:
        dS = probs * (dP - (dP * probs).sum(-1, keepdims=True))
    else:
        dS = dscore_fn(dP, probs)
    dq = dS @ k * s
    dk = (kT(dS) @ q if dk_fn is None else dk_fn(dS, q)) * s
    return dq, dk, dv


@add("attention", "control", "correct", True)
def _(dout, q, k, v, probs):
    return _attn(dout, q, k, v, probs)


@add("attention", "no_scale", "forgot the 1/sqrt(HS) scale in dq and dk")
def _(dout, q, k, v, probs):
    return _attn(dout, q, k, v, probs, scale=1.0)


@add("attention", "scale_multiplied", "multiplied dq and dk by sqrt(HS) instead of dividing")
def _(dout, q, k, v, probs):
    return _attn(dout, q, k, v, probs, scale=math.sqrt(q.shape[-1]))


@add("attention", "scale_over_HS", "scaled dq and dk by 1/HS instead of 1/sqrt(HS)")
def _(dout, q, k, v, probs):
    return _attn(dout, q, k, v, probs, scale=1.0 / q.shape[-1])


@add("attention", "dv_no_transpose", "dv = probs @ dout: forgot to transpose probs")
def _(dout, q, k, v, probs):
    return _attn(dout, q, k, v, probs, dv_fn=lambda P, d: P @ d)


@add("attention", "dk_no_transpose", "dk = dscores @ q: forgot to transpose dscores")
def _(dout, q, k, v, probs):
    return _attn(dout, q, k, v, probs, dk_fn=lambda dS, q_: dS @ q_)


@add("attention", "no_softmax_backward", "dscores = dprobs * probs: skipped the softmax Jacobian's subtraction")
def _(dout, q, k, v, probs):
    return _attn(dout, q, k, v, probs, dscore_fn=lambda dP, P: dP * P)


@add("attention", "dotT_4d", "dv = probs.T @ dout with .T on a 4-D array (reverses all axes)")
def _(dout, q, k, v, probs):
    return _attn(dout, q, k, v, probs, dv_fn=lambda P, d: P.T @ d)


@add("attention", "softmax_sum_wrong_axis", "in the softmax backward, summed dprobs*probs over the query axis (-2)")
def _(dout, q, k, v, probs):
    return _attn(dout, q, k, v, probs,
                 dscore_fn=lambda dP, P: P * (dP - (dP * P).sum(-2, keepdims=True)))


@add("attention", "softmax_sum_unweighted", "softmax backward subtracted sum(dprobs) instead of sum(dprobs * probs)")
def _(dout, q, k, v, probs):
    return _attn(dout, q, k, v, probs,
                 dscore_fn=lambda dP, P: P * (dP - dP.sum(-1, keepdims=True)))


# ----------------------------------------------------------------------------- embedding_tied
def _emb(dlogits, ids, weight, out_path=True, emb_path=True, scatter="add_at", dbias="sum",
         out_fn=None):
    V, C = weight.shape
    h = weight[ids]  # (B, T, C)
    d2 = dlogits.reshape(-1, V)
    h2 = h.reshape(-1, C)
    dW = np.zeros_like(weight)
    if out_path:
        dW = dW + (d2.T @ h2 if out_fn is None else out_fn(dlogits, h, d2, h2))
    if emb_path:
        dh = (d2 @ weight)  # (N, C)
        flat = np.asarray(ids).reshape(-1)
        if scatter == "add_at":
            np.add.at(dW, flat, dh)
        elif scatter == "fancy_plus":
            dW[flat] += dh
        elif scatter == "assign":
            dW[flat] = dh
        elif scatter == "average":
            acc = np.zeros_like(weight)
            np.add.at(acc, flat, dh)
            cnt = np.bincount(flat, minlength=V).astype(float)
            dW = dW + acc / np.maximum(cnt, 1)[:, None]
    if dbias == "sum":
        db = d2.sum(0)
    elif dbias == "mean":
        db = d2.mean(0)
    else:
        db = dlogits.sum(0)
    return dW, db


@add("embedding_tied", "control", "correct", True)
def _(dlogits, ids, weight):
    return _emb(dlogits, ids, weight)


@add("embedding_tied", "no_embedding_path", "only the output-projection gradient; forgot weight is also the embedding table")
def _(dlogits, ids, weight):
    return _emb(dlogits, ids, weight, emb_path=False)


@add("embedding_tied", "no_output_path", "only the embedding (scatter) gradient; forgot the output projection use of weight")
def _(dlogits, ids, weight):
    return _emb(dlogits, ids, weight, out_path=False)


@add("embedding_tied", "fancy_index_plus", "dW[ids] += dh: fancy-index += drops repeated ids (should be np.add.at)")
def _(dlogits, ids, weight):
    return _emb(dlogits, ids, weight, scatter="fancy_plus")


@add("embedding_tied", "assign_overwrites", "dW[ids] = dh: assignment instead of accumulation, overwrites the output-path gradient")
def _(dlogits, ids, weight):
    return _emb(dlogits, ids, weight, scatter="assign")


@add("embedding_tied", "dbias_mean", "dbias = mean over positions instead of sum")
def _(dlogits, ids, weight):
    return _emb(dlogits, ids, weight, dbias="mean")


@add("embedding_tied", "dbias_axis0", "dbias = dlogits.sum(axis=0): summed over batch only, shape (T, V)")
def _(dlogits, ids, weight):
    return _emb(dlogits, ids, weight, dbias="axis0")


@add("embedding_tied", "dotT_3d", "output path dW = dlogits.T @ h with .T on the 3-D dlogits")
def _(dlogits, ids, weight):
    return _emb(dlogits, ids, weight, out_fn=lambda dl, h, d2, h2: dl.T @ h)


@add("embedding_tied", "output_path_transposed", "output path dW = h.T @ dlogits (C, V): transposed, added to (V, C)")
def _(dlogits, ids, weight):
    return _emb(dlogits, ids, weight, out_fn=lambda dl, h, d2, h2: h2.T @ d2)


@add("embedding_tied", "average_duplicates", "divided each embedding row's gradient by how many times the id occurs")
def _(dlogits, ids, weight):
    return _emb(dlogits, ids, weight, scatter="average")


# ----------------------------------------------------------------------------- kl_soft_target
def _kl(dloss, s, t, T, ps_T=True, qt_T=True):
    p = _softmax(s, T if ps_T else 1.0)
    q = _softmax(t, T if qt_T else 1.0)
    return p, q, s.shape[0]


@add("kl_soft_target", "control", "correct", True)
def _(dloss, s_logits, t_logits, T):
    p, q, P = _kl(dloss, s_logits, t_logits, T)
    return dloss * T * (p - q) / P


@add("kl_soft_target", "no_T_squared", "forgot the T**2 factor of the loss: dloss * (p - q) / (T P)")
def _(dloss, s_logits, t_logits, T):
    p, q, P = _kl(dloss, s_logits, t_logits, T)
    return dloss * (p - q) / (T * P)


@add("kl_soft_target", "no_chain_1_over_T", "kept T**2 but forgot the 1/T from differentiating s/T")
def _(dloss, s_logits, t_logits, T):
    p, q, P = _kl(dloss, s_logits, t_logits, T)
    return dloss * T * T * (p - q) / P


@add("kl_soft_target", "sign", "dloss * T * (q - p) / P: sign flipped")
def _(dloss, s_logits, t_logits, T):
    p, q, P = _kl(dloss, s_logits, t_logits, T)
    return dloss * T * (q - p) / P


@add("kl_soft_target", "no_mean", "forgot the 1/P of the mean over rows")
def _(dloss, s_logits, t_logits, T):
    p, q, P = _kl(dloss, s_logits, t_logits, T)
    return dloss * T * (p - q)


@add("kl_soft_target", "no_upstream", "forgot to multiply by dloss")
def _(dloss, s_logits, t_logits, T):
    p, q, P = _kl(dloss, s_logits, t_logits, T)
    return T * (p - q) / P


@add("kl_soft_target", "student_softmax_no_T", "student p = softmax(s) without the temperature")
def _(dloss, s_logits, t_logits, T):
    p, q, P = _kl(dloss, s_logits, t_logits, T, ps_T=False)
    return dloss * T * (p - q) / P


@add("kl_soft_target", "mean_over_all_elements", "divided by P*V (mean over every element) instead of P")
def _(dloss, s_logits, t_logits, T):
    p, q, P = _kl(dloss, s_logits, t_logits, T)
    return dloss * T * (p - q) / (P * s_logits.shape[-1])


@add("kl_soft_target", "reverse_kl", "differentiated KL(p || q) (student first) instead of KL(q || p)")
def _(dloss, s_logits, t_logits, T):
    p, q, P = _kl(dloss, s_logits, t_logits, T)
    r = np.log(p) - np.log(q)
    g = p * (r - (p * r).sum(-1, keepdims=True)) / T
    return dloss * T * T * g / P


@add("kl_soft_target", "teacher_softmax_no_T", "teacher q = softmax(t) without the temperature")
def _(dloss, s_logits, t_logits, T):
    p, q, P = _kl(dloss, s_logits, t_logits, T, qt_T=False)
    return dloss * T * (p - q) / P


# ----------------------------------------------------------------------------- cross_entropy
def _ce(dloss, logits, labels, denom="kept", zero_ignored=True, axis=-1, ignore=lambda y: y == -100,
        sign=1.0, kind="normal"):
    V = logits.shape[-1]
    x = logits.reshape(-1, V) if axis == -1 else None
    y = np.asarray(labels).reshape(-1)
    if axis == -1:
        p = _softmax(x)
    else:
        p = _softmax(logits, axis=axis).reshape(-1, V)
    drop = ignore(y)
    keep = ~drop
    oh = np.zeros_like(p)
    oh[np.nonzero(keep)[0], y[keep]] = 1.0
    if kind == "inv_p":
        g = -oh / p
    elif kind == "logp":
        g = (np.log(p) - oh) * sign
    else:
        g = (p - oh) * sign
    if zero_ignored:
        g[drop] = 0.0
    n = {"kept": keep.sum(), "all": y.size, "one": 1}[denom]
    return (dloss * g / n).reshape(logits.shape)


@add("cross_entropy", "control", "correct", True)
def _(dloss, logits, labels):
    return _ce(dloss, logits, labels)


@add("cross_entropy", "denominator_all_rows", "divided by all B*T rows instead of the number of scored (label != -100) rows")
def _(dloss, logits, labels):
    return _ce(dloss, logits, labels, denom="all")


@add("cross_entropy", "ignored_rows_not_zeroed", "left softmax in the -100 rows: forgot to zero their gradient")
def _(dloss, logits, labels):
    return _ce(dloss, logits, labels, zero_ignored=False)


@add("cross_entropy", "no_upstream", "forgot to multiply by dloss")
def _(dloss, logits, labels):
    return _ce(1.0, logits, labels)


@add("cross_entropy", "sign", "dlogits = (onehot - p) / n: sign flipped")
def _(dloss, logits, labels):
    return _ce(dloss, logits, labels, sign=-1.0)


@add("cross_entropy", "no_mean", "forgot to divide by the number of scored rows (sum, not mean)")
def _(dloss, logits, labels):
    return _ce(dloss, logits, labels, denom="one")


@add("cross_entropy", "logprobs_as_probs", "used the log-softmax values as the probabilities: (log p - onehot) / n")
def _(dloss, logits, labels):
    return _ce(dloss, logits, labels, kind="logp")


@add("cross_entropy", "softmax_axis1", "softmax over axis=1 (the sequence axis of (B, T, V)) instead of the last axis")
def _(dloss, logits, labels):
    return _ce(dloss, logits, labels, axis=1)
