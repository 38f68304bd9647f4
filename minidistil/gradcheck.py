"""The one gradient-check harness used by tests, tutorials and exercises.

* :func:`numerical_grad` - central finite differences of a scalar function, in float64.
* :func:`rel_error` - max relative error ``|a - b| / max(|a| + |b|, tiny)``.
* :func:`compare` - prints a table (name | exact | allclose | max abs diff | max rel error) and
  returns a :class:`Verdict` that is truthy when every row is within its tolerance.

A gradient check here always uses a *random* upstream gradient: ``f(x) = sum(forward(x) * dy)``.
An all-ones ``dy`` can hide a wrong formula (e.g. the LayerNorm mean term vanishes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np


def rel_error(a, b, floor: float = 1e-3, tiny: float = 1e-12) -> float:
    """Maximum elementwise relative error ``|a - b| / (|a| + |b|)`` between ``a`` and ``b``.

    The denominator never drops below ``floor`` times the largest magnitude in the pair (and
    ``tiny``): an entry whose true value is zero (a padded key, say) would otherwise count its
    1e-11 of finite-difference noise as a 100% error. Central differences in float64 with
    h = 1e-5 are accurate to about 1e-9 of the tensor's scale, so this floor hides no real bug.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: shapes differ, {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))))
    denom = np.maximum(np.abs(a) + np.abs(b), max(floor * scale, tiny))
    return float(np.max(np.abs(a - b) / denom))


def numerical_grad(f: Callable[[], float], x: np.ndarray, h: float = 1e-5,
                   indices: Iterable[tuple] | None = None) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to ``x`` (changed in place, restored).

    ``x`` must be float64 (float32 differences are too coarse for a 1e-7 bound). With
    ``indices`` only those entries are differenced (others stay 0): for large tensors.
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        raise TypeError(
            f"numerical_grad needs a float64 ndarray, got {getattr(x, 'dtype', type(x).__name__)}"
        )
    grad = np.zeros_like(x)
    its = indices if indices is not None else np.ndindex(*x.shape)
    for idx in its:
        old = x[idx]
        x[idx] = old + h
        fp = float(f())
        x[idx] = old - h
        fm = float(f())
        x[idx] = old
        grad[idx] = (fp - fm) / (2.0 * h)
    return grad


def sample_indices(shape: tuple, n: int, rng: np.random.Generator) -> list[tuple]:
    """Up to ``n`` distinct random multi-indices into an array of ``shape``."""
    size = int(np.prod(shape))
    flat = rng.choice(size, size=min(n, size), replace=False)
    return [tuple(int(i) for i in np.unravel_index(f, shape)) for f in flat]


@dataclass
class Row:
    name: str
    exact: bool
    allclose: bool
    max_abs: float
    max_rel: float
    tol: float
    note: str = ""  # e.g. "shape (3, 4) != (4, 3)": printed after the row

    @property
    def ok(self) -> bool:
        return self.allclose and self.max_rel <= self.tol


@dataclass
class Verdict:
    rows: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(r.ok for r in self.rows)

    def __bool__(self) -> bool:
        return self.ok

    def failed(self) -> list:
        return [r.name for r in self.rows if not r.ok]

    def table(self) -> str:
        head = f"{'name':<28} {'exact':>5} {'allclose':>8} {'max abs diff':>13} {'max rel err':>12} {'ok':>4}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            lines.append(
                f"{r.name:<28} {str(r.exact):>5} {str(r.allclose):>8} "
                f"{r.max_abs:>13.3e} {r.max_rel:>12.3e} {'yes' if r.ok else 'NO':>4}"
                + (f"  {r.note}" if r.note else "")
            )
        return "\n".join(lines)


def compare(pairs: Mapping[str, tuple] | Sequence[tuple], tol: float = 1e-7,
            atol: float = 1e-10, verbose: bool = True, mask: Mapping[str, Sequence] | None = None) -> Verdict:
    """Compare ``name -> (mine, reference)`` pairs; print the table when ``verbose``.

    ``mask[name]`` may list the indices to compare (entries checked by sampled differences).
    """
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    verdict = Verdict()
    for name, (mine, ref) in items:
        a = np.asarray(mine, dtype=np.float64)
        b = np.asarray(ref, dtype=np.float64)
        if a.shape != b.shape:
            verdict.rows.append(Row(name, False, False, float("inf"), float("inf"), tol,
                                    f"shape {a.shape} != {b.shape}"))
            continue
        if mask is not None and name in mask:
            idx = tuple(np.array(ix) for ix in zip(*mask[name]))
            a, b = a[idx], b[idx]
        finite = bool(np.all(np.isfinite(a)))
        max_abs = float(np.max(np.abs(a - b))) if a.size else 0.0
        max_rel = rel_error(a, b) if finite else float("inf")
        close = finite and bool(np.allclose(a, b, rtol=tol, atol=atol))
        verdict.rows.append(Row(name, bool(np.array_equal(a, b)), close, max_abs, max_rel, tol))
    if verbose:
        print(verdict.table())
        print("verdict:", "PASS" if verdict.ok else "FAIL (" + ", ".join(verdict.failed()) + ")")
    return verdict


def check_layer(forward: Callable, backward: Callable, inputs: Mapping[str, np.ndarray],
                rng: np.random.Generator, tol: float = 1e-7, h: float = 1e-5,
                max_entries: int | None = None, verbose: bool = False) -> Verdict:
    """Finite-difference check of a forward/backward pair.

    ``forward(**inputs) -> y`` (an array, or a tuple whose first item is ``y`` and second the
    cache); ``backward(dy, cache_or_inputs) -> {name: grad}`` for (a subset of) ``inputs``.
    A random ``dy`` is drawn; the scalar checked is ``sum(y * dy)``.
    """
    out = forward(**inputs)
    y, cache = (out[0], out[1]) if isinstance(out, tuple) else (out, None)
    dy = rng.standard_normal(y.shape)
    grads = backward(dy, cache)

    def f():
        o = forward(**inputs)
        yy = o[0] if isinstance(o, tuple) else o
        return float(np.sum(yy * dy))

    pairs, masks = {}, {}
    for name, g in grads.items():
        x = inputs[name]
        idx = None
        if max_entries is not None and x.size > max_entries:
            idx = sample_indices(x.shape, max_entries, rng)
            masks[name] = idx
        pairs[name] = (g, numerical_grad(f, x, h=h, indices=idx))
    return compare(pairs, tol=tol, verbose=verbose, mask=masks)
