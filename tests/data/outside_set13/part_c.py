"""cosine, triple_loss, hidden_mse: one control and nine slips each."""
from __future__ import annotations

import numpy as np

from .common import entry, softmax

# ---------------------------------------------------------------- cosine
E = "cosine"


def _cos_grad(s, t, second="ss", sign=-1.0):
    ns = np.sqrt((s * s).sum(-1, keepdims=True))
    nt = np.sqrt((t * t).sum(-1, keepdims=True))
    cos = (s * t).sum(-1, keepdims=True) / (ns * nt)
    if second == "ss":
        dcos = t / (ns * nt) - cos * s / ns ** 2
    elif second == "none":
        dcos = t / (ns * nt)
    elif second == "ns":
        dcos = t / (ns * nt) - cos * s / ns
    else:  # "nsnt"
        dcos = t / (ns * nt) - cos * s / (ns * nt)
    return sign * dcos


def _cos(dloss, s_h, t_h, mask, n=None, second="ss", sign=-1.0, use_mask=True):
    m = np.asarray(mask, dtype=np.float64)
    g = _cos_grad(s_h, t_h, second, sign)
    if use_mask:
        g = g * m[..., None]
    n = m.sum() if n is None else n
    return dloss * g / n


@entry(E, "control")
def cosine_control(dloss, s_h, t_h, mask):
    return _cos(dloss, s_h, t_h, mask)


@entry(E, "no_norm_term", "dcos/ds = t / (|s||t|): forgot that |s| depends on s")
def cosine_m1(dloss, s_h, t_h, mask):
    return _cos(dloss, s_h, t_h, mask, second="none")


@entry(E, "no_mask", "forgot to zero the gradient at padded positions")
def cosine_m2(dloss, s_h, t_h, mask):
    return _cos(dloss, s_h, t_h, mask, use_mask=False)


@entry(E, "divide_by_BT", "divided by B*T instead of the number of real positions")
def cosine_m3(dloss, s_h, t_h, mask):
    return _cos(dloss, s_h, t_h, mask, n=float(np.asarray(mask).size))


@entry(E, "sign", "gradient of cos, not of 1 - cos: sign flipped")
def cosine_m4(dloss, s_h, t_h, mask):
    return _cos(dloss, s_h, t_h, mask, sign=1.0)


@entry(E, "cos_s_over_ns", "second term cos * s / |s| instead of cos * s / |s|**2")
def cosine_m5(dloss, s_h, t_h, mask):
    return _cos(dloss, s_h, t_h, mask, second="ns")


@entry(E, "no_dloss", "forgot to multiply by the upstream dloss")
def cosine_m6(dloss, s_h, t_h, mask):
    return _cos(dloss, s_h, t_h, mask) / dloss


@entry(E, "per_sequence_mean", "divided each row by its own count mask.sum(1) (mean per sequence)")
def cosine_m7(dloss, s_h, t_h, mask):
    m = np.asarray(mask, dtype=np.float64)
    g = _cos_grad(s_h, t_h) * m[..., None]
    return dloss * g / np.maximum(m.sum(1), 1.0)[:, None, None]


@entry(E, "norms_no_keepdims", "norms computed with .sum(-1) without keepdims, broadcast on (B,T,C)")
def cosine_m8(dloss, s_h, t_h, mask):
    ns = np.sqrt((s_h * s_h).sum(-1))
    nt = np.sqrt((t_h * t_h).sum(-1))
    cos = (s_h * t_h).sum(-1) / (ns * nt)
    m = np.asarray(mask, dtype=np.float64)
    g = -(t_h / (ns * nt) - cos * s_h / ns ** 2) * m[..., None]
    return dloss * g / m.sum()


@entry(E, "second_term_ns_nt", "second term cos * s / (|s||t|) instead of cos * s / |s|**2")
def cosine_m9(dloss, s_h, t_h, mask):
    return _cos(dloss, s_h, t_h, mask, second="nsnt")


# ---------------------------------------------------------------- triple_loss
E = "triple_loss"


def _triple(dloss, h, weight, t_logits, t_h, labels, tau, alphas, *, skip=None, order="ok",
            mlm_n="kept", mlm_mask=True, kl_tau2=True, cos_second="ss", a_cos_on=True,
            use_dloss=True):
    a_ce, a_mlm, a_cos = alphas
    if order == "swap":
        a_mlm, a_ce, a_cos = alphas
    P = h.shape[0]
    logits = h @ weight.T
    p = softmax(logits / tau)
    q = softmax(t_logits / tau)
    d_kl = (tau if kl_tau2 else 1.0 / tau) / P * (p - q)
    y = np.asarray(labels).reshape(-1)
    keep = y != -100
    g = softmax(logits)
    g[np.nonzero(keep)[0], y[keep]] -= 1.0
    if mlm_mask:
        g[~keep] = 0.0
    d_ce = g / (keep.sum() if mlm_n == "kept" else P)
    d_cos = _cos_grad(h, t_h, cos_second) / P
    dlog = 0.0
    if skip != "kl":
        dlog = dlog + a_ce * d_kl
    if skip != "mlm":
        dlog = dlog + a_mlm * d_ce
    dh = dlog @ weight
    if skip != "cos":
        dh = dh + (a_cos if a_cos_on else 1.0) * d_cos
    return dh * dloss if use_dloss else dh


@entry(E, "control")
def triple_loss_control(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, tau, alphas)


@entry(E, "forgot_cosine", "returned only the logits' path dlogits @ weight: forgot Lcos's gradient")
def triple_loss_m1(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, tau, alphas, skip="cos")


@entry(E, "forgot_mlm", "added only the KL gradient to dlogits: forgot Lmlm")
def triple_loss_m2(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, tau, alphas, skip="mlm")


@entry(E, "alphas_swapped", "unpacked alphas as (a_mlm, a_ce, a_cos): the first two swapped")
def triple_loss_m3(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, tau, alphas, order="swap")


@entry(E, "mlm_ignore_not_masked", "MLM gradient left the softmax in rows labelled -100")
def triple_loss_m4(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, tau, alphas, mlm_mask=False)


@entry(E, "kl_no_tau2", "KL part without the tau**2: (p - q) / (tau * P)")
def triple_loss_m5(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, tau, alphas, kl_tau2=False)


@entry(E, "cos_no_norm_term", "cosine part t / (|h||t|) only: forgot |h| depends on h")
def triple_loss_m6(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, tau, alphas, cos_second="none")


@entry(E, "no_dloss", "forgot to multiply by the upstream dloss")
def triple_loss_m7(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, tau, alphas, use_dloss=False)


@entry(E, "mlm_divide_by_P", "MLM gradient divided by P, not by the number of scored labels")
def triple_loss_m8(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, tau, alphas, mlm_n="P")


@entry(E, "forgot_a_cos", "added the cosine gradient without its weight a_cos")
def triple_loss_m9(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    return _triple(dloss, h, weight, t_logits, t_h, labels, tau, alphas, a_cos_on=False)


# ---------------------------------------------------------------- hidden_mse
E = "hidden_mse"


def _hm(dloss, s_h, t_h, weight, two=True, n="all", sign=1.0):
    e = sign * (s_h @ weight.T - t_h)
    nn = e.size if n == "all" else e.shape[0] * e.shape[1]
    de = (2.0 if two else 1.0) * e / nn * dloss
    CT, CS = weight.shape
    return de, de.reshape(-1, CT).T @ s_h.reshape(-1, CS), e


@entry(E, "control")
def hidden_mse_control(dloss, s_h, t_h, weight):
    de, dW, _ = _hm(dloss, s_h, t_h, weight)
    return de @ weight, dW


@entry(E, "no_factor_2", "de = e / n: forgot the 2 from the square")
def hidden_mse_m1(dloss, s_h, t_h, weight):
    de, dW, _ = _hm(dloss, s_h, t_h, weight, two=False)
    return de @ weight, dW


@entry(E, "mean_over_positions", "n = B*T (positions) instead of B*T*CT (every element)")
def hidden_mse_m2(dloss, s_h, t_h, weight):
    de, dW, _ = _hm(dloss, s_h, t_h, weight, n="pos")
    return de @ weight, dW


@entry(E, "dweight_transposed", "dweight = s_h^T de summed over positions: shape (CS, CT)")
def hidden_mse_m3(dloss, s_h, t_h, weight):
    de, dW, _ = _hm(dloss, s_h, t_h, weight)
    return de @ weight, dW.T


@entry(E, "reshape_not_transpose", "de.reshape(CT, -1) @ s_h.reshape(-1, CS): reshape, not transpose")
def hidden_mse_m4(dloss, s_h, t_h, weight):
    de, _, _ = _hm(dloss, s_h, t_h, weight)
    CT, CS = weight.shape
    return de @ weight, de.reshape(CT, -1) @ s_h.reshape(-1, CS)


@entry(E, "error_sign", "e = t_h - s_h @ weight.T: the error's sign flipped")
def hidden_mse_m5(dloss, s_h, t_h, weight):
    de, dW, _ = _hm(dloss, s_h, t_h, weight, sign=-1.0)
    return de @ weight, dW


@entry(E, "dweight_over_B", "divided dweight by the batch size B as well (averaging twice)")
def hidden_mse_m6(dloss, s_h, t_h, weight):
    de, dW, _ = _hm(dloss, s_h, t_h, weight)
    return de @ weight, dW / s_h.shape[0]


@entry(E, "no_dloss", "forgot to multiply by the upstream dloss")
def hidden_mse_m7(dloss, s_h, t_h, weight):
    de, dW, _ = _hm(1.0, s_h, t_h, weight)
    return de @ weight, dW


@entry(E, "return_order", "returned (dweight, ds_h)")
def hidden_mse_m8(dloss, s_h, t_h, weight):
    de, dW, _ = _hm(dloss, s_h, t_h, weight)
    return dW, de @ weight


@entry(E, "dweight_unscaled_e", "dweight built from e, before the 2/n * dloss scaling (ds_h right)")
def hidden_mse_m9(dloss, s_h, t_h, weight):
    de, _, e = _hm(dloss, s_h, t_h, weight)
    CT, CS = weight.shape
    return de @ weight, e.reshape(-1, CT).T @ s_h.reshape(-1, CS)
