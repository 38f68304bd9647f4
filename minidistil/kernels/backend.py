"""The backend switch and the input checks every kernel runs before any Numba code.

Every kernel exists twice: a readable NumPy twin and a fused Numba version. Which one the
public functions call is decided here:

* the environment variable ``MINIDISTIL_BACKEND`` (``numpy`` or ``numba``, default ``numba``)
  is read once at import;
* ``set_backend("numpy")`` changes it for the rest of the process;
* ``with use_backend("numpy"): ...`` changes it for a block (handy in notebooks).

The checks live here too, so that a wrong shape or dtype gives a ``ValueError``/``TypeError``
naming the argument instead of a Numba typing traceback.
"""
from __future__ import annotations

import contextlib
import math
import os
from typing import Iterator, Sequence

import numpy as np

BACKENDS = ("numpy", "numba")
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
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {x.shape}")


def check_same_dtype(dtype: np.dtype, **arrays: np.ndarray) -> None:
    """All ``arrays`` must share ``dtype`` (kernels never mix float32 and float64)."""
    for name, a in arrays.items():
        if a.dtype != dtype:
            raise TypeError(f"{name} must have dtype {dtype} like the other inputs, got {a.dtype}")


def check_temperature(T) -> float:
    """A temperature must be a finite number > 0."""
    try:
        t = float(T)
    except (TypeError, ValueError):
        raise TypeError(f"temperature T must be a number, got {type(T).__name__}") from None
    if not math.isfinite(t) or t <= 0.0:
        raise ValueError(f"temperature T must be finite and > 0, got {T!r}")
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
