"""Check one stage of a derivation, right after the cell that writes it (as in makemore part 4).

>>> check_stage("dxhat", my_dxhat, (dy, gamma), want)   # doctest: +SKIP
stage dxhat: PASS (max rel err 1.2e-10, shape (4, 8))

``want`` is an independent reference, usually central finite differences of the loss with
respect to that intermediate (:func:`minidistil.gradcheck.numerical_grad`). A stub that raises
``NotImplementedError`` prints ``FAIL (not written yet)`` instead of stopping the notebook, so
a student notebook runs top to bottom; a wrong shape prints both shapes; a result that is the
reference times a constant says so.
"""
from __future__ import annotations

import numpy as np

from .. import gradcheck
from .hints import constant_factor


def check_stage(name: str, fn, args: tuple, want, tol: float = 1e-6, atol: float = 1e-8) -> bool:
    """Call ``fn(*args)``, compare with ``want``; print one line; True on PASS."""
    try:
        got = fn(*args)
    except NotImplementedError:
        print(f"stage {name}: FAIL (not written yet: fill in the cell above)")
        return False
    except Exception as e:  # noqa: BLE001 - a learner's bug can be anything; report it
        print(f"stage {name}: FAIL ({type(e).__name__}: {e})")
        return False
    try:
        a = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        print(f"stage {name}: FAIL (returned {type(got).__name__}, not an array)")
        return False
    b = np.asarray(want, dtype=np.float64)
    if a.shape != b.shape:
        print(f"stage {name}: FAIL (shape {a.shape}, expected {b.shape})")
        return False
    ok = bool(np.all(np.isfinite(a)) and np.allclose(a, b, rtol=tol, atol=atol))
    rel = gradcheck.rel_error(a, b, tiny=atol / tol) if np.all(np.isfinite(a)) else float("inf")
    if ok:
        print(f"stage {name}: PASS (max rel err {rel:.1e}, shape {b.shape})")
        return True
    k = constant_factor(a, b)
    extra = f"; it is {k:.4g} times the expected value: a factor is missing or extra" if k else ""
    print(f"stage {name}: FAIL (max rel err {rel:.1e}{extra})")
    return False
