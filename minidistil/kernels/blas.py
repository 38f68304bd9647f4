"""Matrix products on minidistil's own threads, with the BLAS library held to one thread.

Every matmul still runs in NumPy's BLAS (OpenBLAS in the PyPI wheels); what this module decides
is *who owns the cores*. Left alone, OpenBLAS splits each product over its own thread pool. On
the demo shapes that works well for the big 2-D products (85-93% of peak) but badly for the
attention products, 128 small (128 x 32) @ (32 x 128) matrices per call, where two OpenBLAS
threads measured 0.8-3.2 ms and one thread 1.3 ms, against 0.7 ms with the scheme below. Its
idle workers also busy-wait after every call, taking the cores from whatever runs next, and a
busy machine makes that far worse (steps seen 10-100x slower with other processes running).
Measured on the demo steps (2 cores, glibc malloc tuned in both, the same minute): teacher step
241-245 ms with OpenBLAS's threads, 221-228 ms with the scheme; distillation step 326-331 ms
against 286-299 ms.

The scheme (docs/performance.md, "Threading"):

* inside :func:`owned_cores` OpenBLAS runs single-threaded;
* :func:`matmul` cuts a product along its leading axis (rows of a 2-D product, the batch of a
  batched one) into one piece per thread and runs the pieces at once on a small pool of Python
  threads (NumPy releases the GIL inside BLAS), each piece a single-threaded BLAS call;
* Numba's threads run the fused kernels in between, and nobody spins while waiting.

So at any moment exactly one pool computes, and the thread count is the single knob
:func:`~minidistil.kernels.backend.set_num_threads`. The models enter :func:`owned_cores`
in every forward and backward pass, and the training loops around each whole step; outside it
BLAS keeps the user's own setting.

Finding BLAS: the thread setter is looked up (``ctypes``) in the OpenBLAS library NumPy has
loaded: from ``/proc/self/maps`` on Linux, else from the folders NumPy's wheels bundle it in.
Where none is found (Apple Accelerate, MKL, a NumPy without OpenBLAS) :func:`matmul` is a plain
``np.matmul`` and BLAS threads as it likes; :func:`blas_info` says which case you are in.
``MINIDISTIL_BLAS_THREADS=native`` turns the scheme off (plain ``np.matmul``, BLAS untouched).
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Iterator, NamedTuple, Optional

import numpy as np

from . import backend

# Products smaller than this many multiply-adds run as one call: below it the pool's hand-off
# (~20 us) costs more than the second core saves.
MIN_SPLIT_MACS = 1 << 20

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
            "openblas_get_num_threads64_", "openblas_get_num_threads")


class BlasControl(NamedTuple):
    path: str  # the shared library
    set_threads: object  # ctypes function (int) -> None
    get_threads: object  # ctypes function () -> int


def _candidate_paths() -> list:
    """Files that may be the OpenBLAS NumPy loaded, most certain first."""
    paths = []
    try:
        with open("/proc/self/maps") as f:  # Linux: the libraries actually mapped
            for line in f:
                name = line.rsplit(None, 1)[-1]
                if "openblas" in os.path.basename(name).lower() and name not in paths:
                    paths.append(name)
    except OSError:
        pass
    root = os.path.dirname(os.path.dirname(np.__file__))
    for folder in (os.path.join(root, "numpy.libs"), os.path.join(os.path.dirname(np.__file__), ".dylibs")):
        for pattern in ("*openblas*.so*", "*openblas*.dylib", "*openblas*.dll"):
            paths.extend(p for p in sorted(glob.glob(os.path.join(folder, pattern))) if p not in paths)
    return paths


def _find_control() -> Optional[BlasControl]:
    if os.environ.get("MINIDISTIL_BLAS_THREADS", "").strip().lower() == "native":
        return None
    for path in _candidate_paths():
        try:
            lib = ctypes.CDLL(path)  # already loaded by NumPy: this only returns a handle
        except OSError:
            continue
        for set_name, get_name in zip(_SETTERS, _GETTERS):
            setter, getter = getattr(lib, set_name, None), getattr(lib, get_name, None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                return BlasControl(path, setter, getter)
    return None


_control: Optional[BlasControl] = None
_searched = False
_lock = threading.Lock()
_depth = 0  # nesting of owned_cores(), all threads together
_saved_threads = 0
_pool: Optional[ThreadPoolExecutor] = None
_pool_key = (0, 0)  # (pid, workers): a forked child or a new thread count gets a new pool


def control() -> Optional[BlasControl]:
    """The OpenBLAS thread control, or None when it cannot be found (searched once)."""
    global _control, _searched
    if not _searched:
        _control, _searched = _find_control(), True
    return _control


def blas_info() -> dict:
    """What this module found: ``{"library", "controlled", "blas_threads"}`` for display."""
    c = control()
    if c is None:
        return {"library": None, "controlled": False, "blas_threads": None}
    return {"library": c.path, "controlled": True, "blas_threads": int(c.get_threads())}


@contextlib.contextmanager
def owned_cores() -> Iterator[None]:
    """Hold BLAS to one thread for the block, so :func:`matmul`'s pool owns the cores.

    Re-entrant and cheap (two ctypes calls at the outermost level); BLAS's previous thread count
    is restored on leaving. Does nothing when BLAS cannot be controlled.
    """
    global _depth, _saved_threads
    c = control()
    if c is None:
        yield
        return
    with _lock:
        if _depth == 0:
            _saved_threads = int(c.get_threads())
            if _saved_threads != 1:
                c.set_threads(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved_threads != 1:
                c.set_threads(_saved_threads)


def on_owned_cores(fn):
    """Decorator: run ``fn`` inside :func:`owned_cores` (a whole model pass or training step, so
    BLAS's thread count is switched once per call instead of once per product)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with owned_cores():
            return fn(*args, **kwargs)
    return wrapper


def _get_pool(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_key
    key = (os.getpid(), workers)
    with _lock:
        if _pool is None or _pool_key != key:
            if _pool is not None and _pool_key[0] == key[0]:
                _pool.shutdown(wait=False)  # a new thread count; a forked child's copy has no threads
            _pool, _pool_key = ThreadPoolExecutor(workers, thread_name_prefix="minidistil-matmul"), key
        return _pool


def _check_operands(a: np.ndarray, b: np.ndarray) -> None:
    if not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray):
        raise TypeError(f"matmul expects NumPy arrays, got {type(a).__name__} and {type(b).__name__}")
    if a.ndim < 1 or b.ndim < 1:
        raise ValueError(f"matmul needs arrays of at least 1 dimension, got shapes {a.shape} and {b.shape}")
    ka = a.shape[-1]
    kb = b.shape[-2] if b.ndim >= 2 else b.shape[0]
    if ka != kb:
        raise ValueError(f"matmul: a's last dimension ({ka}) must equal b's second-to-last ({kb}); "
                         f"got shapes {a.shape} and {b.shape}")


def matmul_numpy(a: np.ndarray, b: np.ndarray, bias: Optional[np.ndarray] = None) -> np.ndarray:
    """The reference: ``a @ b (+ bias)``, threaded however BLAS likes."""
    y = a @ b
    if bias is not None:
        y += bias  # in place on the fresh product
    return y


def _batch_and_macs(a: np.ndarray, b: np.ndarray) -> tuple:
    """The broadcast batch shape of ``a @ b`` (2-D operands or more) and its multiply-adds."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])  # raises on incompatible batches
    return batch, int(np.prod(batch, dtype=np.int64)) * a.shape[-2] * a.shape[-1] * b.shape[-1]


def _pieces(n: int, parts: int) -> list:
    """``parts`` near-equal ``(lo, hi)`` ranges covering ``range(n)`` (empty ones dropped)."""
    bounds = [n * i // parts for i in range(parts + 1)]
    return [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]


def matmul_threaded(a: np.ndarray, b: np.ndarray, threads: Optional[int] = None,
                    bias: Optional[np.ndarray] = None) -> np.ndarray:
    """``a @ b (+ bias)`` cut along the output's leading axis into one piece per thread.

    2-D (M, K) @ (K, N): rows of ``a``. Batched (S, ..., M, K) @ (S, ..., K, N): the leading batch
    axis of every operand that has it (a 2-D operand is shared by all pieces). Anything else, or
    a product too small to be worth it, is one plain call. Each piece writes straight into its
    slice of the output (``np.matmul(..., out=)``), so nothing is copied or concatenated, and adds
    ``bias`` (broadcast over rows) to its slice while that is still in cache.
    """
    threads = backend.num_threads() if threads is None else int(threads)
    if a.ndim < 2 or b.ndim < 2 or threads < 2 or control() is None:
        return matmul_numpy(a, b, bias)
    batch, macs = _batch_and_macs(a, b)
    M, N = a.shape[-2], b.shape[-1]
    if macs < MIN_SPLIT_MACS:
        return matmul_numpy(a, b, bias)
    if batch and ((a.ndim > 2 and a.shape[0] != batch[0]) or (b.ndim > 2 and b.shape[0] != batch[0])):
        return matmul_numpy(a, b, bias)  # broadcasting along the leading axis: not worth a special case
    cuts = _pieces(batch[0] if batch else M, threads)
    if len(cuts) < 2:
        return matmul_numpy(a, b, bias)
    out = np.empty(batch + (M, N), dtype=np.result_type(a, b))

    def piece(lo, hi):
        if batch:
            np.matmul(a[lo:hi] if a.ndim > 2 else a, b[lo:hi] if b.ndim > 2 else b, out=out[lo:hi])
        else:
            np.matmul(a[lo:hi], b, out=out[lo:hi])
        if bias is not None:
            out[lo:hi] += bias

    with owned_cores():
        pool = _get_pool(threads - 1)
        futures = [pool.submit(piece, lo, hi) for lo, hi in cuts[1:]]
        try:
            piece(*cuts[0])  # the calling thread takes the first piece
        finally:
            wait(futures)  # never return (or raise) while a worker still writes into `out`
        for f in futures:
            f.result()  # re-raise a worker's exception here
    return out


def matmul_pair_threaded(a1: np.ndarray, b1: np.ndarray, a2: np.ndarray, b2: np.ndarray,
                         threads: Optional[int] = None) -> tuple:
    """``(a1 @ b1, a2 @ b2)`` for two products of about the same size, as backward passes have
    them (``dy @ W`` and ``dy^T @ x``): with two threads each product runs whole on its own thread,
    which measured 5-10% faster than cutting each in two (one hand-off instead of two, and larger
    single-threaded BLAS calls). Otherwise each is cut as :func:`matmul_threaded` does."""
    threads = backend.num_threads() if threads is None else int(threads)
    if (threads != 2 or control() is None or min(a1.ndim, b1.ndim, a2.ndim, b2.ndim) < 2
            or _batch_and_macs(a1, b1)[1] + _batch_and_macs(a2, b2)[1] < MIN_SPLIT_MACS):
        return matmul_threaded(a1, b1, threads), matmul_threaded(a2, b2, threads)
    with owned_cores():
        future = _get_pool(1).submit(np.matmul, a2, b2)
        try:
            first = np.matmul(a1, b1)
        finally:
            wait([future])
        return first, future.result()


def matmul(a: np.ndarray, b: np.ndarray, bias: Optional[np.ndarray] = None) -> np.ndarray:
    """``a @ b (+ bias)`` for the layers: :func:`matmul_threaded` with the Numba backend, plain
    ``@`` with the NumPy one (whose twins are the readable reference)."""
    _check_operands(a, b)
    if backend.get_backend() == "numba":
        return matmul_threaded(a, b, bias=bias)
    return matmul_numpy(a, b, bias)


def matmul_pair(a1: np.ndarray, b1: np.ndarray, a2: np.ndarray, b2: np.ndarray) -> tuple:
    """``(a1 @ b1, a2 @ b2)`` for the layers: :func:`matmul_pair_threaded` with the Numba backend,
    two plain ``@`` with the NumPy one."""
    _check_operands(a1, b1)
    _check_operands(a2, b2)
    if backend.get_backend() == "numba":
        return matmul_pair_threaded(a1, b1, a2, b2)
    return a1 @ b1, a2 @ b2

