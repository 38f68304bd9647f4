"""The numerical-stability probe: a softmax of raw logits must survive large logits.

The ordinary cases draw logits of order 1, where ``exp(logits) / exp(logits).sum()`` is exact
enough to pass. A reference library must not overflow on logits of order 1e3 (a trained model's
logits, or a low temperature, get there). So once every ordinary case has PASSED, the checker
calls the learner once more on the first case with its logits scaled to a spread of about 1e3
and shifted up to about 2e3 (times tau), where the reference is finite. An answer that is not finite there (inf or nan) FAILS with the
key ``softmax_unstable``. The probe runs apart from the ordinary cases: the structural rules and
the scale votes never see it, and numpy's overflow warnings are silenced while it runs.
"""
from __future__ import annotations

import warnings

import numpy as np

SPREAD = 1e3  # the largest |logit| of the probe

UNSTABLE_HINT = ("Your gradient is right on ordinary logits but becomes inf/nan when the logits "
                 "are large (about 1e3 here): exp(1000) overflows to inf, and inf / inf is nan. "
                 "Subtract each row's max before exp: z = x - x.max(axis=-1, keepdims=True); "
                 "p = exp(z) / exp(z).sum(axis=-1, keepdims=True) (the same softmax, since the "
                 "shift cancels), and take log-softmax as z - log(exp(z).sum(...)) (log-sum-exp).")


def _top(args) -> float:
    """The largest logit of the probe: far past exp's overflow (709) even after dividing by tau."""
    return 2 * SPREAD * max(float(np.max(args.get("tau", 1.0))), 1.0)


def _logit_args(args: dict, names) -> dict:
    """Each logit row scaled to a spread of SPREAD and shifted so that its max is ``_top``: the
    softmax of every row then overflows unless its max is subtracted first."""
    out = dict(args)
    for n in names:
        x = np.asarray(args[n], dtype=np.float64)
        spread = float(np.max(np.abs(x))) if x.size else 0.0
        z = x * (SPREAD / spread) if spread > 0 else x
        out[n] = z + (_top(args) - z.max(axis=-1, keepdims=True))
    return out


def _triple_args(args: dict) -> dict:
    out = _logit_args(args, ("t_logits",))
    logits = np.asarray(args["h"]) @ np.asarray(args["weight"]).T  # the student's logits h W^T
    top = float(np.max(logits)) if logits.size else 0.0
    if top > 0:
        out["h"] = np.asarray(args["h"]) * (_top(args) / top)
    return out


# exercise -> the case's arguments with large logits (only those where a learner writes a softmax)
PROBES = {
    "softmax_t": lambda a: _logit_args(a, ("x",)),
    "log_softmax_t": lambda a: _logit_args(a, ("x",)),
    "cross_entropy": lambda a: _logit_args(a, ("logits",)),
    "kl_soft_target": lambda a: _logit_args(a, ("s_logits", "t_logits")),
    "triple_loss": _triple_args,
}


def _finite(value) -> bool:
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return all(_finite(v) for v in value)
    try:
        return bool(np.all(np.isfinite(np.asarray(value, dtype=np.float64))))
    except (TypeError, ValueError):
        return True  # not an array: nothing to overflow


def unstable(ex, fn, case, call) -> str | None:
    """The hint's text when ``fn`` is not finite on the large-logit version of ``case`` (while the
    reference is), else None. ``call(fn, args)`` runs the learner (read-only copies, old names)."""
    make = PROBES.get(ex.name)
    if make is None:
        return None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            args = make(case.args)
            if not _finite(ex.solution(**args)):
                return None  # the probe is out of the reference's range: say nothing
            out = call(fn, args)
        except (FloatingPointError, OverflowError) as e:
            return f"{UNSTABLE_HINT} ({type(e).__name__}: {e})"
        except Exception:  # noqa: BLE001 - any other failure is not a stability finding
            return None
    return None if _finite(out) else UNSTABLE_HINT
