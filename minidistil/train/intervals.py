"""Standard errors and 95% intervals for accuracies measured on the same masked tokens.

Legend: n clusters (validation sequences), S seeds.

The evaluation masks every validation sequence several times (``EvalConfig.n_masks``), so the
masked tokens of one sequence are not independent draws: the same word is masked in several
masks, and its neighbours are shared. Every interval here therefore treats the **sequence** as
the unit of sampling (a cluster): a model's figures enter as per-sequence sums

    c_j = correct predictions among the masked tokens of sequence j,   m_j = masked tokens of j,

and accuracy ``a = sum c / sum m`` is a ratio estimator. Its linearised (delta-method, cluster-
robust) standard error is

    se(a)^2 = n / (n - 1) * sum_j (c_j - a m_j)^2 / (sum_j m_j)^2.

A **paired** difference of two models on the same tokens, ``d = a_A - a_B``, uses the per-sequence
differences ``c^A_j - c^B_j`` in the same formula: tokens both models get right (or wrong) add
nothing to its variance, which is why pairing makes small differences visible.

**Retention** ``r = a_S / a_T`` (student over teacher, same tokens) is a ratio of two sums over the
same clusters; the delta method gives

    se(r)^2 = n / (n - 1) * sum_j (c^S_j - r c^T_j)^2 / (sum_j c^T_j)^2.

Intervals are ``estimate +/- 1.96 se`` (normal approximation; the evaluation has hundreds of
sequences). Across seeds (``seed_token_interval``) the t quantile with S - 1 degrees of freedom is
used instead, because there are only a handful of seeds.
"""
from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal
# 97.5% quantiles of Student's t with 1..30 degrees of freedom (tables; no SciPy dependency)
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t975(dof: int) -> float:
    """The 97.5% quantile of Student's t with ``dof`` degrees of freedom (normal beyond 30)."""
    if dof < 1:
        raise ValueError(f"dof must be >= 1, got {dof}")
    return _T975[dof - 1] if dof <= len(_T975) else Z95


def _clusters(*arrays):
    out = [np.asarray(a, dtype=np.float64) for a in arrays]  # each (n,)
    n = out[0].shape[0]
    for a in out:
        if a.ndim != 1 or a.shape[0] != n:
            raise ValueError(f"per-cluster arrays must be 1-D of the same length, got shapes "
                             f"{[x.shape for x in out]}")
    if n < 2:
        raise ValueError(f"a standard error needs at least 2 clusters, got {n}")
    return out, n


def _ratio_se(num, den, r, n):
    resid = num - r * den  # (n,) linearised residuals
    return math.sqrt(n / (n - 1) * float(resid @ resid)) / float(den.sum())


def accuracy_se(correct, masked) -> tuple[float, float]:
    """``(accuracy, se)`` from per-sequence correct counts and masked-token counts."""
    (c, m), n = _clusters(correct, masked)
    if m.sum() <= 0:
        raise ValueError("no masked tokens")
    a = float(c.sum() / m.sum())
    return a, _ratio_se(c, m, a, n)


def paired_difference(correct_a, correct_b, masked) -> tuple[float, float]:
    """``(a_A - a_B, se)`` of two models scored on the same masked tokens."""
    (ca, cb, m), n = _clusters(correct_a, correct_b, masked)
    if m.sum() <= 0:
        raise ValueError("no masked tokens")
    d = ca - cb  # (n,)
    diff = float(d.sum() / m.sum())
    return diff, _ratio_se(d, m, diff, n)


def retention(correct_student, correct_teacher) -> tuple[float, float]:
    """``(a_S / a_T, se)`` by the delta method (same tokens, same clusters)."""
    (cs, ct), n = _clusters(correct_student, correct_teacher)
    if ct.sum() <= 0:
        return float("nan"), float("nan")
    r = float(cs.sum() / ct.sum())
    return r, _ratio_se(cs, ct, r, n)


def ci95(estimate: float, se: float, quantile: float = Z95) -> tuple[float, float]:
    return estimate - quantile * se, estimate + quantile * se


def seed_token_interval(per_seed_deltas, token_se_of_mean: float) -> dict:
    """A 95% interval for the mean over S seeds of a paired delta.

    ``per_seed_deltas`` (S,): the delta of each seed, each measured on the same tokens;
    ``token_se_of_mean``: the token-level (cluster) standard error of the seed-averaged delta.
    The variance of the mean is taken as ``var_seed / S + token_se^2``: the spread between seeds
    (training randomness) plus the sampling of validation tokens, which all seeds share and which
    the spread between seeds therefore cannot show. The seed spread already holds some token
    noise, so the sum errs on the wide side. The quantile is t with S - 1 degrees of freedom.
    """
    d = np.asarray(per_seed_deltas, dtype=np.float64)  # (S,)
    if d.ndim != 1 or d.size < 2:
        raise ValueError(f"per_seed_deltas needs at least 2 seeds, got shape {d.shape}")
    S = d.size
    mean = float(d.mean())
    seed_var = float(d.var(ddof=1))
    se = math.sqrt(seed_var / S + token_se_of_mean ** 2)
    q = t975(S - 1)
    lo, hi = ci95(mean, se, q)
    return {"mean": mean, "se": se, "seed_sd": math.sqrt(seed_var), "token_se": token_se_of_mean,
            "ci95": [lo, hi], "quantile": q}


def paired_ratio(numerators, denominators) -> dict:
    """The geometric mean of paired ratios ``a_i / b_i`` with a 95% t-interval.

    ``numerators``, ``denominators`` (n,): positive measurements taken in pairs (for instance
    the teacher's and the student's time on one batch, timed back to back, so that a slow
    moment of a shared machine hits both). The interval is ``exp(mean(log r) +/- t975(n - 1) *
    sd(log r) / sqrt(n))``: ratios are multiplicative, so their logarithms are averaged.
    """
    a = np.asarray(numerators, dtype=np.float64)  # (n,)
    b = np.asarray(denominators, dtype=np.float64)  # (n,)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired_ratio needs two 1-D arrays of one length, got shapes {a.shape} and {b.shape}")
    if a.size < 2:
        raise ValueError(f"paired_ratio needs at least 2 pairs, got {a.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.all(a > 0) and np.all(b > 0)):
        raise ValueError("paired_ratio needs finite, positive measurements")
    logs = np.log(a / b)  # (n,)
    mean = float(logs.mean())
    se = float(logs.std(ddof=1) / math.sqrt(logs.size))
    q = t975(logs.size - 1)
    return {"ratio": math.exp(mean), "ci95": [math.exp(mean - q * se), math.exp(mean + q * se)],
            "n": int(logs.size), "log_se": se, "quantile": q}


def verdict(ci, expected_sign: int = -1) -> str:
    """'the paper's sign, significant' | 'not resolved' | 'opposite sign, significant'."""
    lo, hi = ci
    if lo > 0 or hi < 0:
        sign = 1 if lo > 0 else -1
        return "the paper's sign, significant" if sign == expected_sign else "opposite sign, significant"
    return "not resolved"


def fmt_pm(value: float, se: float, scale: float = 100.0, digits: int = 2) -> str:
    """``'41.23 +/- 0.21'`` (value and one standard error, in points by default)."""
    return f"{scale * value:.{digits}f} +/- {scale * se:.{digits}f}"


def fmt_ci(ci, scale: float = 100.0, digits: int = 2, signed: bool = True) -> str:
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    return "[" + f.format(scale * ci[0]) + ", " + f.format(scale * ci[1]) + "]"
