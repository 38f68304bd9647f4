"""Exercises on distillation objectives: the weighted triple loss, and TinyBERT's hidden-state MSE.

Legend: P positions, C hidden, V vocabulary, B batch, T sequence, CS/CT student/teacher width.
"""
from __future__ import annotations

import numpy as np

from . import forwards as F
from . import solutions as S
from .base import UPSTREAM_HINT, Case, Mistake, close, raises_like, upstream_ignored

# ----------------------------------------------------------------------------------- triple loss


def triple_cases(rng):
    cases = []
    for P, C, V, tau, alphas in ((4, 3, 5, 2.0, (5.0, 2.0, 1.0)), (3, 4, 6, 3.0, (0.5, 2.0, 3.0))):
        h = rng.standard_normal((P, C))  # (P, C)
        w = rng.standard_normal((V, C)) * 0.7  # (V, C)
        t_logits = rng.standard_normal((P, V)) * 2.0  # (P, V)
        t_h = rng.standard_normal((P, C))  # (P, C)
        labels = rng.integers(0, V, size=P)  # (P,)
        labels[1] = F.IGNORE_INDEX  # one position not scored by Lmlm
        dloss = float(rng.uniform(0.5, 1.5))
        args = {"dloss": dloss, "h": h, "weight": w, "t_logits": t_logits, "t_h": t_h,
                "labels": labels, "tau": tau, "alphas": alphas}
        cases.append(Case(f"h{h.shape} V={V} tau={tau} alphas={alphas}", args, {"dh": h},
                          lambda a=args: a["dloss"] * F.triple_loss(
                              a["h"], a["weight"], a["t_logits"], a["t_h"], a["labels"], a["tau"],
                              a["alphas"])))
    return cases


def triple_parts(a):
    """The three gradients at h, unweighted: (dLce, dLmlm, dLcos), each (P, C)."""
    h, w = a["h"], a["weight"]
    logits = h @ w.T  # (P, V)
    every = np.ones((1, h.shape[0]), dtype=np.int64)  # (1, P)
    return (a["dloss"] * S.kl_soft_target_backward(1.0, logits, a["t_logits"], a["tau"]) @ w,
            a["dloss"] * S.cross_entropy_backward(1.0, logits, a["labels"]) @ w,
            a["dloss"] * S.cosine_backward(1.0, h[None], a["t_h"][None], every)[0])


_NAMES = ("Lce", "Lmlm", "Lcos")


def _triple_missing(m, r, c):
    parts = triple_parts(c.args)
    al = c.args["alphas"]
    for keep in ((0, 1), (0, 2), (1, 2), (0,), (1,), (2,)):
        for weights in (al, (1.0, 1.0, 1.0)):
            if close(m["dh"], sum(weights[i] * parts[i] for i in keep)):
                gone = " and ".join(_NAMES[i] for i in range(3) if i not in keep)
                return (f"Your dh has no {gone} part" + ("s" if len(keep) == 1 else "") + ("" if weights is al else
                        ", and its terms lack their weights alpha") + ". All three losses reach h: "
                        "Lce and Lmlm through the logits (logits = h @ W.T, so their dlogits add and "
                        "go back as dlogits @ W) and Lcos directly; a part left out or overwritten "
                        "instead of added (use +=) is missing.")
    return False


def _triple_weights(m, r, c):
    parts = triple_parts(c.args)
    al = c.args["alphas"]
    cands = [sum(parts)] + [sum(al[j] * parts[j] if j != i else parts[i] for j in range(3))
                            for i in range(3)]
    names = ("a_ce", "a_mlm", "a_cos")
    for i, g in enumerate(cands):
        if close(m["dh"], g) and not close(g, r["dh"]):
            return ("The loss is a WEIGHTED sum: each term's gradient carries its alpha (dh = a_ce "
                    "dLce + a_mlm dLmlm + a_cos dLcos). " + ("Yours has none of the three."
                    if i == 0 else f"Yours lacks {names[i - 1]}."))
    return False


def _triple_kl_scale(m, r, c):
    parts = triple_parts(c.args)
    al, tau = c.args["alphas"], c.args["tau"]
    what = {1 / tau ** 2: "the τ**2 of the loss is missing",
            tau: "it is τ times too big: the 1/τ of the softmax's chain rule is missing",
            1 / tau: "it is τ times too small (τ where τ**2 belongs, or a second 1/τ)"}
    for f, why in what.items():
        if close(m["dh"], al[0] * f * parts[0] + al[1] * parts[1] + al[2] * parts[2]):
            return (f"The Lce part has the wrong scale: {why}. τ**2 * mean KL at temperature τ has "
                    "gradient (τ / P) * (softmax(s/τ) - softmax(t/τ)) with respect to the logits.")
    return False


def _triple_alpha_order(m, r, c):
    parts, al = triple_parts(c.args), c.args["alphas"]
    orders = ((1, 0, 2), (0, 2, 1), (2, 1, 0), (1, 2, 0), (2, 0, 1))
    return any(close(m["dh"], sum(al[o[i]] * parts[i] for i in range(3))) for o in orders)


def _mlm_pieces(a):
    """Pieces of the MLM term's dh: (ignored rows' softmax / n, the scored count n, P)."""
    logits = a["h"] @ a["weight"].T  # (P, V)
    ignored = np.asarray(a["labels"]) == F.IGNORE_INDEX  # (P,)
    n = int((~ignored).sum())
    extra = a["dloss"] * (F.softmax_t(logits) * ignored[:, None] / n) @ a["weight"]  # (P, C)
    return extra, n, a["h"].shape[0]


def _triple_mlm_ignore(m, r, c):
    extra, n, P = _mlm_pieces(c.args)
    return close(m["dh"], r["dh"] + c.args["alphas"][1] * extra)


def _triple_mlm_count(m, r, c):
    parts, al = triple_parts(c.args), c.args["alphas"]
    _, n, P = _mlm_pieces(c.args)
    return close(m["dh"], r["dh"] + al[1] * parts[1] * (n / P - 1.0))


def _triple_cos_mean(m, r, c):
    parts, al = triple_parts(c.args), c.args["alphas"]
    P = c.args["h"].shape[0]
    return close(m["dh"], r["dh"] + al[2] * parts[2] * (P - 1.0))


def _triple_cos_labels(m, r, c):
    a = c.args
    parts, al = triple_parts(a), a["alphas"]
    keep = (np.asarray(a["labels"]) != F.IGNORE_INDEX).astype(np.int64)[None]  # (1, P)
    cos_kept = a["dloss"] * S.cosine_backward(1.0, a["h"][None], a["t_h"][None], keep)[0]  # (P, C)
    return close(m["dh"], r["dh"] + al[2] * (cos_kept - parts[2]))


def _triple_projection(e, c):
    P, C = c.args["h"].shape
    V = c.args["weight"].shape[0]
    return isinstance(e, ValueError) and "broadcast" in str(e) and f"{P},{V}" in str(e).replace(" ", "")


TRIPLE_MISTAKES = [
    Mistake("triple_missing_term",
            "All three losses reach h: Lce and Lmlm through the logits (logits = h @ W.T, so "
            "their dlogits add and go back as dlogits @ W) and Lcos directly. One of them is "
            "missing from your dh, or was overwritten instead of added (use +=).",
            _triple_missing),
    Mistake("triple_weights",
            "The loss is a WEIGHTED sum: each term's gradient carries its alpha "
            "(dh = a_ce dLce + a_mlm dLmlm + a_cos dLcos).",
            _triple_weights),
    Mistake("triple_kl_scale",
            "The Lce part has the wrong scale: τ**2 * mean KL at temperature τ has gradient "
            "(τ / P) * (softmax(s/τ) - softmax(t/τ)) with respect to the logits.",
            _triple_kl_scale),
    Mistake("triple_alpha_order",
            "The alphas are attached to the wrong losses: alphas = (a_ce, a_mlm, a_cos) weigh "
            "(Lce, Lmlm, Lcos) in that order.",
            _triple_alpha_order),
    Mistake("triple_mlm_ignore",
            "The Lmlm part has gradient at the -100 positions: they are not scored, so their "
            "row of dlogits_mlm must be 0 (the cross-entropy exercise).",
            _triple_mlm_ignore),
    Mistake("triple_mlm_count",
            "Lmlm is a mean over the SCORED positions (labels != -100), not over all P.",
            _triple_mlm_count),
    Mistake("triple_cos_mean",
            "Lcos is a mean over the P positions: its gradient at h carries 1/P.",
            _triple_cos_mean),
    Mistake("triple_cos_labels",
            "Lcos counts EVERY position: the -100 labels only mask Lmlm, not the cosine term.",
            _triple_cos_labels),
    Mistake("triple_projection",
            "dlogits is (P, V) and dh is (P, C): take the logits' gradient back through the "
            "decoder first, dh = dlogits @ W, before adding the cosine term.",
            None, _triple_projection),
    Mistake("upstream_ignored", UPSTREAM_HINT, upstream_ignored("dh")),
]
TRIPLE_SCALES = {"−1": "the sign is flipped."}

# ----------------------------------------------------------------------------------- hidden MSE


def mse_cases(rng):
    cases = []
    for B, T, CS, CT in ((3, 2, 4, 5), (4, 3, 3, 7)):  # B != 2: dweight / B must not look like a lost 2
        s_h = rng.standard_normal((B, T, CS))  # (B, T, CS)
        t_h = rng.standard_normal((B, T, CT))  # (B, T, CT)
        w = rng.standard_normal((CT, CS)) * 0.5  # (CT, CS)
        dloss = float(rng.uniform(0.5, 1.5))
        cases.append(Case(f"s{s_h.shape} t{t_h.shape}",
                          {"dloss": dloss, "s_h": s_h, "t_h": t_h, "weight": w},
                          {"ds_h": s_h, "dweight": w},
                          lambda s=s_h, t=t_h, w=w, d=dloss: d * F.hidden_mse(s, t, w),
                          {"B": B, "T": T, "C": CT}))
    return cases


def _mse_projection(m, r, c):
    return np.shape(m["ds_h"]) == c.args["t_h"].shape != c.args["s_h"].shape


def _mse_ds_weight(e, c):
    """The learner's exception is the one ``de @ weight.T`` raises (de shaped like t_h)."""
    return raises_like(e, lambda: np.zeros(c.args["t_h"].shape) @ c.args["weight"].T)


MSE_MISTAKES = [
    Mistake("mse_ds_weight",
            "ds_h = de @ weight: e = s_h @ W.T - t_h with W (CT, CS), so (..., CT) @ (CT, CS) "
            "gives (..., CS); de @ W.T does not fit.",
            on_error=_mse_ds_weight),
    Mistake("mse_factor_two",
            "d(e**2)/de = 2 e: the factor 2 is missing.",
            lambda m, r, c: close(m["ds_h"], r["ds_h"] / 2) or close(m["dweight"], r["dweight"] / 2)),
    Mistake("mse_count",
            "The MSE is a mean over EVERY element, B * T * CT of them, not over the B * T "
            "positions.",
            lambda m, r, c: close(m["ds_h"], r["ds_h"] * c.args["t_h"].shape[-1])
            or close(m["dweight"], r["dweight"] * c.args["t_h"].shape[-1])),
    Mistake("mse_dweight_mean",
            "dweight sums over every position of every sequence; you averaged over the batch "
            "(divided by B).",
            lambda m, r, c: close(m["dweight"], r["dweight"] / c.args["s_h"].shape[0])),
    Mistake("mse_count_student",
            "Divide by the number of elements of the ERROR e = s_h W^T - t_h, B * T * CT (the "
            "teacher's width), not by s_h.size (the student's width CS).",
            lambda m, r, c: close(m["ds_h"], r["ds_h"] * c.args["t_h"].shape[-1] / c.args["s_h"].shape[-1])
            or close(m["dweight"], r["dweight"] * c.args["t_h"].shape[-1] / c.args["s_h"].shape[-1])),
    Mistake("mse_projection",
            "ds_h must go back through the projection: e = s_h @ W.T - t_h, so ds_h = de @ W, "
            "(B, T, CS) like s_h.",
            _mse_projection),
    Mistake("mse_sign",
            "e = student - teacher: de = 2 (s_h W^T - t_h) / n, not 2 (t_h - s_h W^T) / n.",
            lambda m, r, c: close(m["ds_h"], -r["ds_h"]) or close(m["dweight"], -r["dweight"])),
    Mistake("upstream_ignored", UPSTREAM_HINT, upstream_ignored("ds_h")),
]
MSE_SCALES = {"B": "a stray factor B.", "B·T": "a sum over positions where the loss has a mean.",
              "1/C": "divided by the width twice."}
