"""Learner answers for embedding_tied, cross_entropy, kl_soft_target (control + nine slips each)."""
import numpy as np

from ._common import IGNORE, entry, softmax

# ---------------------------------------------------------------- embedding_tied


def emb_control(dlogits, ids, weight):
    V, C = weight.shape
    dl = dlogits.reshape(-1, V)
    flat = np.asarray(ids).reshape(-1)
    h = weight[flat]
    dW = dl.T @ h
    np.add.at(dW, flat, dl @ weight)
    return dW, dl.sum(axis=0)


def emb_only_decoder(dlogits, ids, weight):
    V, C = weight.shape
    dl = dlogits.reshape(-1, V)
    flat = np.asarray(ids).reshape(-1)
    h = weight[flat]
    dW = dl.T @ h
    return dW, dl.sum(axis=0)


def emb_only_lookup(dlogits, ids, weight):
    V, C = weight.shape
    dl = dlogits.reshape(-1, V)
    flat = np.asarray(ids).reshape(-1)
    dW = np.zeros_like(weight)
    np.add.at(dW, flat, dl @ weight)
    return dW, dl.sum(axis=0)


def emb_fancy_plus_equals(dlogits, ids, weight):
    V, C = weight.shape
    dl = dlogits.reshape(-1, V)
    flat = np.asarray(ids).reshape(-1)
    h = weight[flat]
    dW = dl.T @ h
    dW[flat] += dl @ weight
    return dW, dl.sum(axis=0)


def emb_dbias_axis0(dlogits, ids, weight):
    V, C = weight.shape
    dl = dlogits.reshape(-1, V)
    flat = np.asarray(ids).reshape(-1)
    h = weight[flat]
    dW = dl.T @ h
    np.add.at(dW, flat, dl @ weight)
    return dW, dlogits.sum(axis=0)


def emb_dbias_mean(dlogits, ids, weight):
    V, C = weight.shape
    dl = dlogits.reshape(-1, V)
    flat = np.asarray(ids).reshape(-1)
    h = weight[flat]
    dW = dl.T @ h
    np.add.at(dW, flat, dl @ weight)
    return dW, dl.mean(axis=0)


def emb_return_order(dlogits, ids, weight):
    V, C = weight.shape
    dl = dlogits.reshape(-1, V)
    flat = np.asarray(ids).reshape(-1)
    h = weight[flat]
    dW = dl.T @ h
    np.add.at(dW, flat, dl @ weight)
    return dl.sum(axis=0), dW


def emb_doubled_decoder(dlogits, ids, weight):
    V, C = weight.shape
    dl = dlogits.reshape(-1, V)
    flat = np.asarray(ids).reshape(-1)
    h = weight[flat]
    dW = 2.0 * (dl.T @ h)  # "the weight is used twice"
    return dW, dl.sum(axis=0)


def emb_assign_overwrites(dlogits, ids, weight):
    V, C = weight.shape
    dl = dlogits.reshape(-1, V)
    flat = np.asarray(ids).reshape(-1)
    h = weight[flat]
    dW = dl.T @ h
    dh = dl @ weight
    for n, i in enumerate(flat):
        dW[i] = dh[n]
    return dW, dl.sum(axis=0)


def emb_weight_as_buffer(dlogits, ids, weight):
    V, C = weight.shape
    dl = dlogits.reshape(-1, V)
    flat = np.asarray(ids).reshape(-1)
    h = weight[flat]
    dh = dl @ weight
    dW = weight
    dW[...] = dl.T @ h
    np.add.at(dW, flat, dh)
    return dW, dl.sum(axis=0)


# ---------------------------------------------------------------- cross_entropy


def _ce_parts(logits, labels):
    V = logits.shape[-1]
    z = logits.reshape(-1, V)
    y = np.asarray(labels).reshape(-1)
    keep = y != IGNORE
    return V, z, y, keep


def ce_control(dloss, logits, labels):
    V, z, y, keep = _ce_parts(logits, labels)
    g = softmax(z)
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] -= 1.0
    g[~keep] = 0.0
    return (g * (dloss / keep.sum())).reshape(logits.shape)


def ce_divide_all_rows(dloss, logits, labels):
    V, z, y, keep = _ce_parts(logits, labels)
    g = softmax(z)
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] -= 1.0
    g[~keep] = 0.0
    return (g * (dloss / len(y))).reshape(logits.shape)


def ce_ignored_not_zeroed(dloss, logits, labels):
    V, z, y, keep = _ce_parts(logits, labels)
    g = softmax(z)
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] -= 1.0
    return (g * (dloss / keep.sum())).reshape(logits.shape)


def ce_no_dloss(dloss, logits, labels):
    V, z, y, keep = _ce_parts(logits, labels)
    g = softmax(z)
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] -= 1.0
    g[~keep] = 0.0
    return (g / keep.sum()).reshape(logits.shape)


def ce_sign(dloss, logits, labels):
    V, z, y, keep = _ce_parts(logits, labels)
    g = -softmax(z)
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] += 1.0
    g[~keep] = 0.0
    return (g * (dloss / keep.sum())).reshape(logits.shape)


def ce_divide_by_B(dloss, logits, labels):
    V, z, y, keep = _ce_parts(logits, labels)
    g = softmax(z)
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] -= 1.0
    g[~keep] = 0.0
    return (g * (dloss / logits.shape[0])).reshape(logits.shape)


def ce_grad_wrt_p(dloss, logits, labels):
    V, z, y, keep = _ce_parts(logits, labels)
    p = softmax(z)
    g = np.zeros_like(p)
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] = -1.0 / p[rows, y[rows]]
    return (g * (dloss / keep.sum())).reshape(logits.shape)


def ce_softmax_axis0(dloss, logits, labels):
    V, z, y, keep = _ce_parts(logits, labels)
    g = softmax(z, axis=0)
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] -= 1.0
    g[~keep] = 0.0
    return (g * (dloss / keep.sum())).reshape(logits.shape)


def ce_per_sequence_mean(dloss, logits, labels):
    V = logits.shape[-1]
    lab = np.asarray(labels)
    keep = lab != IGNORE  # (B, T)
    g = softmax(logits)
    b, t = np.nonzero(keep)
    g[b, t, lab[b, t]] -= 1.0
    g[~keep] = 0.0
    n_b = np.maximum(keep.sum(axis=1), 1)[:, None, None]  # mean per sentence, then over batch
    return g * dloss / n_b / logits.shape[0]


def ce_flat_shape(dloss, logits, labels):
    V, z, y, keep = _ce_parts(logits, labels)
    g = softmax(z)
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] -= 1.0
    g[~keep] = 0.0
    return g * (dloss / keep.sum())


# ---------------------------------------------------------------- kl_soft_target


def kl_control(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss * tau / P * (softmax(s_logits, tau) - softmax(t_logits, tau))


def kl_no_tau2(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss / (tau * P) * (softmax(s_logits, tau) - softmax(t_logits, tau))


def kl_no_chain_tau(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss * tau ** 2 / P * (softmax(s_logits, tau) - softmax(t_logits, tau))


def kl_no_mean(dloss, s_logits, t_logits, tau):
    return dloss * tau * (softmax(s_logits, tau) - softmax(t_logits, tau))


def kl_sign(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss * tau / P * (softmax(t_logits, tau) - softmax(s_logits, tau))


def kl_p_without_tau(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss * tau / P * (softmax(s_logits) - softmax(t_logits, tau))


def kl_divide_by_PV(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return dloss * tau / s_logits.size * (softmax(s_logits, tau) - softmax(t_logits, tau))


def kl_reverse_direction(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    p, q = softmax(s_logits, tau), softmax(t_logits, tau)
    d = np.log(p) - np.log(q)  # differentiated KL(p || q) instead of KL(q || p)
    g = p * (d - (p * d).sum(-1, keepdims=True)) / tau
    return dloss * tau * tau / P * g


def kl_no_dloss(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[0]
    return tau / P * (softmax(s_logits, tau) - softmax(t_logits, tau))


def kl_divide_by_V(dloss, s_logits, t_logits, tau):
    P = s_logits.shape[-1]
    return dloss * tau / P * (softmax(s_logits, tau) - softmax(t_logits, tau))


ENTRIES = [
    entry("embedding_tied", "control", "correct", emb_control, True),
    entry("embedding_tied", "only_decoder", "dweight only from the decoder: forgot the lookup's scatter-add", emb_only_decoder),
    entry("embedding_tied", "only_lookup", "dweight only from the lookup: forgot the decoder's dlogits^T h", emb_only_lookup),
    entry("embedding_tied", "fancy_plus_equals", "dW[ids] += dh: repeated ids counted once", emb_fancy_plus_equals),
    entry("embedding_tied", "dbias_axis0", "dbias = dlogits.sum(axis=0): summed batch only, shape (T, V)", emb_dbias_axis0),
    entry("embedding_tied", "dbias_mean", "dbias averaged over positions instead of summed", emb_dbias_mean),
    entry("embedding_tied", "return_order", "returned (dbias, dweight)", emb_return_order),
    entry("embedding_tied", "doubled_decoder", "'used twice' read as 2 * the decoder gradient", emb_doubled_decoder),
    entry("embedding_tied", "assign_overwrites", "dW[id] = dh[n] in a loop: overwrote instead of adding", emb_assign_overwrites),
    entry("embedding_tied", "weight_as_buffer", "dW = weight used as the buffer: writes into the weight", emb_weight_as_buffer),
    entry("cross_entropy", "control", "correct", ce_control, True),
    entry("cross_entropy", "divide_all_rows", "divided by all B*T rows, not the scored ones", ce_divide_all_rows),
    entry("cross_entropy", "ignored_not_zeroed", "ignored (-100) rows keep softmax instead of 0", ce_ignored_not_zeroed),
    entry("cross_entropy", "no_dloss", "forgot to multiply by dloss", ce_no_dloss),
    entry("cross_entropy", "sign", "onehot - softmax: sign flipped", ce_sign),
    entry("cross_entropy", "divide_by_B", "divided by the batch size B", ce_divide_by_B),
    entry("cross_entropy", "grad_wrt_p", "-1/p at the label: the gradient wrt p, not the logits", ce_grad_wrt_p),
    entry("cross_entropy", "softmax_axis0", "softmax of the flat logits taken over axis 0", ce_softmax_axis0),
    entry("cross_entropy", "per_sequence_mean", "mean per sequence, then over the batch", ce_per_sequence_mean),
    entry("cross_entropy", "flat_shape", "returned the flat (B*T, V) gradient, not reshaped", ce_flat_shape),
    entry("kl_soft_target", "control", "correct", kl_control, True),
    entry("kl_soft_target", "no_tau2", "forgot the loss's tau**2 factor: (p-q)/(tau P)", kl_no_tau2),
    entry("kl_soft_target", "no_chain_tau", "kept tau**2 but forgot the 1/tau chain factor", kl_no_chain_tau),
    entry("kl_soft_target", "no_mean", "forgot the 1/P of the mean over rows", kl_no_mean),
    entry("kl_soft_target", "sign", "q - p: sign flipped", kl_sign),
    entry("kl_soft_target", "p_without_tau", "student p = softmax(s) without the temperature", kl_p_without_tau),
    entry("kl_soft_target", "divide_by_PV", "divided by P*V (mean over every element)", kl_divide_by_PV),
    entry("kl_soft_target", "reverse_direction", "differentiated KL(p||q) instead of KL(q||p)", kl_reverse_direction),
    entry("kl_soft_target", "no_dloss", "forgot to multiply by dloss", kl_no_dloss),
    entry("kl_soft_target", "divide_by_V", "P = s_logits.shape[-1]: divided by V, not the rows", kl_divide_by_V),
]
