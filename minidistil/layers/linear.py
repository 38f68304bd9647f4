"""Linear (fully connected) layer: ``y = x @ W^T + b`` with the Hugging Face weight layout.

Legend: N rows (the leading shape flattened), IN input features, OUT output features.

    y  = x @ W^T + b            W (OUT, IN), as ``torch.nn.Linear`` stores it
    dx = dy @ W                 dW = dy^T @ x          db = sum_rows(dy)

The leading shape of ``x`` (e.g. (B, T)) is flattened into one matrix so that NumPy hands a single
2-D matmul to BLAS; results keep the input dtype (no silent float64 upcast). The products go
through :func:`minidistil.kernels.matmul.matmul`, plain ``@`` unless the opt-in speed layer
(:mod:`minidistil.fast`) is on.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from ..kernels.backend import check_float_array, check_same_dtype, check_shape
from ..kernels.matmul import matmul, matmul_pair


class LinearCache(NamedTuple):
    x: np.ndarray  # (..., IN) the input, kept for dW
    weight: np.ndarray  # (OUT, IN) kept for dx
    has_bias: bool


def linear_forward(x: np.ndarray, weight: np.ndarray, bias: Optional[np.ndarray]):
    """``y = x @ weight.T + bias``; ``x`` (..., IN), ``weight`` (OUT, IN), ``bias`` (OUT,) or None."""
    check_float_array("x", x)
    check_float_array("weight", weight, 2)
    OUT, IN = weight.shape
    if x.ndim < 1 or x.shape[-1] != IN:
        raise ValueError(f"x must have last dimension {IN} (weight is {weight.shape}), got shape {x.shape}")
    check_same_dtype(x.dtype, weight=weight)
    if bias is not None:
        check_float_array("bias", bias, 1)
        check_shape("bias", bias, (OUT,))
        check_same_dtype(x.dtype, bias=bias)
    x2 = x.reshape(-1, IN)  # (N, IN)
    y = matmul(x2, weight.T, bias)  # (N, OUT): x2 @ weight.T + bias
    y = y.reshape(*x.shape[:-1], OUT)  # (..., OUT)
    return y, LinearCache(x=x, weight=weight, has_bias=bias is not None)


def linear_backward(dy: np.ndarray, cache: LinearCache):
    """Returns ``(dx, {"weight": dW, "bias": db})`` (``"bias"`` only when the forward had one)."""
    x, weight = cache.x, cache.weight
    OUT, IN = weight.shape
    check_float_array("dy", dy)
    check_shape("dy", dy, x.shape[:-1] + (OUT,))
    check_same_dtype(x.dtype, dy=dy)
    dy2 = dy.reshape(-1, OUT)  # (N, OUT)
    x2 = x.reshape(-1, IN)  # (N, IN)
    dx2, dw = matmul_pair(dy2, weight, dy2.T, x2)  # dx (N, IN) and dW (OUT, IN), side by side
    dx = dx2.reshape(x.shape)  # (..., IN)
    grads = {"weight": dw}  # (OUT, IN)
    if cache.has_bias:
        grads["bias"] = dy2.sum(axis=0)  # (OUT,)
    return dx, grads
