"""Hints that do not belong to one exercise: a constant factor, a wrong shape, an exception.

* **Scale.** When the learner's gradient is the reference times one constant ``k``, the checker
  says so and, when ``k`` is one of the exercise's usual suspects (:data:`SCALES`: τ, τ², 1/τ,
  1/τ², P, 1/P, V, 1/V, n, 1/n, B, 1/B, B·T, C, 1/C, √HS, 1/√HS, −1, 2, 1/2), names the likely cause. The
  key is ``scale_<name>`` (``scale_tau``, ``scale_inv_tau2``, ...), or ``scale_other`` when ``k`` is
  none of them. The test cases are drawn so that no two suspects have the same value (no
  τ·P = 1), so a factor names one cause.
* **Shape.** ``wrong_shape`` prints the shape returned and the shape expected. Three shape slips
  are named: ``return_order`` (the right gradients in another order), ``keepdims_extra`` (the
  right values with size-1 axes that a ``keepdims=True`` kept), ``reshape_needed`` (the right values
  flattened), ``transposed_grad`` (an input's gradient transposed) and ``leading_axes_not_summed`` (a weight's gradient per example, not
  summed over the batch).
* **Exceptions.** ``transpose_nd`` when the line that raised applies ``.T`` to an array of
  more than two axes (read from the traceback: the line's source and its frame's variables).
  ``keepdims`` when NumPy could not broadcast ``(N, C)`` against ``(N,)``: a sum or mean lost
  its axis. Other exceptions are shown as ``exception`` with their message.
"""
from __future__ import annotations

import linecache
import math
import re

import numpy as np

from .base import close

# label -> (key suffix, value from the case's constants: tau the temperature, T the sequence length)
SCALES = {
    "τ": ("tau", lambda c: c["tau"]),
    "τ²": ("tau2", lambda c: c["tau"] ** 2),
    "1/τ": ("inv_tau", lambda c: 1.0 / c["tau"]),
    "1/τ²": ("inv_tau2", lambda c: 1.0 / c["tau"] ** 2),
    "P": ("P", lambda c: float(c["P"])),
    "1/P": ("inv_P", lambda c: 1.0 / c["P"]),
    "V": ("V", lambda c: float(c["V"])),
    "1/V": ("inv_V", lambda c: 1.0 / c["V"]),
    "n": ("n", lambda c: float(c["n"])),
    "1/n": ("inv_n", lambda c: 1.0 / c["n"]),
    "B": ("B", lambda c: float(c["B"])),
    "1/B": ("inv_B", lambda c: 1.0 / c["B"]),
    "B·T": ("BT", lambda c: float(c["B"] * c["T"])),
    "C": ("C", lambda c: float(c["C"])),
    "1/C": ("inv_C", lambda c: 1.0 / c["C"]),
    "√HS": ("sqrtHS", lambda c: math.sqrt(c["HS"])),
    "1/√HS": ("inv_sqrtHS", lambda c: 1.0 / math.sqrt(c["HS"])),
    "−1": ("neg", lambda c: -1.0),
    "2": ("2", lambda c: 2.0),
    "1/2": ("half", lambda c: 0.5),
}


def scale_key(label: str) -> str:
    return "scale_" + SCALES[label][0]


def scale_values(scales: dict, consts: dict) -> dict:
    """``{label: value}`` for the exercise's suspects that this case defines."""
    out = {}
    for label in scales:
        try:
            out[label] = float(SCALES[label][1](consts))
        except KeyError:
            continue
    return out


def constant_factor(m, r):
    """``k`` with ``m == k * r`` up to round-off (k far from 1), else None."""
    m, r = np.asarray(m, dtype=np.float64), np.asarray(r, dtype=np.float64)
    if m.shape != r.shape or not np.all(np.isfinite(m)):
        return None
    rr = float(np.sum(r * r))
    if rr < 1e-24:
        return None
    k = float(np.sum(m * r)) / rr
    if abs(k - 1.0) < 1e-6 or abs(k) < 1e-9 or not close(m, k * r):
        return None
    return k


def scale_votes(ex, mine: dict, ref: dict, case) -> dict:
    """``{gradient: (k, {label: value})}`` for each gradient that is ``k`` times the reference in
    this case, with the exercise's suspects equal to ``k`` here."""
    out = {}
    values = scale_values(ex.scales, case.consts)
    for g in ex.grad_names:
        if g not in mine or g not in ref:
            continue
        k = constant_factor(mine[g], ref[g])
        if k is None:
            continue
        every = scale_values(SCALES, case.consts)  # every known quantity, for scale_other's text
        out[g] = (k, {lab: v for lab, v in values.items() if abs(k - v) <= 1e-6 * max(1.0, abs(v))},
                  {lab for lab, v in every.items() if abs(k - v) <= 1e-6 * max(1.0, abs(v))})
    return out


def scale_hints(ex, votes: list):
    """``[(key, text)]`` for each gradient that is a constant multiple of the reference, from the
    cases' :func:`scale_votes`. A suspect is named only when it is the one suspect that matches in
    EVERY case where the gradient is a multiple: a mean over C = 2 features looks like a stray 1/2
    in that case alone, and the other cases show it is neither."""
    out = []
    for g in ex.grad_names:
        seen = [v[g] for v in votes if g in v]
        if not seen:
            continue
        common = set(seen[0][1]).intersection(*(set(v[1]) for v in seen[1:]))
        if len(common) == 1:
            lab = common.pop()
            shown = lab.replace("B", "N") if ex.name == "linear" else lab  # its rows are N
            out.append((scale_key(lab), f"{g} is {shown} (= {seen[0][1][lab]:.4g}) times the correct "
                                        f"gradient: {ex.scales[lab]}"))
        else:
            ks = sorted({f"{v[0]:.6g}" for v in seen})
            known = set(seen[0][2]).intersection(*(v[2] for v in seen[1:]))
            named = (f" In every case it equals {next(iter(known))}: look for a stray factor "
                     f"{next(iter(known))}." if len(known) == 1 else "")
            out.append(("scale_other", f"{g} is {' or '.join(ks)} times the correct gradient: a "
                                       "constant factor is missing or extra (a mean, a scale, a "
                                       "weight?)." + named))
    return out


_SHAPES = re.compile(r"\(([\d, ]*)\)")


def shapes_in(msg: str) -> list:
    out = []
    for s in _SHAPES.findall(msg):
        parts = [p for p in s.replace(" ", "").split(",") if p]
        out.append(tuple(int(p) for p in parts))
    return out


_DOT_T = re.compile(r"\b([A-Za-z_]\w*)\.T\b")


def transpose_nd(exc: Exception):
    """``(line, variable name, shape)`` when the line that raised applies ``.T`` to a local array
    with more than two axes (NumPy's ``.T`` then reverses every axis), else None.

    Read from the traceback: the source line of each frame and that frame's local variables."""
    tb = exc.__traceback__
    while tb is not None:
        line = linecache.getline(tb.tb_frame.f_code.co_filename, tb.tb_lineno).strip()
        for var in _DOT_T.findall(line):
            a = tb.tb_frame.f_locals.get(var, tb.tb_frame.f_globals.get(var))
            if isinstance(a, np.ndarray) and a.ndim > 2:
                return line, var, a.shape
        tb = tb.tb_next
    return None


def exception_hint(exc: Exception):
    """``(key, text)`` for an exception raised by the learner's function."""
    msg = str(exc)
    name = type(exc).__name__
    found = transpose_nd(exc) if isinstance(exc, ValueError) else None
    if found:
        line, var, shape = found
        return ("transpose_nd",
                f"{name}: {msg.strip()}. The line `{line}` applies .T to {var}, which has "
                f"{len(shape)} axes {shape}: NumPy's .T reverses ALL of them ({shape[::-1]}). "
                f"To swap only the last two, write {var}.swapaxes(-1, -2) (or flatten the "
                f"leading axes first, {var}.reshape(-1, {var}.shape[-1]).T).")
    if isinstance(exc, ValueError) and "broadcast" in msg:
        shapes = shapes_in(msg)
        for a in shapes:
            for b in shapes:
                if len(b) == len(a) - 1 and a[:-1] == b and a[-1] != 1:
                    return ("keepdims",
                            f"{name}: {msg.strip()}. An array of shape {b} stands beside one of "
                            f"shape {a} without its last axis: a sum or mean taken without "
                            f"keepdims=True, or a per-position array (a mask, a norm) used "
                            f"without [..., None]. Give it shape {a[:-1] + (1,)} "
                            f"(.sum(axis=-1, keepdims=True), or mask[..., None]) so that it "
                            f"broadcasts along each row.")
    return ("exception", f"{name}: {msg}")


def shape_hint(gname: str, got: tuple, want: tuple, target: str):
    extra = " (transposed?)" if len(got) == 2 and got == want[::-1] else ""
    return ("wrong_shape", f"{gname} has shape {got} but must have the shape of {target}, "
                           f"{want}{extra}.")


def _drop_ones(shape) -> tuple:
    return tuple(n for n in shape if n != 1)


def _reshape_text(g, got, want) -> str:
    return (f"{g} has the right values in the shape {got}: reshape it back to {want}, the shape "
            "of what it differentiates (a flattened (B*T, ...) array goes back with .reshape(x.shape)).")


def structure_hints(grad_names, mine: dict, ref: dict) -> list:
    """``[(key, text)]`` for the right numbers in the wrong structure: another order, kept
    size-1 axes, or a weight gradient left per example."""
    wrong = [g for g in grad_names if g in mine and g in ref and not close(mine[g], ref[g])]
    if len(wrong) >= 2 and all(any(close(mine[g], ref[h]) for h in grad_names if h != g) for g in wrong):
        return [("return_order", "Your gradients are right but returned in another order: return "
                                 f"({', '.join(grad_names)}), as the stub says.")]
    out = []
    for g in wrong:
        m, r = np.asarray(mine[g], dtype=np.float64), ref[g]
        if m.shape == r.shape:
            continue
        if m.size == r.size and _drop_ones(m.shape) == _drop_ones(r.shape) and close(m.reshape(r.shape), r):
            out.append(("keepdims_extra",
                        f"{g} has the right values but the shape {m.shape}, not {r.shape}: a sum "
                        "with keepdims=True (or an added axis) kept the axes it summed. Drop "
                        f"keepdims there; {g} must have the shape of what it differentiates."))
            # a case with a size-1 axis cannot tell kept axes from a flattened array: the
            # checker keeps reshape_needed when another case shows the flattening
            out.append(("reshape_needed", _reshape_text(g, m.shape, r.shape)))
        elif m.size == r.size and close(m.reshape(r.shape), r):
            out.append(("reshape_needed", _reshape_text(g, m.shape, r.shape)))
        elif ("weight" not in g and r.ndim == 2 and m.shape == r.shape[::-1] and close(m, r.T)):
            out.append(("transposed_grad",
                        f"{g} is the transpose of the right gradient: it has the shape {m.shape}, "
                        f"the right one {r.shape}, the shape of what it differentiates. Written "
                        "for column vectors (W.T @ dy.T)? Here rows are examples: dx = dy @ W."))
        elif (r.ndim >= 2 and m.ndim > r.ndim and m.shape[m.ndim - r.ndim:] == r.shape
              and close(m.reshape((-1,) + r.shape).sum(0), r)):
            out.append(("leading_axes_not_summed",
                        f"{g} has the shape {m.shape}: one gradient per example. Summing its "
                        f"leading axes gives the right {r.shape}: the weight is shared by every "
                        "example and position, so its gradient is the SUM of their contributions "
                        "(flatten to 2-D before the matmul, or sum over the leading axes)."))
    return out
