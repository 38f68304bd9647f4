"""The gradient-check harness must itself be able to fail: it is what every other proof rests on.

Bound for the smooth functions here: 1e-7 relative (central differences, float64, h = 1e-5).
"""
import numpy as np
import pytest

from minidistil import gradcheck
from minidistil.kernels import layernorm_backward, layernorm_forward

TOL = 1e-7


def test_numerical_grad_of_a_known_function():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(6)
    w = rng.standard_normal(6)
    g = gradcheck.numerical_grad(lambda: float(np.sum(np.sin(x) * w)), x)
    assert gradcheck.rel_error(g, np.cos(x) * w) < TOL
    only = gradcheck.numerical_grad(lambda: float(np.sum(np.sin(x) * w)), x, indices=[(1,), (4,)])
    assert only[0] == 0.0 and only[1] != 0.0 and only[4] != 0.0


def test_numerical_grad_refuses_float32():
    with pytest.raises(TypeError, match="numerical_grad needs a float64 ndarray, got float32"):
        gradcheck.numerical_grad(lambda: 0.0, np.zeros(3, dtype=np.float32))


@pytest.mark.parametrize("wrong", ["scaled", "sign", "missing_term", "one_entry"])
def test_check_layer_catches_a_wrong_gradient(wrong):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4))
    w = rng.standard_normal((3, 4)) + 0.5

    def forward(x, w):
        return np.tanh(x) * w ** 3  # (3, 4)

    def backward(dy, _):
        dx = dy * (1.0 - np.tanh(x) ** 2) * w ** 3  # (3, 4)
        dw = dy * np.tanh(x) * 3.0 * w ** 2  # (3, 4)
        if wrong == "scaled":
            dw = dw * 1.001  # a 0.1% error must not slip through a 1e-7 bound
        elif wrong == "sign":
            dx = -dx
        elif wrong == "missing_term":
            dw = dy * np.tanh(x) * w ** 2  # forgot the factor 3 from the power rule
        elif wrong == "one_entry":
            dx = dx.copy()
            dx[2, 1] += 1e-4
        return {"x": dx, "w": dw}

    verdict = gradcheck.check_layer(forward, backward, {"x": x, "w": w}, rng, tol=TOL)
    assert not verdict
    assert verdict.failed() == (["x"] if wrong in ("sign", "one_entry") else ["w"])
    assert "NO" in verdict.table()


def test_check_layer_passes_a_right_gradient():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4))
    w = rng.standard_normal((3, 4)) + 0.5
    verdict = gradcheck.check_layer(
        lambda x, w: np.tanh(x) * w ** 3,
        lambda dy, _: {"x": dy * (1.0 - np.tanh(x) ** 2) * w ** 3, "w": dy * np.tanh(x) * 3.0 * w ** 2},
        {"x": x, "w": w}, rng, tol=TOL)
    assert verdict, verdict.table()
    assert verdict.failed() == []


def test_all_ones_upstream_gradient_hides_a_bug_that_random_dy_catches():
    # LayerNorm backward that forgets the "- xhat * mean(g * xhat)" term. With dy = 1 and gamma = 1,
    # g = 1 and mean(xhat) = 0, so the missing term is zero and the bug is invisible.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 5)) * 2.0
    C = x.shape[-1]

    def wrong_dx(dy, gamma):
        _, cache = layernorm_forward(x, gamma, np.zeros(C), 1e-5)
        g = dy * gamma
        return cache.rstd[:, None] * (g - g.mean(axis=-1, keepdims=True))  # (4, 5), term missing

    def loss_with(dy, gamma):
        return lambda: float(np.sum(layernorm_forward(x, gamma, np.zeros(C), 1e-5)[0] * dy))

    ones, unit = np.ones_like(x), np.ones(C)
    numeric = gradcheck.numerical_grad(loss_with(ones, unit), x)
    # fooled: sum(y) is constant, both gradients are 0 up to finite-difference noise
    assert np.max(np.abs(wrong_dx(ones, unit) - numeric)) < 1e-8

    dy = rng.standard_normal(x.shape)
    gamma = 1.0 + 0.5 * rng.standard_normal(C)
    numeric = gradcheck.numerical_grad(loss_with(dy, gamma), x)
    assert not gradcheck.compare({"dx": (wrong_dx(dy, gamma), numeric)}, tol=TOL, verbose=False)  # caught
    _, cache = layernorm_forward(x, gamma, np.zeros(C), 1e-5)
    right = layernorm_backward(dy, cache)[0]
    assert gradcheck.compare({"dx": (right, numeric)}, tol=TOL, verbose=False)


def test_compare_rejects_shape_mismatch_nan_and_empty():
    assert not gradcheck.compare({"a": (np.zeros(3), np.zeros(4))}, verbose=False)
    assert not gradcheck.compare({"a": (np.array([np.nan, 1.0]), np.array([1.0, 1.0]))}, verbose=False)
    assert not gradcheck.compare({}, verbose=False)  # nothing checked is not a pass
    v = gradcheck.compare({"a": (np.ones(3), np.ones(3))}, verbose=False)
    assert v and v.rows[0].exact


def test_compare_prints_a_table(capsys):
    gradcheck.compare({"dweight": (np.ones(2), np.ones(2) * 1.1)}, tol=TOL)
    out = capsys.readouterr().out
    assert "dweight" in out and "FAIL (dweight)" in out


def test_rel_error_floor_and_shapes():
    assert gradcheck.rel_error(np.array([1.0, 0.0]), np.array([1.0, 1e-12])) <= 1e-9  # 0 vs noise: floored
    assert gradcheck.rel_error(np.array([1.0]), np.array([1.1])) == pytest.approx(0.1 / 2.1)
    with pytest.raises(ValueError, match="shapes differ"):
        gradcheck.rel_error(np.zeros(2), np.zeros(3))


def test_sample_indices_are_distinct_and_in_range():
    idx = gradcheck.sample_indices((3, 4), 7, np.random.default_rng(4))
    assert len(idx) == len(set(idx)) == 7
    assert all(0 <= i < 3 and 0 <= j < 4 for i, j in idx)
    assert len(gradcheck.sample_indices((2, 2), 10, np.random.default_rng(4))) == 4
