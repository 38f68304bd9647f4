"""Exercises on the tied embedding and the losses: Lce (KL at τ), cross-entropy with -100, the
cosine loss, the weighted triple loss, and TinyBERT's hidden-state MSE.

Legend: B batch, T sequence, C hidden, V vocabulary, P selected positions, CS/CT student/teacher
width. The cases are drawn so that no two of an exercise's constants coincide (no τ * P = 1):
a wrong factor then names one cause.
"""
from __future__ import annotations

import numpy as np

from . import forwards as F
from . import solutions as S
from .base import (BIAS_AXES_HINT, UPSTREAM_HINT, Case, Mistake, any_close, bias_partial_sum, close,
                   padding_mask, upstream_ignored)
from .hints import shapes_in

# ----------------------------------------------------------------------------------- tied embedding


def embedding_cases(rng):
    cases = []
    for B, T, V, C in ((2, 4, 5, 3), (1, 6, 4, 2), (3, 3, 6, 4)):
        ids = rng.integers(0, V, size=(B, T))  # (B, T)
        ids[0, :2] = V - 1  # make sure some id repeats
        w = rng.standard_normal((V, C)) * 0.7  # (V, C)
        b = rng.standard_normal(V) * 0.1  # (V,)
        dlogits = rng.standard_normal((B, T, V))  # (B, T, V)
        cases.append(Case(f"ids{ids.shape} W{w.shape}", {"dlogits": dlogits, "ids": ids, "weight": w},
                          {"dweight": w, "dbias": b},
                          lambda ids=ids, w=w, b=b, d=dlogits:
                          float(np.sum(F.embedding_tied(ids, w, b) * d))))
    return cases


def _emb_parts(c):
    a = c.args
    w, ids, d = a["weight"], a["ids"], a["dlogits"]
    C = w.shape[1]
    out_use = d.reshape(-1, d.shape[-1]).T @ w[ids].reshape(-1, C)  # (V, C)
    dh = (d @ w).reshape(-1, C)  # (B*T, C)
    emb_add = np.zeros_like(w)  # (V, C)
    np.add.at(emb_add, ids.reshape(-1), dh)
    emb_assign = np.zeros_like(w)  # (V, C): what dW[ids] += dh does (repeats overwrite)
    emb_assign[ids.reshape(-1)] += dh
    return out_use, emb_add, emb_assign


def _emb_dh_transposed(e, c):
    """The learner's exception is the one ``dlogits @ weight.T`` raises (dh with the wrong side)."""
    try:
        c.args["dlogits"] @ c.args["weight"].T
    except ValueError as mine:
        return isinstance(e, ValueError) and str(e) == str(mine)
    return False


def _emb_layout(e, c):
    """dweight built (C, V), the transpose of weight: np.add.at into it runs past its C rows,
    or adding it to a (V, C) array cannot broadcast."""
    V, C = c.args["weight"].shape
    if isinstance(e, IndexError):
        return V > C and f"axis 0 with size {C}" in str(e)
    shapes = shapes_in(str(e)) if isinstance(e, ValueError) and "broadcast" in str(e) else []
    return V != C and (V, C) in shapes and (C, V) in shapes


def _tied_half(m, c):
    out_use, emb_add, emb_assign = _emb_parts(c)
    tied = "The matrix is TIED: it is used twice, so dW is the SUM of both gradients. "
    if close(m["dweight"], out_use):
        return tied + ("Your dweight has only the projection's part, dlogits^T @ h; add the lookup's: "
                       "np.add.at(dW, ids, dh) with dh = dlogits @ W.")
    if close(m["dweight"], emb_add):
        return tied + ("Your dweight has only the lookup's part, np.add.at(dW, ids, dh); add the "
                       "projection's: dlogits^T @ h (flattened to (B*T, V) and (B*T, C)).")
    if close(m["dweight"], emb_assign):
        return tied + ("Your dweight has only the lookup's part, written with dW[ids] = / += dh, which "
                       "also keeps one write per repeated id: use np.add.at(dW, ids, dh), added to the "
                       "projection's dlogits^T @ h.")
    return False


EMBEDDING_MISTAKES = [
    Mistake("embedding_dweight_layout",
            "dweight has the layout of weight, (V, C): the projection's part is dlogits^T @ h, "
            "(V, B*T) @ (B*T, C), not h^T @ dlogits, which is (C, V).",
            on_error=_emb_layout),
    Mistake("bias_sum_axes", BIAS_AXES_HINT,
            lambda m, r, c: bias_partial_sum(m["dbias"], r["dbias"])),
    Mistake("embedding_dh_weight",
            "dh = dlogits @ weight: logits = h @ W.T with W (V, C), so (..., V) @ (V, C) gives "
            "(..., C); dlogits @ W.T does not fit.",
            on_error=_emb_dh_transposed),
    Mistake("embedding_bias_mean",
            "dbias sums dlogits over every position (the bias is added at each of the B*T "
            "positions); you averaged.",
            lambda m, r, c: close(m["dbias"], r["dbias"] / c.args["ids"].size)),
    Mistake("tied_two_gradients",
            "The matrix is TIED: it is used twice (lookup h = W[ids] and projection h @ W.T), so "
            "dW is the SUM of both gradients.",
            lambda m, r, c: _tied_half(m, c)),
    Mistake("embedding_repeated_ids",
            "dW[ids] += dh drops repeated ids (fancy-index assignment keeps only one write): "
            "use np.add.at(dW, ids, dh).",
            lambda m, r, c: close(m["dweight"], _emb_parts(c)[0] + _emb_parts(c)[2])),
]

# ----------------------------------------------------------------------------------- KL soft target


def kl_cases(rng):
    cases = []
    for P, V, tau in ((3, 5, 2.0), (4, 7, 3.0), (5, 6, 0.5)):
        s = rng.standard_normal((P, V)) * 2.0  # (P, V)
        t = rng.standard_normal((P, V)) * 2.0  # (P, V)
        dloss = float(rng.uniform(0.5, 1.5))
        cases.append(Case(f"logits({P}, {V}) tau={tau}",
                          {"dloss": dloss, "s_logits": s, "t_logits": t, "tau": tau},
                          {"ds_logits": s},
                          lambda s=s, t=t, tau=tau, d=dloss: d * F.kl_soft_target(s, t, tau),
                          {"tau": tau, "P": P, "V": V}))
    return cases


def _kl_times_tau(m, r, c):
    a = c.args
    tau = a["tau"]
    g = S.kl_soft_target_backward(a["dloss"], a["s_logits"], a["t_logits"], 1.0 / tau)  # softmax(x * tau)
    return any_close(m, "ds_logits", [g * f for f in (1.0, tau * tau, tau ** 4, 1 / tau ** 2)])


def _kl_reversed(m, r, c):
    a = c.args
    tau, P = a["tau"], a["s_logits"].shape[0]
    ls, lt = np.log(F.softmax_t(a["s_logits"], tau)), np.log(F.softmax_t(a["t_logits"], tau))  # (P, V)
    p, d = np.exp(ls), ls - lt  # (P, V)
    g = p * (d - (p * d).sum(-1, keepdims=True))  # (P, V): d KL(p_s || p_t) / d(s / tau)
    return close(m["ds_logits"], a["dloss"] * tau * g / P)


def _kl_one_without_tau(m, r, c):
    a = c.args
    tau, P, s, t = a["tau"], a["s_logits"].shape[0], a["s_logits"], a["t_logits"]
    diffs = (F.softmax_t(s) - F.softmax_t(t, tau), F.softmax_t(s, tau) - F.softmax_t(t))  # (P, V) each
    return any_close(m, "ds_logits", tuple(a["dloss"] * k * d / P for d in diffs for k in (tau, 1.0)))


KL_MISTAKES = [
    Mistake("kl_reversed",
            "That is the gradient of KL(student || teacher). Lce is KL(teacher || student) = "
            "sum p_t log(p_t / p_s): its gradient is simply (τ / P) (p_s - p_t), p = softmax(logits / τ).",
            _kl_reversed),
    Mistake("kl_softmax_without_tau",
            "One of the two softmaxes lacks the temperature: both are softmax(logits / τ), "
            "student's and teacher's.",
            _kl_one_without_tau),
    Mistake("kl_tau_squared",
            "The loss is multiplied by τ**2 (so that its gradient keeps the same scale as τ "
            "changes): your gradient is τ**2 too small.",
            lambda m, r, c: close(m["ds_logits"], r["ds_logits"] / c.args["tau"] ** 2)),
    Mistake("kl_chain_tau",
            "Chain rule through s / τ: the softmax gradient carries a factor 1/τ "
            "(total factor τ**2 / τ = τ).",
            lambda m, r, c: close(m["ds_logits"], r["ds_logits"] * c.args["tau"])),
    Mistake("kl_mean",
            "The loss is a MEAN over the P positions: divide by P.",
            lambda m, r, c: close(m["ds_logits"], r["ds_logits"] * c.args["s_logits"].shape[0])),
    Mistake("kl_batchmean",
            "reduction='mean' averages over all P * V entries; the KL of a distribution is a "
            "SUM over the V classes, averaged over the P rows ('batchmean'): your gradient is "
            "V times too small.",
            lambda m, r, c: close(m["ds_logits"], r["ds_logits"] / c.args["s_logits"].shape[1])),
    Mistake("kl_sign",
            "Sign: the gradient is softmax(s/τ) - softmax(t/τ) (student minus teacher).",
            lambda m, r, c: close(m["ds_logits"], -r["ds_logits"])),
    Mistake("softmax_times_tau",
            "The temperature DIVIDES the logits: softmax(s / τ), not softmax(s * τ).",
            _kl_times_tau),
    Mistake("upstream_ignored", UPSTREAM_HINT, upstream_ignored("ds_logits")),
]
KL_SCALES = {"1/τ": "both the τ**2 of the loss and the 1/τ of the chain rule are missing "
                    "(τ**2 / τ = τ is the factor), or the loss was scaled by τ instead of τ**2.",
             "τ²": "the τ**2 is applied twice, or the chain rule multiplies by τ.",
             "1/P": "divided by P twice.", "V": "multiplied by V (a sum over classes counted twice?).",
             # τ, 1/τ², P, 1/V and -1 have their own keys: kl_chain_tau, kl_tau_squared, kl_mean,
             # kl_batchmean, kl_sign
             }

# ----------------------------------------------------------------------------------- cross-entropy


def ce_cases(rng):
    cases = []
    for B, T, V, ign in ((2, 3, 5, 2), (1, 4, 6, 1), (3, 2, 4, 3)):
        logits = rng.standard_normal((B, T, V)) * 2.0  # (B, T, V)
        labels = rng.integers(0, V, size=(B, T))  # (B, T)
        labels.reshape(-1)[rng.choice(B * T, size=ign, replace=False)] = F.IGNORE_INDEX  # not scored
        dloss = float(rng.uniform(0.5, 1.5))
        n = int((labels != F.IGNORE_INDEX).sum())
        cases.append(Case(f"logits{logits.shape} ignored={ign}",
                          {"dloss": dloss, "logits": logits, "labels": labels}, {"dlogits": logits},
                          lambda z=logits, y=labels, d=dloss: d * F.cross_entropy(z, y),
                          {"B": B, "T": T, "V": V, "n": n}))
    # sequences with unequal numbers of scored tokens (3 and 0 ignored): a mean per sequence,
    # then over the batch, differs from the one mean over the tokens only here
    B, T, V = 2, 4, 6
    logits = rng.standard_normal((B, T, V)) * 2.0  # (B, T, V)
    labels = rng.integers(0, V, size=(B, T))  # (B, T)
    labels[0, 1:] = F.IGNORE_INDEX
    dloss = float(rng.uniform(0.5, 1.5))
    cases.append(Case(f"logits{logits.shape} ignored=3 in one row",
                      {"dloss": dloss, "logits": logits, "labels": labels}, {"dlogits": logits},
                      lambda z=logits, y=labels, d=dloss: d * F.cross_entropy(z, y),
                      {"B": B, "T": T, "V": V, "n": 5}))
    return cases


def _ce_ignored_rows(m, r, c):
    g = np.asarray(m["dlogits"], dtype=np.float64)
    return g.shape == r["dlogits"].shape and bool(np.any(np.abs(g[c.args["labels"] == F.IGNORE_INDEX]) > 1e-12))


def _ce_count(m, r, c):
    y = c.args["labels"]
    n = (y != F.IGNORE_INDEX).sum()
    return close(m["dlogits"], r["dlogits"] * n / y.size)


def _ce_batch_mean(m, r, c):
    """Divided by B, the batch size, instead of n, the scored tokens. A case with B = 1 cannot
    tell this from no mean at all (scale_n), nor one with B = n from the right answer, so it is
    only read where 1 < B != n."""
    B, n = c.args["logits"].shape[0], c.consts["n"]
    return 1 < B != n and close(m["dlogits"], r["dlogits"] * n / B)


def label_entries(a, at_label):
    """``(g, n)``: a (B, T, V) array that holds ``at_label(p)`` at each scored row's label entry
    and 0 elsewhere (p the softmax there), and n the number of scored rows: the shape of a
    gradient a learner writes at the label only."""
    y, p = a["labels"], F.softmax_t(a["logits"])  # (B, T), (B, T, V)
    keep = y != F.IGNORE_INDEX
    g = np.zeros_like(p)  # (B, T, V)
    idx = np.nonzero(keep) + (y[keep],)
    g[idx] = at_label(p[idx])
    return g, keep.sum()


def _ce_probs(m, r, c):
    g, n = label_entries(c.args, lambda p: -1.0 / p)
    dloss = c.args["dloss"]
    return any_close(m, "dlogits", (dloss * g / n, -dloss * (g != 0) / n))


CE_MISTAKES = [
    Mistake("ce_ignore_index",
            "The label -100 is not a class: it marks a row that is not scored. Select the scored "
            "rows (labels != -100) before indexing with the labels, and give the others zero gradient.",
            None, lambda e, c: isinstance(e, IndexError) and str(F.IGNORE_INDEX) in str(e)),
    Mistake("ce_ignored_rows",
            "Rows whose label is -100 are not in the loss: their gradient must be exactly 0.",
            _ce_ignored_rows),
    Mistake("ce_count",
            "Average over the SCORED rows ((labels != -100).sum()), not over every row.",
            _ce_count),
    Mistake("ce_batch_mean",
            "You divided by the batch size B; the loss is a mean over the scored TOKENS, so "
            "divide by n = (labels != -100).sum() (a batch of B sequences has many tokens).",
            _ce_batch_mean),
    Mistake("ce_wrt_probs",
            "That is the gradient of -log p_y with respect to the probabilities (or to the logit "
            "alone); through the softmax it becomes softmax(logits) - onehot(label).",
            _ce_probs),
    Mistake("upstream_ignored", UPSTREAM_HINT, upstream_ignored("dlogits")),
]
CE_SCALES = {"−1": "the sign is flipped: dlogits = softmax - onehot (the probability of the "
                   "right class must go UP).",
             "n": "the mean over the n scored rows is missing (a sum).",
             "1/n": "divided by the number of scored rows twice.",
             "1/V": "a mean over the V classes crept in: each row's loss is one log-probability."}

# ----------------------------------------------------------------------------------- cosine


def cosine_cases(rng):
    cases = []
    for B, T, C, pads in ((2, 4, 3, (1, 0)), (1, 5, 4, (2,)), (3, 3, 2, (0, 1, 2))):
        s = rng.standard_normal((B, T, C))  # (B, T, C)
        t = rng.standard_normal((B, T, C))  # (B, T, C)
        mask = padding_mask(B, T, pads)  # (B, T)
        dloss = float(rng.uniform(0.5, 1.5))
        cases.append(Case(f"h{s.shape} pad{pads}",
                          {"dloss": dloss, "s_h": s, "t_h": t, "mask": mask}, {"ds_h": s},
                          lambda s=s, t=t, m=mask, d=dloss: d * F.cosine(s, t, m),
                          {"B": B, "T": T, "C": C, "n": int(mask.sum())}))
    return cases


def _cos_padding(m, r, c):
    pad = ~np.asarray(c.args["mask"], dtype=bool)
    g = np.asarray(m["ds_h"], dtype=np.float64)
    return g.shape == r["ds_h"].shape and bool(np.any(np.abs(g[pad]) > 1e-12))


def _cos_count(m, r, c):
    mask = np.asarray(c.args["mask"], dtype=bool)
    return close(m["ds_h"], r["ds_h"] * mask.sum() / mask.size)


def _cos_norm_term(m, r, c):
    a = c.args
    s, t, mask = a["s_h"], a["t_h"], np.asarray(a["mask"], dtype=bool)
    ns = np.sqrt((s * s).sum(-1, keepdims=True))  # (B, T, 1)
    nt = np.sqrt((t * t).sum(-1, keepdims=True))  # (B, T, 1)
    g = -a["dloss"] * t / (ns * nt) * mask[..., None] / mask.sum()  # (B, T, C)
    return any_close(m, "ds_h", (g, g * ns * nt, g * nt))


def _cos_per_sequence(m, r, c):
    mask = np.asarray(c.args["mask"], dtype=bool)  # (B, T)
    per_seq = mask.sum() / (mask.shape[0] * mask.sum(-1, keepdims=True))  # (B, 1)
    return not np.allclose(per_seq, 1.0) and close(m["ds_h"], r["ds_h"] * per_seq[..., None])


def _cos_norm_power(m, r, c):
    a = c.args
    s, t, mask = a["s_h"], a["t_h"], np.asarray(a["mask"], dtype=bool)
    ns = np.sqrt((s * s).sum(-1, keepdims=True))  # (B, T, 1)
    nt = np.sqrt((t * t).sum(-1, keepdims=True))  # (B, T, 1)
    cos = (s * t).sum(-1, keepdims=True) / (ns * nt)  # (B, T, 1)
    w = mask[..., None] / mask.sum()  # (B, T, 1)
    wrong = [cos * s / ns ** k for k in (1, 3)] + [cos * s / (ns * nt), cos * s / nt ** 2]  # (B, T, C) each
    return any_close(m, "ds_h", tuple(-a["dloss"] * (t / (ns * nt) - g) * w for g in wrong))


COSINE_MISTAKES = [
    Mistake("cosine_norm_power",
            "The norm term is cos * s / |s|**2 (d|s|/ds = s / |s|, and cos has |s| in its "
            "denominator): yours divides by another power of |s|, or by |s| |t| or |t|**2.",
            _cos_norm_power),
    Mistake("cosine_padding",
            "Padded positions are not in the loss: their gradient must be exactly 0 (multiply by the mask).",
            _cos_padding),
    Mistake("cosine_count",
            "Average over the REAL positions (mask.sum()), not over all B*T.",
            _cos_count),
    Mistake("cosine_per_sequence",
            "Lcos is ONE mean over all real positions of the batch (mask.sum() of them), not a "
            "mean per sequence then over sequences: a short sequence's positions must not weigh more.",
            _cos_per_sequence),
    Mistake("cosine_norm_term",
            "cos = s.t / (|s| |t|) and |s| depends on s: d cos/ds = t/(|s||t|) - cos * s/|s|^2.",
            _cos_norm_term),
    Mistake("cosine_sign",
            "The loss is 1 - cos: its gradient is MINUS d cos/ds (moving s towards t lowers the loss).",
            lambda m, r, c: close(m["ds_h"], -r["ds_h"])),
    Mistake("upstream_ignored", UPSTREAM_HINT, upstream_ignored("ds_h")),
]
COSINE_SCALES = {"B·T": "a sum over positions where the loss has a mean.",
                 "n": "the mean over the n = mask.sum() real positions is missing (a sum).",
                 "2": "a stray factor 2.", "1/2": "a stray factor 1/2."}
