"""More classic mistakes, one list per exercise, added to those of the ``problems_*`` modules.

Legend: N rows, B batch, T sequence, C hidden, NH heads, HS head size, V vocabulary,
P selected positions; tau the temperature.

Each entry is a wrong formula that learners write: the erf without its sqrt(2), the -(r/C)
slip in LayerNorm's variance term, log-probabilities where the backward needs probabilities,
q and k swapped in the attention backward, and so on. :data:`MORE` maps an exercise's name to
its extra :class:`~.base.Mistake` list.
"""
from __future__ import annotations

import math

import numpy as np

from . import forwards as F
from . import problems_attention as PA
from . import problems_layers as PL
from . import problems_losses as PS
from . import solutions as S
from .base import Mistake, any_close, close, raises_like
from .problems_distill import triple_parts

# ----------------------------------------------------------------------------------- GELU


def _gelu_erf_sqrt2(m, r, c):
    """Phi written 0.5 (1 + erf(x)): alone, or with its own derivative exp(-x^2) / sqrt(pi)."""
    x, dy = c.args["x"], c.args["dy"]
    cdf_wrong = 0.5 * (1.0 + F._erf(x))  # (...)
    cdf, pdf = PL.phi_cdf(x), PL._phi(x)  # (...) each
    pdf_wrong = np.exp(-x * x) / math.sqrt(math.pi)  # (...) d/dx of cdf_wrong
    return any_close(m, "dx", (dy * (cdf_wrong + x * pdf), dy * (cdf_wrong + x * pdf_wrong),
                               dy * (cdf + x * pdf_wrong)))


# ----------------------------------------------------------------------------------- LayerNorm


def _ln_rstd_power(m, r, c):
    """The variance term with rstd to the wrong power: d rstd/dx_j written -(rstd/C) xhat_j."""
    rstd = PL.ln_parts(c)[2]  # (N, 1)
    return any_close(m, "dx", PL.ln_var_term_scaled(c, (1.0 / rstd, rstd)))


# ----------------------------------------------------------------------------------- (log-)softmax


def _lsm_candidates(c, make):
    x, dy, tau = c.args["x"], c.args["dy"], c.args["tau"]
    g = make(x, dy, tau)  # (N, V)
    return (g / tau, g)


def _lsm_uses_logp(m, r, c):
    return any_close(m, "dx", _lsm_candidates(
        c, lambda x, dy, tau: dy - F.log_softmax_t(x, tau) * dy.sum(-1, keepdims=True)))


def _lsm_plus(m, r, c):
    return any_close(m, "dx", _lsm_candidates(
        c, lambda x, dy, tau: dy + F.softmax_t(x, tau) * dy.sum(-1, keepdims=True)))


def _lsm_global_sum(m, r, c):
    return c.args["x"].ndim > 1 and any_close(m, "dx", _lsm_candidates(
        c, lambda x, dy, tau: dy - F.softmax_t(x, tau) * dy.sum()))


def _sm_global_sum(m, r, c):
    x, dp, tau = c.args["x"], c.args["dp"], c.args["tau"]
    p = F.softmax_t(x, tau)  # (N, V)
    g = p * (dp - (dp * p).sum())  # (N, V)
    return x.ndim > 1 and any_close(m, "dx", (g / tau, g))


_GLOBAL_SUM = ("The sum in the backward is PER ROW: {s} over the last axis, with keepdims=True "
               "(sum(axis=-1, keepdims=True)); a sum over the whole array mixes rows that the "
               "forward keeps apart.")

# ----------------------------------------------------------------------------------- attention


def _attn_with(a, ds, swap=False):
    s = 1.0 / math.sqrt(a["q"].shape[-1])
    if swap:  # dq from q and dk from k
        return ds @ a["q"] * s, ds.swapaxes(-1, -2) @ a["k"] * s  # (B, NH, T, HS) each
    return ds @ a["k"] * s, ds.swapaxes(-1, -2) @ a["q"] * s  # (B, NH, T, HS) each


def _attn_diag(m, r, c):
    """dscores = probs * (1 - probs) * dprobs: the softmax Jacobian's diagonal only."""
    a, probs = c.args, c.args["probs"]
    dprobs = a["dout"] @ a["v"].swapaxes(-1, -2)  # (B, NH, T, T)
    dq, dk = _attn_with(a, probs * (1.0 - probs) * dprobs)
    return (close(m["dq"], dq) or close(m["dk"], dk)) and not close(m["dq"], r["dq"])


def _attn_qk_swapped(m, r, c):
    a = c.args
    dprobs = a["dout"] @ a["v"].swapaxes(-1, -2)  # (B, NH, T, T)
    ds = a["probs"] * (dprobs - (dprobs * a["probs"]).sum(-1, keepdims=True))  # (B, NH, T, T)
    dq, dk = _attn_with(a, ds, swap=True)
    return (close(m["dq"], dq) or close(m["dk"], dk)) and not close(m["dq"], r["dq"])


def _attn_times_sqrt(m, r, c):
    hs = c.args["q"].shape[-1]
    return close(m["dq"], r["dq"] * hs) or close(m["dk"], r["dk"] * hs)


# ----------------------------------------------------------------------------------- tied embedding


def _emb_decoder_mean(m, r, c):
    out_use = PS._emb_parts(c)[0]  # (V, C) the projection's part
    return close(m["dweight"], r["dweight"] - out_use + out_use / c.args["ids"].size)


# ----------------------------------------------------------------------------------- KL, CE, cosine


def _kl_no_tau_anywhere(m, r, c):
    """Both softmaxes computed without the temperature (with or without the factor tau)."""
    a = c.args
    P = a["s_logits"].shape[0]
    d = F.softmax_t(a["s_logits"]) - F.softmax_t(a["t_logits"])  # (P, V)
    return any_close(m, "ds_logits", tuple(a["dloss"] * k * d / P for k in (a["tau"], a["tau"] ** 2, 1.0)))


def _ce_log_probs(m, r, c):
    a = c.args
    y = a["labels"]
    keep = y != F.IGNORE_INDEX  # (B, T)
    onehot = np.zeros_like(a["logits"])  # (B, T, V)
    onehot[np.nonzero(keep) + (y[keep],)] = 1.0
    g = (F.log_softmax_t(a["logits"]) - onehot) * keep[..., None] / keep.sum()  # (B, T, V)
    return close(m["dlogits"], a["dloss"] * g)


# ----------------------------------------------------------------------------------- triple loss


def _triple_cos_sign(m, r, c):
    (dce, dmlm, dcos), al = triple_parts(c.args), c.args["alphas"]
    return close(m["dh"], al[0] * dce + al[1] * dmlm - al[2] * dcos)


def _triple_upstream_partial(m, r, c):
    """dloss multiplies some of the three terms only (the parts carry dloss; divide it out)."""
    parts, al, d = triple_parts(c.args), c.args["alphas"], c.args["dloss"]
    for carried in ((0,), (1,), (2,), (0, 1), (0, 2), (1, 2)):
        g = sum(al[i] * parts[i] * (1.0 if i in carried else 1.0 / d) for i in range(3))
        if close(m["dh"], g):
            return True
    return False


def _triple_dh_weight(e, c):
    """The exception ``dlogits @ weight.T`` raises: dlogits (P, V), weight.T (C, V)."""
    P, V = c.args["h"].shape[0], c.args["weight"].shape[0]
    return raises_like(e, lambda: np.zeros((P, V)) @ c.args["weight"].T)


# ----------------------------------------------------------------------------------- encoder block


def _block_variant_ln_novar(m, r, c):
    a = c.args
    return any(close(m["dx"], block_backward_ln(a, which)) for which in ("both", "ln1", "ln2"))


def block_backward_ln(a, which):
    """The block's dx with LayerNorm's variance term dropped in LN1, LN2 or both."""
    def ln_novar(d, x, gamma, eps):
        mean = x.mean(-1, keepdims=True)  # (B, T, 1)
        rstd = 1.0 / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps)  # (B, T, 1)
        g = d * gamma  # (B, T, C)
        return (rstd * (g - g.mean(-1, keepdims=True)),)
    ln1 = ln_novar if which in ("both", "ln1") else S.layernorm_backward
    ln2 = ln_novar if which in ("both", "ln2") else S.layernorm_backward
    return PA.block_backward_variant(a["dy"], a["x"], a["mask"], a["p"], a["num_heads"], a["eps"],
                                     ln1_backward=ln1, ln2_backward=ln2)


# ----------------------------------------------------------------------------------- after set 5


def _gelu_dy_partial(m, r, c):
    """dy multiplies one of the two terms only (dy * Phi + x * phi, or Phi + dy * x * phi)."""
    x, dy = c.args["x"], c.args["dy"]
    cdf, xpdf = PL.phi_cdf(x), x * PL._phi(x)  # (...) each
    return any_close(m, "dx", (dy * cdf + xpdf, cdf + dy * xpdf))


def _gelu_at_output(m, r, c):
    x = c.args["x"]
    return close(m["dx"], S.gelu_backward(c.args["dy"], F.gelu(x)))


def _attn_scale_seq(m, r, c):
    """1/sqrt(T) (the sequence length, q.shape[-2]) where the scale is 1/sqrt(HS)."""
    T, hs = c.args["q"].shape[-2], c.args["q"].shape[-1]
    f = math.sqrt(hs / T)
    return T != hs and (close(m["dq"], r["dq"] * f) or close(m["dk"], r["dk"] * f))


def _emb_doubled(m, r, c):
    out_use, lookup = PS._emb_parts(c)[:2]
    return any_close(m, "dweight", (2.0 * out_use, 2.0 * lookup))


def _emb_loop_overwrite(m, r, c):
    """A loop over the batch with dW = ... instead of +=: only the last sequence's projection part."""
    a = c.args
    w, ids, d = a["weight"], a["ids"], a["dlogits"]
    if ids.shape[0] < 2:
        return False
    lookup = PS._emb_parts(c)[1]  # (V, C)
    last = d[-1].T @ w[ids[-1]]  # (V, C)
    return any_close(m, "dweight", (last + lookup, last))


def _emb_add_at_shape(e, c):
    w, ids = c.args["weight"], c.args["ids"]
    return raises_like(e, lambda: np.add.at(np.zeros_like(w), ids.reshape(-1),
                                            np.zeros(ids.shape + (w.shape[1],))))


def _kl_diag_jacobian(m, r, c):
    a = c.args
    P, tau = a["s_logits"].shape[0], a["tau"]
    p, q = F.softmax_t(a["s_logits"], tau), F.softmax_t(a["t_logits"], tau)  # (P, V) each
    g = -q * (1.0 - p) / P  # (P, V): -q/p times the diagonal p (1 - p) only
    return any_close(m, "ds_logits", tuple(a["dloss"] * k * g for k in (tau, tau * tau, 1.0)))


def _ce_onehot(a, probs, pairs=True):
    y, keep = a["labels"], a["labels"] != F.IGNORE_INDEX  # (B, T) each
    g = probs.reshape(-1, probs.shape[-1]).copy()  # (N, V)
    yf, kf = y.reshape(-1), keep.reshape(-1)  # (N,) each
    if pairs:
        g[np.nonzero(kf)[0], yf[kf]] -= 1.0
    else:  # g[:, y] -= 1: the label columns of every row
        g[:, yf[kf]] -= 1.0
    g[~kf] = 0.0
    return a["dloss"] * g.reshape(probs.shape) / kf.sum()  # (B, T, V)


def _ce_softmax_axis(m, r, c):
    a = c.args
    return any(close(m["dlogits"], _ce_onehot(a, np.exp(z - np.log(np.exp(z).sum(ax, keepdims=True)))))
               for z in (a["logits"] - a["logits"].max(),) for ax in range(a["logits"].ndim - 1))


def _ce_onehot_columns(m, r, c):
    return close(m["dlogits"], _ce_onehot(c.args, F.softmax_t(c.args["logits"]), pairs=False))


def _cos_unit_vectors(m, r, c):
    s = c.args["s_h"]
    return close(m["ds_h"], r["ds_h"] * np.sqrt((s * s).sum(-1, keepdims=True)))


def _triple_mlm_tau(m, r, c):
    a = c.args
    logits = a["h"] @ a["weight"].T  # (P, V)
    tempered = S.cross_entropy_backward(1.0, logits / a["tau"], a["labels"])  # (P, V)
    plain = S.cross_entropy_backward(1.0, logits, a["labels"])  # (P, V)
    extra = a["dloss"] * a["alphas"][1] * (tempered - plain) @ a["weight"]  # (P, C)
    return any_close(m, "dh", (r["dh"] + extra, r["dh"] + extra / a["tau"]))


MORE = {
    "gelu": [Mistake(
        "gelu_erf_sqrt2",
        "Phi(x) = 0.5 (1 + erf(x / sqrt 2)): the erf's argument is x / sqrt(2). With erf(x) you "
        "get another curve (the cdf of a normal of variance 1/2), and its derivative "
        "exp(-x**2) / sqrt(pi) is not phi(x) = exp(-x**2 / 2) / sqrt(2 pi).",
        _gelu_erf_sqrt2),
        Mistake("gelu_upstream_partial",
                "dy multiplies the WHOLE derivative: dx = dy * (Phi(x) + x * phi(x)). Check the "
                "parentheses: dy * Phi + x * phi leaves the second term without dy.",
                _gelu_dy_partial),
        Mistake("gelu_at_output",
                "gelu'(.) is evaluated at the INPUT x: dx = dy * (Phi(x) + x * phi(x)), not at the "
                "forward's output gelu(x).",
                _gelu_at_output)],
    "layernorm": [Mistake(
        "layernorm_rstd_power",
        "The variance term has rstd to the wrong power. rstd = (var + eps)**-0.5, so d rstd / dx_j "
        "= -(rstd**2 / C) * xhat_j, not -(rstd / C) * xhat_j; with it, "
        "dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma.",
        _ln_rstd_power)],
    "softmax_t": [Mistake("softmax_global_sum", _GLOBAL_SUM.format(s="sum(dp * p)"), _sm_global_sum)],
    "log_softmax_t": [
        Mistake("log_softmax_used_logp",
                "The correction term needs the PROBABILITIES p = softmax(x / τ) = exp(y), not the "
                "log-probabilities y the forward returns: dx = (dy - p * sum(dy)) / τ.",
                _lsm_uses_logp),
        Mistake("log_softmax_sign",
                "Sign of the correction term: d log p_i / d z_j = delta_ij - p_j, so "
                "dx = (dy - p * sum(dy)) / τ, with a MINUS.",
                _lsm_plus),
        Mistake("log_softmax_global_sum", _GLOBAL_SUM.format(s="sum(dy)"), _lsm_global_sum),
    ],
    "attention": [
        Mistake("attention_softmax_jacobian",
                "The softmax Jacobian is not diagonal: every probability of a row depends on every "
                "score of that row, so dscores = probs * (dprobs - sum(dprobs * probs, -1)), not "
                "probs * (1 - probs) * dprobs.",
                _attn_diag),
        Mistake("attention_qk_swapped",
                "scores = q k^T / sqrt(HS): the gradient for q goes through k and the one for k "
                "through q. dq = dscores @ k / sqrt(HS), dk = dscores^T @ q / sqrt(HS); you used "
                "q for dq (or k for dk).",
                _attn_qk_swapped),
        Mistake("attention_scale_inverted",
                "scores = q k^T / sqrt(HS) DIVIDES by sqrt(HS): dq and dk are divided by sqrt(HS) "
                "too; you multiplied.",
                _attn_times_sqrt),
        Mistake("attention_scale_size",
                "The scale is 1/sqrt(HS), HS = q.shape[-1] the head size; q.shape[-2] is the "
                "sequence length T.",
                _attn_scale_seq),
    ],
    "embedding_tied": [Mistake(
        "embedding_decoder_mean",
        "The projection's part of dweight is a SUM over the B*T positions, dlogits^T @ h, like "
        "any linear layer's weight gradient: the forward adds nothing up that needs a mean.",
        _emb_decoder_mean),
        Mistake("embedding_doubled",
                "The two uses of the tied matrix give two DIFFERENT gradients: the projection's "
                "dlogits^T @ h and the lookup's (dh added at the rows ids). dW is their sum, not "
                "twice one of them.",
                _emb_doubled),
        Mistake("loop_overwrite",
                "In a loop over the batch, ACCUMULATE: dW += dlogits[b].T @ h[b]; with dW = ... "
                "only the last sequence's contribution is left.",
                _emb_loop_overwrite),
        Mistake("embedding_add_at_shape",
                "np.add.at(dW, ids.reshape(-1), dh) pairs each flattened id with one row of dh: "
                "flatten dh too, dh.reshape(-1, C).",
                None, _emb_add_at_shape)],
    "kl_soft_target": [Mistake(
        "kl_softmaxes_without_tau",
        "Both softmaxes are taken at the temperature: p = softmax(s / τ) and q = softmax(t / τ); "
        "you used softmax(s) and softmax(t). The gradient is (τ / P) (p - q).",
        _kl_no_tau_anywhere),
        Mistake("kl_softmax_jacobian",
                "The softmax Jacobian is not diagonal: going through dL/dp = -q/p and only "
                "p (1 - p) loses the other entries. Through the full softmax (with sum q = 1) the "
                "gradient is simply (τ / P) (p - q).",
                _kl_diag_jacobian)],
    "cross_entropy": [Mistake(
        "ce_log_probs",
        "The gradient of -log softmax(z)[y] with respect to z is softmax(z) - onehot(y): the "
        "PROBABILITIES, not the log-probabilities.",
        _ce_log_probs),
        Mistake("ce_softmax_axis",
                "The softmax runs over the VOCABULARY, the last axis (each position's V logits), "
                "not over the batch or the sequence.",
                _ce_softmax_axis),
        Mistake("ce_onehot_columns",
                "Subtract the one-hot at each row's OWN label: g[rows, y] -= 1 with a row index "
                "beside each label (np.arange(N)); g[:, y] hits the label columns of every row.",
                _ce_onehot_columns)],
    "triple_loss": [
        Mistake("triple_cos_sign",
                "Lcos = mean(1 - cos): its gradient at h is MINUS d cos/dh; the Lcos part of your "
                "dh has the wrong sign.",
                _triple_cos_sign),
        Mistake("triple_upstream_partial",
                "The upstream dloss multiplies the WHOLE loss, so all three terms: "
                "dh = dloss * (a_ce dLce + a_mlm dLmlm + a_cos dLcos). Some of yours miss it.",
                _triple_upstream_partial),
        Mistake("triple_mlm_temperature",
                "Lmlm is the cross-entropy with the labels at temperature 1: softmax(logits), not "
                "softmax(logits / τ). The temperature belongs to Lce only.",
                _triple_mlm_tau),
        Mistake("triple_projection_weight",
                "Back through logits = h @ W.T with W (V, C): dh = dlogits @ W, (P, V) @ (V, C). "
                "dlogits @ W.T does not fit.",
                None, _triple_dh_weight),
    ],
    "cosine": [Mistake(
        "cosine_unit_vectors",
        "d cos/ds = t / (|s| |t|) - cos * s / |s|**2: that is the unit-vector formula "
        "t/|t| - cos * s/|s| divided by |s|; the 1/|s| is missing.",
        _cos_unit_vectors)],
    "encoder_block": [
        Mistake("block_gelu_tanh",
                "The FFN's GELU backward uses the tanh approximation's derivative; the block's "
                "GELU is the exact erf one, gelu'(u) = Phi(u) + u * phi(u) (the gelu exercise).",
                PA._variant(gelu="tanh")),
        Mistake("block_gelu_at_output",
                "The FFN's GELU derivative is taken at its INPUT u = ff1(h), not at its output "
                "gelu(u): du = dgu * gelu'(u).",
                PA._variant(gelu="at_output")),
        Mistake("block_ln_variance",
                "A LayerNorm backward in the block drops the variance term: dx = rstd * (g - "
                "mean(g) - xhat * mean(g * xhat)), g = dy * gamma (the layernorm exercise).",
                _block_variant_ln_novar),
    ],
}
