"""Tests of the distillation losses: gradients by central differences (float64, bound 1e-7),
the T**2 scaling, KL properties, the weighted triple loss, robustness and bad input."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidistil import losses as L
from minidistil.gradcheck import numerical_grad, rel_error
from minidistil.kernels import use_backend

TOL = 1e-7  # max relative error of analytic vs central-difference gradients (float64, h=1e-5)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _fd(loss_fn, x):
    return numerical_grad(loss_fn, x, h=1e-5)


def _fd_hidden(s, t, labels, sh, th, am, cfg, pos=None, dloss=1.0):
    """Central differences of the total w.r.t. s_hidden, through its only dependent part.

    Lce and Lmlm do not depend on s_hidden (checked here: they stay bit-identical), but their
    size adds ~1e-15 of rounding to the total, which central differences with h = 1e-5 would
    magnify to ~1e-6 relative on small entries. Differencing alpha_cos * Lcos avoids that noise.
    """
    parts0 = L.distill_loss_forward(s, t, labels, sh, th, am, cfg, pos)[1]
    sh2 = sh + 0.1
    parts1 = L.distill_loss_forward(s, t, labels, sh2, th, am, cfg, pos)[1]
    assert parts1["loss_ce"] == parts0["loss_ce"] and parts1["loss_mlm"] == parts0["loss_mlm"]
    return _fd(lambda: dloss * cfg.alpha_cos * L.distill_loss_forward(
        s, t, labels, sh, th, am, cfg, pos)[1]["loss_cos"], sh)


# ---------------------------------------------------------------- Lce

@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
def test_soft_target_gradient_matches_finite_differences(T):
    rng = _rng(1)
    s = 2.0 * rng.standard_normal((4, 9))  # (P, V)
    t = 2.0 * rng.standard_normal((4, 9))  # (P, V)
    dloss = float(rng.uniform(0.5, 2.0))  # random upstream gradient
    loss, cache = L.soft_target_forward(s, t, T)
    ds = L.soft_target_backward(dloss, cache)
    num = _fd(lambda: dloss * L.soft_target_forward(s, t, T)[0], s)
    assert ds.shape == s.shape and ds.dtype == np.float64
    assert rel_error(ds, num) < TOL


def test_soft_target_matches_closed_form_and_formula():
    rng = _rng(2)
    s = rng.standard_normal((3, 5))  # (P, V)
    t = rng.standard_normal((3, 5))  # (P, V)
    T = 2.0
    ps = np.exp(s / T) / np.exp(s / T).sum(-1, keepdims=True)  # (P, V)
    pt = np.exp(t / T) / np.exp(t / T).sum(-1, keepdims=True)  # (P, V)
    expected = T * T * np.mean(np.sum(pt * np.log(pt / ps), axis=-1))
    loss, cache = L.soft_target_forward(s, t, T)
    assert abs(loss - expected) < 1e-12
    np.testing.assert_allclose(L.soft_target_backward(1.0, cache), T * (ps - pt) / 3, rtol=1e-10, atol=1e-14)


def test_kl_nonnegative_zero_when_equal_and_shift_invariant():
    rng = _rng(3)
    for _ in range(5):
        s = 3.0 * rng.standard_normal((6, 11))  # (P, V)
        t = 3.0 * rng.standard_normal((6, 11))  # (P, V)
        assert L.soft_target_forward(s, t, 2.0)[0] > 0
    loss, cache = L.soft_target_forward(s, s.copy(), 2.0)
    assert loss == 0.0
    assert np.all(L.soft_target_backward(1.0, cache) == 0)
    # softmax ignores a per-row constant: the loss must too
    shifted = L.soft_target_forward(s + rng.standard_normal((6, 1)) * 5, t, 2.0)[0]
    assert abs(shifted - L.soft_target_forward(s, t, 2.0)[0]) < 1e-10


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), P=st.integers(1, 6), V=st.integers(1, 12),
       log_scale=st.floats(-3, 3), T=st.floats(0.25, 8.0))
def test_loss_ranges_hold_for_random_inputs(seed, P, V, log_scale, T):
    """KL >= 0, cross-entropy >= 0, 0 <= 1 - cos <= 2, whatever the scale of the inputs."""
    rng = _rng(seed)
    scale = 10.0 ** log_scale
    s = scale * rng.standard_normal((P, V))  # (P, V)
    t = scale * rng.standard_normal((P, V))  # (P, V)
    assert L.soft_target_forward(s, t, T)[0] >= -1e-12 * max(1.0, scale * scale)
    labels = rng.integers(-1, V, size=P)  # (P,)
    labels[labels < 0] = -100
    assert L.mlm_forward(s, labels)[0] >= 0.0
    h = s.reshape(1, P, V)
    loss = L.cosine_forward(h, t.reshape(1, P, V), np.ones((1, P)))[0]
    assert -1e-12 <= loss <= 2.0 + 1e-12


def test_temperature_squared_keeps_gradient_magnitude_comparable():
    rng = _rng(4)
    s = rng.standard_normal((16, 50))  # (P, V)
    t = rng.standard_normal((16, 50))  # (P, V)
    norms = []
    for T in (1.0, 2.0, 4.0, 8.0):
        _, cache = L.soft_target_forward(s, t, T)
        norms.append(np.linalg.norm(L.soft_target_backward(1.0, cache)))
    norms = np.array(norms)
    assert norms.max() / norms.min() < 2.0  # with T**2: within a factor 2 from T=1 to T=8
    unscaled = norms / np.array([1.0, 4.0, 16.0, 64.0])  # what KL alone (no T**2) would give
    assert unscaled.max() / unscaled.min() > 30.0


def test_soft_target_zero_rows():
    loss, cache = L.soft_target_forward(np.zeros((0, 5)), np.zeros((0, 5)), 2.0)
    assert loss == 0.0 and L.soft_target_backward(1.0, cache).shape == (0, 5)


# ---------------------------------------------------------------- Lmlm

def test_mlm_gradient_matches_finite_differences():
    rng = _rng(5)
    x = 1.5 * rng.standard_normal((6, 8))  # (P, V)
    labels = np.array([3, -100, 0, 7, -100, 2])  # (P,)
    dloss = float(rng.uniform(0.5, 2.0))
    loss, cache = L.mlm_forward(x, labels)
    dx = L.mlm_backward(dloss, cache)
    num = _fd(lambda: dloss * L.mlm_forward(x, labels)[0], x)
    assert rel_error(dx, num) < TOL
    assert np.all(dx[[1, 4]] == 0)  # ignored rows get no gradient
    # the value: mean of -log p[label] over the 4 labelled rows
    logp = x - np.log(np.exp(x).sum(-1, keepdims=True))  # (P, V)
    keep = labels != -100
    assert abs(loss + logp[keep, labels[keep]].mean()) < 1e-12


def test_mlm_no_labels_gives_zero_not_nan():
    x = np.random.default_rng(6).standard_normal((4, 5))  # (P, V)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, cache = L.mlm_forward(x, np.full(4, -100))
        dx = L.mlm_backward(1.0, cache)
    assert loss == 0.0
    assert dx.shape == (4, 5) and np.all(dx == 0)


# ---------------------------------------------------------------- Lcos

def test_cosine_gradient_matches_finite_differences():
    rng = _rng(7)
    s = rng.standard_normal((2, 4, 5))  # (B, T, C)
    t = rng.standard_normal((2, 4, 5))  # (B, T, C)
    am = np.array([[1, 1, 1, 0], [1, 1, 0, 0]])  # (B, T)
    dloss = float(rng.uniform(0.5, 2.0))
    loss, cache = L.cosine_forward(s, t, am)
    ds = L.cosine_backward(dloss, cache)
    num = _fd(lambda: dloss * L.cosine_forward(s, t, am)[0], s)
    assert rel_error(ds, num) < TOL
    assert np.all(ds[am == 0] == 0)
    cos = np.sum(s * t, -1) / np.linalg.norm(s, axis=-1) / np.linalg.norm(t, axis=-1)  # (B, T)
    assert abs(loss - np.mean(1 - cos[am == 1])) < 1e-10


def test_cosine_zero_vector_and_no_real_positions_are_finite():
    rng = _rng(8)
    s = rng.standard_normal((1, 3, 4))  # (B, T, C)
    t = rng.standard_normal((1, 3, 4))  # (B, T, C)
    s[0, 1] = 0.0
    t[0, 2] = 0.0
    loss, cache = L.cosine_forward(s, t, np.ones((1, 3)))
    ds = L.cosine_backward(1.0, cache)
    assert np.isfinite(loss) and np.all(np.isfinite(ds))
    assert np.all(ds[0, 2] == 0)  # the teacher vector is zero: cos is 0 whatever s is
    loss, cache = L.cosine_forward(s, t, np.zeros((1, 3)))
    assert loss == 0.0 and np.all(L.cosine_backward(1.0, cache) == 0)


def test_cosine_layers_sum_and_gradient():
    rng = _rng(9)
    sh = [rng.standard_normal((2, 3, 4)) for _ in range(3)]  # 3 x (B, T, C)
    th = [rng.standard_normal((2, 3, 4)) for _ in range(5)]  # 5 x (B, T, C)
    am = np.array([[1, 1, 1], [1, 1, 0]])  # (B, T)
    pairs = [(2, 4), (1, 2), (2, 0)]  # student layer 2 appears twice
    loss, cache = L.cosine_layers_forward(sh, th, am, pairs)
    parts = [L.cosine_forward(sh[i], th[j], am)[0] for i, j in pairs]
    assert abs(loss - sum(parts)) < 1e-12
    g = L.cosine_layers_backward(0.8, cache)
    assert sorted(g) == [1, 2]
    for i in (1, 2):
        num = _fd(lambda: 0.8 * L.cosine_layers_forward(sh, th, am, pairs)[0], sh[i])
        assert rel_error(g[i], num) < TOL
    with pytest.raises(ValueError, match="student layer"):
        L.cosine_layers_forward(sh, th, am, [(3, 0)])
    with pytest.raises(ValueError, match="pairs"):
        L.cosine_layers_forward(sh, th, am, [])


# ---------------------------------------------------------------- triple loss

def _batch(rng, B=2, T=5, V=7, C=4, dtype=np.float64):
    am = np.ones((B, T), dtype=np.int64)  # (B, T)
    am[1, 3:] = 0
    labels = np.full((B, T), -100)  # (B, T)
    labels[0, 1], labels[0, 4], labels[1, 2] = 3, 0, 6
    P = int(am.sum())
    s = (2 * rng.standard_normal((P, V))).astype(dtype)  # (P, V)
    t = (2 * rng.standard_normal((P, V))).astype(dtype)  # (P, V)
    sh = rng.standard_normal((B, T, C)).astype(dtype)  # (B, T, C)
    th = rng.standard_normal((B, T, C)).astype(dtype)  # (B, T, C)
    return s, t, labels, sh, th, am


@pytest.mark.parametrize("ce_positions", ["all", "masked"])
def test_distill_total_is_weighted_sum_and_gradient(ce_positions):
    rng = _rng(10)
    s, t, labels, sh, th, am = _batch(rng)
    cfg = L.DistillLossConfig(alpha_ce=5.0, alpha_mlm=2.0, alpha_cos=1.5, temperature=2.0, ce_positions=ce_positions)
    total, parts, cache = L.distill_loss_forward(s, t, labels, sh, th, am, cfg, am.astype(bool))
    pos = am.astype(bool)
    ce_rows = (labels[pos] != -100) if ce_positions == "masked" else np.ones(len(s), bool)
    ce = L.soft_target_forward(s[ce_rows], t[ce_rows], 2.0)[0]
    mlm = L.mlm_forward(s, labels[pos])[0]
    cos = L.cosine_forward(sh, th, am)[0]
    assert abs(parts["loss_ce"] - ce) < 1e-12
    assert abs(parts["loss_mlm"] - mlm) < 1e-12
    assert abs(parts["loss_cos"] - cos) < 1e-12
    assert abs(total - (5.0 * ce + 2.0 * mlm + 1.5 * cos)) < 1e-12 and parts["loss"] == total
    assert all(isinstance(v, float) for v in parts.values())

    dloss = 0.7
    ds, dh = L.distill_loss_backward(dloss, cache)
    f = lambda: dloss * L.distill_loss_forward(s, t, labels, sh, th, am, cfg, am.astype(bool))[0]
    assert rel_error(ds, _fd(f, s)) < TOL
    assert rel_error(dh, _fd_hidden(s, t, labels, sh, th, am, cfg, am.astype(bool), dloss)) < TOL


def test_distill_positions_wider_than_attention_mask():
    """Logits computed at every position (padding too): Lce 'all' must still skip padding rows."""
    rng = _rng(11)
    _, _, labels, sh, th, am = _batch(rng)
    pos = np.ones(am.shape, bool)  # (B, T)
    s = rng.standard_normal((pos.sum(), 7))  # (B*T, V)
    t = rng.standard_normal((pos.sum(), 7))  # (B*T, V)
    cfg = L.DistillLossConfig()
    total, parts, cache = L.distill_loss_forward(s, t, labels, sh, th, am, cfg, pos)
    real_rows = am.reshape(-1).astype(bool)
    assert abs(parts["loss_ce"] - L.soft_target_forward(s[real_rows], t[real_rows], 2.0)[0]) < 1e-12
    ds, _ = L.distill_loss_backward(1.0, cache)
    assert np.all(ds[~real_rows] == 0)
    f = lambda: L.distill_loss_forward(s, t, labels, sh, th, am, cfg, pos)[0]
    assert rel_error(ds, _fd(f, s)) < TOL


@pytest.mark.parametrize("zero", ["alpha_ce", "alpha_mlm", "alpha_cos"])
def test_distill_each_alpha_zero(zero):
    rng = _rng(12)
    s, t, labels, sh, th, am = _batch(rng)
    full = L.DistillLossConfig()
    cfg = L.DistillLossConfig(**{**full.to_dict(), zero: 0.0})
    total, parts, cache = L.distill_loss_forward(s, t, labels, sh, th, am, cfg)
    _, parts_full, _ = L.distill_loss_forward(s, t, labels, sh, th, am, full)
    name = {"alpha_ce": "loss_ce", "alpha_mlm": "loss_mlm", "alpha_cos": "loss_cos"}[zero]
    assert parts[name] == 0.0
    for other in {"loss_ce", "loss_mlm", "loss_cos"} - {name}:
        assert parts[other] == parts_full[other]
    assert abs(total - (cfg.alpha_ce * parts["loss_ce"] + cfg.alpha_mlm * parts["loss_mlm"]
                        + cfg.alpha_cos * parts["loss_cos"])) < 1e-12
    ds, dh = L.distill_loss_backward(1.0, cache)
    f = lambda: L.distill_loss_forward(s, t, labels, sh, th, am, cfg)[0]
    assert rel_error(ds, _fd(f, s)) < TOL
    if zero == "alpha_cos":
        assert dh.shape == sh.shape and np.all(dh == 0)
        # hidden states may be left out entirely when Lcos is off
        _, _, c2 = L.distill_loss_forward(s, t, labels, None, None, am, cfg)
        ds2, dh2 = L.distill_loss_backward(1.0, c2)
        assert dh2 is None and np.array_equal(ds2, ds)
    else:
        assert rel_error(dh, _fd_hidden(s, t, labels, sh, th, am, cfg)) < TOL


def test_distill_masked_ce_with_no_masked_tokens_is_zero():
    rng = _rng(13)
    s, t, labels, sh, th, am = _batch(rng)
    labels[:] = -100
    cfg = L.DistillLossConfig(ce_positions="masked")
    total, parts, cache = L.distill_loss_forward(s, t, labels, sh, th, am, cfg)
    assert parts["loss_ce"] == 0.0 and parts["loss_mlm"] == 0.0
    assert abs(total - parts["loss_cos"]) < 1e-12
    ds, _ = L.distill_loss_backward(1.0, cache)
    assert np.all(ds == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_dtype_kept_and_backends_agree(dtype, backend):
    rng = _rng(14)
    s, t, labels, sh, th, am = _batch(rng, dtype=dtype)
    with use_backend("numpy"):
        ref_total, _, ref_cache = L.distill_loss_forward(s, t, labels, sh, th, am)
        ref_ds, ref_dh = L.distill_loss_backward(1.0, ref_cache)
    with use_backend(backend):
        total, _, cache = L.distill_loss_forward(s, t, labels, sh, th, am)
        ds, dh = L.distill_loss_backward(1.0, cache)
    assert ds.dtype == dtype and dh.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert abs(total - ref_total) <= tol * abs(ref_total)
    np.testing.assert_allclose(ds, ref_ds, rtol=tol * 10, atol=tol * 1e-2)
    np.testing.assert_allclose(dh, ref_dh, rtol=tol * 10, atol=tol * 1e-2)


def test_backward_is_repeatable_and_inputs_untouched():
    rng = _rng(15)
    s, t, labels, sh, th, am = _batch(rng)
    copies = [a.copy() for a in (s, t, labels, sh, th, am)]
    _, _, cache = L.distill_loss_forward(s, t, labels, sh, th, am)
    a = L.distill_loss_backward(1.0, cache)
    b = L.distill_loss_backward(1.0, cache)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    for orig, now in zip(copies, (s, t, labels, sh, th, am)):
        assert np.array_equal(orig, now)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e-30, 1e4, 1e20])
def test_extreme_logits_give_finite_losses(dtype, scale):
    rng = _rng(16)
    s = (scale * rng.standard_normal((5, 9))).astype(dtype)  # (P, V)
    t = (scale * rng.standard_normal((5, 9))).astype(dtype)  # (P, V)
    labels = np.array([1, -100, 8, 0, -100])
    for T in (0.5, 2.0):
        loss, cache = L.soft_target_forward(s, t, T)
        assert np.isfinite(loss) and loss >= 0
        assert np.all(np.isfinite(L.soft_target_backward(1.0, cache)))
    loss, cache = L.mlm_forward(s, labels)
    assert np.isfinite(loss) and loss >= 0
    assert np.all(np.isfinite(L.mlm_backward(1.0, cache)))


# ---------------------------------------------------------------- config and bad input

@pytest.mark.parametrize("kwargs, exc, match", [
    ({"alpha_ce": -1.0}, ValueError, "alpha_ce"),
    ({"alpha_mlm": float("nan")}, ValueError, "alpha_mlm"),
    ({"alpha_cos": "1"}, TypeError, "alpha_cos"),
    ({"alpha_ce": True}, TypeError, "alpha_ce"),
    ({"temperature": 0.0}, ValueError, "temperature"),
    ({"temperature": -2.0}, ValueError, "temperature"),
    ({"temperature": float("inf")}, ValueError, "temperature"),
    ({"temperature": "hot"}, TypeError, "temperature"),
    ({"ce_positions": "some"}, ValueError, "ce_positions"),
    ({"alpha_ce": 0, "alpha_mlm": 0, "alpha_cos": 0}, ValueError, "at least one"),
])
def test_config_validation(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        L.DistillLossConfig(**kwargs)


def test_config_roundtrip():
    cfg = L.DistillLossConfig(alpha_ce=1, temperature=3, ce_positions="masked")
    assert L.DistillLossConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.alpha_ce == 1.0 and isinstance(cfg.alpha_ce, float)


def test_bad_inputs_name_the_argument():
    rng = _rng(17)
    s, t, labels, sh, th, am = _batch(rng)
    with pytest.raises(ValueError, match="t_logits"):
        L.soft_target_forward(s, t[:, :-1])
    with pytest.raises(TypeError, match="t_logits"):
        L.soft_target_forward(s, t.astype(np.float32))
    with pytest.raises(ValueError, match="temperature"):
        L.soft_target_forward(s, t, 0.0)
    with pytest.raises(ValueError, match="s_logits"):
        bad = s.copy()
        bad[0, 0] = np.nan
        L.soft_target_forward(bad, t)
    with pytest.raises(ValueError, match="labels"):
        L.mlm_forward(s, np.array([0, 1, 7, -100, 2, 3, 4, 5]))  # 7 == V is out of range
    with pytest.raises(ValueError, match="labels"):
        L.mlm_forward(s, np.array([0, 1, -1, -100, 2, 3, 4, 5]))
    with pytest.raises(TypeError, match="labels"):
        L.mlm_forward(s, np.zeros(8))
    with pytest.raises(ValueError, match="labels"):
        L.mlm_forward(s, np.zeros(7, dtype=int))
    with pytest.raises(TypeError, match="logits"):
        L.mlm_forward(s.tolist(), np.zeros(8, dtype=int))
    with pytest.raises(ValueError, match="attention_mask"):
        L.cosine_forward(sh, th, am[:, :-1])
    with pytest.raises(ValueError, match="t_h"):
        L.cosine_forward(sh, th[..., :-1], am)
    with pytest.raises(ValueError, match="s_logits"):
        L.distill_loss_forward(s[:-1], t[:-1], labels, sh, th, am)
    with pytest.raises(ValueError, match="positions"):
        L.distill_loss_forward(s, t, labels, sh, th, am, None, np.ones((3, 3), bool))
    bad_labels = labels.copy()
    bad_labels[1, 4] = 2  # a padding position the logits were not computed for
    with pytest.raises(ValueError, match="positions"):
        L.distill_loss_forward(s, t, bad_labels, sh, th, am)
    with pytest.raises(ValueError, match="s_hidden"):
        L.distill_loss_forward(s, t, labels, None, None, am)
    with pytest.raises(ValueError, match="s_hidden"):
        L.distill_loss_forward(s, t, labels, sh[:, :-1], th, am)
    with pytest.raises(TypeError, match="cfg"):
        L.distill_loss_forward(s, t, labels, sh, th, am, {"alpha_ce": 1.0})
    with pytest.raises(TypeError, match="dloss"):
        L.soft_target_backward("one", L.soft_target_forward(s, t)[1])
