"""The exercise registry: random test cases and the classic mistakes each checker recognises.

Legend: N rows, B batch, T sequence, C hidden, NH heads, HS head size, F feed-forward,
V vocabulary, P selected positions, IN/OUT linear fan-in/fan-out.

An :class:`Exercise` knows how to draw a few :class:`Case` s (tiny float64 shapes, non-trivial
parameters, a random upstream gradient, padding where it matters), how to read the learner's
return value, and a list of :class:`Mistake` s: each a named, wrong-but-plausible formula. When
a learner's gradient fails and equals one of those wrong formulas, the checker prints its hint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import forwards as F
from . import solutions as S
from . import stubs


@dataclass
class Case:
    """One random instance: ``args`` for the learner, the arrays to differentiate, the scalar."""
    label: str
    args: dict  # keyword arguments of the learner's function
    targets: dict  # gradient name -> the float64 array (inside args) it differentiates
    scalar: Callable[[], float]  # sum(forward(args) * upstream), read from the same arrays


@dataclass
class Mistake:
    key: str
    hint: str
    test: Callable  # (mine: dict, ref: dict, case: Case) -> bool


@dataclass
class Exercise:
    name: str
    title: str
    grad_names: tuple
    stub: Callable
    solution: Callable
    make_cases: Callable  # rng -> list[Case]
    mistakes: list = field(default_factory=list)
    math_section: str = ""
    max_entries: int | None = None  # sample this many entries per tensor in the numeric check

    def unpack(self, out) -> dict:
        """The learner's return value as ``{grad name: array}`` (raises TypeError if malformed)."""
        names = self.grad_names
        if self.name == "encoder_block":
            if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
                raise TypeError("encoder_block_backward must return (dx, grads_dict)")
            d = {"dx": out[0]}
            d.update({f"d[{k}]": g for k, g in out[1].items()})
            return d
        if len(names) == 1:
            if isinstance(out, tuple):
                raise TypeError(f"expected one array ({names[0]}), got a tuple of {len(out)}")
            return {names[0]: out}
        if not isinstance(out, tuple) or len(out) != len(names):
            raise TypeError(f"expected a tuple ({', '.join(names)}), got {type(out).__name__}"
                            + (f" of {len(out)}" if isinstance(out, tuple) else ""))
        return dict(zip(names, out))


def close(a, b) -> bool:
    """Same shape and equal up to float64 round-off (used to recognise a mistake's formula)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or not np.all(np.isfinite(a)):
        return False
    scale = max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-300)
    return bool(np.allclose(a, b, rtol=1e-6, atol=1e-8 * scale))


def _nontrivial(rng, *shape):
    return rng.standard_normal(shape)  # (*shape)


# ----------------------------------------------------------------------------------- linear

def _linear_cases(rng):
    cases = []
    for n, fin, fout in ((3, 4, 5), (2, 6, 3), (4, 3, 3)):
        x = rng.standard_normal((n, fin))  # (N, IN)
        w = rng.standard_normal((fout, fin)) * 0.5  # (OUT, IN)
        b = rng.standard_normal(fout)  # (OUT,)
        dy = rng.standard_normal((n, fout))  # (N, OUT)
        cases.append(Case(f"x{x.shape} W{w.shape}", {"dy": dy, "x": x, "weight": w},
                          {"dx": x, "dweight": w, "dbias": b},
                          lambda x=x, w=w, b=b, dy=dy: float(np.sum(F.linear(x, w, b) * dy))))
    return cases


LINEAR_MISTAKES = [
    Mistake("bias_not_summed",
            "dbias must have the shape of bias (OUT,): sum dy over every row (the bias is "
            "added to each row, so each row contributes).",
            lambda m, r, c: np.ndim(m["dbias"]) > 1),
    Mistake("linear_dx_weight",
            "dx = dy @ weight (weight is stored (OUT, IN)); dy @ weight.T has the wrong layout.",
            lambda m, r, c: np.shape(m["dx"]) != np.shape(r["dx"])),
]


# ----------------------------------------------------------------------------------- GELU

def _gelu_cases(rng):
    cases = []
    for shape in ((5,), (3, 4), (2, 3, 4)):
        x = rng.standard_normal(shape) * 2.0  # (...)
        dy = rng.standard_normal(shape)  # (...)
        cases.append(Case(f"x{shape}", {"dy": dy, "x": x}, {"dx": x},
                          lambda x=x, dy=dy: float(np.sum(F.gelu(x) * dy))))
    return cases


def _phi_cdf(x):
    return 0.5 * (1.0 + F._erf(x / math.sqrt(2.0)))  # (...)


def _gelu_tanh_grad(x):
    a = math.sqrt(2.0 / math.pi)
    t = np.tanh(a * (x + 0.044715 * x ** 3))  # (...)
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * a * (1 + 3 * 0.044715 * x * x)  # (...)


GELU_MISTAKES = [
    Mistake("gelu_product_rule",
            "gelu(x) = x * Phi(x) is a product: gelu'(x) = Phi(x) + x * phi(x). You kept only Phi(x).",
            lambda m, r, c: close(m["dx"], c.args["dy"] * _phi_cdf(c.args["x"]))),
    Mistake("gelu_tanh",
            "That is the derivative of the tanh approximation; BERT uses the exact erf GELU.",
            lambda m, r, c: close(m["dx"], c.args["dy"] * _gelu_tanh_grad(c.args["x"]))),
]


# ----------------------------------------------------------------------------------- LayerNorm

def _layernorm_cases(rng):
    cases = []
    for shape in ((3, 5), (2, 3, 4), (1, 6)):
        C = shape[-1]
        x = rng.standard_normal(shape) * 1.5 + 0.3  # (N, C)
        gamma = 1.0 + 0.5 * rng.standard_normal(C)  # (C,) not all ones
        beta = 0.5 * rng.standard_normal(C)  # (C,) not all zeros
        dy = rng.standard_normal(shape)  # (N, C)
        cases.append(Case(f"x{shape}", {"dy": dy, "x": x, "gamma": gamma, "eps": 1e-12},
                          {"dx": x, "dgamma": gamma, "dbeta": beta},
                          lambda x=x, g=gamma, b=beta, dy=dy: float(np.sum(F.layernorm(x, g, b) * dy))))
    return cases


def _ln_parts(c):
    x, dy, gamma = c.args["x"], c.args["dy"], c.args["gamma"]
    mean = x.mean(-1, keepdims=True)  # (N, 1)
    rstd = 1.0 / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + 1e-12)  # (N, 1)
    xhat = (x - mean) * rstd  # (N, C)
    return dy, gamma, rstd, xhat


def _ln_no_mean(m, r, c):
    dy, gamma, rstd, xhat = _ln_parts(c)
    g = dy * gamma  # (N, C)
    return close(m["dx"], rstd * (g - xhat * (g * xhat).mean(-1, keepdims=True)))


def _ln_no_var(m, r, c):
    dy, gamma, rstd, xhat = _ln_parts(c)
    g = dy * gamma  # (N, C)
    return close(m["dx"], rstd * (g - g.mean(-1, keepdims=True)))


def _ln_no_gamma(m, r, c):
    dy, gamma, rstd, xhat = _ln_parts(c)
    return close(m["dx"], rstd * (dy - dy.mean(-1, keepdims=True)
                                  - xhat * (dy * xhat).mean(-1, keepdims=True)))


def _ln_dgamma_x(m, r, c):
    lead = tuple(range(c.args["x"].ndim - 1))
    return close(m["dgamma"], (c.args["dy"] * c.args["x"]).sum(axis=lead))


LAYERNORM_MISTAKES = [
    Mistake("layernorm_mean_term",
            "The mean depends on every x_j: dx needs the '- mean(g)' term "
            "(dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma).",
            _ln_no_mean),
    Mistake("layernorm_variance_term",
            "The variance depends on x too: dx needs the '- xhat * mean(g * xhat)' term.",
            _ln_no_var),
    Mistake("layernorm_gamma",
            "Multiply dy by gamma before normalising back: g = dy * gamma.",
            _ln_no_gamma),
    Mistake("layernorm_dgamma_xhat",
            "dgamma = sum(dy * xhat): gamma multiplies the NORMALISED x, not x.",
            _ln_dgamma_x),
]


# ----------------------------------------------------------------------------------- softmax(T)

def _softmax_cases(rng):
    cases = []
    for shape, T in (((3, 5), 2.0), ((2, 3, 4), 0.5), ((4, 6), 3.0)):
        x = rng.standard_normal(shape) * 2.0  # (N, V)
        dp = rng.standard_normal(shape)  # (N, V)
        cases.append(Case(f"x{shape} T={T}", {"dp": dp, "x": x, "T": T}, {"dx": x},
                          lambda x=x, dp=dp, T=T: float(np.sum(F.softmax_t(x, T) * dp))))
    return cases


SOFTMAX_MISTAKES = [
    Mistake("softmax_temperature",
            "Chain rule through x / T: the gradient gets a factor 1/T.",
            lambda m, r, c: close(m["dx"], r["dx"] * c.args["T"])),
    Mistake("softmax_jacobian",
            "The softmax Jacobian is not diagonal: dx = p * (dp - sum(dp * p)) / T, "
            "not p * (1 - p) * dp.",
            lambda m, r, c: any(close(m["dx"], cand) for cand in (
                F.softmax_t(c.args["x"], c.args["T"]) * (1 - F.softmax_t(c.args["x"], c.args["T"]))
                * c.args["dp"] * s for s in (1.0, 1.0 / c.args["T"])))),
]


# ----------------------------------------------------------------------------------- attention

def _attention_cases(rng):
    cases = []
    for B, NH, T, HS, pads in ((2, 2, 4, 3, (0, 2)), (1, 1, 3, 2, (1,)), (2, 1, 5, 4, (1, 3))):
        q = rng.standard_normal((B, NH, T, HS))  # (B, NH, T, HS)
        k = rng.standard_normal((B, NH, T, HS))  # (B, NH, T, HS)
        v = rng.standard_normal((B, NH, T, HS))  # (B, NH, T, HS)
        mask = np.ones((B, T), dtype=np.int64)  # (B, T)
        for b, n in enumerate(pads):
            if n:
                mask[b, T - n:] = 0  # the last n keys of row b are padding
        _, probs = F.attention(q, k, v, mask)  # (B, NH, T, T)
        dout = rng.standard_normal((B, NH, T, HS))  # (B, NH, T, HS)
        cases.append(Case(f"q{q.shape} pad{pads}",
                          {"dout": dout, "q": q, "k": k, "v": v, "probs": probs},
                          {"dq": q, "dk": k, "dv": v},
                          lambda q=q, k=k, v=v, m=mask, d=dout:
                          float(np.sum(F.attention(q, k, v, m)[0] * d))))
    return cases


def _attn_no_inner(m, r, c):
    a = c.args
    scale = 1.0 / math.sqrt(a["q"].shape[-1])
    dprobs = a["dout"] @ a["v"].swapaxes(-1, -2)  # (B, NH, T, T)
    return close(m["dq"], (a["probs"] * dprobs) @ a["k"] * scale)


def _attn_dk_transposed(m, r, c):
    a = c.args
    scale = 1.0 / math.sqrt(a["q"].shape[-1])
    dprobs = a["dout"] @ a["v"].swapaxes(-1, -2)  # (B, NH, T, T)
    p = a["probs"]
    ds = p * (dprobs - (dprobs * p).sum(-1, keepdims=True))  # (B, NH, T, T)
    return close(m["dk"], ds @ a["q"] * scale) and not close(m["dk"], r["dk"])


ATTENTION_MISTAKES = [
    Mistake("attention_scale",
            "scores = q k^T / sqrt(HS): dq and dk carry the same 1/sqrt(HS) factor.",
            lambda m, r, c: close(m["dq"], r["dq"] * math.sqrt(c.args["q"].shape[-1]))
            or close(m["dk"], r["dk"] * math.sqrt(c.args["q"].shape[-1]))),
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
]


# ----------------------------------------------------------------------------------- tied embedding

def _embedding_cases(rng):
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


def _emb_one_use(m, r, c):
    out_use, emb_add, emb_assign = _emb_parts(c)
    return any(close(m["dweight"], g) for g in (out_use, emb_add, emb_assign))


def _emb_repeats(m, r, c):
    out_use, emb_add, emb_assign = _emb_parts(c)
    return close(m["dweight"], out_use + emb_assign)


EMBEDDING_MISTAKES = [
    Mistake("tied_two_gradients",
            "The matrix is TIED: it is used twice (lookup h = W[ids] and projection h @ W.T), so "
            "dW is the SUM of both gradients.",
            _emb_one_use),
    Mistake("embedding_repeated_ids",
            "dW[ids] += dh drops repeated ids (fancy-index assignment keeps only one write): "
            "use np.add.at(dW, ids, dh).",
            _emb_repeats),
]


# ----------------------------------------------------------------------------------- KL soft target

def _kl_cases(rng):
    cases = []
    for P, V, T in ((3, 5, 2.0), (4, 7, 3.0), (2, 4, 0.5)):
        s = rng.standard_normal((P, V)) * 2.0  # (P, V)
        t = rng.standard_normal((P, V)) * 2.0  # (P, V)
        dloss = float(rng.uniform(0.5, 1.5))
        cases.append(Case(f"logits({P}, {V}) T={T}",
                          {"dloss": dloss, "s_logits": s, "t_logits": t, "T": T},
                          {"ds_logits": s},
                          lambda s=s, t=t, T=T, d=dloss: d * F.kl_soft_target(s, t, T)))
    return cases


def _upstream_ignored(name):
    return lambda m, r, c: close(m[name], r[name] / c.args["dloss"])


KL_MISTAKES = [
    Mistake("kl_T_squared",
            "The loss is multiplied by T**2 (so that its gradient keeps the same scale as T "
            "changes): your gradient is T**2 too small.",
            lambda m, r, c: close(m["ds_logits"], r["ds_logits"] / c.args["T"] ** 2)),
    Mistake("kl_chain_T",
            "Chain rule through s / T: the softmax gradient carries a factor 1/T "
            "(total factor T**2 / T = T).",
            lambda m, r, c: close(m["ds_logits"], r["ds_logits"] * c.args["T"])),
    Mistake("kl_mean",
            "The loss is a MEAN over the P positions: divide by P.",
            lambda m, r, c: close(m["ds_logits"], r["ds_logits"] * c.args["s_logits"].shape[0])),
    Mistake("kl_sign",
            "Sign: the gradient is softmax(s/T) - softmax(t/T) (student minus teacher).",
            lambda m, r, c: close(m["ds_logits"], -r["ds_logits"])),
    Mistake("upstream_ignored", "Multiply by the upstream gradient dloss.",
            _upstream_ignored("ds_logits")),
]


# ----------------------------------------------------------------------------------- cosine

def _cosine_cases(rng):
    cases = []
    for B, T, C, pads in ((2, 4, 3, (1, 0)), (1, 5, 4, (2,)), (3, 3, 2, (0, 1, 2))):
        s = rng.standard_normal((B, T, C))  # (B, T, C)
        t = rng.standard_normal((B, T, C))  # (B, T, C)
        mask = np.ones((B, T), dtype=np.int64)  # (B, T)
        for b, n in enumerate(pads):
            if n:
                mask[b, T - n:] = 0
        dloss = float(rng.uniform(0.5, 1.5))
        cases.append(Case(f"h{s.shape} pad{pads}",
                          {"dloss": dloss, "s_h": s, "t_h": t, "mask": mask}, {"ds_h": s},
                          lambda s=s, t=t, m=mask, d=dloss: d * F.cosine(s, t, m)))
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
    return close(m["ds_h"], -a["dloss"] * t / (ns * nt) * mask[..., None] / mask.sum())


COSINE_MISTAKES = [
    Mistake("cosine_padding",
            "Padded positions are not in the loss: their gradient must be exactly 0 (multiply by the mask).",
            _cos_padding),
    Mistake("cosine_count",
            "Average over the REAL positions (mask.sum()), not over all B*T.",
            _cos_count),
    Mistake("cosine_norm_term",
            "cos = s.t / (|s| |t|) and |s| depends on s: d cos/ds = t/(|s||t|) - cos * s/|s|^2.",
            _cos_norm_term),
    Mistake("upstream_ignored", "Multiply by the upstream gradient dloss.",
            _upstream_ignored("ds_h")),
]


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


def _block_cases(rng):
    cases = []
    for B, T, C, NH, FF, pads in ((2, 3, 4, 2, 8, (0, 1)), (1, 4, 6, 3, 6, (2,))):
        x = rng.standard_normal((B, T, C))  # (B, T, C)
        p = block_params(rng, C, FF)
        mask = np.ones((B, T), dtype=np.int64)  # (B, T)
        for b, n in enumerate(pads):
            if n:
                mask[b, T - n:] = 0
        dy = rng.standard_normal((B, T, C))  # (B, T, C)
        targets = {"dx": x}
        targets.update({f"d[{k}]": p[k] for k in BLOCK_KEYS})
        cases.append(Case(f"x{x.shape} NH={NH} F={FF} pad{pads}",
                          {"dy": dy, "x": x, "mask": mask, "p": p, "num_heads": NH, "eps": 1e-12},
                          targets,
                          lambda x=x, m=mask, p=p, nh=NH, d=dy:
                          float(np.sum(F.encoder_block(x, m, p, nh) * d))))
    return cases


BLOCK_HINT = ("Work from the top of the block down: the FIRST failing gradient in the order "
              "ln2, ff2, ff1, ln1, o, q/k/v, dx shows where the bug is; check that piece with its own "
              "exercise. Remember both residual paths: dh = dr2 + dh_ffn and dx = dr1 + dx_qkv.")


# ----------------------------------------------------------------------------------- registry

def _ex(name, title, grads, mistakes, section, cases, max_entries=None):
    return Exercise(name, title, grads, getattr(stubs, f"{name}_backward"),
                    getattr(S, f"{name}_backward"), cases, mistakes, section, max_entries)


EXERCISES = {e.name: e for e in (
    _ex("linear", "Linear layer y = x W^T + b", ("dx", "dweight", "dbias"), LINEAR_MISTAKES,
        "Linear", _linear_cases),
    _ex("gelu", "GELU (exact, erf)", ("dx",), GELU_MISTAKES, "GELU", _gelu_cases),
    _ex("layernorm", "LayerNorm", ("dx", "dgamma", "dbeta"), LAYERNORM_MISTAKES, "LayerNorm",
        _layernorm_cases),
    _ex("softmax_t", "Softmax with temperature", ("dx",), SOFTMAX_MISTAKES,
        "Softmax with temperature", _softmax_cases),
    _ex("attention", "Attention core with padding", ("dq", "dk", "dv"), ATTENTION_MISTAKES,
        "Attention", _attention_cases),
    _ex("embedding_tied", "Embedding with a tied output matrix", ("dweight", "dbias"),
        EMBEDDING_MISTAKES, "Embedding and tied weights", _embedding_cases),
    _ex("kl_soft_target", "KL soft-target loss with T**2", ("ds_logits",), KL_MISTAKES,
        "KL soft-target loss", _kl_cases),
    _ex("cosine", "Cosine-embedding loss with padding", ("ds_h",), COSINE_MISTAKES,
        "Cosine loss", _cosine_cases),
    _ex("encoder_block", "Bonus: one post-LN encoder block", ("dx",) + tuple(f"d[{k}]" for k in BLOCK_KEYS),
        [], "Encoder block", _block_cases, max_entries=12),
)}
