"""One post-LN Transformer encoder block, as in BERT and DistilBERT.

Legend: B batch, T sequence, C hidden, NH heads, F feed-forward size.

    h = LN1(x + Attn(x))          the residual is added BEFORE the LayerNorm ("post-LN")
    y = LN2(h + FFN(h))

Backward follows the two residual paths: the gradient reaching ``h`` is the sum of the one
through FFN and the one straight through the residual, likewise for ``x``.

Parameters ``p`` (local names): the attention keys (``q k v o`` . ``weight bias``),
``ln1.weight ln1.bias``, the FFN keys (``ff1 ff2`` . ``weight bias``), ``ln2.weight ln2.bias``.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from ..kernels.layernorm import DEFAULT_EPS
from ._params import require_params
from .attention import ATTENTION_KEYS, SelfAttentionCache, self_attention_backward, self_attention_forward
from .feedforward import FFN_KEYS, FeedForwardCache, feedforward_backward, feedforward_forward
from .layernorm import LayerNormCache, layernorm_layer_backward, layernorm_layer_forward

BLOCK_KEYS = ATTENTION_KEYS + ("ln1.weight", "ln1.bias") + FFN_KEYS + ("ln2.weight", "ln2.bias")


class BlockCache(NamedTuple):
    attn_cache: SelfAttentionCache
    ln1_cache: LayerNormCache
    ffn_cache: FeedForwardCache
    ln2_cache: LayerNormCache


def block_forward(x: np.ndarray, mask: Optional[np.ndarray], p: dict, num_heads: int,
                  eps: float = DEFAULT_EPS, hidden_act: str = "gelu"):
    """Returns ``(y, BlockCache)``; ``x`` (B, T, C) -> ``y`` (B, T, C)."""
    require_params(p, BLOCK_KEYS, "block_forward")
    a, attn_cache = self_attention_forward(x, mask, p, num_heads)  # (B, T, C)
    h, ln1_cache = layernorm_layer_forward(x + a, p["ln1.weight"], p["ln1.bias"], eps)  # (B, T, C)
    f, ffn_cache = feedforward_forward(h, p, hidden_act)  # (B, T, C)
    y, ln2_cache = layernorm_layer_forward(h + f, p["ln2.weight"], p["ln2.bias"], eps)  # (B, T, C)
    return y, BlockCache(attn_cache, ln1_cache, ffn_cache, ln2_cache)


def block_backward(dy: np.ndarray, cache: BlockCache):
    """Returns ``(dx, grads)`` with ``grads`` keyed like ``p`` (all of :data:`BLOCK_KEYS`)."""
    dz2, g_ln2 = layernorm_layer_backward(dy, cache.ln2_cache)  # (B, T, C), z2 = h + f
    dh_ffn, g_ffn = feedforward_backward(dz2, cache.ffn_cache)  # (B, T, C)
    dh = dz2 + dh_ffn  # (B, T, C): residual path + FFN path
    dz1, g_ln1 = layernorm_layer_backward(dh, cache.ln1_cache)  # (B, T, C), z1 = x + a
    dx_attn, g_attn = self_attention_backward(dz1, cache.attn_cache)  # (B, T, C)
    dx = dz1 + dx_attn  # (B, T, C)
    grads = dict(g_attn)
    grads.update(g_ffn)
    grads["ln1.weight"], grads["ln1.bias"] = g_ln1["weight"], g_ln1["bias"]
    grads["ln2.weight"], grads["ln2.bias"] = g_ln2["weight"], g_ln2["bias"]
    return dx, grads
