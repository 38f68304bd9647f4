"""An outside test set of realistic wrong backward passes for minidistil's gradient exercises.

Each entry of ``MISTAKES`` is a dict ``{"exercise", "id", "fn", "what"}``; ``fn`` has exactly the
signature of the stub in ``minidistil/exercises/stubs.py`` and is a working backward pass with
exactly one mistake (entries whose id starts with ``correct_`` have none: controls).
NumPy only (plus ``math.erf``). Verified against central differences by ``selfcheck.py``.
"""
from __future__ import annotations

import math

import numpy as np

_erf = np.vectorize(math.erf, otypes=[np.float64])
_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)

MISTAKES: list[dict] = []


def _add(exercise, id_, what):
    def deco(fn):
        MISTAKES.append({"exercise": exercise, "id": id_, "fn": fn, "what": what})
        return fn
    return deco


# ----------------------------------------------------------------------------- helpers (correct)

def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _rows(a):
    return a.reshape(-1, a.shape[-1])


def _Phi(x):
    return 0.5 * (1.0 + _erf(x / _SQRT2))


def _phi(x):
    return np.exp(-0.5 * x * x) / _SQRT2PI


def _ln_backward(dy, x, gamma, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * rstd
    g = dy * gamma
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, _rows(dy * xhat).sum(axis=0), _rows(dy).sum(axis=0)


def _ce_grad_rows(logits2, y):
    """d(mean over kept rows of CE)/dlogits for 2-D logits, 1-D labels."""
    keep = y != -100
    p = _softmax(logits2)
    g = p.copy()
    rows = np.nonzero(keep)[0]
    g[rows, y[rows]] -= 1.0
    g[~keep] = 0.0
    return g / keep.sum()


def _cos_grad(s_h, t_h, m, count):
    """d(sum over positions m of (1 - cos))/ds_h, divided by count."""
    ns = np.sqrt((s_h * s_h).sum(axis=-1, keepdims=True))
    nt = np.sqrt((t_h * t_h).sum(axis=-1, keepdims=True))
    cos = (s_h * t_h).sum(axis=-1, keepdims=True) / (ns * nt)
    g = -(t_h / (ns * nt) - cos * s_h / (ns * ns))
    return g * m[..., None] / count


