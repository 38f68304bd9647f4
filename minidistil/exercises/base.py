"""The pieces every exercise is made of: a random :class:`Case`, a :class:`Mistake`, an :class:`Exercise`.

Legend: N rows, B batch, T sequence, C hidden, NH heads, HS head size, F feed-forward,
V vocabulary, P selected positions, IN/OUT linear fan-in/fan-out.

An :class:`Exercise` knows how to draw a few cases (tiny float64 shapes, non-trivial parameters,
a random upstream gradient, padding where it matters), how to read the learner's return value,
and a list of mistakes: each a named, wrong-but-plausible formula. When a learner's gradient
fails and equals one of those wrong formulas, the checker prints its hint. ``scales`` lists the
constant factors (see :mod:`.hints`) that the generic scale hint may name for this exercise.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class Case:
    """One random instance: ``args`` for the learner, the arrays to differentiate, the scalar.

    ``consts`` holds the sizes and constants a wrong factor could come from (tau, T, P, V, B, C, HS...),
    read by the generic scale hint.
    """
    label: str
    args: dict  # keyword arguments of the learner's function
    targets: dict  # gradient name -> the float64 array (inside args) it differentiates
    scalar: Callable[[], float]  # sum(forward(args) * upstream), read from the same arrays
    consts: dict = field(default_factory=dict)


@dataclass
class Mistake:
    """A named wrong formula: ``test(mine, ref, case)`` is True when the learner wrote it (or a
    string: the hint's text made sharper for this answer, e.g. naming which term is wrong).

    ``on_error(exc, case)`` (optional) recognises the mistake from the exception it raises.
    """
    key: str
    hint: str
    test: Callable | None = None  # (mine: dict, ref: dict, case: Case) -> bool
    on_error: Callable | None = None  # (exc: Exception, case: Case) -> bool


@dataclass
class Exercise:
    name: str
    title: str
    grad_names: tuple
    stub: Callable
    solution: Callable
    make_cases: Callable  # rng -> list[Case]
    mistakes: list = field(default_factory=list)
    math_section: str = ""
    max_entries: int | None = None  # sample this many entries per tensor in the numeric check
    scales: dict = field(default_factory=dict)  # scale label -> likely cause (see hints.SCALES)
    unpack_fn: Callable | None = None  # custom reader of the return value (encoder block)

    def unpack(self, out) -> dict:
        """The learner's return value as ``{grad name: array}`` (raises TypeError if malformed)."""
        if self.unpack_fn is not None:
            return self.unpack_fn(out)
        names = self.grad_names
        if len(names) == 1:
            if isinstance(out, tuple):
                raise TypeError(f"expected one array ({names[0]}), got a tuple of {len(out)}")
            return {names[0]: out}
        if not isinstance(out, tuple) or len(out) != len(names):
            raise TypeError(f"expected a tuple ({', '.join(names)}), got {type(out).__name__}"
                            + (f" of {len(out)}" if isinstance(out, tuple) else ""))
        return dict(zip(names, out))


def close(a, b) -> bool:
    """Same shape and equal up to float64 round-off (used to recognise a mistake's formula)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or not np.all(np.isfinite(a)):
        return False
    scale = max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-300)
    return bool(np.allclose(a, b, rtol=1e-6, atol=1e-8 * scale))


def any_close(m, name, candidates) -> bool:
    """``m[name]`` equals one of the candidate arrays."""
    return any(close(m[name], c) for c in candidates)


def raises_like(e, attempt) -> bool:
    """``attempt()`` raises the same exception as the learner's ``e`` (type and message)."""
    try:
        attempt()
    except Exception as mine:  # noqa: BLE001 - compare whatever the attempt raises
        return type(e) is type(mine) and str(e) == str(mine)
    return False


def bias_partial_sum(m, r) -> bool:
    """A bias gradient ``m`` that kept leading axes: summing them gives the reference ``r``."""
    m, r = np.asarray(m, dtype=np.float64), np.asarray(r, dtype=np.float64)
    return (m.ndim > r.ndim == 1 and m.shape[-1] == r.shape[-1] and m.size != r.size
            and close(m.reshape(-1, r.shape[-1]).sum(0), r))  # same size: keepdims_extra


BIAS_AXES_HINT = ("A bias is added at every position, so its gradient sums over ALL the leading "
                  "axes, batch AND sequence: g.sum(axis=(0, 1)) (or g.reshape(-1, g.shape[-1])"
                  ".sum(0)), the shape of the bias.")


def padding_mask(B, T, pads):
    """(B, T) int mask, 1 real and 0 pad, the last ``pads[b]`` positions of row b padded."""
    mask = np.ones((B, T), dtype=np.int64)  # (B, T)
    for b, n in enumerate(pads):
        if n:
            mask[b, T - n:] = 0
    return mask


def upstream_ignored(name):
    """The test of the ``upstream_ignored`` mistake for a gradient called ``name``."""
    return lambda m, r, c: close(m[name], r[name] / c.args["dloss"])


UPSTREAM_HINT = "Multiply by the upstream gradient dloss (the loss is one node of a bigger graph)."
