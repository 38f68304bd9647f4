"""The long tail: classic mistakes that the later blind outside sets (7 and 8) found unnamed.

Legend: N rows, B batch, T sequence, C hidden, F feed-forward, V vocabulary, P selected
positions, CS/CT student/teacher width; tau the temperature.

Staged LayerNorm derivations with one stage's factor wrong, ``reshape`` used for a transpose,
a softmax normalised over the wrong set, the one-hot subtracted after the division, a
Jacobian loop that assigns, a pre-LN backward for a post-LN block, and their kin.
"""
from __future__ import annotations

import numpy as np

from .. import gradcheck
from . import forwards as F
from . import problems_attention as PA
from . import problems_layers as PL
from . import problems_losses as PS
from . import problems_more as PM
from . import solutions as S
from .base import Mistake, any_close, close

# ----------------------------------------------------------------------------------- GELU


def _gelu_no_half(m, r, c):
    x, dy = c.args["x"], c.args["dy"]
    # 1 + erf(x / sqrt 2) = 2 Phi(x); the whole derivative doubled is scale_2
    return close(m["dx"], dy * (2.0 * PL.phi_cdf(x) + x * PL._phi(x)))


# ----------------------------------------------------------------------------------- LayerNorm


def _ln_var_term_factor(m, r, c):
    """The staged derivation with the variance stage's factor wrong: the var term times 1/2
    (the 2 of d var/dx dropped), 2 (the 1/2 of d rstd/d var dropped), or 1/rstd^2 (the power
    -1/2 for -3/2)."""
    rstd = PL.ln_parts(c)[2]  # (N, 1)
    return any_close(m, "dx", PL.ln_var_term_scaled(c, (0.5, 2.0, rstd ** -2)))


def _ln_no_sqrt(m, r, c):
    """rstd = 1 / (var + eps), without the square root, in the whole backward."""
    x, dy, gamma = c.args["x"], c.args["dy"], c.args["gamma"]
    mu = x.mean(-1, keepdims=True)  # (N, 1)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)  # (N, 1)
    rs = 1.0 / (var + c.args["eps"])  # (N, 1) the wrong rstd
    xh = (x - mu) * rs  # (N, C)
    g = dy * gamma  # (N, C)
    dx = rs * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))  # (N, C)
    return close(m["dx"], dx) or close(m["dgamma"], (dy * xh).sum(axis=tuple(range(x.ndim - 1))))


# ----------------------------------------------------------------------------------- (log-)softmax


def _sm_loop_assign(m, r, c):
    """dx[j] = J[i, j] * dp[i] in a loop over i (= for +=): the last i's term only."""
    x, dp, tau = c.args["x"], c.args["dp"], c.args["tau"]
    p = F.softmax_t(x, tau)  # (N, V)
    last = p[..., -1:] * ((np.arange(p.shape[-1]) == p.shape[-1] - 1) - p) * dp[..., -1:] / tau  # (N, V)
    rows = r["dx"].reshape(-1, r["dx"].shape[-1])  # (N, V)
    last_row = np.broadcast_to(rows[-1], rows.shape).reshape(r["dx"].shape)  # dx = ... per row: the last row's
    return rows.shape[0] > 1 and any_close(m, "dx", (last, last_row)) or close(m["dx"], last)


def _lsm_mean_for_sum(m, r, c):
    x, dy, tau = c.args["x"], c.args["dy"], c.args["tau"]
    g = dy - F.softmax_t(x, tau) * dy.mean(-1, keepdims=True)  # (N, V)
    return any_close(m, "dx", (g / tau, g))


def _lsm_no_p(m, r, c):
    x, dy, tau = c.args["x"], c.args["dy"], c.args["tau"]
    g = dy - dy.sum(-1, keepdims=True)  # (N, V)
    return any_close(m, "dx", (g / tau, g))


# ----------------------------------------------------------------------------------- tied embedding


def _emb_reshape_for_transpose(m, r, c):
    w, ids, d = c.args["weight"], c.args["ids"], c.args["dlogits"]
    V, C = w.shape
    lookup = PS._emb_parts(c)[1]  # (V, C) the lookup's part
    d2, h2 = d.reshape(-1, V), w[ids].reshape(-1, C)  # (B*T, V), (B*T, C)
    cands = (d2.reshape(V, -1) @ h2, (h2.T @ d2).reshape(V, C))  # (V, C) each: reshape, not .T
    return any_close(m, "dweight", tuple(g + lookup for g in cands) + cands)


def _emb_flatten_order(m, r, c):
    w, ids, d = c.args["weight"], c.args["ids"], c.args["dlogits"]
    V, C = w.shape
    if ids.shape[0] < 2 or ids.shape[1] < 2:
        return False
    lookup = PS._emb_parts(c)[1]  # (V, C) the lookup's part
    out_wrong = d.reshape(-1, V).T @ w[ids.T].reshape(-1, C)  # (V, C): rows of h out of order
    return any_close(m, "dweight", (out_wrong + lookup, out_wrong))


# ----------------------------------------------------------------------------------- KL, CE


def _kl_wrt_probs(m, r, c):
    a = c.args
    P, tau = a["s_logits"].shape[0], a["tau"]
    g = -F.softmax_t(a["t_logits"], tau) / F.softmax_t(a["s_logits"], tau) / P  # (P, V)
    return any_close(m, "ds_logits", tuple(a["dloss"] * k * g for k in (tau, tau * tau, 1.0)))


def _softmax_cols(z):
    e = np.exp(z - z.max(axis=0, keepdims=True))  # (P, V): a per-column max
    return e / e.sum(-1, keepdims=True)


def _softmax_all(z):
    e = np.exp(z - z.max())  # (..., V)
    return e / e.sum()  # the whole array's sum


def _kl_normalisation(m, r, c):
    a = c.args
    P, tau = a["s_logits"].shape[0], a["tau"]
    right = F.softmax_t
    cands = [a["dloss"] * tau * (ss(a["s_logits"] / tau) - st(a["t_logits"] / tau)) / P
             for ss, st in ((_softmax_cols, _softmax_cols), (_softmax_cols, right), (right, _softmax_cols),
                            (_softmax_all, _softmax_all), (_softmax_all, right), (right, _softmax_all))]
    return any_close(m, "ds_logits", cands)


def _ce_normalisation(m, r, c):
    return close(m["dlogits"], PM._ce_onehot(c.args, _softmax_all(c.args["logits"])))


def _ce_onehot_unscaled(m, r, c):
    a = c.args
    y, keep = a["labels"], a["labels"] != F.IGNORE_INDEX  # (B, T) each
    n = keep.sum()
    g = F.softmax_t(a["logits"]) / n  # (B, T, V)
    g[np.nonzero(keep) + (y[keep],)] -= 1.0
    g[~keep] = 0.0
    return any_close(m, "dlogits", (a["dloss"] * g, g))


# ----------------------------------------------------------------------------------- triple, MSE


def _lce_dlogits(a, s_tau=True, t_tau=True):
    h, w = a["h"], a["weight"]
    logits = h @ w.T  # (P, V)
    P, tau = h.shape[0], a["tau"]
    p = F.softmax_t(logits, tau if s_tau else 1.0)  # (P, V)
    q = F.softmax_t(a["t_logits"], tau if t_tau else 1.0)  # (P, V)
    return a["dloss"] * tau * (p - q) / P  # (P, V) the Lce part of dlogits


def _triple_lce_without_tau(m, r, c):
    a = c.args
    right = _lce_dlogits(a)  # (P, V)
    w, al = a["weight"], a["alphas"]
    cands = [r["dh"] + al[0] * (_lce_dlogits(a, s, t) - right) @ w
             for s, t in ((True, False), (False, True), (False, False))]
    return any_close(m, "dh", cands)


def _triple_cos_over_labelled(m, r, c):
    a = c.args
    keep = np.asarray(a["labels"]) != F.IGNORE_INDEX  # (P,)
    n, P = int(keep.sum()), keep.size
    if n in (0, P):
        return False
    every = np.ones((1, P), dtype=np.int64)  # (1, P)
    dcos = a["dloss"] * S.cosine_backward(1.0, a["h"][None], a["t_h"][None], every)[0]  # (P, C)
    return close(m["dh"], r["dh"] + a["alphas"][2] * dcos * (P / n - 1.0))


def _mse_reshape_for_transpose(m, r, c):
    a = c.args
    e = a["s_h"] @ a["weight"].T - a["t_h"]  # (B, T, CT)
    de = a["dloss"] * 2.0 * e / e.size  # (B, T, CT)
    CT, CS = a["weight"].shape
    return close(m["dweight"], de.reshape(CT, -1) @ a["s_h"].reshape(-1, CS))


def _lin_reshape_for_transpose(m, r, c):
    dy, x = c.args["dy"], c.args["x"]
    return close(m["dweight"], dy.reshape(dy.shape[1], -1) @ x) and not close(r["dweight"], m["dweight"])


_RESHAPE = ("reshape is not a transpose: X.reshape(k, -1) keeps the memory order and only cuts it "
            "into new rows. The product needs the TRANSPOSE of the (positions, k) matrix: "
            "X.reshape(-1, k).T @ ...")

# ----------------------------------------------------------------------------------- encoder block


def _pre_ln_block(x, mask, p, nh, eps):
    """The PRE-LN block h = x + Attn(LN1(x)), y = h + FFN(LN2(h)) (not the exercise's)."""
    n1 = F.layernorm(x, p["ln1.weight"], p["ln1.bias"], eps)  # (B, T, C)
    q, k, v = (F.split_heads(F.linear(n1, p[f"{s}.weight"], p[f"{s}.bias"]), nh) for s in "qkv")
    ctx, _ = F.attention(q, k, v, mask)  # (B, NH, T, HS)
    h = x + F.linear(F.merge_heads(ctx), p["o.weight"], p["o.bias"])  # (B, T, C)
    n2 = F.layernorm(h, p["ln2.weight"], p["ln2.bias"], eps)  # (B, T, C)
    return h + F.linear(F.gelu(F.linear(n2, p["ff1.weight"], p["ff1.bias"])), p["ff2.weight"], p["ff2.bias"])


def _block_pre_ln(m, r, c):
    """dx is the gradient of the pre-LN block: the learner wrote the other architecture."""
    a = c.args
    x = a["x"].copy()  # (B, T, C) differenced in place
    f = lambda: float(np.sum(_pre_ln_block(x, a["mask"], a["p"], a["num_heads"], a["eps"]) * a["dy"]))
    want = gradcheck.numerical_grad(f, x)  # (B, T, C)
    mine = np.asarray(m["dx"], dtype=np.float64)
    return mine.shape == want.shape and bool(np.allclose(mine, want, rtol=1e-5, atol=1e-7))


def _block_ff2_preact(m, r, c):
    a = c.args
    q, k, v, probs, ctx2, r1, h, u, gu, r2 = S.encoder_block_cache(a["x"], a["mask"], a["p"], a["num_heads"], a["eps"])
    dr2 = S.layernorm_backward(a["dy"], r2, a["p"]["ln2.weight"], a["eps"])[0]  # (B, T, C)
    C, Fd = dr2.shape[-1], u.shape[-1]
    wrong = dr2.reshape(-1, C).T @ u.reshape(-1, Fd)  # (C, F) from the pre-activation
    return close(m["d[ff2.weight]"], wrong)


MORE = {
    "gelu": [Mistake("gelu_cdf_half",
                     "Phi(x) = 0.5 (1 + erf(x / sqrt 2)): the 0.5 is part of Phi; yours is 1 + erf(...).",
                     _gelu_no_half)],
    "layernorm": [
        Mistake("layernorm_variance_stage",
                "The variance stage has the wrong factor. rstd = (var + eps)**-0.5, so "
                "d rstd / d var = -0.5 (var + eps)**-1.5 = -0.5 rstd**3, and d var / dx_j = "
                "2 (x_j - mu) / C; together the term is -rstd * xhat * mean(g * xhat).",
                _ln_var_term_factor),
        Mistake("layernorm_rstd_sqrt",
                "rstd = 1 / sqrt(var + eps): the square root is missing (1 / (var + eps) is the "
                "inverse variance, not the inverse standard deviation).",
                _ln_no_sqrt),
    ],
    "softmax_t": [Mistake("loop_overwrite",
                          "In the Jacobian loop, ACCUMULATE over i: dx[j] += J[i, j] * dp[i]; with "
                          "dx[j] = ... only the last i's term is left.",
                          _sm_loop_assign)],
    "log_softmax_t": [
        Mistake("log_softmax_mean_for_sum",
                "d log p_i / d z_j = delta_ij - p_j, so the correction is p * SUM(dy) over the row, "
                "not its mean.",
                _lsm_mean_for_sum),
        Mistake("log_softmax_no_p",
                "The correction term is p * sum(dy), with the probabilities p = softmax(x / τ): "
                "dx = (dy - p * sum(dy)) / τ; you subtracted sum(dy) itself.",
                _lsm_no_p),
    ],
    "embedding_tied": [
        Mistake("reshape_for_transpose", _RESHAPE, _emb_reshape_for_transpose),
        Mistake("embedding_flatten_order",
                "Flatten ids, h and dlogits in the SAME order: weight[ids.T] (or a transposed "
                "reshape) pairs each position's h with another position's dlogits.",
                _emb_flatten_order),
    ],
    "kl_soft_target": [
        Mistake("kl_wrt_probs",
                "That is the gradient with respect to the probabilities p (-q / p); the logits are "
                "one softmax further back, and through it the gradient is (τ / P) (p - q).",
                _kl_wrt_probs),
        Mistake("softmax_normalisation",
                "Each row's softmax is shifted by its OWN max and divided by its OWN sum: "
                "z - z.max(axis=-1, keepdims=True), e / e.sum(axis=-1, keepdims=True). A per-column "
                "max or one sum over the whole array changes the probabilities.",
                _kl_normalisation),
    ],
    "cross_entropy": [
        Mistake("softmax_normalisation",
                "Each row's softmax is divided by its OWN sum, e / e.sum(axis=-1, keepdims=True); "
                "one sum over the whole array gives other probabilities.",
                _ce_normalisation),
        Mistake("ce_onehot_unscaled",
                "Divide the whole (softmax - onehot) by n: subtracting the one-hot AFTER dividing "
                "the softmax by n leaves the -1 n times too big.",
                _ce_onehot_unscaled),
    ],
    "triple_loss": [
        Mistake("triple_lce_without_tau",
                "In the Lce part both distributions are at the temperature: softmax(s / τ) and "
                "softmax(t / τ); one (or both) of yours is at τ = 1.",
                _triple_lce_without_tau),
        Mistake("triple_cos_count",
                "Lcos is a mean over EVERY one of the P rows here (its mask is all ones); you "
                "divided by the number of labelled rows.",
                _triple_cos_over_labelled),
    ],
    "hidden_mse": [Mistake("reshape_for_transpose", _RESHAPE, _mse_reshape_for_transpose)],
    "linear": [Mistake("reshape_for_transpose", _RESHAPE, _lin_reshape_for_transpose)],
    "encoder_block": [
        Mistake("block_pre_ln",
                "That is the backward of a PRE-LN block (h = x + Attn(LN1(x)), y = h + FFN(LN2(h))). "
                "This block is post-LN, as BERT: h = LN1(x + Attn(x)), y = LN2(h + FFN(h)); go back "
                "through LN2 first, then split into the residual and the FFN.",
                PA._any(PA._variant(ln_order="pre"), _block_pre_ln)),
        Mistake("block_ff2_input",
                "ff2's weight gradient pairs dr2 with ff2's INPUT, gelu(u): d[ff2.weight] = "
                "dr2^T @ gelu(u); you used the pre-activation u.",
                _block_ff2_preact),
    ],
}
