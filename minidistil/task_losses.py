"""The fine-tuning losses of the sequence-classification heads, with their backward.

Legend: B batch (examples), K labels (``num_labels``).

    classification (K >= 2):  L = mean_b -log softmax(logits_b)[label_b]          logits (B, K)
                              dL/dlogits = (softmax(logits) - onehot(label)) / B
    regression (K = 1):       L = mean_b (logits_b - y_b)^2                       logits (B, 1)
                              dL/dlogits = 2 (logits - y) / B

These are the losses Hugging Face's ``*ForSequenceClassification`` picks from ``problem_type``
("single_label_classification" or "regression"; ``num_labels == 1`` means regression). Same
contract as :mod:`minidistil.losses`: ``loss, cache = f_forward(...)``, ``dlogits = f_backward(dloss,
cache)``; the loss is a Python float, the gradient keeps the logits' dtype.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .kernels.backend import check_float_array, check_ids

PROBLEM_TYPES = ("single_label_classification", "regression")


def problem_type_for(num_labels: int, problem_type=None) -> str:
    """The Hugging Face rule: ``num_labels == 1`` is regression, otherwise classification."""
    if problem_type is None:
        return "regression" if num_labels == 1 else "single_label_classification"
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(f"problem_type must be one of {PROBLEM_TYPES} or None, got {problem_type!r}")
    if problem_type == "regression" and num_labels != 1:
        raise ValueError(f"problem_type 'regression' needs num_labels == 1, got {num_labels}")
    if problem_type == "single_label_classification" and num_labels < 2:
        raise ValueError(f"problem_type 'single_label_classification' needs num_labels >= 2, got {num_labels}")
    return problem_type


def _check_logits(logits, K=None):
    check_float_array("logits", logits, 2)
    if logits.shape[0] == 0:
        raise ValueError("logits must hold at least one example, got shape (0, K)")
    if K is not None and logits.shape[1] != K:
        raise ValueError(f"logits must have {K} column(s), got shape {logits.shape}")


def check_class_labels(labels, num_labels: int, n=None) -> np.ndarray:
    """Integer labels in [0, num_labels): anything else is a ValueError naming the bad value."""
    check_ids("labels", labels, num_labels)  # an integer ndarray, every value a class index
    if labels.ndim != 1 or (n is not None and labels.shape[0] != n):
        raise ValueError(f"labels must have shape ({n if n is not None else 'B'},), got {labels.shape}")
    return labels


class CrossEntropyCache(NamedTuple):
    probs: np.ndarray  # (B, K) softmax of the logits
    labels: np.ndarray  # (B,) int


def cross_entropy_forward(logits: np.ndarray, labels: np.ndarray):
    """Mean cross-entropy of ``logits`` (B, K) against integer ``labels`` (B,)."""
    _check_logits(logits)
    B, K = logits.shape
    labels = check_class_labels(labels, K, B)
    z = logits - logits.max(axis=1, keepdims=True)  # (B, K) shifted: exp never overflows
    logz = np.log(np.exp(z).sum(axis=1, keepdims=True))  # (B, 1)
    logp = z - logz  # (B, K)
    loss = float(-logp[np.arange(B), labels].mean())
    if not math.isfinite(loss):
        raise FloatingPointError("the cross-entropy is not finite: the logits hold NaN or inf")
    return loss, CrossEntropyCache(np.exp(logp), labels)


def cross_entropy_backward(dloss, cache: CrossEntropyCache) -> np.ndarray:
    B = cache.probs.shape[0]
    dlogits = cache.probs.copy()  # (B, K)
    dlogits[np.arange(B), cache.labels] -= 1
    return dlogits * cache.probs.dtype.type(float(dloss) / B)  # (B, K)


class MseCache(NamedTuple):
    diff: np.ndarray  # (B, 1) logits - targets


def mse_forward(logits: np.ndarray, targets: np.ndarray):
    """Mean squared error of ``logits`` (B, 1) against float ``targets`` (B,)."""
    _check_logits(logits, 1)
    if not isinstance(targets, np.ndarray) or targets.shape != (logits.shape[0],):
        raise ValueError(f"regression targets must be an array of shape ({logits.shape[0]},), got "
                         f"{getattr(targets, 'shape', type(targets).__name__)}")
    if not np.issubdtype(targets.dtype, np.number) or not np.all(np.isfinite(targets)):
        raise ValueError("regression targets must be finite numbers")
    diff = logits - targets.astype(logits.dtype)[:, None]  # (B, 1)
    return float(np.mean(diff * diff)), MseCache(diff)


def mse_backward(dloss, cache: MseCache) -> np.ndarray:
    B = cache.diff.shape[0]
    return cache.diff * cache.diff.dtype.type(2.0 * float(dloss) / B)  # (B, 1)


def task_loss_forward(logits: np.ndarray, labels: np.ndarray, problem_type: str):
    """Dispatch on ``problem_type``: ``(loss, cache)``; :func:`task_loss_backward` inverts it."""
    if problem_type == "regression":
        return mse_forward(logits, labels)
    if problem_type == "single_label_classification":
        return cross_entropy_forward(logits, labels)
    raise ValueError(f"problem_type must be one of {PROBLEM_TYPES}, got {problem_type!r}")


def task_loss_backward(dloss, cache) -> np.ndarray:
    if isinstance(cache, MseCache):
        return mse_backward(dloss, cache)
    if isinstance(cache, CrossEntropyCache):
        return cross_entropy_backward(dloss, cache)
    raise TypeError(f"cache must come from task_loss_forward, got {type(cache).__name__}")
