"""Outside set 3: realistic wrong backward passes for the minidistil exercises, written blind.

Written from the stub signatures, the forward definitions and docs/math.md only, the way a
class of learners gets these wrong. Each entry: {"exercise", "id", "fn", "what"}; ``fn`` has
the stub's signature. Ids ending in ``_ok`` are correct controls. NumPy only.
"""
from __future__ import annotations

import math

import numpy as np

_erf = np.vectorize(math.erf, otypes=[np.float64])
SQ2PI = math.sqrt(2.0 * math.pi)


# ----------------------------------------------------------------------------- small pieces
def _softmax(z, axis=-1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _Phi(x):
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


def _phi(x):
    return np.exp(-0.5 * x * x) / SQ2PI


ENTRIES = []


def entry(exercise, id, what):
    def deco(fn):
        ENTRIES.append({"exercise": exercise, "id": id, "fn": fn, "what": what})
        return fn
    return deco

MISTAKES = ENTRIES  # the name tests/test_outside_mistakes.py reads
