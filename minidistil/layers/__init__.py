"""Layers with manual backprop: ``y, cache = <layer>_forward(...)``, ``dx, grads = <layer>_backward(dy, cache)``.

The exception is the embedding, whose input is integer ids: ``dweight = embedding_backward(dy, cache)``.
"""
from .linear import LinearCache, linear_forward, linear_backward
from .embedding import EmbeddingCache, embedding_forward, embedding_backward, check_ids
from .layernorm import LayerNormCache, layernorm_layer_forward, layernorm_layer_backward
from .attention import (ATTENTION_KEYS, SelfAttentionCache, self_attention_forward, self_attention_backward,
                        split_heads, merge_heads)
from .feedforward import (FFN_KEYS, HIDDEN_ACTS, FeedForwardCache, feedforward_forward, feedforward_backward,
                          gelu_approximation)
from .block import BLOCK_KEYS, BlockCache, block_forward, block_backward

__all__ = [
    "LinearCache", "linear_forward", "linear_backward",
    "EmbeddingCache", "embedding_forward", "embedding_backward", "check_ids",
    "LayerNormCache", "layernorm_layer_forward", "layernorm_layer_backward",
    "ATTENTION_KEYS", "SelfAttentionCache", "self_attention_forward", "self_attention_backward",
    "split_heads", "merge_heads",
    "FFN_KEYS", "HIDDEN_ACTS", "FeedForwardCache", "feedforward_forward", "feedforward_backward",
    "gelu_approximation",
    "BLOCK_KEYS", "BlockCache", "block_forward", "block_backward",
]
