"""The fused soft-target kernel (kernels/kl.py): Numba vs its NumPy twin, against the unfused
definition, exact zeros for identical rows, and bad input. Its gradient is checked by finite
differences through the soft-target loss in tests/test_losses.py."""
import numpy as np
import pytest

from minidistil.kernels import log_softmax_forward, softmax_forward, soft_target_rows, use_backend
from minidistil.kernels.kl import soft_target_rows_numba, soft_target_rows_numpy

BACKENDS = ["numpy", "numba"]


def _logits(rng, shape, dtype, scale=3.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("T", [0.5, 1.0, 2.0, 8.0])
def test_matches_the_unfused_definition_float64(backend, T):
    rng = np.random.default_rng(1)
    s, t = _logits(rng, (7, 33), np.float64), _logits(rng, (7, 33), np.float64)
    with use_backend(backend):
        kl, diff = soft_target_rows(s, t, T)
    with use_backend("numpy"):
        pt, ps = softmax_forward(t, T)[0], softmax_forward(s, T)[0]
        want_kl = (pt * (log_softmax_forward(t, T)[0] - log_softmax_forward(s, T)[0])).sum(-1)
    # bound: float64 rounding of V=33 terms, 1e-12 relative to the largest entry
    np.testing.assert_allclose(kl, want_kl, rtol=1e-12, atol=1e-12 * np.abs(want_kl).max())
    np.testing.assert_allclose(diff, ps - pt, rtol=1e-12, atol=1e-14)
    assert np.all(kl >= -1e-12)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_numba_matches_numpy_twin(dtype, rtol):
    rng = np.random.default_rng(2)
    s, t = _logits(rng, (16, 257), dtype), _logits(rng, (16, 257), dtype)
    kl_a, d_a = soft_target_rows_numpy(s, t, 2.0)
    kl_b, d_b = soft_target_rows_numba(s, t, 2.0)
    assert d_b.dtype == dtype and kl_b.dtype == np.float64
    np.testing.assert_allclose(kl_b, kl_a, rtol=rtol, atol=rtol * np.abs(kl_a).max())
    np.testing.assert_allclose(d_b, d_a, rtol=rtol, atol=rtol * np.abs(d_a).max())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_identical_rows_give_exact_zeros(backend, dtype):
    s = _logits(np.random.default_rng(3), (5, 40), dtype)
    with use_backend(backend):
        kl, diff = soft_target_rows(s, s.copy(), 2.0)
    assert np.all(kl == 0.0) and np.all(diff == 0.0)


def test_bad_input_is_named():
    s = np.zeros((2, 3))
    with pytest.raises(ValueError, match="t must have shape"):
        soft_target_rows(s, np.zeros((2, 4)), 2.0)
    with pytest.raises(TypeError, match="t must have dtype float64"):
        soft_target_rows(s, np.zeros((2, 3), np.float32), 2.0)
    with pytest.raises(ValueError, match="temperature"):
        soft_target_rows(s, s, 0.0)
    with pytest.raises(ValueError, match="s must have 2 dimensions"):
        soft_target_rows(np.zeros(3), np.zeros(3), 1.0)
