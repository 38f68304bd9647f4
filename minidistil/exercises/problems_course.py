"""Course mistakes: slips that backprop courses see often and no outside set has shown yet.

Legend: N rows, B batch, T sequence, C hidden, V vocabulary; tau the temperature.

gamma multiplied after LayerNorm's backward instead of into it (or into its own gradient), the
std missing or the variance taken without centring, the softmax's sum term added or the
log-softmax's backward used, the cross-entropy's gradient from the raw logits or averaged per
sequence, the bias summed over the vocabulary, and in the encoder block a LayerNorm gone through
as the identity or with the unbiased variance, a square Linear's dx through W.T, and GELU's
sigmoid approximation.
"""
from __future__ import annotations

import numpy as np

from . import forwards as F
from . import problems_attention as PA
from . import problems_layers as PL
from . import solutions as S
from .base import Mistake, any_close, close

# ----------------------------------------------------------------------------------- LayerNorm


def _ln_gamma_outside(m, r, c):
    dy, gamma, rstd, xhat = PL.ln_parts(c)
    core = rstd * (dy - dy.mean(-1, keepdims=True) - xhat * (dy * xhat).mean(-1, keepdims=True))  # (N, C)
    return close(m["dx"], gamma * core)


def _ln_var_uncentred(m, r, c):
    """var = mean(x**2), without subtracting the mean first (x has a nonzero mean here)."""
    x, dy, gamma = c.args["x"], c.args["dy"], c.args["gamma"]
    mu = x.mean(-1, keepdims=True)  # (N, 1)
    rs = 1.0 / np.sqrt((x * x).mean(-1, keepdims=True) + c.args["eps"])  # (N, 1) the wrong rstd
    lead = tuple(range(x.ndim - 1))
    cands = []
    for xh in ((x - mu) * rs, x * rs):  # (N, C): centred or not in the normalisation too
        g = dy * gamma  # (N, C)
        cands.append(rs * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True)))
    return any_close(m, "dx", cands) or close(m["dgamma"], (dy * (x - mu) * rs).sum(axis=lead))


def _ln_no_rstd(m, r, c):
    dy, gamma, rstd, xhat = PL.ln_parts(c)
    g = dy * gamma  # (N, C)
    return close(m["dx"], g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))


def _ln_param_gamma(m, r, c):
    """gamma multiplied into its own gradient (or beta's): g = dy * gamma used for them too."""
    dy, gamma, rstd, xhat = PL.ln_parts(c)
    lead = tuple(range(dy.ndim - 1))
    g = dy * gamma  # (N, C)
    return (any_close(m, "dgamma", ((g * xhat).sum(axis=lead),))
            or any_close(m, "dbeta", (g.sum(axis=lead),)))


# ----------------------------------------------------------------------------------- softmax, CE


def _sm_as_log_softmax(m, r, c):
    p, dp, tau = F.softmax_t(c.args["x"], c.args["tau"]), c.args["dp"], c.args["tau"]  # (N, V)
    g = PL._lsm_from_p(p, dp)  # (N, V) log-softmax's backward
    return any_close(m, "dx", (g / tau, g))


def _ce_per_sequence(m, r, c):
    """A mean over each sequence's scored tokens, then over the B sequences."""
    y = c.args["labels"]  # (B, T)
    keep = y != F.IGNORE_INDEX
    n_b = keep.sum(-1, keepdims=True)  # (B, 1)
    if n_b.min() == 0:
        return False
    w = keep.sum() / (y.shape[0] * n_b)  # (B, 1) the reference's 1/n becomes 1/(B n_b)
    return not np.allclose(w, 1.0) and close(m["dlogits"], r["dlogits"] * w[..., None])


def _sm_sum_sign(m, r, c):
    p, dp, tau = F.softmax_t(c.args["x"], c.args["tau"]), c.args["dp"], c.args["tau"]  # (N, V)
    g = p * (dp + (dp * p).sum(-1, keepdims=True))  # (N, V)
    return any_close(m, "dx", (g / tau, g))


def _ce_from_logits(m, r, c):
    a = c.args
    z, y = a["logits"], a["labels"]  # (B, T, V), (B, T)
    keep = y != F.IGNORE_INDEX
    g = z * keep[..., None]  # (B, T, V) the logits where the probabilities belong
    idx = np.nonzero(keep) + (y[keep],)
    g[idx] -= 1.0
    return any_close(m, "dlogits", (a["dloss"] * g / keep.sum(), a["dloss"] * g))


def _emb_bias_axis(m, r, c):
    g = np.asarray(m["dbias"], dtype=np.float64)
    return close(g, c.args["dlogits"].sum(-1)) or close(g, c.args["dlogits"].sum())


# ----------------------------------------------------------------------------------- encoder block


def _block_dx_linears(a, transposed):
    """The block's dx with ``d @ W.T`` for ``d @ W`` in the square Linears named in ``transposed``."""
    p, eps, nh = a["p"], a["eps"], a["num_heads"]
    c = S.encoder_block_cache(a["x"], a["mask"], p, nh, eps)

    def back(d, name):
        w = p[f"{name}.weight"]  # (OUT, IN)
        return d @ (w.T if name in transposed else w)
    dr2 = S.layernorm_backward(a["dy"], c.r2, p["ln2.weight"], eps)[0]  # (B, T, C)
    dh = dr2 + S.gelu_backward(dr2 @ p["ff2.weight"], c.u) @ p["ff1.weight"]  # (B, T, C)
    dr1 = S.layernorm_backward(dh, c.r1, p["ln1.weight"], eps)[0]  # (B, T, C)
    dq, dk, dv = S.attention_backward(F.split_heads(back(dr1, "o"), nh), c.q, c.k, c.v, c.probs)
    return dr1 + sum(back(F.merge_heads(g), n) for n, g in (("q", dq), ("k", dk), ("v", dv)))  # (B, T, C)


def _block_linear_dx(m, r, c):
    for names in (("o",), ("q", "k", "v"), ("o", "q", "k", "v"), ("q",), ("k",), ("v",)):
        if close(m["dx"], _block_dx_linears(c.args, names)):
            return (f"The input gradient of a Linear is d @ W (W stored (OUT, IN)), not d @ W.T: "
                    f"yours uses W.T for {', '.join(n + '.weight' for n in names)} (square, so the "
                    "shapes fit and the numbers are wrong).")
    return False


def _identity_ln(d, x, gamma, eps):
    return (d,)


def _gamma_only_ln(d, x, gamma, eps):
    return (d * gamma,)


def _unbiased_ln(d, x, gamma, eps):
    mu = x.mean(-1, keepdims=True)  # (B, T, 1)
    rstd = 1.0 / np.sqrt(((x - mu) ** 2).sum(-1, keepdims=True) / (x.shape[-1] - 1) + eps)  # (B, T, 1)
    xh, g = (x - mu) * rstd, d * gamma  # (B, T, C) each
    return (rstd * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True)),)


_WHICH = {"both": "both LayerNorms", "ln1": "LN1 (after the attention)", "ln2": "LN2 (after the FFN)"}


def _block_ln_with(m, c, back):
    """Which LayerNorm(s) of the block ran ``back`` for their backward, or None."""
    a, ref = c.args, S.layernorm_backward
    for which, ln1, ln2 in (("both", back, back), ("ln1", back, ref), ("ln2", ref, back)):
        dx = PA.block_backward_variant(a["dy"], a["x"], a["mask"], a["p"], a["num_heads"], a["eps"],
                                       ln1_backward=ln1, ln2_backward=ln2)
        if close(m["dx"], dx):
            return which
    return None


def _block_ln_skipped(m, r, c):
    for back in (_identity_ln, _gamma_only_ln):
        which = _block_ln_with(m, c, back)
        if which:
            return (f"The gradient goes through {_WHICH[which]} as if it were the identity (or only "
                    "times gamma): a LayerNorm's backward is dx = rstd * (g - mean(g) - xhat * "
                    "mean(g * xhat)), g = d * gamma, at its own input (the layernorm exercise).")
    return False


def _block_ln_unbiased(m, r, c):
    which = _block_ln_with(m, c, _unbiased_ln)
    return bool(which) and (f"The LayerNorm backward of {_WHICH[which]} uses the unbiased variance "
                            "(divided by C - 1): LayerNorm's is the biased one, mean((x - mu)**2).")


def _block_gelu_sigmoid(m, r, c):
    return PA._variant(gelu="sigmoid")(m, r, c)


MORE = {
    "layernorm": [
        Mistake("layernorm_gamma_outside",
                "gamma scales dy BEFORE the normalisation is undone: g = dy * gamma inside every term, "
                "dx = rstd * (g - mean(g) - xhat * mean(g * xhat)); multiplying the finished dx by "
                "gamma puts it outside the means.",
                _ln_gamma_outside),
        Mistake("layernorm_rstd_missing",
                "Undoing the normalisation divides by the std: dx = rstd * (g - mean(g) - xhat * "
                "mean(g * xhat)); your dx lacks the factor rstd = 1 / sqrt(var + eps).",
                _ln_no_rstd),
        Mistake("layernorm_param_gamma",
                "gamma does not scale its own gradient: dgamma = sum(dy * xhat) and dbeta = sum(dy) "
                "use dy, not g = dy * gamma (that one is for dx).",
                _ln_param_gamma),
        Mistake("layernorm_var_uncentred",
                "The variance is the mean of the CENTRED squares, mean((x - mu)**2) (or mean(x**2) - "
                "mu**2); mean(x**2) alone leaves the mean in.",
                _ln_var_uncentred),
    ],
    "softmax_t": [
        Mistake("softmax_sum_sign",
                "The sum term is SUBTRACTED: dx = p * (dp - sum(dp * p)) / τ (the Jacobian's "
                "off-diagonal part is -p_i p_j).",
                _sm_sum_sign),
        Mistake("softmax_used_log_softmax",
                "That is the LOG-softmax backward, (dp - p * sum(dp)) / τ. For the softmax, "
                "dp_i/dx_j = p_i (delta_ij - p_j) / τ, so dx = p * (dp - sum(dp * p)) / τ.",
                _sm_as_log_softmax),
    ],
    "cross_entropy": [
        Mistake("ce_softmax_missing",
                "dlogits = (softmax(logits) - onehot) / n: the probabilities, not the raw "
                "logits, minus the one-hot.",
                _ce_from_logits),
        Mistake("ce_per_sequence",
                "The loss is ONE mean over all n scored tokens of the batch, n = (labels != -100)"
                ".sum(); you averaged per sequence, then over the sequences, so a sequence with "
                "fewer scored tokens weighs more.",
                _ce_per_sequence),
    ],
    "embedding_tied": [Mistake("embedding_bias_axis",
                               "The bias has one entry per vocabulary id, shape (V,): dbias sums "
                               "dlogits over the POSITIONS, dlogits.sum(axis=(0, 1)), not over the "
                               "vocabulary axis (nor over every axis).",
                               _emb_bias_axis)],
    "encoder_block": [
        Mistake("block_ln_skipped",
                "A LayerNorm's backward is missing inside the block: the gradient went through it "
                "as the identity.",
                _block_ln_skipped),
        Mistake("block_ln_unbiased_var",
                "A LayerNorm backward inside the block uses the unbiased variance (C - 1): "
                "LayerNorm's is mean((x - mu)**2).",
                _block_ln_unbiased),
        Mistake("block_linear_dx_weight",
                "The input gradient of a Linear is d @ W, not d @ W.T.",
                _block_linear_dx),
        Mistake("block_gelu_sigmoid",
                "The FFN's GELU backward uses the sigmoid approximation x * sigmoid(1.702 x); the "
                "block's GELU is the exact one, gelu'(u) = Phi(u) + u * phi(u).",
                _block_gelu_sigmoid),
    ],
}
