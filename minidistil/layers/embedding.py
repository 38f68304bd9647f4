"""Embedding lookup: ``y = W[ids]``, and its backward, a scatter-add into the table.

Legend: N looked-up ids (the leading shape of ``ids`` flattened), V table rows, C features.

    y[n]      = W[ids[n]]
    dW[v]     = sum over n with ids[n] == v of dy[n]      (an id used twice gets both gradients)

``dW[ids] += dy`` would be WRONG for repeated ids (fancy-index assignment keeps only one write);
the scatter-add is the ``embedding_backward`` kernel of ``minidistil.kernels`` (NumPy twin:
``np.add.at``; Numba version: threads split the columns so that no two write the same entry).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..kernels import embedding_backward as embedding_backward_kernel
from ..kernels.backend import check_float_array, check_ids, check_same_dtype, check_shape


class EmbeddingCache(NamedTuple):
    ids: np.ndarray  # (...) integer ids, already validated
    num_embeddings: int  # V
    dtype: np.dtype


def embedding_forward(ids: np.ndarray, weight: np.ndarray):
    """``y = weight[ids]``; ``ids`` (...) integers, ``weight`` (V, C) -> ``y`` (..., C)."""
    check_float_array("weight", weight, 2)
    check_ids("ids", ids, weight.shape[0])
    y = weight[ids]  # (..., C), fancy indexing copies
    return y, EmbeddingCache(ids=ids, num_embeddings=weight.shape[0], dtype=weight.dtype)


def embedding_backward(dy: np.ndarray, cache: EmbeddingCache) -> np.ndarray:
    """Returns ``dweight`` (V, C): the scatter-add of ``dy`` (..., C) into the rows ``ids``."""
    check_float_array("dy", dy)
    check_shape("dy", dy, cache.ids.shape + (None,))
    check_same_dtype(cache.dtype, dy=dy)
    C = dy.shape[-1]
    dy2 = dy.reshape(-1, C)  # (N, C)
    ids = cache.ids.reshape(-1)  # (N,)
    return embedding_backward_kernel(dy2, ids, cache.num_embeddings)  # (V, C)
