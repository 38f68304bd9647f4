"""Correct building blocks shared by the entries (each entry's single slip lives in its part)."""
from __future__ import annotations

import math

import numpy as np

_erf = np.vectorize(math.erf, otypes=[np.float64])
SQ2 = math.sqrt(2.0)
SQ2PI = math.sqrt(2.0 * math.pi)


def softmax(x, axis=-1):
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / SQ2))


def gelu_grad(x):
    return 0.5 * (1.0 + _erf(x / SQ2)) + x * np.exp(-0.5 * x * x) / SQ2PI


def entry(exercise, short, what, fn, control=False):
    return {"id": f"{exercise}/{short}", "exercise": exercise, "what": what, "fn": fn,
            "control": control}


def build(exercise, impl, signature, slips):
    """Entries for one exercise: ``impl(*args, slip=...)``; ``slips`` is [(short, what)]."""
    out = [entry(exercise, "control", "correct", _bind(impl, signature, None), True)]
    for short, what in slips:
        out.append(entry(exercise, short, what, _bind(impl, signature, short)))
    return out


def _bind(impl, signature, slip):
    # a function whose parameter names are exactly the stub's (the checker passes by name)
    src = (f"def fn({signature}):\n"
           f"    return impl({', '.join(a.split('=')[0].strip() for a in signature.split(','))},"
           f" slip=slip)\n")
    ns = {"impl": impl, "slip": slip}
    exec(src, ns)  # noqa: S102 - builds a wrapper with the stub's argument names
    fn = ns["fn"]
    fn.__name__ = f"{impl.__name__}_{slip or 'control'}"
    return fn
