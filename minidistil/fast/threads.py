"""Who owns the cores: BLAS held to one thread, and matrix products cut over a small thread pool.

The plain code this replaces is ``a @ b`` in :mod:`minidistil.kernels.matmul`, where BLAS
(OpenBLAS in NumPy's wheels) splits each product over its own threads. That works well for big
2-D products, but OpenBLAS's idle workers busy-wait after every call and take the cores from the
Numba kernel that runs next, and it splits the many small batched products badly. So, while
:func:`minidistil.fast.enable` is in effect:

* BLAS runs single-threaded (:func:`hold_blas`, through threadpoolctl, which finds OpenBLAS, MKL
  or BLIS and restores the old limits on :func:`release_blas`);
* :func:`matmul_threaded` cuts a product along its leading axis (rows of a 2-D product, the batch
  of a batched one) into one piece per thread and runs the pieces at once on a pool of Python
  threads (NumPy releases the GIL inside BLAS), each piece a single-threaded BLAS call;
* Numba's threads run the fused kernels in between, so at any moment one pool computes.

Whether the pool beats one plain call depends on the CPU and the shape, so for mid-sized products
:func:`matmul_calibrated` times both on the first product of each shape and keeps the faster
(fast/calibrate.py); with ``enable(calibrate_routes=True)`` BLAS's own threads compete too.
docs/performance.md has the figures.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable, Optional

import numpy as np

from ..kernels import backend
from ..kernels.matmul import matmul_numpy
from . import small
from .calibrate import choose, shape_key, timing

# Products smaller than this many multiply-adds run as one call. Below it the hand-off costs more
# than the second core saves: besides waking a worker (~40 us on a KVM guest), each piece packs
# the whole of ``b`` again, so for a batch-1 sequence (128 rows) cutting rows only pays once the
# product is wide. docs/performance.md ("Where the pool pays") has the measurements.
MIN_SPLIT_MACS = 1 << 23
# Products of at least this many go to the pool without a test: it won there on both CPUs measured,
# taking 0.58-0.71 of one plain call. Between the two bounds the pool won on one CPU and lost on
# the other at the same shape, so the first product of each shape times the pool against one plain
# call and keeps the faster. The two give the same bits (each output row is one BLAS call's work
# either way; every timed call checks it), so the choice cannot change a result.
ALWAYS_SPLIT_MACS = 1 << 27

_lock = threading.Lock()
_blas = None  # the threadpoolctl controller of the BLAS libraries, found once
_limits = None  # the threadpool_limits object while BLAS is held to one thread
_blas_threads = 1  # BLAS's thread count before hold_blas (what "BLAS's own threads" means)
_pool: Optional[ThreadPoolExecutor] = None
_pool_key = (0, 0)  # (pid, workers): a forked child or a new thread count gets a new pool
_loose = {"threads": 0}  # BLAS's thread count while blas_loose leaves it on its threads, else 0


def blas_controller():
    """threadpoolctl's controller of the BLAS libraries in this process (found once)."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController
        _blas = ThreadpoolController().select(user_api="blas")
    return _blas


def blas_info() -> list:
    """One dict per BLAS library loaded: name, version, threads, and (OpenBLAS) the CPU core
    kernels it picked at load time, e.g. ``"Haswell"`` or ``"SkylakeX"``."""
    return [{"library": c.internal_api, "version": c.version, "threads": c.num_threads,
             "architecture": getattr(c, "architecture", None), "path": c.filepath}
            for c in blas_controller().lib_controllers]


def openblas():
    """threadpoolctl's controller of the OpenBLAS NumPy loaded, or None."""
    for c in blas_controller().lib_controllers:
        if c.internal_api == "openblas":
            return c
    return None


def hold_blas() -> None:
    """BLAS single-threaded from now on (until :func:`release_blas`)."""
    global _limits, _blas_threads
    with _lock:
        if _limits is None:
            from threadpoolctl import threadpool_limits
            counts = [c.num_threads for c in blas_controller().lib_controllers]
            _blas_threads = max(counts) if counts else 1
            _limits = threadpool_limits(limits=1, user_api="blas")


def release_blas() -> None:
    """Give BLAS back the thread counts it had before :func:`hold_blas`."""
    global _limits
    with _lock:
        if _limits is not None:
            _limits.restore_original_limits()
            _limits = None
        _loose["threads"] = 0


def blas_held() -> bool:
    return _limits is not None


def _get_pool(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_key
    key = (os.getpid(), workers)
    with _lock:
        if _pool is None or _pool_key != key:
            if _pool is not None and _pool_key[0] == key[0]:
                _pool.shutdown(wait=False)  # a new thread count; a forked child's copy has no threads
            _pool, _pool_key = ThreadPoolExecutor(workers, thread_name_prefix="minidistil-matmul"), key
        return _pool


def _batch_and_macs(a: np.ndarray, b: np.ndarray) -> tuple:
    """The broadcast batch shape of ``a @ b`` (2-D operands or more) and its multiply-adds."""
    if b.ndim == 2:  # a layer's weight: the batch is a's (np.broadcast_shapes costs ~20 us a call)
        batch = a.shape[:-2]
    else:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])  # raises on incompatible batches
    n = 1
    for d in batch:
        n *= int(d)
    return batch, n * a.shape[-2] * a.shape[-1] * b.shape[-1]


def _pieces(n: int, parts: int) -> list:
    """``parts`` near-equal ``(lo, hi)`` ranges covering ``range(n)`` (empty ones dropped)."""
    bounds = [n * i // parts for i in range(parts + 1)]
    return [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]


def splittable(a: np.ndarray, b: np.ndarray, threads: int) -> bool:
    """Whether :func:`matmul_threaded` would cut ``a @ b`` at all."""
    if a.ndim < 2 or b.ndim < 2 or threads < 2:
        return False
    batch, macs = _batch_and_macs(a, b)
    if macs < MIN_SPLIT_MACS:
        return False
    if batch and ((a.ndim > 2 and a.shape[0] != batch[0]) or (b.ndim > 2 and b.shape[0] != batch[0])):
        return False  # broadcasting along the leading axis: not worth a special case
    return len(_pieces(batch[0] if batch else a.shape[-2], threads)) >= 2


def matmul_threaded(a: np.ndarray, b: np.ndarray, threads: Optional[int] = None,
                    bias: Optional[np.ndarray] = None) -> np.ndarray:
    """``a @ b (+ bias)`` cut along the output's leading axis into one piece per thread.

    2-D (M, K) @ (K, N): rows of ``a``. Batched (S, ..., M, K) @ (S, ..., K, N): the leading batch
    axis of every operand that has it (a 2-D operand is shared by all pieces). Anything else, or
    a product too small to be worth it, is one plain call. Each piece writes straight into its
    slice of the output (``np.matmul(..., out=)``) and adds ``bias`` while the slice is in cache.
    """
    threads = backend.num_threads() if threads is None else int(threads)
    if not splittable(a, b, threads):
        return matmul_numpy(a, b, bias)
    batch, _ = _batch_and_macs(a, b)
    M, N = a.shape[-2], b.shape[-1]
    cuts = _pieces(batch[0] if batch else M, threads)
    out = np.empty(batch + (M, N), dtype=np.result_type(a, b))  # (..., M, N)

    def piece(lo, hi):
        if batch:
            np.matmul(a[lo:hi] if a.ndim > 2 else a, b[lo:hi] if b.ndim > 2 else b, out=out[lo:hi])
        else:
            np.matmul(a[lo:hi], b, out=out[lo:hi])
        if bias is not None:
            out[lo:hi] += bias

    pool = _get_pool(threads - 1)
    futures = [pool.submit(piece, lo, hi) for lo, hi in cuts[1:]]
    try:
        piece(*cuts[0])  # the calling thread takes the first piece
    finally:
        wait(futures)  # never return (or raise) while a worker still writes into `out`
    for f in futures:
        f.result()  # re-raise a worker's exception here
    return out


def matmul_pair_threaded(a1, b1, a2, b2, threads: Optional[int] = None) -> tuple:
    """``(a1 @ b1, a2 @ b2)`` for two products of about the same size, as backward passes have
    them (``dy @ W`` and ``dy^T @ x``): with two threads each product runs whole on its own
    thread (one hand-off instead of two, and larger single-threaded BLAS calls). Otherwise each
    is cut as :func:`matmul_threaded` does."""
    threads = backend.num_threads() if threads is None else int(threads)
    if (threads != 2 or min(a1.ndim, b1.ndim, a2.ndim, b2.ndim) < 2
            or _batch_and_macs(a1, b1)[1] + _batch_and_macs(a2, b2)[1] < MIN_SPLIT_MACS):
        return matmul_threaded(a1, b1, threads), matmul_threaded(a2, b2, threads)
    future = _get_pool(1).submit(np.matmul, a2, b2)
    try:
        first = np.matmul(a1, b1)
    finally:
        wait([future])
    return first, future.result()


def blas_loose(fn: Callable):
    """``fn()`` with BLAS on its own threads (at most Numba's count), and left on them for the next
    small input's product: fast/small.py's route, where giving them back and taking them again
    around every one of a forward's dozens of products cost about a fifth of the forward.
    :func:`hold_again` takes them back before anything else runs a product."""
    n = min(_blas_threads, backend.num_threads())
    if _limits is None or n <= 1:
        return fn()
    if _loose["threads"] != n:
        for c in blas_controller().lib_controllers:
            c.set_num_threads(n)
        _loose["threads"] = n
    return fn()


def hold_again() -> None:
    """BLAS back on one thread if :func:`blas_loose` left it on more (a no-op otherwise)."""
    if _loose["threads"]:
        for c in blas_controller().lib_controllers:
            c.set_num_threads(1)
        _loose["threads"] = 0


def _with_blas_threads(fn: Callable):
    """``fn()`` with BLAS given back its own thread count for the call (then held again)."""
    if _limits is None or _blas_threads <= 1:
        return fn()
    hold_again()
    libs = blas_controller().lib_controllers
    for c in libs:
        c.set_num_threads(_blas_threads)
    try:
        return fn()
    finally:
        for c in libs:
            c.set_num_threads(1)


def _routes(pool: Callable, plain: Callable, macs: int) -> dict:
    """The candidates of one product (or pair): the pool; one plain call below
    :data:`ALWAYS_SPLIT_MACS`; BLAS's own threads where calibration is on and BLAS had them."""
    routes = {"pool": pool}
    if macs < ALWAYS_SPLIT_MACS:
        routes["plain"] = plain
    if timing() and _blas_threads > 1:
        routes["blas"] = lambda: _with_blas_threads(plain)
    return routes


def matmul_calibrated(a: np.ndarray, b: np.ndarray, bias: Optional[np.ndarray] = None) -> np.ndarray:
    """The fast layer's ``matmul``: for a product worth cutting, the pool, one plain call or
    (calibration on) BLAS's own threads, whichever measured fastest for this shape."""
    threads = backend.num_threads()
    if threads > 1 and small.small_product(a, b):
        pool = (lambda: matmul_threaded(a, b, threads, bias)) if splittable(a, b, threads) else None
        return small.matmul_small(a, b, bias, lambda: matmul_numpy(a, b, bias), pool)
    hold_again()
    if not splittable(a, b, threads):
        return matmul_numpy(a, b, bias)  # one call, BLAS single-threaded
    routes = _routes(lambda: matmul_threaded(a, b, threads, bias), lambda: matmul_numpy(a, b, bias),
                     _batch_and_macs(a, b)[1])
    return choose(("matmul", bias is None) + shape_key(a, b), routes, default="pool", exact=("plain",))


def matmul_pair_calibrated(a1, b1, a2, b2) -> tuple:
    """The fast layer's ``matmul_pair``, chosen per shape as :func:`matmul_calibrated` is (the
    pool runs the two products at once, one on each thread)."""
    threads = backend.num_threads()
    hold_again()
    macs = 0 if min(a1.ndim, b1.ndim, a2.ndim, b2.ndim) < 2 else \
        _batch_and_macs(a1, b1)[1] + _batch_and_macs(a2, b2)[1]
    if macs < MIN_SPLIT_MACS:
        return a1 @ b1, a2 @ b2  # small (or a vector): two plain calls, BLAS single-threaded
    routes = _routes(lambda: matmul_pair_threaded(a1, b1, a2, b2, threads), lambda: (a1 @ b1, a2 @ b2), macs)
    return choose(("pair",) + shape_key(a1, b1, a2, b2), routes, default="pool", exact=("plain",))
