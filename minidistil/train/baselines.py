"""The two floors under every miniature-GLUE score: the majority class and bag-of-words
logistic regression, in NumPy.

Legend: N examples, W words in the bag-of-words vocabulary, F features, K labels.

Bag of words: a binary presence vector over the training split's words seen at least twice
(lower-cased letters only, :func:`~minidistil.data.task_sources.words`), at most ``MAX_WORDS``.
A pair (a, b) is ``[u, v, u * v]``: each side's words and the words they share, the way GLUE's
CBoW baseline combines two sentence vectors. Classification: multinomial logistic regression;
regression: the same linear model under squared error (least squares with an L2 penalty). Both
are fitted by full-batch gradient descent with Adam for ``STEPS`` steps, then scored on dev.
Word order is invisible to it: on ``swap`` it can only be at chance, which is the point.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..data.task_sources import words
from .task_metrics import task_score

MAX_WORDS = 3000
STEPS, LR, L2 = 200, 0.05, 1e-4


def majority_baseline(task) -> dict:
    """Predict the training split's most frequent label (regression: its mean) on dev."""
    gold = np.array([ex.label for ex in task.dev])  # (N,)
    if task.is_regression:
        pred = np.full(len(gold), np.mean([ex.label for ex in task.train]))  # (N,)
    else:
        top = Counter(int(ex.label) for ex in task.train).most_common(1)[0][0]
        pred = np.full(len(gold), top)  # (N,)
    return task_score(task.metric, pred, gold)


def _vocab(task) -> dict:
    c = Counter(w for ex in task.train for t in (ex.a, ex.b) if t for w in set(words(t)))
    kept = [w for w, n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])) if n >= 2][:MAX_WORDS]
    return {w: i for i, w in enumerate(kept)}


def _bag(texts, vocab) -> np.ndarray:
    x = np.zeros((len(texts), len(vocab)), np.float32)  # (N, W) 0/1, float32 halves the matmuls
    for n, t in enumerate(texts):
        for w in words(t or ""):
            i = vocab.get(w)
            if i is not None:
                x[n, i] = 1.0
    return x


def bow_features(examples, vocab, pair: bool) -> np.ndarray:
    u = _bag([ex.a for ex in examples], vocab)  # (N, W)
    if not pair:
        return u
    v = _bag([ex.b for ex in examples], vocab)  # (N, W)
    return np.concatenate([u, v, u * v], axis=1)  # (N, 3W)


def _fit(x, y, K, steps=STEPS, lr=LR, l2=L2):
    """Adam on the mean loss + l2 |W|^2; classification (K >= 2, softmax) or regression (K = 1)."""
    N, F = x.shape
    W = np.zeros((F, K))  # (F, K)
    b = np.zeros(K) if K > 1 else np.array([y.mean()])  # (K,)
    m = [np.zeros_like(W), np.zeros_like(b)]
    v = [np.zeros_like(W), np.zeros_like(b)]
    for t in range(1, steps + 1):
        z = x @ W + b  # (N, K)
        if K == 1:
            dz = 2 * (z[:, 0] - y)[:, None] / N  # (N, 1)
        else:
            p = np.exp(z - z.max(1, keepdims=True))  # (N, K)
            p /= p.sum(1, keepdims=True)
            p[np.arange(N), y.astype(int)] -= 1
            dz = p / N  # (N, K)
        grads = [x.T @ dz + 2 * l2 * W, dz.sum(0)]  # (F, K), (K,)
        for i, (param, g) in enumerate(zip((W, b), grads)):
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            param -= lr * (m[i] / (1 - 0.9 ** t)) / (np.sqrt(v[i] / (1 - 0.999 ** t)) + 1e-8)
    return W, b


def bow_baseline(task, steps: int = STEPS, with_pred: bool = False) -> dict:
    """Fit on train, score on dev: ``{"score", ...}`` plus the features' size (and, with
    ``with_pred``, the dev predictions under ``"pred"``, for paired intervals)."""
    vocab = _vocab(task)
    pair = task.kind == "pair"
    xtr, xdv = bow_features(task.train, vocab, pair), bow_features(task.dev, vocab, pair)
    ytr = np.array([ex.label for ex in task.train], float)  # (N,)
    gold = np.array([ex.label for ex in task.dev])  # (N,)
    W, b = _fit(xtr, ytr, task.num_labels, steps)
    z = xdv @ W + b  # (N, K)
    pred = z[:, 0] if task.is_regression else z.argmax(1)  # (N,)
    out = task_score(task.metric, pred, gold)
    out["features"] = int(xtr.shape[1])
    if with_pred:
        out["pred"] = pred
    return out
