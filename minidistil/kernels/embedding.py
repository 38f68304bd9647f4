"""The embedding backward: a scatter-add of row gradients into the table.

Legend: N looked-up positions (leading shape flattened), C embedding width, V table rows.

    forward   y[n] = W[ids[n]]                 (a gather: plain NumPy indexing, no kernel needed)
    backward  dW[v] = sum over n with ids[n] == v of dy[n]

The same id usually appears many times in a batch ([CLS], [PAD], "the"), so the backward must
*add* every occurrence. ``dW[ids] += dy`` is the classic bug: NumPy buffers the fancy-index
assignment and a repeated id keeps only its last row. ``np.add.at`` is the unbuffered version.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from . import backend
from .backend import check_float_array, check_ids, jit, num_threads


# ---------------------------------------------------------------- NumPy twin (the reference)

def embedding_backward_numpy(dy: np.ndarray, ids: np.ndarray, V: int) -> np.ndarray:
    C = dy.shape[-1]
    dW = np.zeros((V, C), dtype=dy.dtype)  # (V, C)
    np.add.at(dW, ids.reshape(-1), dy.reshape(-1, C))  # unbuffered: repeated ids all count
    return dW


# ---------------------------------------------------------------- Numba version
# Threads cannot split the N rows (two threads may hit the same id and race on dW[id]); they split
# the C columns instead: thread c adds columns [j0, j1) of every row, so no two threads ever write
# the same entry and the result is the same for any thread count.

@jit(parallel=True)
def _scatter_add_columns(dy, ids, dW, K):
    """dW[ids[n], :] += dy[n, :] for all n; dy (N, C), ids (N,) int64, dW (V, C) zeroed."""
    N, C = dy.shape
    per = (C + K - 1) // K
    for c in prange(K):
        j0 = c * per
        j1 = min(C, j0 + per)
        for n in range(N):
            row = ids[n]
            for j in range(j0, j1):
                dW[row, j] += dy[n, j]


def embedding_backward_numba(dy: np.ndarray, ids: np.ndarray, V: int) -> np.ndarray:
    C = dy.shape[-1]
    rows = np.ascontiguousarray(dy).reshape(-1, C)  # (N, C)
    flat_ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)  # (N,)
    dW = np.zeros((V, C), dtype=dy.dtype)  # (V, C)
    K = max(1, min(num_threads(), C))
    _scatter_add_columns(rows, flat_ids, dW, K)
    return dW


# ---------------------------------------------------------------- public, checked entry point

def embedding_backward(dy: np.ndarray, ids: np.ndarray, V: int) -> np.ndarray:
    """``dW`` (V, C): the gradient of the table given ``dy`` (..., C) and the ``ids`` (...) looked up.

    ``ids`` has ``dy``'s shape without its last axis (usually ``dy`` (N, C), ``ids`` (N,)), holds
    integers in ``[0, V)``, and may repeat.
    """
    check_float_array("dy", dy)
    if dy.ndim < 1:
        raise ValueError(f"dy must be at least 1-D (..., C), got shape {dy.shape}")
    if isinstance(V, bool) or not isinstance(V, (int, np.integer)) or V < 1:
        raise ValueError(f"V must be a positive integer (the number of table rows), got {V!r}")
    check_ids("ids", ids, V)
    if ids.shape != dy.shape[:-1]:
        raise ValueError(f"ids must have shape {dy.shape[:-1]} (dy's shape without C), got {ids.shape}")
    fn = embedding_backward_numba if backend.get_backend() == "numba" else embedding_backward_numpy
    return fn(dy, ids, int(V))
