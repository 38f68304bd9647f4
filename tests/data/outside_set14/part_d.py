"""Learner answers for cosine, triple_loss, hidden_mse (one control + nine slips each)."""
import numpy as np

from ._common import IGNORE, entry, softmax

# ---------------------------------------------------------------- cosine


def _cos_parts(s, t):
    dot = (s * t).sum(-1, keepdims=True)
    ns = np.sqrt((s * s).sum(-1, keepdims=True))
    nt = np.sqrt((t * t).sum(-1, keepdims=True))
    return dot / (ns * nt), ns, nt


def cos_control(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    cos, ns, nt = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    return -dloss / m.sum() * dcos * m[..., None]


def cos_missing_norm_term(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    cos, ns, nt = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt)
    return -dloss / m.sum() * dcos * m[..., None]


def cos_forgot_mask(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    cos, ns, nt = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    return -dloss / m.sum() * dcos


def cos_divide_all_positions(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    cos, ns, nt = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    return -dloss / m.size * dcos * m[..., None]


def cos_sign(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    cos, ns, nt = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    return dloss / m.sum() * dcos * m[..., None]


def cos_second_term_wrong_norm(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    cos, ns, nt = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / (ns * nt)
    return -dloss / m.sum() * dcos * m[..., None]


def cos_norm_not_squared(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    cos, ns, nt = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns
    return -dloss / m.sum() * dcos * m[..., None]


def cos_no_dloss(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    cos, ns, nt = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    return -1.0 / m.sum() * dcos * m[..., None]


def cos_grad_wrt_t(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    cos, ns, nt = _cos_parts(s_h, t_h)
    dcos = s_h / (ns * nt) - cos * t_h / nt ** 2
    return -dloss / m.sum() * dcos * m[..., None]


def cos_per_sequence_mean(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=bool)
    cos, ns, nt = _cos_parts(s_h, t_h)
    dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    n_b = np.maximum(m.sum(axis=1), 1)[:, None, None]
    return -dloss / (n_b * m.shape[0]) * dcos * m[..., None]


# ---------------------------------------------------------------- triple_loss


def _ce_grad(logits, labels, by_rows=False, zero_ignored=True):
    keep = np.asarray(labels) != IGNORE
    g = softmax(logits)
    rows = np.nonzero(keep)[0]
    g[rows, labels[rows]] -= 1.0
    if zero_ignored:
        g[~keep] = 0.0
    return g / (len(keep) if by_rows else keep.sum())


def _cosine_grad(h, t_h, missing_norm=False):
    cos, ns, nt = _cos_parts(h, t_h)
    dcos = t_h / (ns * nt) - (0.0 if missing_norm else cos * h / ns ** 2)
    return -dcos / h.shape[0]


def tri_control(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_mlm, a_cos = alphas
    logits = h @ weight.T
    P = h.shape[0]
    g_ce = tau / P * (softmax(logits, tau) - softmax(t_logits, tau))
    dlog = a_ce * g_ce + a_mlm * _ce_grad(logits, labels)
    return dloss * (dlog @ weight + a_cos * _cosine_grad(h, t_h))


def tri_no_cos_term(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_mlm, a_cos = alphas
    logits = h @ weight.T
    P = h.shape[0]
    g_ce = tau / P * (softmax(logits, tau) - softmax(t_logits, tau))
    dlog = a_ce * g_ce + a_mlm * _ce_grad(logits, labels)
    return dloss * (dlog @ weight)


def tri_alphas_order(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_cos, a_mlm = alphas
    logits = h @ weight.T
    P = h.shape[0]
    g_ce = tau / P * (softmax(logits, tau) - softmax(t_logits, tau))
    dlog = a_ce * g_ce + a_mlm * _ce_grad(logits, labels)
    return dloss * (dlog @ weight + a_cos * _cosine_grad(h, t_h))


def tri_kl_no_tau2(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_mlm, a_cos = alphas
    logits = h @ weight.T
    P = h.shape[0]
    g_ce = 1.0 / (tau * P) * (softmax(logits, tau) - softmax(t_logits, tau))
    dlog = a_ce * g_ce + a_mlm * _ce_grad(logits, labels)
    return dloss * (dlog @ weight + a_cos * _cosine_grad(h, t_h))


def tri_mlm_divide_P(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_mlm, a_cos = alphas
    logits = h @ weight.T
    P = h.shape[0]
    g_ce = tau / P * (softmax(logits, tau) - softmax(t_logits, tau))
    dlog = a_ce * g_ce + a_mlm * _ce_grad(logits, labels, by_rows=True)
    return dloss * (dlog @ weight + a_cos * _cosine_grad(h, t_h))


def tri_mlm_ignored_not_zeroed(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_mlm, a_cos = alphas
    logits = h @ weight.T
    P = h.shape[0]
    g_ce = tau / P * (softmax(logits, tau) - softmax(t_logits, tau))
    dlog = a_ce * g_ce + a_mlm * _ce_grad(logits, labels, zero_ignored=False)
    return dloss * (dlog @ weight + a_cos * _cosine_grad(h, t_h))


def tri_no_dloss(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_mlm, a_cos = alphas
    logits = h @ weight.T
    P = h.shape[0]
    g_ce = tau / P * (softmax(logits, tau) - softmax(t_logits, tau))
    dlog = a_ce * g_ce + a_mlm * _ce_grad(logits, labels)
    return dlog @ weight + a_cos * _cosine_grad(h, t_h)


def tri_cos_no_alpha(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_mlm, a_cos = alphas
    logits = h @ weight.T
    P = h.shape[0]
    g_ce = tau / P * (softmax(logits, tau) - softmax(t_logits, tau))
    dlog = a_ce * g_ce + a_mlm * _ce_grad(logits, labels)
    return dloss * (dlog @ weight + _cosine_grad(h, t_h))


def tri_kl_student_no_tau(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_mlm, a_cos = alphas
    logits = h @ weight.T
    P = h.shape[0]
    g_ce = tau / P * (softmax(logits) - softmax(t_logits, tau))
    dlog = a_ce * g_ce + a_mlm * _ce_grad(logits, labels)
    return dloss * (dlog @ weight + a_cos * _cosine_grad(h, t_h))


def tri_cos_missing_norm_term(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    a_ce, a_mlm, a_cos = alphas
    logits = h @ weight.T
    P = h.shape[0]
    g_ce = tau / P * (softmax(logits, tau) - softmax(t_logits, tau))
    dlog = a_ce * g_ce + a_mlm * _ce_grad(logits, labels)
    return dloss * (dlog @ weight + a_cos * _cosine_grad(h, t_h, missing_norm=True))


# ---------------------------------------------------------------- hidden_mse


def mse_control(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = 2.0 * e / e.size * dloss
    CT, CS = weight.shape
    return de @ weight, de.reshape(-1, CT).T @ s_h.reshape(-1, CS)


def mse_no_2(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = e / e.size * dloss
    CT, CS = weight.shape
    return de @ weight, de.reshape(-1, CT).T @ s_h.reshape(-1, CS)


def mse_mean_over_positions(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    B, T, CT = e.shape
    de = 2.0 * e / (B * T) * dloss
    CT, CS = weight.shape
    return de @ weight, de.reshape(-1, CT).T @ s_h.reshape(-1, CS)


def mse_dW_transposed(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = 2.0 * e / e.size * dloss
    CT, CS = weight.shape
    return de @ weight, s_h.reshape(-1, CS).T @ de.reshape(-1, CT)


def mse_ds_weight_T(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = 2.0 * e / e.size * dloss
    CT, CS = weight.shape
    return de @ weight.T, de.reshape(-1, CT).T @ s_h.reshape(-1, CS)


def mse_sign(dloss, s_h, t_h, weight):
    e = t_h - s_h @ weight.T
    de = 2.0 * e / e.size * dloss
    CT, CS = weight.shape
    return de @ weight, de.reshape(-1, CT).T @ s_h.reshape(-1, CS)


def mse_no_dloss(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = 2.0 * e / e.size
    CT, CS = weight.shape
    return de @ weight, de.reshape(-1, CT).T @ s_h.reshape(-1, CS)


def mse_dW_first_batch(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = 2.0 * e / e.size * dloss
    return de @ weight, de[0].T @ s_h[0]


def mse_return_order(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = 2.0 * e / e.size * dloss
    CT, CS = weight.shape
    return de.reshape(-1, CT).T @ s_h.reshape(-1, CS), de @ weight


def mse_dW_uses_e(dloss, s_h, t_h, weight):
    e = s_h @ weight.T - t_h
    de = 2.0 * e / e.size * dloss
    CT, CS = weight.shape
    return de @ weight, e.reshape(-1, CT).T @ s_h.reshape(-1, CS)


ENTRIES = [
    entry("cosine", "control", "correct", cos_control, True),
    entry("cosine", "missing_norm_term", "dcos = t/(|s||t|): forgot that |s| depends on s", cos_missing_norm_term),
    entry("cosine", "forgot_mask", "forgot to zero the padded positions", cos_forgot_mask),
    entry("cosine", "divide_all_positions", "divided by B*T, padding included", cos_divide_all_positions),
    entry("cosine", "sign", "forgot the minus of 1 - cos", cos_sign),
    entry("cosine", "second_term_wrong_norm", "second term cos*s/(|s||t|) instead of cos*s/|s|^2", cos_second_term_wrong_norm),
    entry("cosine", "norm_not_squared", "second term cos*s/|s| (norm not squared)", cos_norm_not_squared),
    entry("cosine", "no_dloss", "forgot to multiply by dloss", cos_no_dloss),
    entry("cosine", "grad_wrt_t", "returned the gradient with respect to t_h", cos_grad_wrt_t),
    entry("cosine", "per_sequence_mean", "mean per sequence, then over the batch", cos_per_sequence_mean),
    entry("triple_loss", "control", "correct", tri_control, True),
    entry("triple_loss", "no_cos_term", "only the gradient through the logits: forgot Lcos's on h", tri_no_cos_term),
    entry("triple_loss", "alphas_order", "unpacked alphas as (a_ce, a_cos, a_mlm)", tri_alphas_order),
    entry("triple_loss", "kl_no_tau2", "KL part without the tau**2 factor", tri_kl_no_tau2),
    entry("triple_loss", "mlm_divide_P", "MLM part divided by P, not the scored rows", tri_mlm_divide_P),
    entry("triple_loss", "mlm_ignored_not_zeroed", "MLM part: -100 rows not zeroed", tri_mlm_ignored_not_zeroed),
    entry("triple_loss", "no_dloss", "forgot to multiply by dloss", tri_no_dloss),
    entry("triple_loss", "cos_no_alpha", "cosine gradient not multiplied by a_cos", tri_cos_no_alpha),
    entry("triple_loss", "kl_student_no_tau", "KL part: student softmax without the temperature", tri_kl_student_no_tau),
    entry("triple_loss", "cos_missing_norm_term", "cosine part missing the -cos*s/|s|^2 term", tri_cos_missing_norm_term),
    entry("hidden_mse", "control", "correct", mse_control, True),
    entry("hidden_mse", "no_2", "forgot the 2 from the square", mse_no_2),
    entry("hidden_mse", "mean_over_positions", "mean over the B*T positions instead of every element", mse_mean_over_positions),
    entry("hidden_mse", "dW_transposed", "dweight = s_h^T de, shape (CS, CT)", mse_dW_transposed),
    entry("hidden_mse", "ds_weight_T", "ds_h = de @ weight.T (copied the forward's transpose)", mse_ds_weight_T),
    entry("hidden_mse", "sign", "e = t_h - s_h W^T: sign of the residual flipped", mse_sign),
    entry("hidden_mse", "no_dloss", "forgot to multiply by dloss", mse_no_dloss),
    entry("hidden_mse", "dW_first_batch", "dweight = de[0].T @ s_h[0]: only batch row 0", mse_dW_first_batch),
    entry("hidden_mse", "return_order", "returned (dweight, ds_h)", mse_return_order),
    entry("hidden_mse", "dW_uses_e", "dweight from e instead of de (2/n and dloss lost)", mse_dW_uses_e),
]
