"""Choose a route by timing it: the first call of each shape runs every candidate and keeps the
fastest, so a fast route is used only where it measurably helps on this CPU.

A candidate other than the default must beat it by :data:`MARGIN` in every one of the
:data:`ROUNDS` paired turns, not just on average: on a loaded machine single timings swing by
10x, and a route chosen by one lucky turn would stay chosen for the whole run. A few timed calls
also cannot see everything a whole training step feels (BLAS's idle workers spinning into the
next kernel, caches evicted), and the defaults are the routes the whole-step measurements in
docs/performance.md favour. Every decision is kept, with its timings, for
:func:`minidistil.fast.info`.
"""
from __future__ import annotations

import time
from typing import Callable, Dict

MARGIN = 1.10
ROUNDS = 5  # timed turns of each candidate, alternating, so a slow spell hits them all

_choices: dict = {}  # key -> {"route": name, "times_ms": {name: best time}}


def shape_key(*arrays) -> tuple:
    """What a kernel's speed depends on: the shapes (the second-to-last axis rounded up to a power
    of two, so that sequences of nearby lengths share a decision), dtypes and memory layouts."""
    key = []
    for x in arrays:
        shape = list(x.shape)
        if len(shape) >= 2:
            shape[-2] = 1 << max(0, int(shape[-2]) - 1).bit_length()
        key.append((tuple(shape), x.dtype.str, bool(x.flags.c_contiguous)))
    return tuple(key)


def choose(key: tuple, routes: Dict[str, Callable[[], object]], default: str):
    """``routes[name]()`` for the route chosen for ``key``; the first time, every route is timed
    :data:`ROUNDS` times and the result of the winner's last run is returned (no extra call)."""
    choice = _choices.get(key)
    if choice is not None:
        return routes[choice["route"]]()
    times: dict = {name: [] for name in routes}
    results: dict = {}
    for _ in range(ROUNDS):
        for name, fn in routes.items():
            t0 = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t0)
    best = {name: min(t) for name, t in times.items()}
    # an alternative must win every paired turn by the margin; the fastest such one is taken
    winners = [n for n in routes if n != default
               and all(a * MARGIN < d for a, d in zip(times[n], times[default]))]
    route = min(winners, key=lambda n: best[n]) if winners else default
    _choices[key] = {"route": route, "times_ms": {n: round(t * 1e3, 3) for n, t in best.items()}}
    return results[route]


def route_for(key: tuple):
    """The route chosen for ``key``, or None before its first call."""
    c = _choices.get(key)
    return None if c is None else c["route"]


def decisions() -> dict:
    """Every decision so far, ``{key as text: {"route", "times_ms"}}``."""
    return {str(k): dict(v) for k, v in _choices.items()}


def forget() -> None:
    """Drop every decision (the next call of each shape is timed again)."""
    _choices.clear()
