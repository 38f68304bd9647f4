"""Small helpers shared by the learner answers (what a learner would keep in a utils cell)."""
import math

import numpy as np

IGNORE = -100


def softmax(x, tau=1.0, axis=-1):
    z = (x - x.max(axis=axis, keepdims=True)) / tau
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def erf(x):
    return _erf(x)


def entry(exercise, short, what, fn, control=False):
    return {"id": f"{exercise}/{short}", "exercise": exercise, "what": what, "fn": fn,
            "control": control}
