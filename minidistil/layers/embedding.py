"""Embedding lookup: ``y = W[ids]``, and its backward, a scatter-add into the table.

Legend: N looked-up ids (the leading shape of ``ids`` flattened), V table rows, C features.

    y[n]      = W[ids[n]]
    dW[v]     = sum over n with ids[n] == v of dy[n]      (an id used twice gets both gradients)

``dW[ids] += dy`` would be WRONG for repeated ids (fancy-index assignment keeps only one write);
the scatter-add is ``np.add.at`` or the ``embedding_backward`` kernel of ``minidistil.kernels``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import kernels as _kernels
from ..kernels.backend import check_float_array, check_same_dtype, check_shape


class EmbeddingCache(NamedTuple):
    ids: np.ndarray  # (...) integer ids, already validated
    num_embeddings: int  # V
    dtype: np.dtype


def check_ids(name: str, ids, num_embeddings: int) -> np.ndarray:
    """``ids`` must be an integer ndarray with every value in ``[0, num_embeddings)``."""
    if not isinstance(ids, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of integers, got {type(ids).__name__}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name} must have an integer dtype, got {ids.dtype}")
    if ids.size:
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= num_embeddings:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} must lie in [0, {num_embeddings}), found {bad}")
    return ids


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
    dy2 = np.ascontiguousarray(dy.reshape(-1, C))  # (N, C)
    ids = np.ascontiguousarray(cache.ids.reshape(-1), dtype=np.int64)  # (N,)
    kernel = getattr(_kernels, "embedding_backward", None)
    if kernel is not None:
        return kernel(dy2, ids, cache.num_embeddings)  # (V, C)
    # Fallback while the kernel is not in minidistil.kernels: the NumPy scatter-add.
    dweight = np.zeros((cache.num_embeddings, C), dtype=dy.dtype)  # (V, C)
    np.add.at(dweight, ids, dy2)
    return dweight
