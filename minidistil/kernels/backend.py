"""The backend switch and the input checks every kernel runs before any Numba code.

Every kernel exists twice: a readable NumPy twin and a fused Numba version. Which one the
public functions call is decided here:

* the environment variable ``MINIDISTIL_BACKEND`` (``numpy`` or ``numba``, default ``numba``)
  is read once at import;
* ``set_backend("numpy")`` changes it for the rest of the process;
* ``with use_backend("numpy"): ...`` changes it for a block (handy in notebooks).

The checks live here too, so that a wrong shape or dtype gives a ``ValueError``/``TypeError``
naming the argument instead of a Numba typing traceback.

How the Numba kernels are compiled (:func:`jit`), measured on a 2-core AVX2 machine
(docs in /work/shared/reference.md, "Numba on this kind of machine"):

* ``cache=True``: compiled machine code is kept on disk (``NUMBA_CACHE_DIR`` if the install is
  read-only), so only the first run of a process pays the 0.2-0.9 s compile per kernel and dtype.
  The cache is keyed on the kernel's own source file: after editing a helper that other files
  inline (``vecmath.py``, ``softmax_t.row_max``), touch the kernel files or clear the cache.
* ``error_model="numpy"``: a division by zero gives inf/nan as in NumPy instead of a Python
  exception check inside every loop (3.6x on a dividing loop).
* ``fastmath=FASTMATH``, a subset of the fast-math flags: ``contract`` fuses multiply-adds,
  ``arcp``/``afn``/``nsz`` allow reciprocal multiplication and fast library calls. Deliberately
  *not* ``nnan``/``ninf``: with those LLVM may assume no NaN/inf exists and delete the very
  checks (and the ``finfo.min`` padding arithmetic) that keep padded attention rows finite. And
  *not* ``reassoc``: it lets LLVM choose the order of a row sum anew at each compilation, and
  Numba compiles a parallel kernel's body twice (alone, then inside the kernel that calls it,
  and only that second copy goes to the cache), so freshly compiled and cache-loaded kernels
  summed in different orders and a resumed run drifted in the last bits. Row sums use
  ``softmax_t.row_sum``/``row_dot`` instead: eight partial sums in an order the source fixes,
  which vectorise without the flag.
* float32 stays float32: every constant inside a kernel is made with ``x.dtype.type(...)``; a bare
  ``0.5`` would promote the arithmetic to float64 (measured 2x slower). float32 ``exp``/``erf``
  come from ``vecmath.py`` (vectorisable; libm's are scalar calls).

Threading policy: **Numba kernels use Numba's threads, matrix products use minidistil's matmul
pool with BLAS held to one thread (kernels/blas.py), and the two never compute at the same
time.** A forward or backward pass is a sequence of calls from one Python thread (matmul, then a
fused kernel, then a matmul...), so the two pools take the cores in turns. (The attention kernel
calls single-threaded BLAS itself, one head per Numba thread: kernels/gemm.py.) What must not happen
is a pool *spinning* while the other works: Numba's default OpenMP layer keeps its workers
busy-waiting after each parallel loop, stealing the cores from the matmul that follows
(reference.md: a matmul + LayerNorm + GELU step 46-61 ms against 28 ms when one pool owns the
cores per phase). So, unless the user already chose, this module sets
``OMP_WAIT_POLICY=PASSIVE`` before Numba starts its pool: idle Numba workers sleep instead of
spinning. Measured here on the demo FFN block (x @ W1, GELU, @ W2, LayerNorm, and their
backward, float32): 45-57 ms passive against 67-77 ms with ``OMP_WAIT_POLICY=ACTIVE``.
(OpenBLAS's own workers spin the same way, one more reason to keep it single-threaded.)
Use :func:`set_num_threads` to change both pools together (e.g. ``set_num_threads(1)`` when
several processes share the cores: a parallel loop waits for its slowest thread, and on a busy
machine that thread is often descheduled).
"""
from __future__ import annotations

import contextlib
import math
import os
import warnings
from typing import Iterator, Sequence

# Must happen before numba's OpenMP pool starts (the first parallel kernel call, or
# numba.set_num_threads); see the threading policy above. setdefault: a user's own choice wins.
_USER_WAIT_POLICY = "OMP_WAIT_POLICY" in os.environ
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402
import numpy as np  # noqa: E402


def _pool_started_too_early() -> bool:
    """True when Numba's OpenMP pool was already running, with OpenMP's default (spinning) wait
    policy, before this module could ask for passive workers."""
    if _USER_WAIT_POLICY:
        return False
    try:
        from numba.np.ufunc import parallel
        return bool(parallel._is_initialized) and numba.threading_layer() == "omp"
    except Exception:  # numba internals moved: no warning rather than a crash
        return False


if _pool_started_too_early():
    warnings.warn("Numba's thread pool was started (a parallel kernel or numba.set_num_threads) before "
                  "minidistil.kernels was imported, so its idle threads busy-wait and slow minidistil's "
                  "matrix products (measured up to 2x). Import minidistil.kernels first, or set "
                  "OMP_WAIT_POLICY=PASSIVE in the environment before starting Python.",
                  RuntimeWarning, stacklevel=2)

from .malloc import tune_malloc  # noqa: E402

# Freed activations are kept for the next step instead of page-faulting in fresh memory
# (glibc only; MINIDISTIL_MALLOC=system opts out): see kernels/malloc.py.
tune_malloc()

BACKENDS = ("numpy", "numba")
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn"})


def jit(parallel: bool = False):
    """The one decorator every Numba kernel uses (see the module docstring for each flag)."""
    return numba.njit(cache=True, error_model="numpy", fastmath=set(FASTMATH), parallel=parallel)


def num_threads() -> int:
    """Numba's current thread count (how many chunks a parallel kernel splits work into)."""
    return int(numba.get_num_threads())


def set_num_threads(n: int) -> None:
    """Use ``n`` threads: Numba's fused kernels and the matmul pool of :mod:`.blas` both split work
    ``n`` ways (BLAS itself runs single-threaded inside minidistil's passes, so it needs no knob)."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))


def as_rows(x: np.ndarray) -> np.ndarray:
    """``x`` (..., V) as a C-contiguous 2-D (N, V) array; copies only when ``x`` is strided.

    Kernels work on rows; one C-contiguous layout also means one compiled specialization per dtype.
    """
    return np.ascontiguousarray(x).reshape(-1, x.shape[-1])  # (N, V)


FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _initial_backend() -> str:
    name = os.environ.get("MINIDISTIL_BACKEND", "numba").strip().lower() or "numba"
    if name not in BACKENDS:
        raise ValueError(
            f"MINIDISTIL_BACKEND must be one of {BACKENDS}, got {name!r}"
        )
    return name


_BACKEND = _initial_backend()


def get_backend() -> str:
    """The name of the backend the public kernel functions dispatch to."""
    return _BACKEND


def set_backend(name: str) -> None:
    """Select ``"numpy"`` (readable twins) or ``"numba"`` (fused JIT kernels)."""
    global _BACKEND
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    _BACKEND = name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Context manager: run a block with another backend, then restore the previous one."""
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


# ----------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------

def check_float_array(name: str, x, ndim: int | Sequence[int] | None = None) -> np.ndarray:
    """``x`` must be a float32/float64 ndarray (of ``ndim`` dimensions if given)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {x.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(
                f"{name} must have {want} dimensions, got shape {x.shape} ({x.ndim} dimensions)"
            )
    return x


def check_shape(name: str, x: np.ndarray, shape: tuple) -> None:
    """``x.shape`` must equal ``shape``; ``None`` entries match any size."""
    ok = x.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, x.shape))
    if not ok:
        dims = ["*" if s is None else str(s) for s in shape]
        want = "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"  # like a tuple
        raise ValueError(f"{name} must have shape {want}, got {x.shape}")


def check_same_dtype(dtype: np.dtype, **arrays: np.ndarray) -> None:
    """All ``arrays`` must share ``dtype`` (kernels never mix float32 and float64)."""
    for name, a in arrays.items():
        if a.dtype != dtype:
            raise TypeError(f"{name} must have dtype {dtype} like the other inputs, got {a.dtype}")


def check_temperature(T, dtype=None) -> float:
    """A temperature must be a finite number > 0 (whose reciprocal ``dtype`` can hold, if given:
    the kernels multiply by 1/T in the array's dtype, and 1/1e-40 is inf in float32)."""
    try:
        t = float(T)
    except (TypeError, ValueError):
        raise TypeError(f"temperature T must be a number, got {type(T).__name__}") from None
    if not math.isfinite(t) or t <= 0.0:
        raise ValueError(f"temperature T must be finite and > 0, got {T!r}")
    if dtype is not None and (1.0 / t > float(np.finfo(dtype).max)):
        raise ValueError(f"temperature T={T!r} is too small for {np.dtype(dtype)}: 1/T overflows "
                         f"(need T >= {1.0 / float(np.finfo(dtype).max):.3g})")
    return t


def check_mask(name: str, mask, shape: tuple) -> np.ndarray:
    """An attention/key-padding mask: shape ``shape``, values 0/1 (bool or integer or float)."""
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(mask).__name__}")
    check_shape(name, mask, shape)
    if mask.dtype != np.bool_:
        if not (np.issubdtype(mask.dtype, np.integer) or np.issubdtype(mask.dtype, np.floating)):
            raise TypeError(f"{name} must be bool, integer or float 0/1, got dtype {mask.dtype}")
        if not np.all((mask == 0) | (mask == 1)):
            raise ValueError(f"{name} must hold only 0 and 1")
    return mask.astype(np.bool_, copy=False)
