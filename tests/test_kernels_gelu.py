"""GELU (exact erf form and tanh approximation) on both backends.

Bounds: finite differences (float64, random dy): 1e-7 relative (gradcheck.rel_error); twin parity,
normwise max|a - b| / max|b|: 1e-12 (float64), 1e-5 (float32).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minidistil import gradcheck
from minidistil.kernels import GeluCache, gelu_backward, gelu_forward, use_backend
from minidistil.kernels import gelu

BACKENDS = ["numpy", "numba"]
APPROX = ["none", "tanh"]
FD_TOL = 1e-7
PARITY_TOL = {np.float64: 1e-12, np.float32: 1e-5}


def nrel(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("approximate", APPROX)
def test_backward_matches_finite_differences(backend, approximate):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5)) * 2.5  # (3, 4, 5), covers both tails
    with use_backend(backend):
        v = gradcheck.check_layer(
            lambda x: gelu_forward(x, approximate),
            lambda dy, cache: {"x": gelu_backward(dy, cache)},
            {"x": x}, rng, tol=FD_TOL)
    assert v, v.table()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("approximate", APPROX)
def test_numba_matches_numpy_twin(dtype, approximate):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((4, 37)) * 3.0).astype(dtype)  # (4, 37)
    x[0, :5] = [0.0, -12.0, 12.0, -40.0, 40.0]  # zero and both saturated tails
    dy = rng.standard_normal(x.shape).astype(dtype)  # (4, 37)
    y, cache = gelu.gelu_forward_numba(x, approximate)
    y_ref, cache_ref = gelu.gelu_forward_numpy(x, approximate)
    assert type(cache) is type(cache_ref) is GeluCache and cache == (x, approximate) == cache_ref
    dx = gelu.gelu_backward_numba(dy, cache)
    assert y.dtype == dtype and dx.dtype == dtype and y.shape == x.shape
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))
    assert nrel(y, y_ref) <= PARITY_TOL[dtype]
    assert nrel(dx, gelu.gelu_backward_numpy(dy, cache_ref)) <= PARITY_TOL[dtype]


@pytest.mark.parametrize("backend", BACKENDS)
def test_known_values(backend):
    # gelu(x) = x * Phi(x); Phi(1) = 0.8413447460685429, Phi(-1) = 0.15865525393145707
    x = np.array([0.0, 1.0, -1.0])
    with use_backend(backend):
        y, _ = gelu_forward(x)
        yt, _ = gelu_forward(x, "tanh")
    np.testing.assert_allclose(y, [0.0, 0.8413447460685429, -0.15865525393145707], rtol=1e-15, atol=0)
    np.testing.assert_allclose(yt, y, atol=1e-3)  # the tanh form is an approximation (max err ~5e-4)
    assert not np.allclose(yt, y, rtol=1e-9, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("approximate", APPROX)
@settings(max_examples=25, deadline=None)
@given(x=hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=6), elements=st.floats(-60, 60)))
def test_gelu_between_min_and_relu(backend, approximate, x):
    with use_backend(backend):
        y, _ = gelu_forward(x, approximate)
    assert y.shape == x.shape
    assert np.all(np.isfinite(y))
    assert np.all(y <= np.maximum(x, 0.0) + 1e-12)  # x * Phi(x) <= relu(x)
    # minima: exact (erf) GELU -0.169971 at x ~ -0.7518; the tanh form -0.170041 at x ~ -0.7523
    assert np.all(y >= (-0.17005 if approximate == "tanh" else -0.16998))


@pytest.fixture
def numba_must_not_run(monkeypatch):
    def boom(*args):
        raise AssertionError("a Numba kernel ran on invalid input")
    monkeypatch.setattr(gelu, "_gelu_forward_flat", boom)
    monkeypatch.setattr(gelu, "_gelu_backward_flat", boom)
    with use_backend("numba"):
        yield


def test_bad_inputs_are_rejected(numba_must_not_run):
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"approximate must be one of \('none', 'tanh'\), got 'erf'"):
        gelu_forward(x, "erf")
    with pytest.raises(TypeError, match="x must have dtype float32 or float64, got int32"):
        gelu_forward(x.astype(np.int32))
    with pytest.raises(TypeError, match="cache.x must have dtype float32 or float64, got float16"):
        gelu_backward(x, GeluCache(x.astype(np.float16), "none"))
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 3\), got \(3, 2\)"):
        gelu_backward(np.zeros((3, 2)), GeluCache(x, "none"))
    with pytest.raises(TypeError, match="dy must have dtype float64 like the other inputs, got float32"):
        gelu_backward(x.astype(np.float32), GeluCache(x, "none"))
    with pytest.raises(ValueError, match=r"approximate must be one of \('none', 'tanh'\), got 'erf'"):
        gelu_backward(x, GeluCache(x, "erf"))
    with pytest.raises(TypeError, match="cache must be the GeluCache that gelu_forward returned, got ndarray"):
        gelu_backward(x, x)
