"""The exercise registry, in teaching order.

Legend: N rows, B batch, T sequence, C hidden, NH heads, HS head size, F feed-forward,
V vocabulary, P selected positions, IN/OUT linear fan-in/fan-out.

The cases and the classic mistakes of each exercise live in ``problems_layers`` (linear, GELU,
LayerNorm, softmax and log-softmax at tau), ``problems_attention`` (attention, encoder block),
``problems_losses`` (tied embedding, KL, cross-entropy, cosine) and ``problems_distill`` (the
triple loss, TinyBERT's hidden-state MSE), with more of each in ``problems_more``, ``problems_extra``, ``problems_tail``, ``problems_set9``, ``problems_course``, ``problems_set11`` and ``problems_set13``; the pieces in :mod:`.base`, the generic hints in
:mod:`.hints`.
"""
from __future__ import annotations

from . import problems_attention as PA
from . import problems_distill as PD
from . import problems_layers as PL
from . import problems_losses as PS
from . import problems_extra as PX
from . import problems_more as PM
from . import problems_course as PC
from . import problems_set9 as P9
from . import problems_set11 as P11
from . import problems_set13 as P13
from . import problems_tail as PT
from . import solutions as S
from . import stubs
from .base import Case, Exercise, Mistake, close  # noqa: F401 - re-exported

BLOCK_HINT = PA.BLOCK_HINT
BLOCK_KEYS = PA.BLOCK_KEYS


def _ex(name, title, grads, mistakes, section, cases, scales=None, **kw):
    return Exercise(name, title, grads, getattr(stubs, f"{name}_backward"),
                    getattr(S, f"{name}_backward"), cases, mistakes + PM.MORE.get(name, []) + PX.MORE.get(name, []) + PT.MORE.get(name, [])
                    + P9.MORE.get(name, []) + PC.MORE.get(name, []) + P11.MORE.get(name, []) + P13.MORE.get(name, []),
                    section,
                    scales=scales or {}, **kw)


EXERCISES = {e.name: e for e in (
    _ex("linear", "Linear layer y = x W^T + b", ("dx", "dweight", "dbias"), PL.LINEAR_MISTAKES,
        "Linear", PL.linear_cases, PL.LINEAR_SCALES),
    _ex("gelu", "GELU (exact, erf)", ("dx",), PL.GELU_MISTAKES, "GELU", PL.gelu_cases, PL.GELU_SCALES),
    _ex("layernorm", "LayerNorm", ("dx", "dgamma", "dbeta"), PL.LAYERNORM_MISTAKES, "LayerNorm",
        PL.layernorm_cases, PL.LAYERNORM_SCALES),
    _ex("softmax_t", "Softmax with temperature", ("dx",), PL.SOFTMAX_MISTAKES,
        "Softmax with temperature", PL.softmax_cases, PL.SOFTMAX_SCALES),
    _ex("log_softmax_t", "Log-softmax with temperature", ("dx",), PL.LOG_SOFTMAX_MISTAKES,
        "Log-softmax", PL.log_softmax_cases, PL.LOG_SOFTMAX_SCALES),
    _ex("attention", "Attention core with padding", ("dq", "dk", "dv"), PA.ATTENTION_MISTAKES,
        "Attention", PA.attention_cases, PA.ATTENTION_SCALES),
    _ex("embedding_tied", "Embedding with a tied output matrix", ("dweight", "dbias"),
        PS.EMBEDDING_MISTAKES, "Embedding and tied weights", PS.embedding_cases, {"−1": "the sign is flipped."}),
    _ex("cross_entropy", "Cross-entropy with the -100 ignore label", ("dlogits",), PS.CE_MISTAKES,
        "Cross-entropy (the MLM loss)", PS.ce_cases, PS.CE_SCALES),
    _ex("kl_soft_target", "KL soft-target loss with tau**2", ("ds_logits",), PS.KL_MISTAKES,
        "KL soft-target loss", PS.kl_cases, PS.KL_SCALES),
    _ex("cosine", "Cosine-embedding loss with padding", ("ds_h",), PS.COSINE_MISTAKES,
        "Cosine loss", PS.cosine_cases, PS.COSINE_SCALES),
    _ex("triple_loss", "The weighted triple loss: three gradients meet at h", ("dh",),
        PD.TRIPLE_MISTAKES, "The weighted triple loss", PD.triple_cases, PD.TRIPLE_SCALES),
    _ex("hidden_mse", "Hidden-state MSE through a learned projection (TinyBERT)",
        ("ds_h", "dweight"), PD.MSE_MISTAKES, "Hidden-state MSE through a learned projection (TinyBERT)", PD.mse_cases, PD.MSE_SCALES),
    _ex("encoder_block", "Bonus: one post-LN encoder block",
        ("dx",) + tuple(f"d[{k}]" for k in PA.BLOCK_KEYS), PA.BLOCK_MISTAKES, "Encoder block",
        PA.block_cases, max_entries=12, unpack_fn=PA.block_unpack),
)}
