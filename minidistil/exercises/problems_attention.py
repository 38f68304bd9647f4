"""Exercises on attention: the attention core with padding, and the bonus post-LN encoder block.

Legend: B batch, T sequence, C hidden, NH heads, HS head size, F feed-forward.
For the block, the classic wrong backward passes (a residual forgotten, the LayerNorm taken
before the residual split, heads reshaped instead of transposed) are written out below as
variants of the reference, so that the checker can recognise them.
"""
from __future__ import annotations

import math

import numpy as np

from . import forwards as F
from . import solutions as S
from .base import BIAS_AXES_HINT, Case, Mistake, any_close, bias_partial_sum, close, padding_mask

# ----------------------------------------------------------------------------------- attention


def attention_cases(rng):
    cases = []
    for B, NH, T, HS, pads in ((2, 2, 4, 3, (0, 2)), (1, 1, 3, 2, (1,)), (2, 1, 5, 5, (1, 3))):
        q = rng.standard_normal((B, NH, T, HS))  # (B, NH, T, HS)
        k = rng.standard_normal((B, NH, T, HS))  # (B, NH, T, HS)
        v = rng.standard_normal((B, NH, T, HS))  # (B, NH, T, HS)
        mask = padding_mask(B, T, pads)  # (B, T)
        _, probs = F.attention(q, k, v, mask)  # (B, NH, T, T)
        dout = rng.standard_normal((B, NH, T, HS))  # (B, NH, T, HS)
        cases.append(Case(f"q{q.shape} pad{pads}",
                          {"dout": dout, "q": q, "k": k, "v": v, "probs": probs},
                          {"dq": q, "dk": k, "dv": v},
                          lambda q=q, k=k, v=v, m=mask, d=dout:
                          float(np.sum(F.attention(q, k, v, m)[0] * d)),
                          {"HS": HS, "B": B, "mask": mask}))
    return cases


def _dscores(a, probs):
    dprobs = a["dout"] @ a["v"].swapaxes(-1, -2)  # (B, NH, T, T)
    return probs * (dprobs - (dprobs * probs).sum(-1, keepdims=True))  # (B, NH, T, T)


def _attn_no_inner(m, r, c):
    a = c.args
    scale = 1.0 / math.sqrt(a["q"].shape[-1])
    dprobs = a["dout"] @ a["v"].swapaxes(-1, -2)  # (B, NH, T, T)
    dk_ok = " (your dk goes through it right: use its dscores for dq too)" \
        if close(m["dk"], r["dk"]) else ""
    bare = a["probs"] * dprobs  # (B, NH, T, T) no sum term
    if close(m["dq"], bare @ a["k"] * scale):
        both = close(m["dk"], bare.swapaxes(-1, -2) @ a["q"] * scale)
        return ("Back through the softmax: dscores = probs * (dprobs - sum(dprobs * probs, -1)). "
                f"Your {'dq and dk use' if both else 'dq uses'} probs * dprobs, without the sum "
                "term" + dk_ok + ".")
    if close(m["dq"], dprobs @ a["k"] * scale):
        return ("Your dq = dprobs @ k / sqrt(HS) skips the softmax backward: q reaches the loss "
                "through scores, so dq = dscores @ k / sqrt(HS) with dscores = probs * (dprobs - "
                "sum(dprobs * probs, -1))" + dk_ok + ".")
    return False


def _attn_dk_transposed(m, r, c):
    a = c.args
    ds = _dscores(a, a["probs"])  # (B, NH, T, T)
    sc = math.sqrt(a["q"].shape[-1])
    if not close(m["dk"], ds @ a["q"] / sc) or close(m["dk"], r["dk"]):
        return False
    if close(m["dq"], ds.swapaxes(-1, -2) @ a["k"] / sc) and not close(m["dq"], r["dq"]):
        return ("scores[i, j] = q_i . k_j: your transposes are swapped between dq and dk. "
                "dq = dscores @ k and dk = dscores^T @ q (the (T, T) matrix transposed for dk only), "
                "each / sqrt(HS).")
    return True


def _attn_unmasked(m, r, c):
    a = c.args
    _, probs = F.attention(a["q"], a["k"], a["v"], None)  # (B, NH, T, T) no padding bias
    g = S.attention_backward(a["dout"], a["q"], a["k"], a["v"], probs)
    return not close(probs, a["probs"]) and any(close(m[n], x) for n, x in zip(("dq", "dk", "dv"), g))


def _attn_from_dscores(a, ds):
    """dq, dk of the learner's dscores (the right 1/sqrt(HS) and transposes)."""
    s = 1.0 / math.sqrt(a["q"].shape[-1])
    return ds @ a["k"] * s, ds.swapaxes(-1, -2) @ a["q"] * s  # (B, NH, T, HS) each


def _attn_softmax_axis(m, r, c):
    a, probs = c.args, c.args["probs"]
    dprobs = a["dout"] @ a["v"].swapaxes(-1, -2)  # (B, NH, T, T)
    dq, dk = _attn_from_dscores(a, probs * (dprobs - (dprobs * probs).sum(-2, keepdims=True)))
    return close(m["dq"], dq) and not close(m["dq"], r["dq"])


def _attn_dprobs_transposed(m, r, c):
    a, probs = c.args, c.args["probs"]
    dprobs = (a["dout"] @ a["v"].swapaxes(-1, -2)).swapaxes(-1, -2)  # (B, NH, T, T) transposed
    dq, dk = _attn_from_dscores(a, probs * (dprobs - (dprobs * probs).sum(-1, keepdims=True)))
    return close(m["dq"], dq) and not close(m["dq"], r["dq"])


def _attn_scale(m, r, c):
    sq = math.sqrt(c.args["q"].shape[-1])
    bad = [g for g in ("dq", "dk") if close(m[g], r[g] * sq)]
    if not bad:
        return False
    which = " and ".join(bad) + (" lack" if len(bad) == 2 else " lacks")
    return (f"scores = q k^T / sqrt(HS): dq and dk carry the same 1/sqrt(HS) factor. Your {which} "
            "it.")


ATTENTION_MISTAKES = [
    Mistake("attention_softmax_axis",
            "The softmax runs over the KEYS (the last axis): in its backward, sum(dprobs * probs) "
            "is over axis -1, with keepdims, not over the queries (axis -2).",
            _attn_softmax_axis),
    Mistake("attention_dprobs_transposed",
            "dprobs = dout @ v^T is (T queries, T keys), like probs; yours is its transpose "
            "(check the einsum's output indices: bhqd,bhkd->bhqk).",
            _attn_dprobs_transposed),
    Mistake("attention_scale",
            "scores = q k^T / sqrt(HS): dq and dk carry the same 1/sqrt(HS) factor.",
            _attn_scale),
    Mistake("attention_softmax",
            "Back through the softmax: dscores = probs * (dprobs - sum(dprobs * probs, -1)).",
            _attn_no_inner),
    Mistake("attention_dk_transposed",
            "scores[i, j] = q_i . k_j: dk = dscores^T @ q (transpose the (T, T) matrix).",
            _attn_dk_transposed),
    Mistake("attention_dv_transposed",
            "out = probs @ v: dv = probs^T @ dout.",
            lambda m, r, c: close(m["dv"], c.args["probs"] @ c.args["dout"])
            and not close(m["dv"], r["dv"])),
    Mistake("attention_mask_dropped",
            "You recomputed the probabilities without the padding mask: padded keys then get "
            "weight, and gradient. Use the probs you were given (or add the mask's bias, the most "
            "negative finite float, to padded keys' scores before the softmax).",
            _attn_unmasked),
]
ATTENTION_SCALES = {"1/√HS": "the 1/sqrt(HS) is applied twice (dq, dk) or where it does not belong "
                             "(dv = probs^T @ dout has none).",
                    "−1": "the sign is flipped."}

# ----------------------------------------------------------------------------------- encoder block

BLOCK_KEYS = ("q.weight", "q.bias", "k.weight", "k.bias", "v.weight", "v.bias", "o.weight", "o.bias",
              "ln1.weight", "ln1.bias", "ff1.weight", "ff1.bias", "ff2.weight", "ff2.bias",
              "ln2.weight", "ln2.bias")


def block_params(rng, C, FF):
    p = {}
    for n in ("q", "k", "v", "o"):
        p[f"{n}.weight"] = rng.standard_normal((C, C)) * 0.4  # (C, C)
        p[f"{n}.bias"] = rng.standard_normal(C) * 0.1  # (C,)
    p["ff1.weight"] = rng.standard_normal((FF, C)) * 0.4  # (F, C)
    p["ff1.bias"] = rng.standard_normal(FF) * 0.1  # (F,)
    p["ff2.weight"] = rng.standard_normal((C, FF)) * 0.4  # (C, F)
    p["ff2.bias"] = rng.standard_normal(C) * 0.1  # (C,)
    for n in ("ln1", "ln2"):
        p[f"{n}.weight"] = 1.0 + 0.3 * rng.standard_normal(C)  # (C,)
        p[f"{n}.bias"] = 0.2 * rng.standard_normal(C)  # (C,)
    return p


def block_cases(rng):
    cases = []
    for B, T, C, NH, FF, pads in ((2, 3, 4, 2, 8, (0, 1)), (1, 4, 6, 3, 6, (2,))):
        x = rng.standard_normal((B, T, C))  # (B, T, C)
        p = block_params(rng, C, FF)
        mask = padding_mask(B, T, pads)  # (B, T)
        dy = rng.standard_normal((B, T, C))  # (B, T, C)
        targets = {"dx": x}
        targets.update({f"d[{k}]": p[k] for k in BLOCK_KEYS})
        cases.append(Case(f"x{x.shape} NH={NH} F={FF} pad{pads}",
                          {"dy": dy, "x": x, "mask": mask, "p": p, "num_heads": NH, "eps": 1e-12},
                          targets,
                          lambda x=x, m=mask, p=p, nh=NH, d=dy:
                          float(np.sum(F.encoder_block(x, m, p, nh) * d))))
    return cases


def block_unpack(out) -> dict:
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
        raise TypeError("encoder_block_backward must return (dx, grads_dict)")
    d = {"dx": out[0]}
    d.update({f"d[{k}]": g for k, g in out[1].items()})
    return d


def _split_reshape(x, nh):
    B, T, C = x.shape
    return x.reshape(B, nh, T, C // nh)  # (B, NH, T, HS) WRONG: heads mixed with positions


def _merge_reshape(x):
    B, NH, T, HS = x.shape
    return x.reshape(B, T, NH * HS)  # (B, T, C) WRONG


def block_backward_variant(dy, x, mask, p, num_heads, eps=1e-12, res1=True, res2=True,
                           heads="transpose", ln_order="post", gelu="erf", masked=True,
                           paths=("q", "k", "v"), ln_input="own", attn_scale=True,
                           ln1_backward=None, ln2_backward=None, dk_transposed=True,
                           residual_dy=(), dscores_fn=None):
    """The reference backward with one classic slip switched on (returns dx only).

    ``res1/res2=False`` forget the attention / FFN residual's direct path; ``heads="reshape"``
    splits and merges the gradient heads with a bare reshape (``"split"``/``"merge"``: only one
    of the two); ``ln_order="swapped"`` adds the residual branch's gradient BEFORE going back
    through the LayerNorm (``"pre"``: the pre-LN block's backward on these caches); ``gelu="cdf"`` keeps only Phi(u) of GELU's derivative;
    ``masked=False`` recomputes the forward without the padding mask (``"forward"``: only the
    probabilities the attention backward uses); ``paths`` are the
    projections whose dx reaches x; ``ln_input="h"`` runs LN2's backward at h instead of
    r2 (``"x"``: LN1's at x instead of r1); ``attn_scale=False`` drops 1/sqrt(HS) from dq, dk;
    ``gelu="tanh"`` (``"sigmoid"``) uses the tanh (sigmoid) approximation's derivative (``"at_output"``: gelu' at gelu(u)); ``ln1_backward``/``ln2_backward``
    replace a LayerNorm's backward (``(d, x, gamma, eps) -> (dx, ...)``); ``dk_transposed=False``
    computes dk as dscores @ q; ``residual_dy`` names the residual paths ("ffn", "attn") that
    carry the gradient from above the LayerNorm (dy, dh) instead of the one from below it;
    ``dscores_fn(dprobs, probs)`` replaces the attention softmax's backward.
    """
    ln1_back = ln1_backward or S.layernorm_backward
    ln2_back = ln2_backward or S.layernorm_backward
    split = _split_reshape if heads in ("reshape", "split") else F.split_heads
    merge = _merge_reshape if heads in ("reshape", "merge") else F.merge_heads
    # the forward's intermediates come from the reference solution; the check itself stays
    # independent of it: the numerical gradient differentiates forwards.encoder_block
    q, k, v, probs, ctx2, r1, h, u, gu, r2 = S.encoder_block_cache(
        x, mask if masked else None, p, num_heads, eps)
    if masked == "forward":  # masked forward, probs recomputed without the mask for the backward
        probs = S.encoder_block_cache(x, None, p, num_heads, eps)[3]
    ln2_at = h if ln_input == "h" else r2  # (B, T, C)
    ln1_at = x if ln_input == "x" else r1  # (B, T, C)

    def ffn_back(d):
        dgu = S.linear_backward(d, gu, p["ff2.weight"])[0]  # (B, T, F)
        cdf = 0.5 * (1.0 + F._erf(u / math.sqrt(2.0)))  # (B, T, F) Phi(u)
        if gelu == "at_output":
            du = S.gelu_backward(dgu, gu)  # (B, T, F) gelu' at the output
        elif gelu == "sigmoid":
            from .problems_layers import _gelu_sigmoid_grad
            du = dgu * _gelu_sigmoid_grad(u)  # (B, T, F)
        elif gelu == "tanh":
            from .problems_layers import _gelu_tanh_grad
            du = dgu * _gelu_tanh_grad(u)  # (B, T, F)
        else:
            du = dgu * cdf if gelu == "cdf" else S.gelu_backward(dgu, u)  # (B, T, F)
        return S.linear_backward(du, h, p["ff1.weight"])[0]  # (B, T, C)

    def attn_back(d):
        dctx2 = S.linear_backward(d, ctx2, p["o.weight"])[0]  # (B, T, C)
        dheads = split(dctx2, num_heads)  # (B, NH, T, HS)
        dq, dk, dv = S.attention_backward(dheads, q, k, v, probs)
        if dscores_fn is not None:
            ds = dscores_fn(dheads @ v.swapaxes(-1, -2), probs)  # (B, NH, T, T)
            dq, dk = ds @ k / math.sqrt(q.shape[-1]), ds.swapaxes(-1, -2) @ q / math.sqrt(q.shape[-1])
        if not dk_transposed:
            dprobs = dheads @ v.swapaxes(-1, -2)  # (B, NH, T, T)
            ds = probs * (dprobs - (dprobs * probs).sum(-1, keepdims=True))  # (B, NH, T, T)
            dk = ds @ q / math.sqrt(q.shape[-1])  # (B, NH, T, HS) WRONG: dscores not transposed
        if not attn_scale:
            dq, dk = dq * math.sqrt(q.shape[-1]), dk * math.sqrt(q.shape[-1])
        grads = {"q": dq, "k": dk, "v": dv}
        return sum(S.linear_backward(merge(grads[n]), x, p[f"{n}.weight"])[0] for n in paths)  # (B, T, C)

    if ln_order == "pre":  # the pre-LN block's rule, run on this post-LN block's caches
        dh = dy + ln2_back(ffn_back(dy), h, p["ln2.weight"], eps)[0]  # (B, T, C)
        return dh + ln1_back(attn_back(dh), x, p["ln1.weight"], eps)[0]  # (B, T, C)
    if ln_order == "swapped":
        dh = ln2_back(dy + ffn_back(dy), ln2_at, p["ln2.weight"], eps)[0]  # (B, T, C)
        return ln1_back(dh + attn_back(dh), ln1_at, p["ln1.weight"], eps)[0]  # (B, T, C)
    dr2 = ln2_back(dy, ln2_at, p["ln2.weight"], eps)[0]  # (B, T, C)
    dh = ((dy if "ffn" in residual_dy else dr2) if res2 else 0.0) + ffn_back(dr2)  # (B, T, C)
    dr1 = ln1_back(dh, ln1_at, p["ln1.weight"], eps)[0]  # (B, T, C)
    return ((dh if "attn" in residual_dy else dr1) if res1 else 0.0) + attn_back(dr1)  # (B, T, C)


def _variant(**kw):
    def test(m, r, c):
        a = c.args
        return close(m["dx"], block_backward_variant(a["dy"], a["x"], a["mask"], a["p"],
                                                     a["num_heads"], a["eps"], **kw))
    return test


def _any(*tests):
    return lambda m, r, c: any(t(m, r, c) for t in tests)


def _qkv_paths(m, r, c):
    for ps in (("q", "k"), ("q", "v"), ("k", "v"), ("v",), ("q",), ("k",)):
        if _variant(paths=ps)(m, r, c):
            gone = [x for x in "qkv" if x not in ps]
            return ("x feeds q, k AND v: dx = dr1 + the dx of all three projections; yours lacks "
                    + (f"the {gone[0]} path." if len(gone) == 1 else f"two: the {gone[0]} and {gone[1]} paths."))
    return False


def _which_residual(m, r, c):
    for kw, what in (({"res1": False}, "the attention's residual (x reaches r1 = x + Attn(x) twice: "
                                        "dx = dr1 + Attn_backward(dr1))"),
                     ({"res2": False}, "the FFN's residual (h reaches r2 = h + FFN(h) twice: "
                                       "dh = dr2 + FFN_backward(dr2))"),
                     ({"res1": False, "res2": False}, "both residuals (dh = dr2 + FFN_backward(dr2) "
                                                      "and dx = dr1 + Attn_backward(dr1))")):
        if _variant(**kw)(m, r, c):
            return f"A residual connection is forgotten in the backward: {what}."
    return False


BLOCK_MISTAKES = [
    Mistake("block_residual",
            "A residual connection is forgotten in the backward: y = LN(r), r = h + FFN(h), so h "
            "reaches r twice and dh = dr + FFN_backward(dr); likewise dx = dr1 + Attn_backward(dr1).",
            lambda m, r, c: _which_residual(m, r, c)),
    Mistake("block_ln_order",
            "Post-LN order: the LayerNorm comes AFTER the residual add, so in the backward go "
            "through LN first (dr = LN_backward(dy)), then split dr into the residual path and the "
            "branch: dh = dr + FFN_backward(dr). You added the branch before the LayerNorm.",
            _variant(ln_order="swapped")),
    Mistake("block_heads_reshaped",
            "Heads are split by reshape(B, T, NH, HS) THEN transpose(0, 2, 1, 3); a bare "
            "reshape(B, NH, T, HS) (or its inverse) mixes positions with heads. Use the same "
            "split_heads / merge_heads as the forward.",
            _any(_variant(heads="reshape"), _variant(heads="split"), _variant(heads="merge"))),
    Mistake("block_gelu",
            "The FFN's GELU backward needs both terms: gelu'(u) = Phi(u) + u * phi(u) (the gelu "
            "exercise); you kept Phi(u) only.",
            _variant(gelu="cdf")),
    Mistake("block_mask",
            "You recomputed the attention probabilities without the padding mask (in your forward "
            "or for the backward): padded keys then get weight, and gradient. Add the mask's bias "
            "to the scores before the softmax (the attention exercise).",
            _any(_variant(masked=False), _variant(masked="forward"))),
    Mistake("block_qkv_paths",
            "x feeds q, k AND v: dx = dr1 + the dx of all three projections; one is missing.",
            _qkv_paths),
    Mistake("block_ln_input",
            "Each LayerNorm's backward needs its own input: LN2's is r2 = h + FFN(h), LN1's is "
            "r1 = x + Attn(x) (the sums before the normalisation), not h or x.",
            _any(_variant(ln_input="h"), _variant(ln_input="x"))),
    Mistake("bias_sum_axes", BIAS_AXES_HINT,
            lambda m, r, c: any(bias_partial_sum(m[g], r[g]) for g in r if g.endswith(".bias]"))),
    Mistake("block_attention_scale",
            "scores = q k^T / sqrt(HS): dq and dk carry 1/sqrt(HS) inside the block too.",
            _variant(attn_scale=False)),
]

BLOCK_HINT = ("Work from the top of the block down: the FIRST failing gradient in the order "
              "ln2, ff2, ff1, ln1, o, q/k/v, dx shows where the bug is; check that piece with its own "
              "exercise. Remember both residual paths: dh = dr2 + dh_ffn and dx = dr1 + dx_qkv.")
