"""LayerNorm forward/backward on both backends.

Bounds: finite differences in float64 with a random dy, gamma != 1 and beta != 0: 1e-7 relative
(gradcheck.rel_error); twin parity, normwise max|a - b| / max|b|: 1e-12 (float64), 1e-5 (float32).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minidistil import gradcheck
from minidistil.kernels import LayerNormCache, layernorm_backward, layernorm_forward, use_backend
from minidistil.kernels import layernorm

BACKENDS = ["numpy", "numba"]
FD_TOL = 1e-7
PARITY_TOL = {np.float64: 1e-12, np.float32: 1e-5}


def nrel(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / max(np.max(np.abs(b)), 1e-300))


def params(C, dtype, rng):
    gamma = (1.0 + 0.5 * rng.standard_normal(C)).astype(dtype)  # (C,), not 1
    beta = (0.3 * rng.standard_normal(C)).astype(dtype)  # (C,), not 0
    return gamma, beta


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(5, 6), (2, 3, 4)])
def test_backward_matches_finite_differences(backend, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape) * 2.0 + 0.5
    gamma, beta = params(shape[-1], np.float64, rng)

    def forward(x, gamma, beta):
        return layernorm_forward(x, gamma, beta, 1e-5)  # (y, LayerNormCache)

    def backward(dy, cache):
        dx, dgamma, dbeta = layernorm_backward(dy, cache)
        return {"x": dx, "gamma": dgamma, "beta": dbeta}

    with use_backend(backend):
        v = gradcheck.check_layer(forward, backward, {"x": x, "gamma": gamma, "beta": beta}, rng, tol=FD_TOL)
    assert v, v.table()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(7, 16), (3, 5, 24), (40,)])
def test_numba_matches_numpy_twin(dtype, shape):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 3.0 + 1.0).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, beta = params(shape[-1], dtype, rng)
    tol = PARITY_TOL[dtype]
    y_ref, ref = layernorm.layernorm_forward_numpy(x, gamma, beta)
    y, got = layernorm.layernorm_forward_numba(x, gamma, beta)
    assert type(got) is type(ref) is LayerNormCache
    assert got.x is x and got.gamma is gamma
    for a, b, name in ((y, y_ref, "y"), (got.mean, ref.mean, "mean"), (got.rstd, ref.rstd, "rstd")):
        assert np.shape(a) == np.shape(b), name
        assert np.asarray(a).dtype == dtype, name
        assert nrel(a, b) <= tol, name
    ref_b = layernorm.layernorm_backward_numpy(dy, ref)
    got_b = layernorm.layernorm_backward_numba(dy, ref)
    for a, b, name in zip(got_b, ref_b, ("dx", "dgamma", "dbeta")):
        assert a.shape == b.shape and a.dtype == dtype, name
        assert nrel(a, b) <= tol, name


def test_backward_parts_are_race_free_for_any_thread_count(monkeypatch):
    # dgamma/dbeta are summed over per-chunk buffers; the chunk count follows the thread count.
    rng = np.random.default_rng(2)
    x = rng.standard_normal((9, 8))
    dy = rng.standard_normal((9, 8))
    gamma, beta = params(8, np.float64, rng)
    _, cache = layernorm.layernorm_forward_numpy(x, gamma, beta)
    ref = layernorm.layernorm_backward_numpy(dy, cache)
    for k in (1, 2, 4, 9):
        monkeypatch.setattr(layernorm, "num_threads", lambda k=k: k)
        got = layernorm.layernorm_backward_numba(dy, cache)
        for a, b in zip(got, ref):
            assert nrel(a, b) <= 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=30, deadline=None)
@given(x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=12),
                    elements=st.integers(-800, 800).map(lambda i: i / 8)))  # a grid: var 0 or >= 1/256
def test_normalised_rows_have_zero_mean_unit_variance(backend, x):
    C = x.shape[-1]
    with use_backend(backend):
        y, cache = layernorm_forward(x, np.ones(C), np.zeros(C), 1e-12)
    assert np.all(np.isfinite(y))
    varying = np.ptp(x, axis=-1) > 0  # (N,)
    np.testing.assert_allclose(y[varying].mean(axis=-1), 0.0, atol=1e-9)
    var = x[varying].var(axis=-1)  # unit variance up to the eps in 1 / sqrt(var + eps)
    np.testing.assert_allclose(y[varying].var(axis=-1), var / (var + 1e-12), rtol=1e-9)
    # A constant row has variance 0: it normalises to ~0 (the rounding of its mean, ~1e-14, is
    # amplified by rstd = 1/sqrt(eps) = 1e6), never to NaN.
    np.testing.assert_allclose(y[~varying], 0.0, atol=1e-6)
    np.testing.assert_allclose(cache.mean, x.mean(axis=-1), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ bad input, caught before Numba

@pytest.fixture
def numba_must_not_run(monkeypatch):
    def boom(*args):
        raise AssertionError("a Numba kernel ran on invalid input")
    monkeypatch.setattr(layernorm, "_layernorm_forward_rows", boom)
    monkeypatch.setattr(layernorm, "_layernorm_backward_rows", boom)
    with use_backend("numba"):
        yield


def test_bad_inputs_are_rejected(numba_must_not_run):
    x = np.zeros((3, 4))
    g, b = np.ones(4), np.zeros(4)
    with pytest.raises(ValueError, match=r"gamma must have shape \(4,\), got \(5,\)"):
        layernorm_forward(x, np.ones(5), b)
    with pytest.raises(ValueError, match=r"beta must have 1 dimensions, got shape \(1, 4\)"):
        layernorm_forward(x, g, b[None])
    with pytest.raises(TypeError, match="x must have dtype float32 or float64, got int64"):
        layernorm_forward(x.astype(np.int64), g, b)
    with pytest.raises(TypeError, match="x must have dtype float32 or float64, got float16"):
        layernorm_forward(x.astype(np.float16), g, b)
    with pytest.raises(TypeError, match="gamma must have dtype float64 like the other inputs, got float32"):
        layernorm_forward(x, g.astype(np.float32), b)
    with pytest.raises(ValueError, match=r"eps must be > 0, got 0.0"):
        layernorm_forward(x, g, b, 0.0)
    mean, rstd = np.zeros(3), np.ones(3)
    with pytest.raises(ValueError, match=r"dy must have shape \(3, 4\), got \(4, 3\)"):
        layernorm_backward(np.zeros((4, 3)), LayerNormCache(x, g, mean, rstd))
    with pytest.raises(ValueError, match=r"cache.rstd must have shape \(3,\), got \(4,\)"):
        layernorm_backward(x, LayerNormCache(x, g, mean, np.ones(4)))
    with pytest.raises(TypeError, match="cache.mean must have dtype float64 like the other inputs, got float32"):
        layernorm_backward(x, LayerNormCache(x, g, mean.astype(np.float32), rstd))
    with pytest.raises(TypeError, match="cache must be the LayerNormCache that layernorm_forward returned, got tuple"):
        layernorm_backward(x, (x, g, mean, rstd))
