"""Matrix products for the layers: ``matmul(a, b, bias)`` and ``matmul_pair``.

Legend: M rows, K inner size, N columns (any leading batch shape broadcasts, as in ``@``).

    y = a @ b (+ bias)            (..., M, K) @ (..., K, N) -> (..., M, N)

The kernel here is BLAS itself (NumPy's ``@``), so there is no Numba twin to write: the
reference is the product, threaded however BLAS likes. The layers call only these two
functions, which dispatch as every kernel does: with the Numba backend and the opt-in speed layer
switched on (:func:`minidistil.fast.enable`), the fast layer's routes (a thread pool with BLAS
held to one thread) take over; otherwise it is the plain ``@`` below.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import backend


def _check_operands(a: np.ndarray, b: np.ndarray) -> None:
    if not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray):
        raise TypeError(f"matmul expects NumPy arrays, got {type(a).__name__} and {type(b).__name__}")
    if a.ndim < 1 or b.ndim < 1:
        raise ValueError(f"matmul needs arrays of at least 1 dimension, got shapes {a.shape} and {b.shape}")
    ka = a.shape[-1]
    kb = b.shape[-2] if b.ndim >= 2 else b.shape[0]
    if ka != kb:
        raise ValueError(f"matmul: a's last dimension ({ka}) must equal b's second-to-last ({kb}); "
                         f"got shapes {a.shape} and {b.shape}")


def matmul_numpy(a: np.ndarray, b: np.ndarray, bias: Optional[np.ndarray] = None) -> np.ndarray:
    """The reference: ``a @ b (+ bias)``."""
    y = a @ b  # (..., M, N)
    if bias is not None:
        y += bias  # in place on the fresh product
    return y


def matmul(a: np.ndarray, b: np.ndarray, bias: Optional[np.ndarray] = None) -> np.ndarray:
    """``a @ b (+ bias)``; ``bias`` (N,) is added to every row."""
    _check_operands(a, b)
    fast = backend.fast_route("matmul")
    if fast is not None:
        return fast(a, b, bias)
    return matmul_numpy(a, b, bias)


def matmul_pair(a1: np.ndarray, b1: np.ndarray, a2: np.ndarray, b2: np.ndarray) -> tuple:
    """``(a1 @ b1, a2 @ b2)``: the two products of a linear layer's backward (``dy @ W`` and
    ``dy^T @ x``), given together so that a fast route may run them side by side."""
    _check_operands(a1, b1)
    _check_operands(a2, b2)
    fast = backend.fast_route("matmul_pair")
    if fast is not None:
        return fast(a1, b1, a2, b2)
    return a1 @ b1, a2 @ b2  # (M1, N1), (M2, N2)
