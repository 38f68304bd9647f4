"""Shared bits: the entry registry and a few correct building blocks (written blind)."""
from __future__ import annotations

import math

import numpy as np

ENTRIES: list = []


def entry(exercise, short, what=None):
    """Register ``fn`` as an entry; ``what=None`` marks the control."""
    def deco(fn):
        ctrl = what is None
        ENTRIES.append({"id": f"{exercise}/{'control' if ctrl else short}", "exercise": exercise,
                        "what": "correct" if ctrl else what, "fn": fn, "control": ctrl})
        return fn
    return deco


_erf = np.vectorize(math.erf, otypes=[np.float64])


def erf(x):
    return _erf(x)


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def gelu_grad(x):
    """d gelu / dx = Phi(x) + x phi(x)."""
    Phi = 0.5 * (1.0 + erf(x / math.sqrt(2.0)))
    phi = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return Phi + x * phi


def gelu(x):
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
