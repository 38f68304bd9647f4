"""Small inputs (a batch of one sequence, as inference runs it): the forward kernels on the calling
thread alone, and their matrix products on BLAS's own threads.

The plain code this replaces is the kernels' own Numba versions (kernels/layernorm.py, gelu.py,
attention.py), which spread rows over Numba's threads with ``prange``, and the fast layer's one
plain call, BLAS single-threaded, for a product too small for the pool (fast/threads.py). Both are
right for a training batch (thousands of rows). For a batch of one 128-token sequence they are
not:

* A LayerNorm of 128 x 128 values takes about 20 us on one thread. Handing half of it to a Numba
  worker that went to sleep while BLAS ran (fast/omp.py lets idle workers sleep) costs more than
  that, on some calls hundreds of microseconds. So while a forward kernel's input has fewer than
  :data:`SERIAL_ROWS` rows, the kernel runs with one Numba thread. Each row (each head, for
  attention) is computed by the same code either way, so the result has the same bits.
* A product of so few rows is mostly below the pool's threshold and would run on one core, and
  where it is above, the pool's hand-off costs about what it saves. OpenBLAS's own threads split a
  product by output blocks, never along the summed axis, so they give the same bits as one thread
  (compared on the first product of each shape; a shape where they differed stays on one plain
  call). They are given back on the first such product and left on for the next ones, until a
  larger product (or a backward's) takes them again (fast/threads.py, ``blas_loose`` and
  ``hold_again``); their idle spinning cannot get in the way here, since the kernels between the
  products run on the calling thread alone.

The backward kernels are left as they are: LayerNorm's backward sums its gain gradient in one
part per thread, so one thread would change its bits, and small training batches are rare.
docs/performance.md ("Inference at batch 1") has the measurements behind :data:`SERIAL_ROWS`.
"""
from __future__ import annotations

from typing import Callable

import numba
import numpy as np

from . import calibrate

# Inputs with fewer rows (B * T positions) than this run their forward kernels on one thread and
# their products on BLAS's threads. 256 rows is two 128-token sequences. Measured in fresh
# processes on a 2-core Zen 4 (python -m minidistil.bench.small_rows), the teacher's forward with
# the route over without it: 0.55 (demo) and 0.78 (base) at 128 rows, 0.90 and 1.04 at 256, and
# 0.92-1.56 from 512 rows on, so only inputs below 256 rows take it.
SERIAL_ROWS = 256


def rows_of(x: np.ndarray) -> int:
    """The positions of an input (..., C): every axis but the last."""
    return int(np.prod(x.shape[:-1], dtype=np.int64)) if x.ndim else 1


def one_thread(fn: Callable, *args):
    """``fn(*args)`` with Numba's parallel kernels on the calling thread only (then as before)."""
    n = numba.get_num_threads()
    if n == 1:
        return fn(*args)
    numba.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        numba.set_num_threads(n)


def serial_when_small(fn: Callable, rows: Callable = rows_of) -> Callable:
    """``fn`` (a forward kernel taking its input first) on one thread when the input is small."""
    def route(x, *args):
        if rows(x) < SERIAL_ROWS:
            return one_thread(fn, x, *args)
        return fn(x, *args)
    route.__name__ = route.__qualname__ = f"serial_when_small({fn.__name__})"
    route.__wrapped__ = fn
    return route


def attention_rows(q: np.ndarray) -> int:
    """The positions of attention's (B, NH, T, HS) input: B * T."""
    return int(q.shape[0]) * int(q.shape[2])


def small_product(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a @ b`` is a product of a small input: 2-D, or batched with fewer than
    :data:`SERIAL_ROWS` output rows in all."""
    return a.ndim >= 2 and b.ndim >= 2 and rows_of(a) < SERIAL_ROWS


_same_bits: dict = {}  # shape key -> whether BLAS's threads gave one plain call's bits


def matmul_small(a: np.ndarray, b: np.ndarray, bias, plain: Callable, pool: Callable = None):
    """A small input's product on BLAS's own threads; one plain call (BLAS single-threaded) or,
    for a product big enough to cut, the pool, where one of those was faster on the shape's first
    product (``calibrate.choose``). The first product of each shape is also run both ways and
    compared: where BLAS's threads did not give one plain call's bits, that shape stays on the
    plain call, so this route never changes a result."""
    from .threads import blas_loose, hold_again  # here: fast/threads.py imports this module

    def held(fn):  # one plain call or the pool: BLAS single-threaded, as fast/threads.py runs them
        def run():
            hold_again()
            return fn()
        return run

    key = ("small", bias is None) + calibrate.shape_key(a, b)
    if key not in _same_bits:
        _same_bits[key] = calibrate.same_bits(blas_loose(plain), held(plain)())
    if not _same_bits[key]:
        return calibrate.choose(key, {"plain": held(plain)}, default="plain")
    routes = {"blas": lambda: blas_loose(plain), "plain": held(plain)}
    if pool is not None:
        routes["pool"] = held(pool)
    return calibrate.choose(key, routes, default="blas", exact=tuple(n for n in routes if n != "blas"))


def forget() -> None:
    """Drop the bit comparisons (``fast.disable`` calls it with ``calibrate.forget``)."""
    _same_bits.clear()
