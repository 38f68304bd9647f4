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
from . import problems_attention as PA
from . import problems_layers as PL
from . import problems_losses as PS
from . import solutions as S
from .base import Mistake, any_close, close

# ----------------------------------------------------------------------------------- GELU


def _gelu_pdf_fit(c, m):
    """``(a, k)`` when dx = dy * (Phi(x) + a * x * exp(-k x^2)) for constants a, k, else None."""
    x, dy = c.args["x"], c.args["dy"]
    cdf = PL.phi_cdf(x)  # (...)
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
    return close(m["dx"], dy * (PL.phi_cdf(x) - x * PL._phi(x)))


# ----------------------------------------------------------------------------------- LayerNorm


def _ln_gamma_partial(m, r, c):
    """gamma applied in some terms of dx only: g = dy * gamma in one place, dy in another."""
    dy, gamma, rstd, xhat = PL.ln_parts(c)
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
    keep = np.asarray(a["labels"]) != F.IGNORE_INDEX  # (P,)
    if keep.all() or not keep.any():
        return False
    logits = h @ w.T  # (P, V)
    full = S.kl_soft_target_backward(a["dloss"], logits, a["t_logits"], a["tau"])  # (P, V)
    part = np.zeros_like(full)  # (P, V)
    part[keep] = S.kl_soft_target_backward(a["dloss"], logits[keep], a["t_logits"][keep], a["tau"])
    masked_rows = full * keep[:, None]  # (P, V): the same mean over P, the other rows dropped
    return any(close(m["dh"], r["dh"] + al[0] * (g - full) @ w) for g in (part, masked_rows))


# ----------------------------------------------------------------------------------- after set 6


def _lin_loop_overwrite(m, r, c):
    """dW = outer(dy[n], x[n]) in a loop over the rows with = instead of +=: the last row only."""
    dy, x = c.args["dy"], c.args["x"]
    return dy.shape[0] > 1 and close(m["dweight"], np.outer(dy[-1], x[-1]))


def _ln_global_mean(m, r, c):
    dy, gamma, rstd, xhat = PL.ln_parts(c)
    if xhat.ndim < 2 or xhat.shape[0] * (xhat.size // xhat.shape[-1]) <= 1:
        return False
    g = dy * gamma  # (N, C)
    row_g, row_gx = g.mean(-1, keepdims=True), (g * xhat).mean(-1, keepdims=True)  # (N, 1) each
    all_g, all_gx = g.mean(), (g * xhat).mean()
    cands = (rstd * (g - all_g - xhat * row_gx), rstd * (g - row_g - xhat * all_gx),
             rstd * (g - all_g - xhat * all_gx))
    return any_close(m, "dx", cands)


def _sm_tau_partial(m, r, c):
    x, dp, tau = c.args["x"], c.args["dp"], c.args["tau"]
    p = F.softmax_t(x, tau)  # (N, V)
    a, b = p * dp, p * (dp * p).sum(-1, keepdims=True)  # (N, V) each: the two terms
    return any_close(m, "dx", (a - b / tau, a / tau - b))


def _lsm_tau_partial(m, r, c):
    x, dy, tau = c.args["x"], c.args["dy"], c.args["tau"]
    b = F.softmax_t(x, tau) * dy.sum(-1, keepdims=True)  # (N, V)
    return any_close(m, "dx", (dy - b / tau, dy / tau - b))


_TAU_PARTIAL = ("The chain-rule factor 1/τ multiplies the WHOLE gradient: dx = (...) / τ. Only one "
                "of your two terms is divided by τ: check the parentheses.")


def _emb_lookup_assign(m, r, c):
    """dW[ids] = dh: the lookup's rows overwrite the projection's part (and each other)."""
    w, ids, d = c.args["weight"], c.args["ids"], c.args["dlogits"]
    dh = (d @ w).reshape(-1, w.shape[1])  # (B*T, C)
    g = PS._emb_parts(c)[0].copy()  # (V, C) the projection's part
    g[ids.reshape(-1)] = dh
    return close(m["dweight"], g) and not close(g, r["dweight"])


def _ce_onehot_never(m, r, c):
    """The one-hot never subtracted (chained indexing d[keep][...] -= 1 writes into a copy)."""
    a = c.args
    keep = a["labels"] != F.IGNORE_INDEX  # (B, T)
    g = F.softmax_t(a["logits"]) * keep[..., None] / keep.sum()  # (B, T, V)
    return any_close(m, "dlogits", (a["dloss"] * g, a["dloss"] * F.softmax_t(a["logits"]) / keep.sum()))


def _triple_returns_dlogits(m, r, c):
    a = c.args
    P, V = a["h"].shape[0], a["weight"].shape[0]
    return np.shape(m["dh"]) == (P, V) and V != a["h"].shape[1]


def _mse_dweight_raw(m, r, c):
    a = c.args
    e = a["s_h"] @ a["weight"].T - a["t_h"]  # (B, T, CT)
    s2 = a["s_h"].reshape(-1, a["s_h"].shape[-1])  # (B*T, CS)
    raw = e.reshape(-1, e.shape[-1]).T @ s2  # (CT, CS)
    if close(m["ds_h"], r["ds_h"] * e.size):  # both n times too big: the mean's 1/n is missing
        return False
    return any_close(m, "dweight", (raw, a["dloss"] * raw, 2.0 * raw, a["dloss"] * 2.0 * raw))


def _mse_dweight_twice(m, r, c):
    B, T = c.args["t_h"].shape[:2]
    return close(m["dweight"], r["dweight"] / (B * T))



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
        _ln_gamma_partial),
        Mistake("layernorm_global_mean",
                "The means in LayerNorm's backward are PER ROW, over its C features: "
                "g.mean(axis=-1, keepdims=True) and (g * xhat).mean(axis=-1, keepdims=True), not "
                "a mean over the whole array.",
                _ln_global_mean)],
    "softmax_t": [Mistake("softmax_used_logits", _USED_X, _sm_used_x),
                  Mistake("tau_partial", _TAU_PARTIAL, _sm_tau_partial)],
    "log_softmax_t": [Mistake("softmax_used_logits", _USED_X, _lsm_used_x),
                      Mistake("tau_partial", _TAU_PARTIAL, _lsm_tau_partial)],
    "linear": [Mistake(
        "loop_overwrite",
        "In a loop over the rows, ACCUMULATE: dW += outer(dy[n], x[n]); with dW = ... only the "
        "last row's contribution is left (or write it at once: dW = dy^T @ x).",
        _lin_loop_overwrite)],
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
    "embedding_tied": [Mistake(
        "embedding_lookup_assign",
        "The lookup's gradient is ADDED to the projection's, and repeated ids add up: "
        "np.add.at(dW, ids.reshape(-1), dh). dW[ids] = dh overwrites both.",
        _emb_lookup_assign)],
    "cross_entropy": [Mistake(
        "ce_onehot_missing",
        "Your gradient is softmax / n with no one-hot subtracted. If you wrote "
        "d[keep][rows, y] -= 1: d[keep] is a COPY, so the subtraction is lost. Index in one step: "
        "d[rows_kept, y[rows_kept]] -= 1 on the (N, V) array itself.",
        _ce_onehot_never)],
    "hidden_mse": [
        Mistake("mse_dweight_raw_error",
                "dweight = de^T @ s_h with de = dloss * 2 e / n, the gradient at the error; you "
                "used the raw error e (without 2 / n, or dloss).",
                _mse_dweight_raw),
        Mistake("mse_dweight_mean_twice",
                "dweight is divided by B*T once more: the 1/n of the mean is already in de = "
                "dloss * 2 e / n; dweight = de^T @ s_h sums over the positions.",
                _mse_dweight_twice),
    ],
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
    "encoder_block": [
        Mistake("block_residual_before_ln",
                "Post-LN: the residual path carries the gradient from BELOW the LayerNorm. "
                "dr2 = LN2_backward(dy), then dh = dr2 + FFN_backward(dr2) (likewise dx = dr1 + "
                "...); adding dy itself (or dh) is the pre-LN block's rule.",
                PA._any(PA._variant(residual_dy=("ffn",)), PA._variant(residual_dy=("attn",)),
                        PA._variant(residual_dy=("ffn", "attn")))),
        Mistake("block_attention_dk",
                "Inside the block's attention, dk = dscores^T @ q / sqrt(HS) (transpose the (T, T) "
                "matrix; the attention exercise); dscores @ q is not it.",
                PA._variant(dk_transposed=False)),
    ],
    "triple_loss": [Mistake(
        "triple_ce_masked",
        "Here Lce is taken at EVERY row (the exercise's forward), not only at the masked rows: "
        "only Lmlm skips the rows whose label is -100.",
        _triple_ce_masked),
        Mistake("triple_returns_dlogits",
                "That is the gradient at the LOGITS, (P, V). The exercise asks for dh, (P, C): go "
                "back through logits = h @ W.T (dh = dlogits @ W) and add the Lcos part.",
                _triple_returns_dlogits)],
}
