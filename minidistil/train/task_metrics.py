"""GLUE's metrics, in NumPy: accuracy, Matthews correlation (CoLA), Pearson and Spearman (STS-B).

Each task has one *score* on a 0-100 scale (correlations times 100) that enters the
macro-score, as in the GLUE leaderboard: accuracy; MCC; the mean of Pearson and Spearman.
"""
from __future__ import annotations

import numpy as np


def accuracy(pred, gold) -> float:
    return float(np.mean(np.asarray(pred) == np.asarray(gold)))


def matthews(pred, gold) -> float:
    """Matthews correlation of binary labels (0 when a row or column of the confusion is empty)."""
    p, g = np.asarray(pred).astype(bool), np.asarray(gold).astype(bool)
    tp, tn = float(np.sum(p & g)), float(np.sum(~p & ~g))
    fp, fn = float(np.sum(p & ~g)), float(np.sum(~p & g))
    den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return float((tp * tn - fp * fn) / den) if den > 0 else 0.0


def pearson(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    sx, sy = x.std(), y.std()
    if sx == 0 or sy == 0:
        return 0.0  # a constant prediction carries no correlation (the majority baseline)
    return float(np.mean((x - x.mean()) * (y - y.mean())) / (sx * sy))


def _ranks(x) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), as scipy.stats.rankdata."""
    x = np.asarray(x, float)
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x))  # (N,)
    r[order] = np.arange(len(x))
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=r)
    return sums[inv] / counts[inv]


def spearman(x, y) -> float:
    return pearson(_ranks(x), _ranks(y))


def task_score(metric: str, pred, gold) -> dict:
    """``{"score": 0-100, ...the metric's parts}`` for a task's metric name."""
    if metric == "accuracy":
        a = accuracy(pred, gold)
        return {"score": 100 * a, "accuracy": a}
    if metric == "mcc":
        m = matthews(pred, gold)
        return {"score": 100 * m, "mcc": m, "accuracy": accuracy(pred, gold)}
    if metric == "pearson_spearman":
        pr, sp = pearson(pred, gold), spearman(pred, gold)
        return {"score": 50 * (pr + sp), "pearson": pr, "spearman": sp}
    raise ValueError(f"unknown metric {metric!r}")
