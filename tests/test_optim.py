"""AdamW, schedule, clipping and accumulation against hand computations."""
import math

import numpy as np
import pytest

from minidistil.train.optim import (AdamW, accumulate_grads, clip_grad_norm, linear_schedule,
                                    no_decay)


def test_one_adamw_step_matches_hand_computation():
    w = np.array([[0.5, -1.0], [2.0, 0.25]], dtype=np.float64)
    b = np.array([0.1, -0.2], dtype=np.float64)
    gw = np.array([[0.3, -0.1], [0.0, 2.0]])
    gb = np.array([-0.5, 0.05])
    params = {"lin.weight": w.copy(), "lin.bias": b.copy()}
    lr, wd, b1, b2, eps = 1e-2, 0.1, 0.9, 0.98, 1e-6
    opt = AdamW(params, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    opt.step({"lin.weight": gw, "lin.bias": gb})
    # hand computation of step t=1: m = 0.1 g, v = 0.02 g^2, m_hat = g, v_hat = g^2
    for name, p0, g, decay in (("lin.weight", w, gw, True), ("lin.bias", b, gb, False)):
        m = (1 - b1) * g
        v = (1 - b2) * g * g
        m_hat = m / (1 - b1)
        v_hat = v / (1 - b2)
        want = p0 * (1 - lr * wd) if decay else p0.copy()
        want = want - lr * m_hat / (np.sqrt(v_hat) + eps)
        np.testing.assert_allclose(params[name], want, rtol=1e-12, atol=1e-15)
    # the very first Adam step moves each entry by about lr * sign(g) (g != 0)
    assert abs(params["lin.bias"][0] - (0.1 + lr)) < 1e-7


def test_second_step_bias_correction():
    p = {"w": np.array([1.0])}
    opt = AdamW(p, lr=0.1, betas=(0.9, 0.98), eps=1e-6)
    opt.step({"w": np.array([1.0])})
    opt.step({"w": np.array([-3.0])})
    m = 0.9 * 0.1 * 1.0 + 0.1 * -3.0
    v = 0.98 * 0.02 * 1.0 + 0.02 * 9.0
    step2 = 0.1 * (m / (1 - 0.9 ** 2)) / (math.sqrt(v / (1 - 0.98 ** 2)) + 1e-6)
    want = 1.0 - 0.1 * 1.0 / (1.0 + 1e-6) - step2
    assert p["w"][0] == pytest.approx(want, rel=1e-12)


def test_no_decay_names():
    assert no_decay("bert.encoder.layer.0.attention.self.query.bias")
    assert no_decay("bert.embeddings.LayerNorm.weight")
    assert no_decay("distilbert.transformer.layer.1.sa_layer_norm.weight")
    assert no_decay("vocab_layer_norm.weight")
    assert no_decay("cls.predictions.bias")
    assert not no_decay("bert.encoder.layer.0.attention.self.query.weight")
    assert not no_decay("distilbert.embeddings.word_embeddings.weight")


def test_linear_schedule_warmup_then_decay():
    total, peak = 100, 1e-3
    lrs = [linear_schedule(s, total, 0.05, peak) for s in range(total)]
    assert lrs[0] == pytest.approx(peak / 5)
    assert lrs[4] == pytest.approx(peak)
    assert max(lrs) == pytest.approx(peak)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))  # decays monotonically
    assert lrs[-1] == pytest.approx(peak / 95)
    with pytest.raises(ValueError, match="total"):
        linear_schedule(0, 0)


def test_clip_grad_norm_scales_in_place():
    g = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    norm = clip_grad_norm(g, 1.0)
    assert norm == pytest.approx(5.0)
    assert math.sqrt(g["a"] @ g["a"] + g["b"][0, 0] ** 2) == pytest.approx(1.0, rel=1e-5)
    small = {"a": np.array([0.3])}
    assert clip_grad_norm(small, 5.0) == pytest.approx(0.3)
    assert small["a"][0] == 0.3  # untouched below the threshold


def test_accumulation_equals_mean_gradient():
    rng = np.random.default_rng(0)
    gs = [{"w": rng.normal(size=(3, 2))} for _ in range(4)]
    acc = None
    for g in gs:
        acc = accumulate_grads(acc, g, scale=0.25)
    np.testing.assert_allclose(acc["w"], np.mean([g["w"] for g in gs], axis=0), rtol=1e-12)
    assert acc["w"] is not gs[0]["w"]  # never aliases the caller's gradient


def test_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(1)
    p1 = {"w": rng.normal(size=(4,)).astype(np.float32)}
    p2 = {"w": p1["w"].copy()}
    o1 = AdamW(p1, lr=1e-2)
    grads = [{"w": rng.normal(size=(4,)).astype(np.float32)} for _ in range(4)]
    for g in grads[:2]:
        o1.step(g)
    o2 = AdamW(p2, lr=1e-2)
    p2["w"][:] = p1["w"]
    o2.load_state_dict(o1.state_dict())
    for g in grads[2:]:
        o1.step(g)
        o2.step(g)
    assert np.array_equal(p1["w"], p2["w"])


def test_bad_grads_rejected():
    opt = AdamW({"w": np.zeros(2)})
    with pytest.raises(ValueError, match="keys"):
        opt.step({"v": np.zeros(2)})
    with pytest.raises(ValueError, match="shape"):
        opt.step({"w": np.zeros(3)})
