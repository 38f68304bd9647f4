"""The backend switch and the input checks every kernel runs before any Numba code.

Every kernel exists twice: a readable NumPy twin and a fused Numba version. Which one the
public functions call is decided here:

* the environment variable ``MINIDISTIL_BACKEND`` (``numpy`` or ``numba``, default ``numba``)
  is read once at import;
* ``set_backend("numpy")`` changes it for the rest of the process;
* ``with use_backend("numpy"): ...`` changes it for a block (handy in notebooks).

The checks live here too, so that a wrong shape or dtype gives a ``ValueError``/``TypeError``
naming the argument instead of a Numba typing traceback.

How the Numba kernels are compiled (:func:`jit`), and why:

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
  ``0.5`` would promote the arithmetic to float64 (half the SIMD lanes). float32 ``exp``/``erf``
  come from ``vecmath.py`` (vectorisable; libm's are scalar calls).

Threads: Numba's parallel kernels use Numba's threads (``set_num_threads``); matrix products go
to BLAS through ``kernels/matmul.py``. Nothing here changes the process: no environment
variables, no allocator or thread-limit settings. Who owns the cores, and the faster routes,
are the opt-in speed layer's business (:mod:`minidistil.fast`), which installs its routes with
:func:`set_fast_routes`; the kernels ask :func:`fast_route` before their own Numba version.
"""
from __future__ import annotations

import contextlib
import math
import os
import warnings
from typing import Iterator, Sequence

import numba
import numpy as np

BACKENDS = ("numpy", "numba")
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn"})


def jit(parallel: bool = False):
    """The one decorator every Numba kernel uses (see the module docstring for each flag)."""
    return numba.njit(cache=True, error_model="numpy", fastmath=set(FASTMATH), parallel=parallel)


def num_threads() -> int:
    """Numba's current thread count (how many chunks a parallel kernel splits work into)."""
    return int(numba.get_num_threads())


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for Numba's parallel kernels (and the fast layer's matmul pool, when on)."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))


def as_rows(x: np.ndarray) -> np.ndarray:
    """``x`` (..., V) as a C-contiguous 2-D (N, V) array; copies only when ``x`` is strided.

    Kernels work on rows; one C-contiguous layout also means one compiled specialization per dtype.
    """
    return np.ascontiguousarray(x).reshape(-1, x.shape[-1])  # (N, V)


FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
IGNORE_INDEX = -100  # the label of a position no loss looks at (the Hugging Face convention)


def _initial_backend() -> str:
    name = os.environ.get("MINIDISTIL_BACKEND", "numba").strip().lower() or "numba"
    if name not in BACKENDS:
        raise ValueError(
            f"MINIDISTIL_BACKEND must be one of {BACKENDS}, got {name!r}"
        )
    return name


_BACKEND = _initial_backend()


_FAST_ROUTES: dict = {}  # kernel name -> function; filled by minidistil.fast.enable()


def set_fast_routes(routes: dict) -> None:
    """Replace the fast routes (``{}`` removes them); used by :mod:`minidistil.fast`."""
    _FAST_ROUTES.clear()
    _FAST_ROUTES.update(routes)


def fast_route(name: str):
    """The fast layer's function for kernel ``name``, or None: always None with the NumPy
    backend, whose twins are the readable reference."""
    return _FAST_ROUTES.get(name) if _BACKEND == "numba" else None


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


def check_ids(name: str, ids, num_embeddings: int, ignore: int | None = None) -> np.ndarray:
    """``ids`` must be an integer ndarray with every value in ``[0, num_embeddings)``, or equal to
    ``ignore`` when given (labels: the ignore index of the losses). The one integer-id check."""
    if not isinstance(ids, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of integers, got {type(ids).__name__}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name} must have an integer dtype, got {ids.dtype}")
    if ids.size:
        bad = (ids < 0) | (ids >= num_embeddings)  # same shape as ids
        if ignore is not None:
            bad &= ids != ignore
        if bad.any():
            value = int(ids[bad].flat[0])
            lo, hi = int(ids.min()), int(ids.max())
            where = f"[0, {num_embeddings})" + (f" or {ignore} (ignore)" if ignore is not None else "")
            raise ValueError(f"{name} must lie in {where}, found {value} (values in [{lo}, {hi}])")
    return ids


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


def check_temperature(tau, dtype=None) -> float:
    """A temperature must be a finite number > 0 (whose reciprocal ``dtype`` can hold, if given:
    the kernels multiply by 1/tau in the array's dtype, and 1/1e-40 is inf in float32)."""
    try:
        t = float(tau)
    except (TypeError, ValueError):
        raise TypeError(f"temperature must be a number, got {type(tau).__name__}") from None
    if not math.isfinite(t) or t <= 0.0:
        raise ValueError(f"temperature must be finite and > 0, got {tau!r}")
    if dtype is not None and (1.0 / t > float(np.finfo(dtype).max)):
        raise ValueError(f"temperature {tau!r} is too small for {np.dtype(dtype)}: 1/temperature "
                         f"overflows (need at least {1.0 / float(np.finfo(dtype).max):.3g})")
    return t


def legacy_temperature(tau: float, T) -> float:
    """``T=`` was the temperature keyword's name before ``tau`` (T is the sequence length in every
    shape legend); an old call ``softmax_forward(x, T=2.0)`` still works, with a FutureWarning
    (as Hugging Face retires a renamed argument), and will be removed."""
    if T is None:
        return tau
    warnings.warn("the temperature keyword T= is deprecated (T is the sequence length in every "
                  "shape legend): pass tau= instead", FutureWarning, stacklevel=3)
    return T


def check_cache(name: str, cache, cls: type, forward: str) -> None:
    """``cache`` must be the named cache ``cls`` that ``forward`` returned (the backward's second
    argument, as every layer's backward takes it)."""
    if not isinstance(cache, cls):
        raise TypeError(f"{name} must be the {cls.__name__} that {forward} returned, "
                        f"got {type(cache).__name__}")


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
