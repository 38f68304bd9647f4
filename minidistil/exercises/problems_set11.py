"""Classic mistakes that the blind outside sets 11 and 12 found unnamed, and their kin.

Legend: N rows, B batch, T sequence, C hidden, V vocabulary, P selected positions; tau the
temperature; n the number of entries a mean runs over.

An L2 (weight-decay) term added to a layer's dW; LayerNorm's staged dvar with a wrong power-rule
factor; the softmax backward without its leading ``p *``; the tied matrix's two gradients averaged
or one of them doubled, or the lookup's gradient broadcast to every row; the cosine loss divided
by each sequence's count, or its norms taken over the sequence axis; inside the triple loss, the
cosine's norm term dropped or the soft-target part divided by the scored count; the hidden MSE
without the 1/n of its mean, or with dweight divided by n twice.

A test may return a string, the hint made sharper for the answer (which factor, which part).
"""
from __future__ import annotations

import numpy as np

from . import forwards as F
from . import problems_layers as PL
from . import problems_losses as PS
from .base import any_close, close, Mistake
from .problems_distill import triple_parts


def _linear_decay(m, r, c):
    """dweight = dy^T x + lam * weight (an L2 term, the CS231n habit), lam != 0."""
    w = np.asarray(c.args["weight"], dtype=np.float64)
    diff = m["dweight"] - r["dweight"]
    lam = float(np.sum(diff * w) / np.sum(w * w))
    if abs(lam) < 1e-12 or not close(m["dweight"], r["dweight"] + lam * w):
        return False
    return (f"Your dweight is the right one plus {lam:.3g} * weight: an L2 regularisation "
            "(weight-decay) term. The layer's backward is the gradient of the loss alone, "
            "dW = dy^T x; weight decay belongs to the optimizer (AdamW's weight_decay) or to a "
            "loss term of its own.")


_DVAR = {-2.0: "lost its -1/2: d/dvar (var + eps)**-1/2 = -1/2 (var + eps)**-3/2",
         -1.0: "has the wrong sign: d/dvar (var + eps)**-1/2 = -1/2 (var + eps)**-3/2 is negative",
         3.0: "has the exponent -3/2 as its factor: d/dvar (var + eps)**-1/2 = -1/2 (var + eps)**-3/2"}


def _ln_dvar_factor(m, r, c):
    """The variance term of dx multiplied by a power-rule slip k (the mean term right); the
    factors 1/2, 2 and 1/rstd^2 are problems_tail's."""
    dy, gamma, rstd, xhat = PL.ln_parts(c)
    g = dy * gamma  # (N, C)
    base = rstd * (g - g.mean(-1, keepdims=True))  # (N, C)
    vterm = -rstd * xhat * (g * xhat).mean(-1, keepdims=True)  # (N, C)
    for k, what in _DVAR.items():
        if close(m["dx"], base + k * vterm):
            return ("The variance stage of your dx is off by a factor " + f"{k:g}: dvar " + what
                    + ", so dvar = sum(dxhat * (x - mu)) * -1/2 * (var + eps)**-1.5 and its part "
                    "of dx is dvar * 2 (x - mu) / C.")
    return False


def _softmax_no_p(m, r, c):
    a = c.args
    p = F.softmax_t(a["x"], a["tau"])  # (N, V)
    core = a["dp"] - (a["dp"] * p).sum(-1, keepdims=True)  # (N, V)
    return any_close(m, "dx", (core / a["tau"], core, core * a["tau"]))


def _tied_scaled(m, r, c):
    out_use, emb_add, _ = PS._emb_parts(c)
    tied = ("The matrix is TIED: each of its two uses adds its own gradient ONCE, "
            "dW = dlogits^T @ h + np.add.at(dW, ids, dh). ")
    if close(m["dweight"], (out_use + emb_add) / 2):
        return tied + "You averaged the two (divided their sum by 2): add them."
    if close(m["dweight"], 2 * out_use + emb_add):
        return tied + ("You doubled the projection's part dlogits^T @ h: being used twice is "
                       "already the sum of the two parts, not a factor 2 on either.")
    if close(m["dweight"], out_use + 2 * emb_add):
        return tied + ("You doubled the lookup's part: being used twice is already the sum of the "
                       "two parts, not a factor 2 on either.")
    return False


def _emb_broadcast(m, r, c):
    out_use = PS._emb_parts(c)[0]
    a = c.args
    dh = (a["dlogits"] @ a["weight"]).reshape(-1, a["weight"].shape[1])  # (B*T, C)
    return any_close(m, "dweight", (out_use + dh.sum(0), out_use + dh.mean(0)))


def _cos_row_count(m, r, c):
    mask = np.asarray(c.args["mask"], dtype=bool)  # (B, T)
    factor = mask.sum() / mask.sum(-1, keepdims=True)  # (B, 1)
    return not np.allclose(factor, 1.0) and close(m["ds_h"], r["ds_h"] * factor[..., None])


def _cos_norm_axis(m, r, c):
    a = c.args
    s, t, mask = a["s_h"], a["t_h"], np.asarray(a["mask"], dtype=bool)
    dot = (s * t).sum(-1, keepdims=True)  # (B, T, 1)
    w = -a["dloss"] * mask[..., None] / mask.sum()  # (B, T, 1)
    cands = []
    for ax in range(s.ndim - 1):
        ns = np.sqrt((s * s).sum(ax, keepdims=True))  # the norms over a wrong axis
        nt = np.sqrt((t * t).sum(ax, keepdims=True))
        for d in (dot, (s * t).sum(ax, keepdims=True)):
            cos = d / (ns * nt)
            cands.append(w * (t / (ns * nt) - cos * s / ns ** 2))
    return any_close(m, "ds_h", cands)


def _triple_cos_norm_term(m, r, c):
    a = c.args
    h, t, al = a["h"], a["t_h"], a["alphas"]
    d_ce, d_mlm, _ = triple_parts(a)
    ns = np.sqrt((h * h).sum(-1, keepdims=True))  # (P, 1)
    nt = np.sqrt((t * t).sum(-1, keepdims=True))  # (P, 1)
    g = -a["dloss"] * t / (ns * nt) / h.shape[0]  # (P, C): d cos/dh without its norm term
    rest = al[0] * d_ce + al[1] * d_mlm
    return any_close(m, "dh", tuple(rest + al[2] * x for x in (g, g * ns * nt, g * nt)))


def _triple_kl_count(m, r, c):
    a = c.args
    P, n = a["h"].shape[0], int((np.asarray(a["labels"]) != F.IGNORE_INDEX).sum())
    if n in (0, P):
        return False
    d_ce, d_mlm, d_cos = triple_parts(a)
    al = a["alphas"]
    return close(m["dh"], al[0] * d_ce * P / n + al[1] * d_mlm + al[2] * d_cos)


def _mse_no_mean(m, r, c):
    n = c.args["t_h"].size
    return close(m["ds_h"], r["ds_h"] * n) and close(m["dweight"], r["dweight"] * n)


def _mse_dweight_over_n(m, r, c):
    n = c.args["t_h"].size
    B, T = c.args["t_h"].shape[:2]
    return n != B * T and close(m["dweight"], r["dweight"] / n)


MORE = {
    "linear": [Mistake("linear_weight_decay", "dweight has an extra L2 term lam * weight.",
                       _linear_decay)],
    "layernorm": [Mistake("layernorm_variance_stage", "The variance stage has a wrong factor.",
                          _ln_dvar_factor)],  # widens problems_tail's key: -2, -1 and 3 too
    "softmax_t": [Mistake("softmax_missing_p",
                          "The softmax's Jacobian is diag(p) - p p^T, so dx = p * (dp - sum(dp * p, "
                          "axis=-1, keepdims=True)) / tau: each entry is weighted by its own p. Yours "
                          "lacks the leading p *.",
                          _softmax_no_p)],
    "embedding_tied": [
        Mistake("tied_parts_scaled", "The tied matrix's two gradients add, once each.", _tied_scaled),
        Mistake("embedding_lookup_broadcast",
                "The lookup h = W[ids] reads only the rows of the ids, so its gradient goes to those "
                "rows only: np.add.at(dW, ids.reshape(-1), dh). You added the sum (or mean) of dh to "
                "EVERY row of dW.",
                _emb_broadcast),
    ],
    "cosine": [
        Mistake("cosine_row_count",
                "Lcos is ONE mean over all n = mask.sum() real positions of the batch: divide every "
                "position by that total, not by its own sequence's count mask.sum(axis=1).",
                _cos_row_count),
        Mistake("cosine_norm_axis",
                "|s| and |t| are the norms of each position's hidden vector: sum over the LAST axis "
                "(the features), np.sqrt((s * s).sum(-1, keepdims=True)); yours sums over another "
                "axis (the sequence or the batch).",
                _cos_norm_axis),
    ],
    "triple_loss": [
        Mistake("cosine_norm_term",
                "In the Lcos part of dh: cos = h.t / (|h| |t|) and |h| depends on h, so d cos/dh = "
                "t/(|h||t|) - cos * h/|h|^2; yours lacks the norm term.",
                _triple_cos_norm_term),
        Mistake("triple_kl_count",
                "The soft-target (KL) part is a mean over ALL P positions (each has a teacher "
                "distribution): divide it by P. The scored count (labels != -100).sum() belongs to "
                "the MLM part only.",
                _triple_kl_count),
    ],
    "hidden_mse": [
        Mistake("mse_mean_missing",
                "The loss is the MEAN of the n = e.size = B*T*CT squared errors, so de = dloss * 2 * "
                "e / n: both your gradients are n times too big (the sum of squares, not its mean).",
                _mse_no_mean),
        Mistake("mse_dweight_mean_twice",
                "dweight is divided by n = e.size once more: the 1/n of the mean is already in de = "
                "dloss * 2 e / n; dweight = de^T @ s_h sums over the positions.",
                _mse_dweight_over_n),
    ],
}
