"""Classic mistakes that the blind outside sets 13 and 14 found unnamed, and their kin.

Legend: N rows, B batch, T sequence, C hidden, V vocabulary, P selected positions, HS head
size; tau the temperature.

LayerNorm's mean term written as a sum; the softmax's row sum written as a mean; the
log-softmax backward read as dy / p, or with p inside the row sum; dk from dscores^T @ k; the KL
gradient divided by V instead of P, or with only its -q part; the hidden MSE's dweight from one
batch row only.

A test may return a string, the hint made sharper for the answer (which factor, which part).
"""
from __future__ import annotations

import math

import numpy as np

from . import forwards as F
from . import problems_attention as PA
from . import problems_layers as PL
from .base import any_close, close, Mistake


def _taus(x, tau):
    """x as written with /tau, without it, or with *tau (the three a learner writes)."""
    return (x / tau, x, x * tau)


def _ln_mean_as_sum(m, r, c):
    dy, gamma, rstd, xhat = PL.ln_parts(c)
    g = dy * gamma  # (N, C)
    var = xhat * (g * xhat).mean(-1, keepdims=True)  # (N, C)
    if g.shape[-1] == 1:
        return False
    return close(m["dx"], rstd * (g - g.sum(-1, keepdims=True) - var))


def _softmax_mean(m, r, c):
    a = c.args
    p = F.softmax_t(a["x"], a["tau"])  # (N, V)
    core = p * (a["dp"] - (a["dp"] * p).mean(-1, keepdims=True))  # (N, V)
    return any_close(m, "dx", _taus(core, a["tau"]))


def _lsm_over_p(m, r, c):
    a = c.args
    p = F.softmax_t(a["x"], a["tau"])  # (N, V)
    return any_close(m, "dx", _taus(a["dy"] / p, a["tau"]))


def _lsm_p_in_sum(m, r, c):
    a = c.args
    p = F.softmax_t(a["x"], a["tau"])  # (N, V)
    core = a["dy"] - (p * a["dy"]).sum(-1, keepdims=True)  # (N, V)
    return any_close(m, "dx", _taus(core, a["tau"]))


def _attn_dk_from_k(m, r, c):
    a = c.args
    ds = PA._dscores(a, a["probs"])  # (B, NH, T, T)
    s = 1.0 / math.sqrt(a["q"].shape[-1])
    dsT = ds.swapaxes(-1, -2)
    return (any_close(m, "dk", (dsT @ a["k"] * s, dsT @ a["k"], ds @ a["k"] * s))
            and not close(m["dk"], r["dk"])
            and not close(m["dq"], ds @ a["q"] * s))  # q for dq too: attention_qk_swapped


def _kl_over_V(m, r, c):
    P, V = c.args["s_logits"].shape
    return P != V and close(m["ds_logits"], r["ds_logits"] * P / V)


def _kl_only_q(m, r, c):
    a = c.args
    q = F.softmax_t(a["t_logits"], a["tau"])  # (P, V)
    g = -a["dloss"] * q / a["s_logits"].shape[0]  # (P, V)
    return any_close(m, "ds_logits", (g * a["tau"], g, g * a["tau"] ** 2))


def _mse_one_batch_row(m, r, c):
    a = c.args
    s_h, B = a["s_h"], a["s_h"].shape[0]
    if B < 2:
        return False
    de = 2.0 * a["dloss"] * (s_h @ a["weight"].T - a["t_h"]) / a["t_h"].size  # (B, T, CT)
    for b in (0, B - 1):
        if close(m["dweight"], de[b].T @ s_h[b]):
            return ("dweight = de^T @ s_h sums over EVERY position of every sequence: flatten the "
                    "batch and sequence axes, de.reshape(-1, CT).T @ s_h.reshape(-1, CS) (or "
                    f"np.einsum('btk,btj->kj', de, s_h)). Yours uses batch row {b} only.")
    return False


MORE = {
    "layernorm": [Mistake("layernorm_mean_as_sum",
                          "The mean term of dx is mean(g) = g.mean(-1) with g = dy * gamma: "
                          "dx = rstd * (g - mean(g) - xhat * mean(g * xhat)). Yours subtracts "
                          "sum(g), C times too much (the 1/C of the mean's derivative is lost).",
                          _ln_mean_as_sum)],
    "softmax_t": [Mistake("softmax_mean_for_sum",
                          "The softmax backward's inner term is a SUM over the row: dx = p * (dp - "
                          "sum(dp * p, axis=-1, keepdims=True)) / tau. Yours takes the mean.",
                          _softmax_mean)],
    "log_softmax_t": [
        Mistake("log_softmax_over_p",
                "d log(p)/dp = 1/p is the derivative with respect to p, not to x: through the "
                "softmax, dx = (dy - p * sum(dy, axis=-1, keepdims=True)) / tau. Yours is dy / p.",
                _lsm_over_p),
        Mistake("log_softmax_p_in_sum",
                "log p_i = x_i/tau - logsumexp(x/tau), so dx = (dy - p * sum(dy, axis=-1, "
                "keepdims=True)) / tau: p multiplies the row sum of dy from OUTSIDE. Yours puts p "
                "inside the sum, sum(p * dy).",
                _lsm_p_in_sum),
    ],
    "attention": [Mistake("attention_dk_uses_k",
                          "scores = q k^T / sqrt(HS), so dk = dscores^T @ q / sqrt(HS): the keys' "
                          "gradient multiplies the QUERIES. Yours multiplies k itself.",
                          _attn_dk_from_k)],
    "kl_soft_target": [
        Mistake("kl_divided_by_V",
                "The loss is a mean over the P = s_logits.shape[0] positions (rows), so divide "
                "by P; yours divides by V = s_logits.shape[-1], the vocabulary.",
                _kl_over_V),
        Mistake("kl_only_q_term",
                "KL(q || p) = sum q log q - sum q log p; the gradient of -sum q log p through "
                "log_softmax is -q + p * sum(q) = p - q (sum(q) = 1), so ds = dloss * tau * (p - q) "
                "/ P. Yours is only the -q part: the p * sum(q) term of the log-softmax backward is "
                "missing.",
                _kl_only_q),
    ],
    "hidden_mse": [Mistake("mse_dweight_one_row",
                           "dweight sums over every position of the batch.", _mse_one_batch_row)],
}
