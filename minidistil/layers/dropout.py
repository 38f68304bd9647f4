"""Dropout (Srivastava et al., 2014), the "inverted" form every modern library uses.

Legend: ``...`` any shape (for the heads: B batch, C hidden).

    training:  keep ~ Bernoulli(1 - p) elementwise,   y = x * keep / (1 - p)        (...)
    eval:      y = x                                   (no mask, no scaling)
    backward:  dx = dy * keep / (1 - p)                (dy in eval mode)

Scaling by 1 / (1 - p) during training keeps the expected activation equal to the input, so
evaluation needs no correction. The mask is drawn from a ``numpy.random.Generator`` the caller
passes in (or an int seed): the same seed gives the same mask, which is what a gradient check
and a resumable run need. The mask is kept in the cache; backward multiplies by the same mask.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from ..kernels.backend import check_float_array, check_same_dtype, check_shape


class DropoutCache(NamedTuple):
    scale_mask: Optional[np.ndarray]  # (...) keep / (1 - p) in x's dtype; None in eval mode or p = 0
    shape: tuple  # the input's shape
    dtype: np.dtype


def _check_p(p) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)):
        raise TypeError(f"dropout p must be a number in [0, 1), got {type(p).__name__} {p!r}")
    p = float(p)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout p must be in [0, 1), got {p}")
    return p


def dropout_forward(x: np.ndarray, p: float, rng=None, training: bool = True):
    """``y, cache = dropout_forward(x, p, rng, training)``.

    ``p`` is the probability of zeroing an entry; ``rng`` a ``numpy.random.Generator`` or an int
    seed (required when ``training`` and ``p > 0``). ``training=False`` is the identity.
    """
    check_float_array("x", x)
    p = _check_p(p)
    if not training or p == 0.0:
        return x.copy(), DropoutCache(None, x.shape, x.dtype)  # (...) a copy: y never aliases x
    if rng is None:
        raise ValueError("dropout_forward(training=True, p > 0) needs rng: a numpy Generator or an int seed")
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        rng = np.random.default_rng(int(rng))
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or an int seed, got {type(rng).__name__}")
    keep = rng.random(x.shape) >= p  # (...) bool, True with probability 1 - p
    scale_mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))  # (...)
    return x * scale_mask, DropoutCache(scale_mask, x.shape, x.dtype)  # (...)


def dropout_backward(dy: np.ndarray, cache: DropoutCache) -> np.ndarray:
    """``dx = dropout_backward(dy, cache)``: the same mask and scale as the forward."""
    if not isinstance(cache, DropoutCache):
        raise TypeError(f"cache must be a DropoutCache, got {type(cache).__name__}")
    check_float_array("dy", dy)
    check_shape("dy", dy, cache.shape)
    check_same_dtype(cache.dtype, dy=dy)
    if cache.scale_mask is None:
        return dy.copy()  # (...) identity
    return dy * cache.scale_mask  # (...)
