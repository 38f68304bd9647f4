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

import numpy as np

MARGIN = 1.10
ROUNDS = 5  # timed turns of each candidate, alternating, so a slow spell hits them all

_choices: dict = {}  # key -> {"route": name, "times_ms": {name: best time}}
# Timing is off unless fast.enable(calibrate_routes=True) asks for it. Most routes add up their
# products in different orders, so a choice made by a stopwatch can differ between two processes,
# and a resumed run would then not repeat the losses of an uninterrupted one to the last bit.
# Without timing every shape takes its default route (the one the whole-step measurements favour),
# except where the candidates give the same bits (``choose``'s ``exact`` routes): the pool against
# one plain call (fast/threads.py), timed always.
_timing = {"on": False}


def set_timing(on: bool) -> None:
    _timing["on"] = bool(on)


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


def timing() -> bool:
    """Whether ``fast.enable(calibrate_routes=True)`` asked for every route to be timed."""
    return _timing["on"]


def same_bits(x, y) -> bool:
    """Whether two results (arrays, or tuples of arrays) hold the same values, NaNs included."""
    if isinstance(x, tuple):
        return isinstance(y, tuple) and len(x) == len(y) and all(same_bits(a, b) for a, b in zip(x, y))
    return x.shape == y.shape and x.dtype == y.dtype and bool(np.array_equal(x, y, equal_nan=True))


def choose(key: tuple, routes: Dict[str, Callable[[], object]], default: str, exact: tuple = ()):
    """``routes[name]()`` for the route chosen for ``key``; the first time, every route is timed
    :data:`ROUNDS` times and the result of the winner's last run is returned (no extra call).

    The routes named in ``exact`` compute the default's result in the same order, so choosing one
    cannot change a result: they are timed even when calibration is off, and the others only when
    it is on. Each timed call of an ``exact`` route is checked against the default's
    (:func:`same_bits`); one that differed is never chosen, and the decision says so
    (``"differs"``).
    """
    choice = _choices.get(key)
    if choice is not None:
        # shapes that share a key (rows rounded up to a power of two) may offer fewer routes: a
        # product above the one-call size has no "plain" one; it then takes the default
        return routes.get(choice["route"], routes[default])()
    if not _timing["on"]:
        routes = {n: f for n, f in routes.items() if n == default or n in exact}
    if len(routes) == 1:
        _choices[key] = {"route": default, "times_ms": {}}
        return routes[default]()
    times: dict = {name: [] for name in routes}
    differs: set = set()
    results: dict = {}
    for _ in range(ROUNDS):
        for name, fn in routes.items():
            t0 = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t0)
        differs.update(n for n in exact if n in results and not same_bits(results[n], results[default]))
    best = {name: min(t) for name, t in times.items()}
    # an alternative must win every paired turn by the margin; the fastest such one is taken
    winners = [n for n in routes if n != default and n not in differs
               and all(a * MARGIN < d for a, d in zip(times[n], times[default]))]
    route = min(winners, key=lambda n: best[n]) if winners else default
    _choices[key] = {"route": route, "times_ms": {n: round(t * 1e3, 3) for n, t in best.items()}}
    if differs:
        _choices[key]["differs"] = sorted(differs)
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
