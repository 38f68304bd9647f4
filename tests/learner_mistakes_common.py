"""Shared pieces of the learner-mistake set (see test_exercise_mistakes.py)."""
import math

import numpy as np

GENERIC = {"generic", "exception", "scale_other", "block_first_failure", "missing_gradient"}
MISTAKES = []


def mistake(exercise, *keys):
    def wrap(fn):
        MISTAKES.append((fn.__name__, exercise, fn, set(keys)))
        return fn
    return wrap


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _cdf(x):
    return 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _pdf(x):
    return np.exp(-x * x / 2) / math.sqrt(2 * math.pi)


