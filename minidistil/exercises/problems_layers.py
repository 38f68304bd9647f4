"""Exercises on the layers: linear, GELU, LayerNorm, softmax and log-softmax with temperature.

Legend: N rows (any leading shape), IN/OUT linear fan-in/fan-out, C features, V classes.
Each ``*_cases(rng)`` draws tiny float64 cases; each ``*_MISTAKES`` list names the classic wrong
formulas the checker recognises (see :mod:`.base`).
"""
from __future__ import annotations

import math

import numpy as np

from . import forwards as F
from .base import Case, Mistake, any_close, close

# ----------------------------------------------------------------------------------- linear


def linear_cases(rng):
    cases = []
    # the square case comes first: there dy @ weight.T has the right shape and wrong numbers
    for n, fin, fout in ((4, 3, 3), (2, 6, 5), (3, 4, 7)):
        x = rng.standard_normal((n, fin))  # (N, IN)
        w = rng.standard_normal((fout, fin)) * 0.5  # (OUT, IN)
        b = rng.standard_normal(fout)  # (OUT,)
        dy = rng.standard_normal((n, fout))  # (N, OUT)
        cases.append(Case(f"x{x.shape} W{w.shape}", {"dy": dy, "x": x, "weight": w},
                          {"dx": x, "dweight": w, "dbias": b},
                          lambda x=x, w=w, b=b, dy=dy: float(np.sum(F.linear(x, w, b) * dy)),
                          {"B": n}))
    return cases


def _matmul_error(e, c):
    return isinstance(e, ValueError) and "matmul" in str(e)


def _bias_how(m, c):
    """The bias hint, saying what the learner's dbias summed (True: the plain text)."""
    g, dy = np.asarray(m["dbias"], dtype=np.float64), c.args["dy"]
    want = "sum dy over every row, dy.sum(axis=0), shape (OUT,) (each row contributes)."
    if close(g, dy):
        return "Your dbias is dy itself, one row per example: " + want
    if close(g, dy.sum(-1)):
        return ("Your dbias is dy.sum(axis=-1), one number per row: that sums over the OUT features. "
                "The bias is added to every row, so " + want)
    if g.size == 1 and close(g.reshape(()), dy.sum()):
        return "Your dbias is one number, dy summed over every axis: " + want
    return True


LINEAR_MISTAKES = [
    Mistake("bias_not_summed",
            "dbias must have the shape of bias (OUT,): sum dy over every row (the bias is "
            "added to each row, so each row contributes).",
            lambda m, r, c: np.shape(m["dbias"]) != np.shape(r["dbias"])
            and np.size(m["dbias"]) != np.size(r["dbias"]) and _bias_how(m, c)),  # same size: keepdims_extra
    Mistake("linear_dx_weight",
            "dx = dy @ weight: weight is stored (OUT, IN) and dy is (N, OUT), so dy @ weight "
            "is (N, IN). dy @ weight.T only fits when the weight is square, and is wrong there.",
            lambda m, r, c: close(m["dx"], c.args["dy"] @ c.args["weight"].T),
            _matmul_error),
    Mistake("linear_dweight_outer_sums",
            "dweight = dy^T @ x sums the outer products of each row's dy_n and x_n; the outer "
            "product of the two row sums, outer(dy.sum(0), x.sum(0)), mixes rows with each other.",
            lambda m, r, c: close(m["dweight"], np.outer(c.args["dy"].sum(0), c.args["x"].sum(0)))),
]
LINEAR_SCALES = {"B": "the gradient is summed over the N rows, not averaged: no division by N.",
                 "1/B": "a mean over the N rows crept in: the forward sums, so the backward sums.",
                 "−1": "the sign is flipped."}

# ----------------------------------------------------------------------------------- GELU


def gelu_cases(rng):
    cases = []
    for shape in ((5,), (3, 4), (2, 3, 4)):
        x = rng.standard_normal(shape) * 2.0  # (...)
        dy = rng.standard_normal(shape)  # (...)
        cases.append(Case(f"x{shape}", {"dy": dy, "x": x}, {"dx": x},
                          lambda x=x, dy=dy: float(np.sum(F.gelu(x) * dy))))
    return cases


def phi_cdf(x):
    return 0.5 * (1.0 + F._erf(x / math.sqrt(2.0)))  # (...)


def _gelu_tanh_grad(x):
    a = math.sqrt(2.0 / math.pi)
    t = np.tanh(a * (x + 0.044715 * x ** 3))  # (...)
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * a * (1 + 3 * 0.044715 * x * x)  # (...)


def _gelu_sigmoid_grad(x):
    s = 1.0 / (1.0 + np.exp(-1.702 * x))  # (...)
    return s + 1.702 * x * s * (1 - s)  # (...)


def _gelu_with_pdf(pdf):
    """The learner's dx when the x * phi(x) term uses ``pdf`` instead of the normal pdf."""
    def test(m, r, c):
        x = c.args["x"]
        return close(m["dx"], c.args["dy"] * (phi_cdf(x) + x * pdf(x)))
    return test


def _phi(x):
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)  # (...) the normal pdf


_PDF_FIX = " phi(x) = exp(-x**2 / 2) / sqrt(2 pi), the derivative of Phi(x) = 0.5 (1 + erf(x / sqrt 2))."

GELU_MISTAKES = [
    Mistake("gelu_erf_chain",
            "The x * phi(x) term is sqrt(2) too big: d/dx erf(x / sqrt 2) = (2 / sqrt pi) "
            "exp(-x**2 / 2) * (1 / sqrt 2), and the chain factor 1/sqrt(2) was dropped." + _PDF_FIX,
            _gelu_with_pdf(lambda x: np.exp(-0.5 * x * x) / math.sqrt(math.pi))),
    Mistake("gelu_pdf_norm",
            "The Gaussian pdf in x * phi(x) lacks its normalisation 1/sqrt(2 pi)." + _PDF_FIX,
            _gelu_with_pdf(lambda x: np.exp(-0.5 * x * x))),
    Mistake("gelu_pdf_exponent",
            "The Gaussian pdf in x * phi(x) has exp(-x**2) where it needs exp(-x**2 / 2)." + _PDF_FIX,
            _gelu_with_pdf(lambda x: np.exp(-x * x) / math.sqrt(2 * math.pi))),
    Mistake("gelu_pdf_no_x",
            "The product rule on x * Phi(x) gives Phi(x) + x * phi(x): the second term is x * phi(x), "
            "you wrote phi(x) without the x.",
            lambda m, r, c: close(m["dx"], c.args["dy"] * (phi_cdf(c.args["x"]) + _phi(c.args["x"])))),
    Mistake("gelu_product_rule",
            "gelu(x) = x * Phi(x) is a product: gelu'(x) = Phi(x) + x * phi(x). You kept only "
            "one of the two terms.",
            lambda m, r, c: any_close(m, "dx", (c.args["dy"] * phi_cdf(c.args["x"]),
                                                c.args["dy"] * c.args["x"] * np.exp(-0.5 * c.args["x"] ** 2)
                                                / math.sqrt(2 * math.pi)))),
    Mistake("gelu_tanh",
            "That is the derivative of the tanh approximation; BERT uses the exact erf GELU.",
            lambda m, r, c: close(m["dx"], c.args["dy"] * _gelu_tanh_grad(c.args["x"]))),
    Mistake("gelu_sigmoid",
            "That is the derivative of the sigmoid approximation x * sigmoid(1.702 x); BERT uses "
            "the exact erf GELU, gelu'(x) = Phi(x) + x * phi(x).",
            lambda m, r, c: close(m["dx"], c.args["dy"] * _gelu_sigmoid_grad(c.args["x"]))),
    Mistake("dy_ignored",
            "Multiply by the upstream gradient dy: dx = dy * gelu'(x), not gelu'(x) alone.",
            lambda m, r, c: close(m["dx"], r["dx"] / c.args["dy"])),
]
GELU_SCALES = {"−1": "the sign is flipped.",
               "1/2": "a stray factor 1/2: gelu = 0.5 x (1 + erf), and the 0.5 is inside Phi.",
               "2": "the 0.5 of Phi(x) = 0.5 (1 + erf(x / sqrt 2)) is missing."}

# ----------------------------------------------------------------------------------- LayerNorm


def layernorm_cases(rng):
    cases = []
    for shape in ((3, 5), (2, 3, 4), (1, 6)):
        C = shape[-1]
        x = rng.standard_normal(shape) * 1.5 + 0.3  # (N, C)
        gamma = 1.0 + 0.5 * rng.standard_normal(C)  # (C,) not all ones
        beta = 0.5 * rng.standard_normal(C)  # (C,) not all zeros
        dy = rng.standard_normal(shape)  # (N, C)
        cases.append(Case(f"x{shape}", {"dy": dy, "x": x, "gamma": gamma, "eps": 1e-12},
                          {"dx": x, "dgamma": gamma, "dbeta": beta},
                          lambda x=x, g=gamma, b=beta, dy=dy: float(np.sum(F.layernorm(x, g, b) * dy)),
                          {"C": C}))
    return cases


def ln_parts(c, ddof=0):
    x, dy, gamma = c.args["x"], c.args["dy"], c.args["gamma"]
    mean = x.mean(-1, keepdims=True)  # (N, 1)
    var = ((x - mean) ** 2).sum(-1, keepdims=True) / (x.shape[-1] - ddof)  # (N, 1)
    rstd = 1.0 / np.sqrt(var + 1e-12)  # (N, 1)
    xhat = (x - mean) * rstd  # (N, C)
    return dy, gamma, rstd, xhat


def ln_var_term_scaled(c, factors) -> tuple:
    """dx with the variance term ``rstd * xhat * mean(g * xhat)`` times each factor (a number, or
    a per-row (N, 1) array): the slips of the variance stage of the derivation."""
    dy, gamma, rstd, xhat = ln_parts(c)
    g = dy * gamma  # (N, C)
    base = rstd * (g - g.mean(-1, keepdims=True))  # (N, C)
    var_term = rstd * xhat * (g * xhat).mean(-1, keepdims=True)  # (N, C)
    return tuple(base - f * var_term for f in factors)


def _ln_no_mean(m, r, c):
    dy, gamma, rstd, xhat = ln_parts(c)
    g = dy * gamma  # (N, C)
    return close(m["dx"], rstd * (g - xhat * (g * xhat).mean(-1, keepdims=True)))


def _ln_no_var(m, r, c):
    dy, gamma, rstd, xhat = ln_parts(c)
    g = dy * gamma  # (N, C)
    return close(m["dx"], rstd * (g - g.mean(-1, keepdims=True)))


def _ln_stats_constant(m, r, c):
    dy, gamma, rstd, xhat = ln_parts(c)
    return close(m["dx"], rstd * dy * gamma)


def _ln_var_sum(m, r, c):
    dy, gamma, rstd, xhat = ln_parts(c)
    g = dy * gamma  # (N, C)
    return close(m["dx"], rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).sum(-1, keepdims=True)))


def _ln_no_gamma(m, r, c):
    dy, gamma, rstd, xhat = ln_parts(c)
    return close(m["dx"], rstd * (dy - dy.mean(-1, keepdims=True)
                                  - xhat * (dy * xhat).mean(-1, keepdims=True)))


def _ln_dgamma_x(m, r, c):
    lead = tuple(range(c.args["x"].ndim - 1))
    dy = c.args["dy"]
    x = c.args["x"]
    xc = x - x.mean(-1, keepdims=True)  # (N, C) centred, not divided by the std
    return any_close(m, "dgamma", ((dy * x).sum(axis=lead), dy.sum(axis=lead), (dy * xc).sum(axis=lead)))


def _ln_unbiased(m, r, c):
    dy, gamma, rstd, xhat = ln_parts(c, ddof=1)
    g = dy * gamma  # (N, C)
    C = xhat.shape[-1]
    lead = tuple(range(xhat.ndim - 1))
    dxs = (rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True)),
           rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).sum(-1, keepdims=True) / (C - 1)))
    return any_close(m, "dx", dxs) or close(m["dgamma"], (dy * xhat).sum(axis=lead))


def _ln_param_axes(m, r, c):
    """dgamma or dbeta summed over the features (the last axis) instead of over the rows."""
    dy, gamma, rstd, xhat = ln_parts(c)
    return any_close(m, "dgamma", ((dy * xhat).sum(-1),)) or any_close(m, "dbeta", (dy.sum(-1),))


LAYERNORM_MISTAKES = [
    Mistake("layernorm_mean_term",
            "The mean depends on every x_j: dx needs the '- mean(g)' term "
            "(dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma).",
            _ln_no_mean),
    Mistake("layernorm_variance_term",
            "The variance depends on x too: dx needs the '- xhat * mean(g * xhat)' term.",
            _ln_no_var),
    Mistake("layernorm_stats_constant",
            "The mean and the variance were treated as constants (dx = rstd * g): both depend on "
            "x, so dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma.",
            _ln_stats_constant),
    Mistake("layernorm_variance_sum",
            "The variance term needs a MEAN over the C features, xhat * mean(g * xhat); you summed "
            "(the 1/C of d var / dx is missing).",
            _ln_var_sum),
    Mistake("layernorm_gamma",
            "Multiply dy by gamma before normalising back: g = dy * gamma.",
            _ln_no_gamma),
    Mistake("layernorm_dgamma_xhat",
            "dgamma = sum(dy * xhat): gamma multiplies the NORMALISED x, xhat = (x - mean) / "
            "sqrt(var + eps) (not x, nor x - mean without the division; and sum(dy) alone is dbeta).",
            _ln_dgamma_x),
    Mistake("layernorm_unbiased_var",
            "LayerNorm uses the biased variance, mean((x - mu)**2) (divide by C, np.var's default "
            "ddof=0); you divided by C - 1 (ddof=1, torch.var's default).",
            _ln_unbiased),
    Mistake("layernorm_param_axes",
            "gamma and beta are shared by every row, so dgamma and dbeta sum over the ROWS (every "
            "axis but the last), shape (C,): (dy * xhat).sum(axis=tuple(range(x.ndim - 1))), not "
            "over the features (axis=-1).",
            _ln_param_axes),
]
LAYERNORM_SCALES = {"C": "a sum over the C features where the formula has a mean (or the 1/C of "
                         "d mu/dx and d var/dx counted twice).",
                    "1/C": "a mean where the formula has a sum (dgamma and dbeta SUM over rows).",
                    "−1": "the sign is flipped."}

# ----------------------------------------------------------------------------------- softmax(τ)


def _temperature_cases(rng, forward, upstream: str):
    """Three cases of ``forward(x, tau)`` with upstream gradient ``upstream`` (softmax: dp,
    log-softmax: dy): 2-D and 3-D logits, temperatures above and below 1."""
    cases = []
    for shape, tau in (((3, 5), 2.0), ((2, 3, 4), 0.5), ((4, 6), 3.0)):
        x = rng.standard_normal(shape) * 2.0  # (N, V)
        up = rng.standard_normal(shape)  # (N, V)
        cases.append(Case(f"x{shape} tau={tau}", {upstream: up, "x": x, "tau": tau}, {"dx": x},
                          lambda x=x, up=up, tau=tau: float(np.sum(forward(x, tau) * up)),
                          {"tau": tau}))
    return cases


def softmax_cases(rng):
    return _temperature_cases(rng, F.softmax_t, "dp")


def _times_tau(fn, m, r, c, name, *args):
    """The learner's formula with softmax(x * tau): the reference at 1/tau, with either factor."""
    tau = c.args["tau"]
    g = fn(*args, 1.0 / tau)  # carries the factor tau
    return any_close(m, name, (g, g / tau ** 2, g / tau))


def _softmax_grad(dp, x, tau):
    p = F.softmax_t(x, tau)  # (N, V)
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True)) / tau  # (N, V)


def _log_softmax_grad(dy, x, tau):
    p = F.softmax_t(x, tau)  # (N, V)
    return (dy - p * dy.sum(axis=-1, keepdims=True)) / tau  # (N, V)


def _softmax_diag(m, r, c):
    p = F.softmax_t(c.args["x"], c.args["tau"])  # (N, V)
    return any_close(m, "dx", (p * (1 - p) * c.args["dp"] * s for s in (1.0, 1.0 / c.args["tau"])))


def _p_without_tau(m, r, c, grad):
    """The learner recomputed p as softmax(x), without tau, inside an otherwise right formula."""
    x, tau = c.args["x"], c.args["tau"]
    up = c.args["dp"] if "dp" in c.args else c.args["dy"]
    p = F.softmax_t(x)  # (N, V) at tau = 1
    return any_close(m, "dx", (grad(p, up) / tau, grad(p, up)))


def _sm_from_p(p, dp):
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True))  # (N, V)


def _lsm_from_p(p, dy):
    return dy - p * dy.sum(axis=-1, keepdims=True)  # (N, V)


def _sm_unweighted(m, r, c):
    p, dp = F.softmax_t(c.args["x"], c.args["tau"]), c.args["dp"]  # (N, V)
    g = p * (dp - dp.sum(-1, keepdims=True))  # (N, V)
    return any_close(m, "dx", (g / c.args["tau"], g))


def _sum_axis(m, r, c, grad):
    """The row sum of the backward taken over another axis than the softmax's (the last)."""
    x, tau = c.args["x"], c.args["tau"]
    up = c.args["dp"] if "dp" in c.args else c.args["dy"]
    p = F.softmax_t(x, tau)  # (N, V)
    return any_close(m, "dx", (grad(p, up, ax) / tau for ax in range(x.ndim - 1)))


_SUM_AXIS = ("The sum in the backward runs over the softmax's own axis, the last one (the V "
             "entries of one row): .sum(axis=-1, keepdims=True), not over the rows.")
_P_WITHOUT_TAU = ("You recomputed p as softmax(x), without the temperature: p = softmax(x / τ) in the "
                "backward too.")

SOFTMAX_MISTAKES = [
    Mistake("softmax_sum_axis", _SUM_AXIS, lambda m, r, c: _sum_axis(
        m, r, c, lambda p, d, ax: p * (d - (d * p).sum(axis=ax, keepdims=True)))),
    Mistake("softmax_weighted_sum",
            "The row sum in the softmax backward is weighted by p: dx = p * (dp - sum(dp * p)) / τ, "
            "not p * (dp - sum(dp)) / τ.",
            _sm_unweighted),
    Mistake("softmax_p_without_tau", _P_WITHOUT_TAU, lambda m, r, c: _p_without_tau(m, r, c, _sm_from_p)),
    Mistake("softmax_temperature",
            "Chain rule through x / τ: the gradient gets a factor 1/τ.",
            lambda m, r, c: close(m["dx"], r["dx"] * c.args["tau"])),
    Mistake("softmax_jacobian",
            "The softmax Jacobian is not diagonal: dx = p * (dp - sum(dp * p)) / τ, "
            "not p * (1 - p) * dp.",
            _softmax_diag),
    Mistake("softmax_times_tau",
            "The temperature DIVIDES the logits: p = softmax(x / τ), not softmax(x * τ); "
            "and the chain rule then gives 1/τ.",
            lambda m, r, c: _times_tau(_softmax_grad, m, r, c, "dx", c.args["dp"], c.args["x"])),
]
SOFTMAX_SCALES = {"τ²": "the gradient is multiplied by τ where it should be divided by it.",
                  "1/τ": "the factor 1/τ is applied twice.",
                  "1/τ²": "the factor 1/τ is applied three times (or τ² divides where nothing should).",
                  "−1": "the sign is flipped: dx = p * (dp - sum(dp * p)) / τ."}

# ----------------------------------------------------------------------------------- log-softmax(τ)


def log_softmax_cases(rng):
    return _temperature_cases(rng, F.log_softmax_t, "dy")


def _lsm_sum(m, r, c):
    x, dy, tau = c.args["x"], c.args["dy"], c.args["tau"]
    p = F.softmax_t(x, tau)  # (N, V)
    return any_close(m, "dx", ((dy - p) / tau, dy - p, dy / tau, dy))


def _lsm_diag(m, r, c):
    x, dy, tau = c.args["x"], c.args["dy"], c.args["tau"]
    p = F.softmax_t(x, tau)  # (N, V)
    return any_close(m, "dx", (dy * (1 - p) / tau, dy * (1 - p)))


def _lsm_as_softmax(m, r, c):
    g = _sm_from_p(F.softmax_t(c.args["x"], c.args["tau"]), c.args["dy"])  # (N, V)
    return any_close(m, "dx", (g / c.args["tau"], g))


def _lsm_unnormalised(m, r, c):
    g = _lsm_from_p(np.exp(c.args["x"] / c.args["tau"]), c.args["dy"])  # (N, V)
    return any_close(m, "dx", (g / c.args["tau"], g))


LOG_SOFTMAX_MISTAKES = [
    Mistake("softmax_sum_axis", _SUM_AXIS, lambda m, r, c: _sum_axis(
        m, r, c, lambda p, d, ax: d - p * d.sum(axis=ax, keepdims=True))),
    Mistake("log_softmax_used_softmax",
            "That is the SOFTMAX backward, p * (dy - sum(dy * p)) / τ. For log-softmax, "
            "d log p_i / d z_j = delta_ij - p_j, so dx = (dy - p * sum(dy)) / τ.",
            _lsm_as_softmax),
    Mistake("softmax_p_without_tau", _P_WITHOUT_TAU, lambda m, r, c: _p_without_tau(m, r, c, _lsm_from_p)),
    Mistake("log_softmax_unnormalised",
            "The correction term needs the normalised p = softmax(x / τ) = exp(x / τ) / "
            "sum(exp(x / τ)), not exp(x / τ) alone.",
            _lsm_unnormalised),
    Mistake("log_softmax_sum",
            "log p_i = z_i - log sum_k exp(z_k): the normaliser depends on every z_j, and it "
            "weighs p_j by the SUM of the upstream row: dx = (dy - p * sum(dy, -1)) / τ "
            "(sum(dy) is not 1 for an arbitrary dy).",
            _lsm_sum),
    Mistake("log_softmax_jacobian",
            "d log p_i / d z_j = delta_ij - p_j is not diagonal: every output depends on every "
            "input, so dx_j = dy_j - p_j * sum_i dy_i (then / τ). Yours is dy * (1 - p): it "
            "uses dy_j where the row sum sum_i dy_i belongs.",
            _lsm_diag),
    Mistake("softmax_times_tau",
            "The temperature DIVIDES the logits: log softmax(x / τ), not log softmax(x * τ).",
            lambda m, r, c: _times_tau(_log_softmax_grad, m, r, c, "dx", c.args["dy"], c.args["x"])),
]
LOG_SOFTMAX_SCALES = dict(SOFTMAX_SCALES, **{"τ": "the chain-rule factor 1/τ of x / τ is missing.",
                                             "−1": "the sign is flipped: dx = (dy - p * sum(dy)) / τ."})
