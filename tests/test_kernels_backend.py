"""The backend switch, the thread knob, and the vectorisable float32 exp used by the kernels."""
import os
import subprocess
import sys

import numpy as np
import pytest

from minidistil import kernels
from minidistil.kernels import backend, get_backend, set_backend, use_backend
import math

from minidistil.kernels.vecmath import fast_erf, fast_erf_array, fast_exp, fast_exp_array, fast_exp_nonpositive
import numba  # noqa: E402  (after minidistil.kernels, which sets the thread policy first)


# ------------------------------------------------------------------ backend switch

@pytest.mark.parametrize("value, expected", [("numpy", "numpy"), (" NumPy ", "numpy"), ("numba", "numba"),
                                             ("", "numba")])
def test_env_var_is_read_and_normalised(monkeypatch, value, expected):
    monkeypatch.setenv("MINIDISTIL_BACKEND", value)
    assert backend._initial_backend() == expected


def test_env_var_default_is_numba(monkeypatch):
    monkeypatch.delenv("MINIDISTIL_BACKEND", raising=False)
    assert backend._initial_backend() == "numba"


@pytest.mark.parametrize("value", ["torch", "numpy,numba", "1"])
def test_env_var_bad_value_is_rejected(monkeypatch, value):
    monkeypatch.setenv("MINIDISTIL_BACKEND", value)
    with pytest.raises(ValueError, match=r"MINIDISTIL_BACKEND must be one of \('numpy', 'numba'\), got"):
        backend._initial_backend()


def test_env_var_applies_at_import():
    code = "from minidistil.kernels import get_backend; print(get_backend())"
    env = dict(os.environ, MINIDISTIL_BACKEND="numpy")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "numpy"
    env["MINIDISTIL_BACKEND"] = "tensorflow"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "MINIDISTIL_BACKEND must be one of" in r.stderr


def test_set_backend_validates_and_switches():
    before = get_backend()
    try:
        set_backend("numpy")
        assert get_backend() == "numpy"
        set_backend("numba")
        assert get_backend() == "numba"
        with pytest.raises(ValueError, match=r"backend must be one of \('numpy', 'numba'\), got 'NUMBA'"):
            set_backend("NUMBA")
        assert get_backend() == "numba"  # a rejected name changes nothing
    finally:
        set_backend(before)


def test_use_backend_restores_even_after_an_error():
    before = get_backend()
    other = "numpy" if before == "numba" else "numba"
    with use_backend(other):
        assert get_backend() == other
        with use_backend(before):
            assert get_backend() == before
        assert get_backend() == other
    assert get_backend() == before
    with pytest.raises(RuntimeError):
        with use_backend(other):
            raise RuntimeError("boom")
    assert get_backend() == before
    with pytest.raises(ValueError):
        with use_backend("cupy"):
            pass
    assert get_backend() == before


def test_dispatch_follows_the_backend(monkeypatch):
    from minidistil.kernels import softmax_t
    calls = []
    monkeypatch.setattr(softmax_t, "softmax_forward_numba", lambda x, T: calls.append("numba") or x)
    monkeypatch.setattr(softmax_t, "softmax_forward_numpy", lambda x, T: calls.append("numpy") or x)
    x = np.zeros((1, 2))
    with use_backend("numba"):
        kernels.softmax_forward(x)
    with use_backend("numpy"):
        kernels.softmax_forward(x)
    assert calls == ["numba", "numpy"]


def test_set_num_threads_validates_and_applies():
    import numba
    from minidistil.fast import threads as blas
    before = numba.get_num_threads()
    try:
        backend.set_num_threads(1)
        assert numba.get_num_threads() == 1 and backend.num_threads() == 1
        a = np.ones((256, 256))
        np.testing.assert_array_equal(blas.matmul_threaded(a, a), a @ a)  # one thread: one plain call
    finally:
        backend.set_num_threads(before)
    assert numba.get_num_threads() == before
    for bad in (0, -2, 1.5, True, "2"):
        with pytest.raises(ValueError, match="n must be a positive integer"):
            backend.set_num_threads(bad)


# ------------------------------------------------------------------ fast_exp, fast_erf

def test_fast_exp_float32_is_accurate_over_the_whole_range():
    z = np.concatenate([np.linspace(-104.0, 89.0, 3001), np.linspace(-1.0, 1.0, 1001)]).astype(np.float32)
    got = fast_exp_array(z)  # (n,)
    ref = np.exp(z.astype(np.float64))  # (n,), exact to float32 precision
    assert got.dtype == np.float32
    normal = (ref > np.finfo(np.float32).tiny) & (ref < np.finfo(np.float32).max)
    assert np.max(np.abs(got[normal] - ref[normal]) / ref[normal]) < 4e-7  # about 2 ulp
    assert np.max(np.abs(got[~normal & (ref < 1)] - ref[~normal & (ref < 1)])) < 2e-45  # underflow as IEEE
    assert np.all(np.isinf(got[ref >= np.finfo(np.float32).max]))


def test_fast_exp_special_values():
    z = np.array([np.nan, np.inf, -np.inf, 0.0, -200.0, 200.0], dtype=np.float32)
    got = fast_exp_array(z)
    assert np.isnan(got[0])
    assert got[1] == np.inf and got[5] == np.inf
    assert got[2] == 0.0 and got[4] == 0.0
    assert got[3] == 1.0


def test_fast_exp_float64_is_libm_exp():
    z = np.linspace(-700, 700, 101)
    np.testing.assert_allclose(fast_exp_array(z), np.exp(z), rtol=4e-16, atol=0)  # libm vs NumPy: 1 ulp
    assert fast_exp(np.float32(-3.0)) == pytest.approx(np.exp(-3.0), rel=4e-7)
    assert isinstance(fast_exp(np.float32(1.0)), np.float32)


@numba.njit
def _nonpositive_loop(z, out):  # the compiled fast_exp_nonpositive, elementwise
    for i in range(z.shape[0]):
        out[i] = fast_exp_nonpositive(z[i])


def test_fast_exp_nonpositive_is_accurate_and_flushes_below_the_smallest_normal():
    z = np.concatenate([np.linspace(-120.0, 0.0, 4001), np.linspace(-1.0, 0.0, 1001),
                        [-87.3, -87.34, -np.inf, np.nan, 0.5, 20.0]]).astype(np.float32)
    got = np.empty_like(z)
    _nonpositive_loop(z, got)
    ref = np.exp(z.astype(np.float64))  # (n,)
    kept = z > np.float32(-87.33)
    ok = kept & ~np.isnan(z)
    assert np.max(np.abs(got[ok] - ref[ok]) / ref[ok]) < 4e-7  # about 2 ulp, also for small z > 0
    assert np.all(got[~kept & ~np.isnan(z)] == 0.0)  # below 2^-126: exactly 0 (incl. -inf)
    assert np.isnan(got[np.isnan(z)]).all()  # NaN is not flushed
    python = np.array([fast_exp_nonpositive(x) for x in z], dtype=np.float32)  # NUMBA_DISABLE_JIT path
    np.testing.assert_array_equal(np.isnan(python), np.isnan(got))
    np.testing.assert_allclose(python[ok], got[ok], rtol=2.5e-7, atol=0)
    assert np.all(python[~kept & ~np.isnan(z)] == 0.0)
    assert fast_exp_nonpositive(-2.0) == pytest.approx(math.exp(-2.0), rel=1e-15)  # float64: libm


def test_fast_erf_float32_is_accurate():
    x = np.concatenate([np.linspace(-7.0, 7.0, 2801), np.linspace(-0.01, 0.01, 101)]).astype(np.float32)
    got = fast_erf_array(x)  # (n,)
    ref = np.array([math.erf(float(v)) for v in x])  # (n,) float64
    assert got.dtype == np.float32
    assert np.max(np.abs(got - ref)) < 5e-7  # a few ulp of 1
    small = np.abs(x) < 0.5
    assert np.max(np.abs(got[small] - ref[small]) / np.maximum(np.abs(ref[small]), 1e-30)) < 4e-7
    np.testing.assert_array_equal(got[x == 0], 0.0)
    np.testing.assert_array_equal(-got, fast_erf_array(-x))  # odd
    special = fast_erf_array(np.array([np.inf, -np.inf, np.nan], dtype=np.float32))
    assert special[0] == pytest.approx(1.0, abs=1e-7) and special[1] == pytest.approx(-1.0, abs=1e-7)
    assert np.isnan(special[2])


def test_fast_erf_float64_is_libm_erf():
    x = np.linspace(-5, 5, 41)
    np.testing.assert_array_equal(fast_erf_array(x), [math.erf(v) for v in x])
    assert isinstance(fast_erf(np.float32(0.3)), np.float32)
