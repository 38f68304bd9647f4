"""``check(name, fn)``: grade a learner's backward pass against finite differences and the reference.

For every random case of the exercise (tiny float64 shapes, padding where it matters):

1. the learner's function is called on READ-ONLY copies of its arguments (writing into ``dy``
   raises, and is reported as a mistake; the copies are also compared afterwards);
2. each returned gradient is compared with central finite differences of
   ``sum(forward(...) * upstream)`` (:mod:`minidistil.gradcheck`) and with the reference solution;
3. the table is printed (name | exact | allclose | max abs diff | max rel error | ok).

The verdict is PASS only if every row of every case is within tolerance. On FAIL the checker
tries the classic wrong formulas of the exercise (see :mod:`.problems`) and prints the hint of
each one that matches what the learner returned. Only when none matches does it fall back on
the generic hints (:mod:`.hints`): a constant factor (``scale_<k>``), a wrong shape, the first
failing gradient of the encoder block, and at last ``generic``.

An answer that passes every case of an exercise with a softmax of raw logits is called once more
on logits of order 1e3 (:mod:`.stability`): inf or nan there fails it with ``softmax_unstable``.
"""
from __future__ import annotations

import inspect
import linecache
import os
from dataclasses import dataclass, field

import numpy as np

from .. import gradcheck
from . import hints as H
from . import stability
from .problems import BLOCK_HINT, EXERCISES, Case, Exercise, close

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # minidistil/
_NUMPY_DIR = os.path.dirname(os.path.abspath(np.__file__))
NUMERIC_TOL = 1e-6  # relative bound against central differences (h = 1e-5, float64)
NUMERIC_ATOL = 1e-8
REFERENCE_TOL = 1e-8  # relative bound against the reference solution (round-off only)
REFERENCE_ATOL = 1e-12


@dataclass
class Hint:
    key: str
    text: str


@dataclass
class CheckResult:
    """What :func:`check` found; truthy when the exercise passed."""
    name: str
    passed: bool
    tables: list = field(default_factory=list)  # (case label, gradcheck.Verdict) tuples
    hints: list = field(default_factory=list)  # Hint
    error: str | None = None

    def __bool__(self) -> bool:
        return self.passed

    @property
    def hint_keys(self) -> list:
        return [h.key for h in self.hints]

    def report(self) -> str:
        lines = [f"== exercise {self.name!r} =="]
        for label, verdict in self.tables:
            lines += [f"-- case {label}", verdict.table()]
        if self.error:
            lines.append(f"error: {self.error}")
        lines.append("verdict: " + ("PASS" if self.passed else "FAIL"))
        lines += [f"hint [{h.key}]: {h.text}" for h in self.hints]
        return "\n".join(lines)


def list_exercises() -> list:
    """The exercise names, in teaching order."""
    return list(EXERCISES)


def _freeze(value):
    """A read-only deep copy (arrays and dicts of arrays)."""
    if isinstance(value, np.ndarray):
        c = value.copy()
        c.flags.writeable = False
        return c
    if isinstance(value, dict):
        return {k: _freeze(v) for k, v in value.items()}
    return value


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and bool(np.array_equal(a, b))
    return a == b


def _learner_kwargs(fn, frozen: dict) -> dict:
    """The arguments by name, with the temperature as ``T`` for a function written to the old
    stubs (``def softmax_t_backward(dp, x, T)``): the exercises call it ``tau`` now, because
    ``T`` is the sequence length in every shape, but a learner's older code keeps working."""
    if "tau" not in frozen:
        return frozen
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin or a C callable: pass the names as they are
        return frozen
    if "tau" in params or "T" not in params:
        return frozen
    return {("T" if k == "tau" else k): v for k, v in frozen.items()}


def _raising_line(e: BaseException) -> str:
    """The source line, in the learner's code, that raised ``e`` (empty when unknown)."""
    tb = e.__traceback__
    last = None
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith((_PACKAGE_DIR, _NUMPY_DIR)):
            last = tb
        tb = tb.tb_next
    if last is None:
        return ""
    return linecache.getline(last.tb_frame.f_code.co_filename, last.tb_lineno).strip()


def _call(fn, args, ex: Exercise, case: Case):
    """Run ``fn`` on read-only copies; returns (output, list of error Hints or None)."""
    frozen = _freeze(args)
    try:
        out = fn(**_learner_kwargs(fn, frozen))
    except NotImplementedError as e:
        return None, [Hint("not_implemented", f"NotImplementedError: {e}")]
    except Exception as e:  # noqa: BLE001 - a learner's bug can be anything; report it
        if isinstance(e, ValueError) and "read-only" in str(e):
            names = ", ".join(k for k, v in args.items() if isinstance(v, np.ndarray))
            line = _raising_line(e)
            return None, [Hint("mutates_input",
                               "Your function writes into one of its inputs in place ("
                               + (f"the line `{line}`: " if line else "") + f"{e}). The inputs "
                               f"({names}) belong to the rest of the graph, which reads them too: "
                               "work on a copy (g = logits.copy()) or a new array (g = dy * gamma, "
                               "not dy *= gamma).")]
        named = []
        for mistake in ex.mistakes:
            try:
                if mistake.on_error is not None and mistake.on_error(e, case):
                    named.append(Hint(mistake.key, f"{mistake.hint} ({type(e).__name__}: {e})"))
            except Exception:  # noqa: BLE001 - a recogniser that fails simply does not match
                pass
        return None, named or [Hint(*H.exception_hint(e))]
    if not _same(frozen, args):
        return None, [Hint("mutates_input", "Your function changed one of its inputs in place.")]
    return out, None


def _as_array(g):
    try:
        return np.asarray(g, dtype=np.float64)
    except (TypeError, ValueError):
        return np.full((), np.nan)


def _transposed(mine: dict, ref: dict) -> bool:
    """A weight's gradient given in the transposed layout (only weights: a transposed dx is a
    different mistake, which the shape hint shows with both shapes)."""
    for k, r in ref.items():
        if "weight" not in k:
            continue
        m = mine.get(k)
        if m is None or r.ndim != 2 or r.shape[0] == r.shape[1] and close(m, r):
            continue
        if m.shape == r.T.shape and m.shape != r.shape:
            return True
        if m.shape == r.shape and close(m, r.T):
            return True
    return False


def _row(name, mine, want, tol, atol, idx=None) -> gradcheck.Row:
    """One table row. Entries far below 1 are judged absolutely (bound ``atol``): a gradient that
    is exactly zero (the bias of the keys, a padded position) would otherwise compare
    finite-difference noise of 1e-11 against 0 as a 100% relative error."""
    a, b = np.asarray(mine, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if a.shape != b.shape:
        return gradcheck.Row(name, False, False, float("inf"), float("inf"), tol,
                             f"shape {a.shape} != {b.shape}")
    if idx is not None:
        sel = tuple(np.array(ix) for ix in zip(*idx))
        a, b = a[sel], b[sel]
    if not np.all(np.isfinite(a)):
        return gradcheck.Row(name, False, False, float("inf"), float("inf"), tol)
    max_abs = float(np.max(np.abs(a - b))) if a.size else 0.0
    max_rel = gradcheck.rel_error(a, b, tiny=atol / tol)
    ok = bool(np.allclose(a, b, rtol=tol, atol=atol))
    return gradcheck.Row(name, bool(np.array_equal(a, b)), ok, max_abs, max_rel, tol)


def _case_rows(ex: Exercise, case: Case, mine: dict, ref: dict, rng) -> gradcheck.Verdict:
    pairs, masks = [], {}
    for gname in ex.grad_names:
        target = case.targets[gname]
        idx = None
        if ex.max_entries is not None and target.size > ex.max_entries:
            idx = gradcheck.sample_indices(target.shape, ex.max_entries, rng)
        num = gradcheck.numerical_grad(case.scalar, target, indices=idx)
        m = mine.get(gname)
        m = np.full(target.shape[:0] + (0,), np.nan) if m is None else _as_array(m)
        n1, n2 = f"{gname} ~ numeric", f"{gname} ~ reference"
        pairs.append((n1, (m, num)))
        if idx is not None:
            masks[n1] = idx
        pairs.append((n2, (m, ref[gname])))
    verdict = gradcheck.Verdict()
    for i, (rname, (m, want)) in enumerate(pairs):
        numeric = i % 2 == 0
        tol, atol = (NUMERIC_TOL, NUMERIC_ATOL) if numeric else (REFERENCE_TOL, REFERENCE_ATOL)
        verdict.rows.append(_row(rname, m, want, tol, atol, masks.get(rname)))
    return verdict


def _target_name(g: str) -> str:
    """'dweight' -> 'weight', 'd[q.bias]' -> 'q.bias'."""
    return g[2:-1] if g.startswith("d[") else g[1:]


def check(name: str, fn, seed: int = 0, verbose: bool = True) -> CheckResult:
    """Grade ``fn`` on exercise ``name``; print the tables and the verdict when ``verbose``."""
    if name not in EXERCISES:
        raise ValueError(f"name must be one of {list_exercises()}, got {name!r}")
    if not callable(fn):
        raise TypeError(f"fn must be a function, got {type(fn).__name__}")
    ex = EXERCISES[name]
    rng = np.random.default_rng(seed)
    result = CheckResult(name, passed=True)
    seen = set()

    def add_hint(h):
        if h.key not in seen:
            seen.add(h.key)
            result.hints.append(h)

    fallback = []  # generic hints, shown only when no specific one matched
    structural = []  # per failing case: {key: text} of hints.structure_hints
    votes = []  # per failing case: the constant factors of hints.scale_votes

    cases = ex.make_cases(rng)
    for case in cases:
        ref = ex.unpack(ex.solution(**_freeze(case.args)))
        ref = {k: np.asarray(v, dtype=np.float64) for k, v in ref.items()}
        out, err = _call(fn, case.args, ex, case)
        if err is not None:
            result.passed = False
            result.error = err[0].text
            for h in err:
                add_hint(h)
            break
        try:
            mine = {k: _as_array(v) for k, v in ex.unpack(out).items()}
        except TypeError as e:
            result.passed = False
            result.error = str(e)
            add_hint(Hint("bad_return", str(e)))
            break
        missing = [g for g in ex.grad_names if g not in mine]
        if missing:
            add_hint(Hint("missing_gradient", "missing gradient(s): " + ", ".join(missing)))
        verdict = _case_rows(ex, case, mine, ref, rng)
        result.tables.append((case.label, verdict))
        if verdict.ok:
            continue
        result.passed = False
        if _transposed(mine, ref):
            add_hint(Hint("transposed_weight",
                          "A weight gradient is transposed: it must have the layout of the weight "
                          "(Hugging Face stores Linear weights as (out_features, in_features)), "
                          "so dW = dy^T @ x, not x^T @ dy."))
        for mistake in ex.mistakes:
            if mistake.test is None:
                continue
            try:
                hit = mistake.test(mine, ref, case)
            except Exception:  # noqa: BLE001 - a malformed answer simply does not match
                hit = False
            if hit:  # a test may return its own, sharper text (which term, which residual)
                add_hint(Hint(mistake.key, hit if isinstance(hit, str) else mistake.hint))
        structural.append(dict(H.structure_hints(ex.grad_names, mine, ref)))
        for g in ex.grad_names:
            if g in mine and mine[g].shape != ref[g].shape:
                fallback.append(Hint(*H.shape_hint(g, mine[g].shape, ref[g].shape,
                                                   _target_name(g))))
        if ex.name == "encoder_block":
            first = next((r.name.split(" ~")[0] for r in reversed(verdict.rows) if not r.ok), None)
            failing = {r.name.split(" ~")[0] for r in verdict.rows if not r.ok}
            only_dx = (" Only dx fails, every weight's gradient is right: if the same code made "
                       "them, the slip is in the last step to x (the residual dx = dr1 + ..., or the "
                       "dx of q, k and v: d @ W, the heads merged back)." if failing == {"dx"} else "")
            fallback.append(Hint("block_first_failure", f"first failing gradient: {first}.{only_dx} "
                                 + BLOCK_HINT))
        votes.append(H.scale_votes(ex, mine, ref, case))
    # a structural slip is named only when every failing case shows it: a (1, V) bias gradient
    # in a case with B = 1 looks like keepdims, where the other cases show an unsummed batch axis
    common = [(k, t) for k, t in (structural[0].items() if structural else ()) if all(k in s for s in structural)]
    if any(k == "keepdims_extra" for k, _ in common):  # every case shows kept axes: the sharper name
        common = [(k, t) for k, t in common if k != "reshape_needed"]
    if any(k == "return_order" for k, _ in common):  # every number is right: nothing else to say
        result.hints[:] = [Hint(k, t) for k, t in common if k == "return_order"]
    else:
        for key, text in common:
            add_hint(Hint(key, text))
    fallback += [Hint(k, t) for k, t in H.scale_hints(ex, votes)]
    if not result.passed and not result.hints:
        for h in fallback:
            add_hint(h)
    if not result.passed and not result.hints:
        section = ex.math_section
        add_hint(Hint("generic", f"No classic mistake matched. Re-derive with docs/math.md, "
                                 f"section '{section}', and test one entry at a time."))
    if result.passed and cases:  # right on every case: does it survive large logits too?
        text = stability.unstable(ex, fn, cases[0],
                                  lambda f, a: f(**_learner_kwargs(f, _freeze(a))))
        if text:
            result.passed = False
            add_hint(Hint("softmax_unstable", text))
    if verbose:
        print(result.report())
    return result
