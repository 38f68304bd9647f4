"""Blind test set of realistic wrong backward passes for the minidistil gradient exercises.

Written only from forwards.py and stubs.py. Each entry of ``MISTAKES`` has exactly the stub's
signature and contains exactly one mistake (or none, for the ``correct_`` controls).
numpy only.
"""
from __future__ import annotations

import math

import numpy as np

_erf = np.vectorize(math.erf, otypes=[np.float64])
SQRT2 = math.sqrt(2.0)
SQRT2PI = math.sqrt(2.0 * math.pi)


# ----------------------------------------------------------------------------- helpers
def _softmax(x, T=1.0):
    z = (x - x.max(axis=-1, keepdims=True)) / T
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _Phi(x):
    return 0.5 * (1.0 + _erf(x / SQRT2))


def _phi(x):
    return np.exp(-0.5 * x * x) / SQRT2PI


MISTAKES = []


def _add(exercise, id_, what):
    def deco(fn):
        MISTAKES.append({"exercise": exercise, "id": id_, "fn": fn, "what": what})
        return fn
    return deco


