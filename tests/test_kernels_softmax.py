"""Softmax with temperature, log-softmax and their backwards, on both backends.

Bounds used below (stated once):
* finite differences (float64, h = 1e-5, random upstream gradient): 1e-7 relative (gradcheck.rel_error);
* twin parity Numba vs NumPy, normwise max|a - b| / max|b|: 1e-12 in float64, 1e-5 in float32.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minidistil import gradcheck
from minidistil.kernels import (LogSoftmaxCache, SoftmaxCache, log_softmax_backward, log_softmax_forward,
                                softmax_backward, softmax_forward, use_backend)
from minidistil.kernels import softmax_t

BACKENDS = ["numpy", "numba"]
FD_TOL = 1e-7
PARITY_TOL = {np.float64: 1e-12, np.float32: 1e-5}
HYP = settings(max_examples=30, deadline=None)


def nrel(a, b):
    """Normwise relative difference max|a - b| / max|b|."""
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / max(np.max(np.abs(b)), 1e-300))


# ------------------------------------------------------------------ finite differences

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("T", [0.5, 1.0, 2.0, 7.0])
def test_softmax_backward_matches_finite_differences(backend, T):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7)) * 2.0  # (2, 3, 7)
    with use_backend(backend):
        v = gradcheck.check_layer(
            lambda x: softmax_forward(x, T),
            lambda dp, cache: {"x": softmax_backward(dp, cache)},
            {"x": x}, rng, tol=FD_TOL)
    assert v, v.table()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("T", [0.5, 2.0])
def test_log_softmax_backward_matches_finite_differences(backend, T):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 6)) * 2.0  # (4, 6)
    with use_backend(backend):
        v = gradcheck.check_layer(
            lambda x: log_softmax_forward(x, T),
            lambda dlogp, cache: {"x": log_softmax_backward(dlogp, cache)},
            {"x": x}, rng, tol=FD_TOL)
    assert v, v.table()


# ------------------------------------------------------------------ twin parity

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("T", [0.05, 1.0, 2.0, 20.0])
def test_numba_matches_numpy_twin(dtype, T):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((3, 4, 33)) * 4.0).astype(dtype)  # (3, 4, 33)
    dp = rng.standard_normal(x.shape).astype(dtype)  # (3, 4, 33)
    tol = PARITY_TOL[dtype]
    p_ref, c_ref = softmax_t.softmax_forward_numpy(x, T)
    p, c = softmax_t.softmax_forward_numba(x, T)
    assert p.dtype == dtype and p.shape == x.shape
    assert type(c) is type(c_ref) is SoftmaxCache and c.p is p and c.tau == c_ref.tau == T
    assert nrel(p, p_ref) <= tol
    assert nrel(softmax_t.softmax_backward_numba(dp, c_ref),
                softmax_t.softmax_backward_numpy(dp, c_ref)) <= tol
    lp_ref, lc_ref = softmax_t.log_softmax_forward_numpy(x, T)
    lp, lc = softmax_t.log_softmax_forward_numba(x, T)
    assert type(lc) is type(lc_ref) is LogSoftmaxCache and lc.logp is lp
    assert lp.dtype == dtype and nrel(lp, lp_ref) <= tol
    assert nrel(softmax_t.log_softmax_backward_numba(dp, lc_ref),
                softmax_t.log_softmax_backward_numpy(dp, lc_ref)) <= tol


def test_numba_accepts_strided_input():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 8)).T  # (8, 5), not C-contiguous
    assert not x.flags.c_contiguous
    assert nrel(softmax_t.softmax_forward_numba(x, 1.5)[0], softmax_t.softmax_forward_numpy(x, 1.5)[0]) <= 1e-12


# ------------------------------------------------------------------ properties

rows = hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=9),
                  elements=st.floats(-30, 30))
temperatures = st.floats(0.05, 20.0)


@pytest.mark.parametrize("backend", BACKENDS)
@HYP
@given(x=rows, T=temperatures, c=st.floats(-50, 50))
def test_rows_sum_to_one_and_shift_invariant(backend, x, T, c):
    with use_backend(backend):
        p, _ = softmax_forward(x, T)
        shift = np.linspace(0.0, 1.0, x.shape[0])[:, None] * c  # (N, 1): a constant per row
        p_shifted, _ = softmax_forward(x + shift, T)
        logp, _ = log_softmax_forward(x, T)
    assert np.all(p >= 0.0)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(p_shifted, p, rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.exp(logp), p, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@HYP
@given(x=rows)
def test_large_T_tends_to_uniform_small_T_to_one_hot(backend, x):
    V = x.shape[-1]
    x = x.copy()
    x[np.arange(x.shape[0]), x.argmax(axis=-1)] += 1.0  # a unique maximum, 1 above the rest
    with use_backend(backend):
        hot, _ = softmax_forward(x, 1e6)
        cold, _ = softmax_forward(x, 1e-3)
    np.testing.assert_allclose(hot, 1.0 / V, rtol=1e-4, atol=0)
    one_hot = np.zeros_like(x)
    one_hot[np.arange(x.shape[0]), x.argmax(axis=-1)] = 1.0
    np.testing.assert_allclose(cold, one_hot, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ bad input, caught before Numba

@pytest.fixture
def numba_must_not_run(monkeypatch):
    def boom(*args):
        raise AssertionError("a Numba kernel ran on invalid input")
    for name in ("_softmax_rows", "_softmax_backward_rows", "_log_softmax_rows", "_log_softmax_backward_rows"):
        monkeypatch.setattr(softmax_t, name, boom)
    with use_backend("numba"):
        yield


@pytest.mark.parametrize("T", [0.0, -1.0, float("nan"), float("inf"), -float("inf")])
def test_bad_temperature_is_rejected(numba_must_not_run, T):
    x = np.zeros((2, 3))
    for call in (lambda: softmax_forward(x, T), lambda: log_softmax_forward(x, T),
                 lambda: softmax_backward(x, SoftmaxCache(x, T)),
                 lambda: log_softmax_backward(x, LogSoftmaxCache(x, T))):
        with pytest.raises(ValueError, match=r"temperature must be finite and > 0, got"):
            call()


def test_temperature_must_be_a_number(numba_must_not_run):
    with pytest.raises(TypeError, match="temperature must be a number, got str"):
        softmax_forward(np.zeros((2, 3)), "hot")


def test_the_earlier_temperature_keyword_still_works():
    """``T=`` was the keyword's name before ``tau``: old calls give the same numbers, and a
    FutureWarning that names the new keyword."""
    import warnings
    from minidistil.kernels import soft_target_rows
    x = np.random.default_rng(0).standard_normal((3, 5))  # (N, V)
    y = x[::-1].copy()  # (N, V)
    with pytest.warns(FutureWarning, match="pass tau= instead"):
        old = softmax_forward(x, T=2.5)[0]
    assert np.array_equal(old, softmax_forward(x, 2.5)[0])
    assert not np.allclose(old, softmax_forward(x)[0])
    with pytest.warns(FutureWarning, match="T= is deprecated"):
        assert np.array_equal(log_softmax_forward(x, T=0.5)[0], log_softmax_forward(x, tau=0.5)[0])
    with pytest.warns(FutureWarning):
        assert np.array_equal(soft_target_rows(x, y, T=3.0)[1], soft_target_rows(x, y, 3.0)[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new keyword warns about nothing
        softmax_forward(x, tau=2.5)


@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.complex128])
def test_bad_dtype_is_rejected(numba_must_not_run, dtype):
    x = np.zeros((2, 3), dtype=dtype)
    with pytest.raises(TypeError, match=rf"x must have dtype float32 or float64, got {np.dtype(dtype)}"):
        softmax_forward(x)
    with pytest.raises(TypeError, match=rf"cache.p must have dtype float32 or float64, got {np.dtype(dtype)}"):
        softmax_backward(np.zeros((2, 3)), SoftmaxCache(x, 1.0))


def test_mixed_dtypes_and_shapes_are_rejected(numba_must_not_run):
    p = np.full((2, 3), 1 / 3)
    cache = SoftmaxCache(p, 1.0)
    with pytest.raises(TypeError, match="dp must have dtype float64 like the other inputs, got float32"):
        softmax_backward(p.astype(np.float32), cache)
    with pytest.raises(ValueError, match=r"dp must have shape \(2, 3\), got \(3, 2\)"):
        softmax_backward(np.zeros((3, 2)), cache)
    with pytest.raises(ValueError, match=r"dlogp must have shape \(2, 3\), got \(2, 4\)"):
        log_softmax_backward(np.zeros((2, 4)), LogSoftmaxCache(np.log(p), 1.0))
    with pytest.raises(ValueError, match=r"x must have a non-empty last axis, got shape \(2, 0\)"):
        softmax_forward(np.zeros((2, 0)))
    with pytest.raises(TypeError, match="x must be a numpy.ndarray, got list"):
        softmax_forward([[1.0, 2.0]])


def test_forward_never_changes_its_input():
    x = np.random.default_rng(4).standard_normal((3, 5))
    x0 = x.copy()
    for backend in BACKENDS:
        with use_backend(backend):
            softmax_forward(x, 2.0)
            log_softmax_forward(x, 2.0)
    assert np.array_equal(x, x0)
    assert math.isclose(float(softmax_forward(x, 2.0)[0].sum()), 3.0)


def test_backward_takes_the_forward_cache(numba_must_not_run):
    p = np.full((2, 3), 1 / 3)
    with pytest.raises(TypeError, match="cache must be the SoftmaxCache that softmax_forward returned, got ndarray"):
        softmax_backward(p, p)
    with pytest.raises(TypeError, match="the LogSoftmaxCache that log_softmax_forward returned, got SoftmaxCache"):
        log_softmax_backward(p, SoftmaxCache(p, 1.0))
