"""Classic mistakes that the blind outside sets 9 and 10 found unnamed, and their kin.

Legend: N rows, B batch, T sequence, C hidden, NH heads, V vocabulary, P selected positions;
tau the temperature.

LayerNorm's backward means over the rows (BatchNorm's axis), its parameters' gradients left per
row, the std multiplied where it divides; the softmax backward without its sum term (alone, in
attention, in the block); a lookup scattered in another order or averaged over repeated ids;
the cross-entropy written at the label entry only, or with more labels ignored than -100; the
cosine's norms mixed up; a sign or an argument order slipped in the triple loss; and the block's
LayerNorm backward without its mean term or with the other LayerNorm's gamma.

A test may return a string, the hint made sharper for the answer (which term, which LayerNorm).
"""
from __future__ import annotations

import numpy as np

from . import forwards as F
from . import problems_attention as PA
from . import problems_layers as PL
from . import problems_losses as PS
from . import solutions as S
from .base import any_close, bias_partial_sum, close, Mistake
from .problems_distill import triple_parts

# ----------------------------------------------------------------------------------- LayerNorm


def _ln_stats_axis(m, r, c):
    """The two means of dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) taken over the rows
    (axis 0, BatchNorm's axis; or every leading axis) instead of the features, both or one."""
    dy, gamma, rstd, xhat = PL.ln_parts(c)
    C = xhat.shape[-1]
    if dy.size // C < 2:  # one row: nothing to average over
        return False
    g = dy * gamma  # (N, C)
    cands = []
    for ax in range(g.ndim - 1):
        m1, m2 = g.mean(ax, keepdims=True), (g * xhat).mean(ax, keepdims=True)  # (1, C) each
        f1, f2 = g.mean(-1, keepdims=True), (g * xhat).mean(-1, keepdims=True)  # (N, 1) each
        cands += [rstd * (g - m1 - xhat * m2), rstd * (g - m1 - xhat * f2), rstd * (g - f1 - xhat * m2)]
    g2, x2 = g.reshape(-1, C), xhat.reshape(-1, C)  # (N, C) the rows flattened
    flat = g2 - g2.mean(0) - x2 * (g2 * x2).mean(0)  # (N, C)
    cands.append(rstd * flat.reshape(g.shape))
    return any_close(m, "dx", cands)


def _ln_param_unsummed(m, r, c):
    return bias_partial_sum(m["dgamma"], r["dgamma"]) or bias_partial_sum(m["dbeta"], r["dbeta"])


def _ln_times_std(m, r, c):
    dy, gamma, rstd, xhat = PL.ln_parts(c)
    g = dy * gamma  # (N, C)
    core = g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True)  # (N, C)
    return close(m["dx"], core / rstd)


# ----------------------------------------------------------------------------------- softmax


def _sm_no_sum(m, r, c):
    p, dp = F.softmax_t(c.args["x"], c.args["tau"]), c.args["dp"]  # (N, V)
    return any_close(m, "dx", (p * dp / c.args["tau"], p * dp))


def _attn_dscores(a, fn):
    """dq, dk of the learner's dscores = fn(dprobs, probs)."""
    dprobs = a["dout"] @ a["v"].swapaxes(-1, -2)  # (B, NH, T, T)
    return PA._attn_from_dscores(a, fn(dprobs, a["probs"]))


def _attn_unweighted(m, r, c):
    dq, dk = _attn_dscores(c.args, lambda d, p: p * (d - d.sum(-1, keepdims=True)))
    return (close(m["dq"], dq) or close(m["dk"], dk)) and not close(m["dq"], r["dq"])


# the block's attention softmax written wrong: (what it is, dscores(dprobs, probs))
_BLOCK_SOFTMAX = (
    ("without the sum term (probs * dprobs)", lambda d, p: p * d),
    ("with an unweighted sum (probs * (dprobs - sum(dprobs)))", lambda d, p: p * (d - d.sum(-1, keepdims=True))),
    ("with the Jacobian's diagonal only (probs * (1 - probs) * dprobs)", lambda d, p: p * (1.0 - p) * d),
    ("without the leading probs * (dprobs - sum(dprobs * probs))",
     lambda d, p: d - (d * p).sum(-1, keepdims=True)),
)


def _block_softmax(m, r, c):
    for what, fn in _BLOCK_SOFTMAX:
        if PA._variant(dscores_fn=fn)(m, r, c):
            return ("The attention softmax's backward inside the block is wrong: yours is written "
                    f"{what}. It is dscores = probs * (dprobs - sum(dprobs * probs, -1)) (the "
                    "attention exercise), then dq = dscores @ k / sqrt(HS), dk = dscores^T @ q / sqrt(HS).")
    return False


# ----------------------------------------------------------------------------------- the block's LayerNorms


def _ln_back(mean_term=True, var_term=True):
    def back(d, x, gamma, eps):
        mu = x.mean(-1, keepdims=True)  # (B, T, 1)
        rstd = 1.0 / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps)  # (B, T, 1)
        xh, g = (x - mu) * rstd, d * gamma  # (B, T, C) each
        return (rstd * (g - (g.mean(-1, keepdims=True) if mean_term else 0.0)
                        - (xh * (g * xh).mean(-1, keepdims=True) if var_term else 0.0)),)
    return back


def _with_gamma(gamma):
    return lambda d, x, _g, eps: S.layernorm_backward(d, x, gamma, eps)


_WHICH = {"both": "both LayerNorms", "ln1": "LN1 (after the attention)", "ln2": "LN2 (after the FFN)"}


def _block_ln_pairs(a, back):
    """(which, ln1_backward, ln2_backward) with ``back`` in LN1, LN2 or both."""
    ref = S.layernorm_backward
    return (("both", back, back), ("ln1", back, ref), ("ln2", ref, back))


def _block_run(m, c, ln1, ln2):
    a = c.args
    return close(m["dx"], PA.block_backward_variant(a["dy"], a["x"], a["mask"], a["p"], a["num_heads"],
                                                    a["eps"], ln1_backward=ln1, ln2_backward=ln2))


def _block_ln_mean(m, r, c):
    for which, ln1, ln2 in _block_ln_pairs(c.args, _ln_back(mean_term=False)):
        if _block_run(m, c, ln1, ln2):
            return (f"The LayerNorm backward of {_WHICH[which]} has no '- mean(g)' term: the mean "
                    "depends on every feature, so dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), "
                    "g = d * gamma (the layernorm exercise).")
    for which, ln1, ln2 in _block_ln_pairs(c.args, _ln_back(mean_term=False, var_term=False)):
        if _block_run(m, c, ln1, ln2):
            return (f"The LayerNorm backward of {_WHICH[which]} treats the mean and the variance as "
                    "constants (rstd * g): both depend on the input, so dx = rstd * (g - mean(g) - "
                    "xhat * mean(g * xhat)) (the layernorm exercise).")
    return False


def _block_ln_gamma(m, r, c):
    p = c.args["p"]
    g1, g2 = p["ln1.weight"], p["ln2.weight"]
    ones = np.ones_like(g1)
    cands = (("swapped", _with_gamma(g2), _with_gamma(g1)), ("ln1 uses ln2's", _with_gamma(g2), None),
             ("ln2 uses ln1's", None, _with_gamma(g1)), ("none", _with_gamma(ones), _with_gamma(ones)),
             ("ln1 none", _with_gamma(ones), None), ("ln2 none", None, _with_gamma(ones)))
    text = {"swapped": "LN1's backward used ln2.weight and LN2's used ln1.weight",
            "ln1 uses ln2's": "LN1's backward used ln2.weight", "ln2 uses ln1's": "LN2's backward used ln1.weight",
            "none": "neither LayerNorm's backward multiplies by its gamma",
            "ln1 none": "LN1's backward does not multiply by its gamma",
            "ln2 none": "LN2's backward does not multiply by its gamma"}
    for what, ln1, ln2 in cands:
        if _block_run(m, c, ln1, ln2):
            return (f"Each LayerNorm's backward starts from g = d * ITS OWN gamma: {text[what]}. "
                    "LN2 (ln2.weight) is the first one going down, then LN1 (ln1.weight).")
    return False


# ----------------------------------------------------------------------------------- tied embedding


def _emb_lookup(w, pos_ids, dh):
    out = np.zeros_like(w)  # (V, C)
    np.add.at(out, pos_ids, dh)
    return out


def _emb_scatter_order(m, r, c):
    """The lookup's scatter pairs ids flattened in one order with dh flattened in the other."""
    w, ids, d = c.args["weight"], c.args["ids"], c.args["dlogits"]
    if ids.shape[0] < 2 or ids.shape[1] < 2:
        return False
    out_use = PS._emb_parts(c)[0]  # (V, C)
    dh = d @ w  # (B, T, C)
    cands = (_emb_lookup(w, ids.T.reshape(-1), dh.reshape(-1, w.shape[1])),
             _emb_lookup(w, ids.reshape(-1), dh.transpose(1, 0, 2).reshape(-1, w.shape[1])))
    return any_close(m, "dweight", tuple(out_use + g for g in cands) + cands)


def _emb_averaged(m, r, c):
    w, ids = c.args["weight"], c.args["ids"]
    out_use, emb_add, _ = PS._emb_parts(c)
    counts = np.bincount(ids.reshape(-1), minlength=w.shape[0])[:, None]  # (V, 1)
    avg = emb_add / np.maximum(counts, 1)  # (V, C)
    return counts.max() > 1 and any_close(m, "dweight", (out_use + avg, avg))


# ----------------------------------------------------------------------------------- cross-entropy


def _ce_label_only(m, r, c):
    g, n = PS.label_entries(c.args, lambda p: p - 1.0)
    return any_close(m, "dlogits", (c.args["dloss"] * g / n, c.args["dloss"] * g))


def _ce_more_ignored(m, r, c):
    """More rows ignored than the -100 ones (label 0 taken for padding, say): those rows are
    zero and the others are the reference re-averaged over the rows left (or not)."""
    g = np.asarray(m["dlogits"], dtype=np.float64)
    ref, y = r["dlogits"], c.args["labels"]
    if g.shape != ref.shape:
        return False
    zero = np.all(np.abs(g) <= 1e-12 * max(1.0, float(np.abs(ref).max())), axis=-1)  # (B, T)
    extra = zero & (y != F.IGNORE_INDEX)
    n, left = int((y != F.IGNORE_INDEX).sum()), int((~zero & (y != F.IGNORE_INDEX)).sum())
    if not extra.any() or left == 0:
        return False
    keep = ~zero
    if not any(close(g[keep], ref[keep] * k) for k in (n / left, 1.0)):
        return False
    dropped = sorted({int(v) for v in y[extra]})
    which = ("label 0 (a real class, not padding)" if dropped == [0] else
             "rows whose labels (" + ", ".join(map(str, dropped)) + ") are real classes")
    return (f"Only the label -100 is ignored; you also dropped {which}. Every other label is scored: "
            "it gets softmax - onehot and counts in n = (labels != -100).sum().")


# ----------------------------------------------------------------------------------- cosine


def _cos_bits(a):
    s, t = a["s_h"], a["t_h"]
    ns = np.sqrt((s * s).sum(-1, keepdims=True))  # (B, T, 1)
    nt = np.sqrt((t * t).sum(-1, keepdims=True))  # (B, T, 1)
    cos = (s * t).sum(-1, keepdims=True) / (ns * nt)  # (B, T, 1)
    mask = np.asarray(a["mask"], dtype=np.float64)[..., None]  # (B, T, 1)
    return s, t, ns, nt, cos, -a["dloss"] * mask / mask.sum()


def _cos_first_norm(m, r, c):
    s, t, ns, nt, cos, w = _cos_bits(c.args)
    return any_close(m, "ds_h", tuple((f - cos * s / ns ** 2) * w for f in (t / ns, t / nt, t / ns ** 2, t)))


def _cos_second_vector(m, r, c):
    s, t, ns, nt, cos, w = _cos_bits(c.args)
    first = t / (ns * nt)  # (B, T, C)
    return any_close(m, "ds_h", tuple((first - cos * t * k) * w for k in (1 / nt ** 2, 1 / ns ** 2, 1 / (ns * nt))))


# ----------------------------------------------------------------------------------- triple loss


def _triple_sign(m, r, c):
    parts, al = triple_parts(c.args), c.args["alphas"]
    for i, name in ((0, "Lce (the KL to the teacher: p - q, student minus teacher)"),
                    (1, "Lmlm (the cross-entropy: softmax - onehot)")):
        signs = [1.0, 1.0, 1.0]
        signs[i] = -1.0
        if close(m["dh"], sum(sg * a * g for sg, a, g in zip(signs, al, parts))):
            return (f"The {name} part of your dh has the wrong sign: each term's gradient at h is "
                    "its logits' gradient @ weight, with the sign of its own exercise.")
    return False


def _triple_cos_teacher(m, r, c):
    a = c.args
    (dce, dmlm, _), al = triple_parts(a), a["alphas"]
    every = np.ones((1, a["h"].shape[0]), dtype=np.int64)  # (1, P)
    wrong = a["dloss"] * S.cosine_backward(1.0, a["t_h"][None], a["h"][None], every)[0]  # (P, C)
    return close(m["dh"], al[0] * dce + al[1] * dmlm + al[2] * wrong)


MORE = {
    "layernorm": [
        Mistake("layernorm_stats_axis",
                "LayerNorm normalises each ROW over its C features, so the two means of its backward "
                "run over the last axis: dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat)"
                ".mean(-1, keepdims=True)). You took a mean over the rows (axis 0, BatchNorm's axis).",
                _ln_stats_axis),
        Mistake("layernorm_param_unsummed",
                "gamma and beta are shared by every row: dgamma = (dy * xhat) and dbeta = dy summed "
                "over ALL the leading axes, shape (C,) (.sum(axis=tuple(range(x.ndim - 1)))); yours "
                "kept one gradient per row.",
                _ln_param_unsummed),
        Mistake("layernorm_rstd_inverted",
                "LayerNorm DIVIDES by the standard deviation, so dx = rstd * (...) with rstd = "
                "1 / sqrt(var + eps); you multiplied by sqrt(var + eps).",
                _ln_times_std),
    ],
    "softmax_t": [Mistake("softmax_sum_term",
                          "The softmax Jacobian has an off-diagonal part: every p_j depends on every "
                          "x_i, so dx = p * (dp - sum(dp * p, -1)) / τ; the '- sum(dp * p)' term is missing.",
                          _sm_no_sum)],
    "attention": [Mistake("softmax_weighted_sum",
                          "The row sum in the softmax backward is weighted by the probabilities: "
                          "dscores = probs * (dprobs - sum(dprobs * probs, -1)), not "
                          "probs * (dprobs - sum(dprobs)).",
                          _attn_unweighted)],
    "encoder_block": [
        Mistake("block_attention_softmax",
                "The attention softmax's backward inside the block is wrong: dscores = probs * "
                "(dprobs - sum(dprobs * probs, -1)) (the attention exercise).",
                _block_softmax),
        Mistake("block_ln_mean_term",
                "A LayerNorm backward inside the block lacks its '- mean(g)' term: dx = rstd * (g - "
                "mean(g) - xhat * mean(g * xhat)), g = d * gamma (the layernorm exercise).",
                _block_ln_mean),
        Mistake("block_ln_gamma",
                "Each LayerNorm's backward starts from g = d * its OWN gamma (ln2.weight for LN2, "
                "ln1.weight for LN1).",
                _block_ln_gamma),
    ],
    "embedding_tied": [
        Mistake("embedding_flatten_order",
                "Flatten ids and dh in the SAME order: ids.flatten('F') (or ids.T) against dh "
                "flattened row by row scatters each position's gradient into another position's id.",
                _emb_scatter_order),
        Mistake("embedding_duplicates_averaged",
                "A repeated id gets the SUM of its positions' gradients (np.add.at(dW, ids, dh)): "
                "the row is used that many times in the forward, so do not divide by the count.",
                _emb_averaged),
    ],
    "cross_entropy": [
        Mistake("ce_label_entry_only",
                "dlogits = (softmax - onehot) / n touches EVERY entry of a scored row: the softmax "
                "makes each logit's probability depend on the others. You wrote p - 1 at the label "
                "and left the other entries 0; they get p.",
                _ce_label_only),
        Mistake("ce_scored_labels",
                "Only the label -100 is ignored: every other label, 0 included (a real class, not "
                "padding), is scored, gets softmax - onehot and counts in n = (labels != -100).sum().",
                _ce_more_ignored),
    ],
    "cosine": [
        Mistake("cosine_first_term_norm",
                "The first term of d cos/ds is t / (|s| |t|): both norms divide it (the teacher's "
                "|t| too); then subtract cos * s / |s|**2.",
                _cos_first_norm),
        Mistake("cosine_norm_term_vector",
                "The norm term comes from |s|, the STUDENT's norm: cos * s / |s|**2, with the "
                "student's vector s and |s|**2; yours uses the teacher's t.",
                _cos_second_vector),
    ],
    "triple_loss": [
        Mistake("triple_term_sign",
                "One term of dh has the wrong sign: each part is its logits' gradient (p - q for Lce, "
                "softmax - onehot for Lmlm) @ weight.",
                _triple_sign),
        Mistake("cosine_wrt_teacher",
                "The Lcos part is the gradient with respect to the TEACHER's t_h (student and teacher "
                "swapped): the student's is d cos/dh = t / (|h| |t|) - cos * h / |h|**2, then minus, "
                "mean over the P rows.",
                _triple_cos_teacher),
    ],
}
