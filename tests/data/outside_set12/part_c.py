"""cosine, triple_loss, hidden_mse: a control and 9 slips each."""
from __future__ import annotations

import numpy as np

from ._common import build, softmax

IGNORE = -100


def cosine_impl(dloss, s_h, t_h, mask, slip=None):
    m = np.asarray(mask, dtype=np.float64)
    n = m.sum()
    ax = 1 if slip == "norms_over_axis1" else -1
    dot = (s_h * t_h).sum(axis=-1, keepdims=True)
    ns = np.sqrt((s_h * s_h).sum(axis=ax, keepdims=True))
    nt = np.sqrt((t_h * t_h).sum(axis=ax, keepdims=True))
    cos = dot / (ns * nt)
    if slip == "wrt_teacher":
        dcos = s_h / (ns * nt) - cos * t_h / nt ** 2
    elif slip == "no_norm_term":
        dcos = t_h / (ns * nt)
    elif slip == "norm_term_not_squared":
        dcos = t_h / (ns * nt) - cos * s_h / ns
    elif slip == "quotient_rule_sign":
        dcos = t_h / (ns * nt) + cos * s_h / ns ** 2
    else:
        dcos = t_h / (ns * nt) - cos * s_h / ns ** 2
    g = dcos if slip == "forgot_one_minus_sign" else -dcos
    if slip != "no_mask":
        g = g * m[..., None]
    if slip == "divide_by_all_positions":
        n = m.size
    g = g / n
    return g if slip == "no_dloss" else g * dloss


COSINE = build("cosine", cosine_impl, "dloss, s_h, t_h, mask", [
    ("no_norm_term", "dcos = t/(|s||t|): forgot that |s| depends on s"),
    ("no_mask", "forgot to zero the padding positions"),
    ("divide_by_all_positions", "divided by B*T instead of the number of real positions"),
    ("forgot_one_minus_sign", "gradient of cos, not of 1 - cos: sign slip"),
    ("norm_term_not_squared", "second term cos * s / |s| instead of cos * s / |s|^2"),
    ("no_dloss", "forgot to multiply by dloss"),
    ("wrt_teacher", "differentiated with respect to t_h: student and teacher mixed up"),
    ("norms_over_axis1", "norms summed over axis=1 (the sequence) instead of the features"),
    ("quotient_rule_sign", "quotient rule sign slip: t/(|s||t|) + cos * s/|s|^2"),
])


def triple_loss_impl(dloss, h, weight, t_logits, t_h, labels, tau, alphas, slip=None):
    a_ce, a_mlm, a_cos = alphas
    if slip == "alphas_swapped":
        a_ce, a_mlm = a_mlm, a_ce
    P = h.shape[0]
    logits = h @ weight.T
    y = np.asarray(labels).reshape(-1)
    keep = y != IGNORE
    n_kept = keep.sum()
    # soft-target part (KL with tau**2)
    d_ce = softmax(logits / tau) - softmax(t_logits / tau)
    if slip == "ce_no_tau_squared":
        f = 1.0 / (tau * P)
    elif slip == "ce_no_inverse_tau":
        f = tau * tau / P
    elif slip == "ce_divided_by_n_scored":
        f = tau / n_kept
    else:
        f = tau / P
    d_ce = f * d_ce
    # MLM part
    d_mlm = softmax(logits)
    rows = np.nonzero(keep)[0]
    d_mlm[rows, y[rows]] -= 1.0
    if slip != "mlm_ignored_rows_kept":
        d_mlm[~keep] = 0.0
    d_mlm = d_mlm / (P if slip == "mlm_divided_by_P" else n_kept)
    dlogits = a_ce * d_ce + a_mlm * d_mlm
    dh = dloss * (dlogits @ weight)
    # cosine part, every position real
    dot = (h * t_h).sum(axis=-1, keepdims=True)
    ns = np.sqrt((h * h).sum(axis=-1, keepdims=True))
    nt = np.sqrt((t_h * t_h).sum(axis=-1, keepdims=True))
    cos = dot / (ns * nt)
    if slip == "cos_no_norm_term":
        dcos = t_h / (ns * nt)
    else:
        dcos = t_h / (ns * nt) - cos * h / ns ** 2
    g_cos = a_cos * (-dcos) / P
    if slip == "no_cosine_term":
        return dh
    if slip == "cos_no_dloss":
        return dh + g_cos
    return dh + dloss * g_cos


TRIPLE_LOSS = build("triple_loss", triple_loss_impl,
                    "dloss, h, weight, t_logits, t_h, labels, tau, alphas", [
    ("no_cosine_term", "forgot that Lcos also depends on h: only the logits' gradient"),
    ("ce_no_tau_squared", "soft-target part without the tau**2 factor"),
    ("ce_no_inverse_tau", "soft-target part without the chain-rule 1/tau"),
    ("mlm_ignored_rows_kept", "MLM part: ignored (-100) rows keep their softmax"),
    ("alphas_swapped", "a_ce applied to the MLM part and a_mlm to the soft-target part"),
    ("ce_divided_by_n_scored", "soft-target part divided by the scored count, not P"),
    ("mlm_divided_by_P", "MLM part divided by P, not by the number of scored labels"),
    ("cos_no_norm_term", "cosine part without the |h| norm term"),
    ("cos_no_dloss", "multiplied dloss into the logits' gradient but not the cosine part"),
])


def hidden_mse_impl(dloss, s_h, t_h, weight, slip=None):
    CT, CS = weight.shape
    e = s_h @ weight.T - t_h
    if slip == "residual_sign":
        e = t_h - s_h @ weight.T
    B, T = s_h.shape[:2]
    if slip == "mean_over_positions":
        n = B * T
    elif slip == "no_mean":
        n = 1
    elif slip == "n_uses_student_width":
        n = B * T * CS
    else:
        n = e.size
    de = (e if slip == "forgot_the_2" else 2.0 * e) / n
    if slip != "no_dloss":
        de = de * dloss
    ds = de @ weight
    de2, s2 = de.reshape(-1, CT), s_h.reshape(-1, CS)
    if slip == "dw_transposed":
        dW = s2.T @ de2
    elif slip == "dot_T_on_3d":
        dW = de.T @ s_h
    else:
        dW = de2.T @ s2
    if slip == "dw_extra_mean":
        dW = dW / (B * T)
    return ds, dW


HIDDEN_MSE = build("hidden_mse", hidden_mse_impl, "dloss, s_h, t_h, weight", [
    ("forgot_the_2", "d(e^2) = e: forgot the 2 from the square"),
    ("mean_over_positions", "divided by B*T (positions) instead of B*T*CT (elements)"),
    ("no_mean", "forgot the 1/n of the mean"),
    ("dw_transposed", "dweight = s_h^T @ de, shape (CS, CT): transposed"),
    ("residual_sign", "residual written t_h - s_h W^T: sign slip"),
    ("no_dloss", "forgot to multiply by dloss"),
    ("dw_extra_mean", "divided dweight by B*T again (averaged the weight grad over positions)"),
    ("dot_T_on_3d", "dweight = de.T @ s_h: .T on a 3-D array reverses every axis"),
    ("n_uses_student_width", "divided by B*T*CS (student width) instead of B*T*CT"),
])

ENTRIES = COSINE + TRIPLE_LOSS + HIDDEN_MSE
