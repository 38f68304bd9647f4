"""Still more classic mistakes, beside those of :mod:`.problems_more` (the same form).

Legend: N rows, B batch, T sequence, C hidden, V vocabulary, P selected positions, CS/CT
student/teacher width; tau the temperature.

These are the slips that the outside sets have not all shown yet but that learners make: a
wrong constant in GELU's Gaussian term, gamma applied to one LayerNorm term only, the logits
where the softmax backward needs probabilities, the log-probabilities' difference in the KL
gradient, the cosine's second term with the wrong sign or the gradient taken for the teacher.
"""
from __future__ import annotations

import math

import numpy as np

from . import forwards as F
from . import solutions as S
from .base import Mistake, any_close, close

# ----------------------------------------------------------------------------------- GELU


def _gelu_pdf_fit(c, m):
    """``(a, k)`` when dx = dy * (Phi(x) + a * x * exp(-k x^2)) for constants a, k, else None."""
    x, dy = c.args["x"], c.args["dy"]
    cdf = 0.5 * (1.0 + F._erf(x / math.sqrt(2.0)))  # (...)
    rest = np.asarray(m["dx"], dtype=np.float64) - dy * cdf  # (...) the learner's second term
    base = dy * x  # (...)
    for k in (0.5, 1.0, 0.25, 2.0):
        e = base * np.exp(-k * x * x)  # (...)
        ee = float(np.sum(e * e))
        if ee < 1e-24:
            continue
        a = float(np.sum(rest * e)) / ee
        if close(rest, a * e):
            return a, k
    return None


def _gelu_pdf_constant(m, r, c):
    """x * phi(x) with the right exp(-x^2 / 2) but another constant in front (not the known ones)."""
    fit = _gelu_pdf_fit(c, m)
    if fit is None:
        return False
    a, k = fit
    known = (1 / math.sqrt(2 * math.pi), 1 / math.sqrt(math.pi), 1.0, 0.0)  # right; the existing keys
    return k == 0.5 and all(abs(a - v) > 1e-6 * max(1.0, abs(v)) for v in known) and a > 0


def _gelu_pdf_sign(m, r, c):
    x, dy = c.args["x"], c.args["dy"]
    cdf = 0.5 * (1.0 + F._erf(x / math.sqrt(2.0)))  # (...)
    return close(m["dx"], dy * (cdf - x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)))


# ----------------------------------------------------------------------------------- LayerNorm


def _ln_gamma_partial(m, r, c):
    """gamma applied in some terms of dx only: g = dy * gamma in one place, dy in another."""
    from .problems_layers import ln_parts
    dy, gamma, rstd, xhat = ln_parts(c)
    g = dy * gamma  # (N, C)
    cands = (rstd * (g - dy.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True)),
             rstd * (g - g.mean(-1, keepdims=True) - xhat * (dy * xhat).mean(-1, keepdims=True)),
             rstd * (dy - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True)),
             rstd * (g - dy.mean(-1, keepdims=True) - xhat * (dy * xhat).mean(-1, keepdims=True)))
    return any_close(m, "dx", cands)


# ----------------------------------------------------------------------------------- (log-)softmax


def _sm_used_x(m, r, c):
    x, dp, tau = c.args["x"], c.args["dp"], c.args["tau"]
    cands = []
    for z in (x, x / tau):
        g = z * (dp - (dp * z).sum(-1, keepdims=True))  # (N, V) logits in the place of p
        cands += [g / tau, g]
    return any_close(m, "dx", cands)


def _lsm_used_x(m, r, c):
    x, dy, tau = c.args["x"], c.args["dy"], c.args["tau"]
    cands = []
    for z in (x, x / tau):
        g = dy - z * dy.sum(-1, keepdims=True)  # (N, V)
        cands += [g / tau, g]
    return any_close(m, "dx", cands)


_USED_X = ("The backward needs the PROBABILITIES p = softmax(x / τ) (compute them, or keep them "
           "from the forward); you used the logits x in their place.")

# ----------------------------------------------------------------------------------- attention


def _attn_softmax_missing_p(m, r, c):
    a = c.args
    dprobs = a["dout"] @ a["v"].swapaxes(-1, -2)  # (B, NH, T, T)
    ds = dprobs - (dprobs * a["probs"]).sum(-1, keepdims=True)  # (B, NH, T, T) no leading probs *
    s = 1.0 / math.sqrt(a["q"].shape[-1])
    return close(m["dq"], ds @ a["k"] * s) or close(m["dk"], ds.swapaxes(-1, -2) @ a["q"] * s)


# ----------------------------------------------------------------------------------- KL, cosine


def _kl_log_probs(m, r, c):
    a = c.args
    P, tau = a["s_logits"].shape[0], a["tau"]
    d = F.log_softmax_t(a["s_logits"], tau) - F.log_softmax_t(a["t_logits"], tau)  # (P, V)
    return any_close(m, "ds_logits", tuple(a["dloss"] * k * d / P for k in (tau, tau * tau, 1.0)))


def _cos_pieces(a):
    s, t, mask = a["s_h"], a["t_h"], np.asarray(a["mask"], dtype=bool)
    ns = np.sqrt((s * s).sum(-1, keepdims=True))  # (B, T, 1)
    nt = np.sqrt((t * t).sum(-1, keepdims=True))  # (B, T, 1)
    cos = (s * t).sum(-1, keepdims=True) / (ns * nt)  # (B, T, 1)
    w = -a["dloss"] * mask[..., None] / mask.sum()  # (B, T, 1)
    return s, t, ns, nt, cos, w


def _cos_second_sign(m, r, c):
    s, t, ns, nt, cos, w = _cos_pieces(c.args)
    return close(m["ds_h"], w * (t / (ns * nt) + cos * s / ns ** 2))


def _cos_wrt_teacher(m, r, c):
    s, t, ns, nt, cos, w = _cos_pieces(c.args)
    return close(m["ds_h"], w * (s / (ns * nt) - cos * t / nt ** 2))


# ----------------------------------------------------------------------------------- triple loss


def _triple_ce_masked(m, r, c):
    """Lce taken at the masked rows only (labels != -100), where the exercise scores every row."""
    a = c.args
    h, w, al = a["h"], a["weight"], a["alphas"]
    keep = np.asarray(a["labels"]) != -100  # (P,)
    if keep.all() or not keep.any():
        return False
    logits = h @ w.T  # (P, V)
    full = S.kl_soft_target_backward(a["dloss"], logits, a["t_logits"], a["tau"])  # (P, V)
    part = np.zeros_like(full)  # (P, V)
    part[keep] = S.kl_soft_target_backward(a["dloss"], logits[keep], a["t_logits"][keep], a["tau"])
    masked_rows = full * keep[:, None]  # (P, V): the same mean over P, the other rows dropped
    return any(close(m["dh"], r["dh"] + al[0] * (g - full) @ w) for g in (part, masked_rows))


MORE = {
    "gelu": [
        Mistake("gelu_pdf_constant",
                "The second term is x * phi(x) with phi(x) = exp(-x**2 / 2) / sqrt(2 pi): your "
                "exp(-x**2 / 2) is right but the constant in front of it is not 1/sqrt(2 pi) "
                "(about 0.3989). Redo d/dx erf(x / sqrt 2) = (2 / sqrt pi) exp(-x**2 / 2) / sqrt 2, "
                "times the 0.5 of Phi.",
                _gelu_pdf_constant),
        Mistake("gelu_pdf_sign",
                "gelu'(x) = Phi(x) + x * phi(x), a PLUS: the product rule on x * Phi(x).",
                _gelu_pdf_sign),
    ],
    "layernorm": [Mistake(
        "layernorm_gamma_partial",
        "gamma scales the whole upstream gradient before the normalisation is undone: use "
        "g = dy * gamma in EVERY term, dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).",
        _ln_gamma_partial)],
    "softmax_t": [Mistake("softmax_used_logits", _USED_X, _sm_used_x)],
    "log_softmax_t": [Mistake("softmax_used_logits", _USED_X, _lsm_used_x)],
    "attention": [Mistake(
        "attention_softmax_missing_p",
        "Back through the softmax, each row's gradient is multiplied by the probabilities: "
        "dscores = probs * (dprobs - sum(dprobs * probs, -1)); the leading probs * is missing.",
        _attn_softmax_missing_p)],
    "kl_soft_target": [Mistake(
        "kl_log_probs",
        "The gradient of τ**2 * KL(q || softmax(s / τ)) with respect to s is (τ / P) (p - q), "
        "the difference of the PROBABILITIES, not of the log-probabilities.",
        _kl_log_probs)],
    "cosine": [
        Mistake("cosine_norm_term_sign",
                "d cos/ds = t / (|s| |t|) - cos * s / |s|**2: the norm term is SUBTRACTED "
                "(a longer s lowers the cosine).",
                _cos_second_sign),
        Mistake("cosine_wrt_teacher",
                "That is the gradient with respect to the TEACHER's t_h (s and t swapped); the "
                "student's is d cos/ds = t / (|s| |t|) - cos * s / |s|**2.",
                _cos_wrt_teacher),
    ],
    "triple_loss": [Mistake(
        "triple_ce_masked",
        "Here Lce is taken at EVERY row (the exercise's forward), not only at the masked rows: "
        "only Lmlm skips the rows whose label is -100.",
        _triple_ce_masked)],
}
