"""The exercise checkers: every reference passes, every stub fails, every classic mistake is named.

A checker that cannot fail is a defect, so most tests here feed it a deliberately wrong backward
pass (one classic mistake each) and require FAIL plus the matching hint key.
Bounds used by the checker: 1e-6 relative against central differences (h = 1e-5, float64),
1e-8 relative against the reference solution.
"""
import inspect
import math

import numpy as np
import pytest

from minidistil.exercises import EXERCISES, check, list_exercises
from minidistil.exercises import forwards as F
from minidistil.exercises import solutions as S
from minidistil.exercises import stubs

NAMES = list_exercises()


def test_the_exercises_in_teaching_order():
    assert NAMES == ["linear", "gelu", "layernorm", "softmax_t", "log_softmax_t", "attention",
                     "embedding_tied", "cross_entropy", "kl_soft_target", "cosine", "triple_loss",
                     "hidden_mse", "encoder_block"]


@pytest.mark.parametrize("name", NAMES)
def test_reference_solution_passes(name, capsys):
    res = check(name, EXERCISES[name].solution)
    out = capsys.readouterr().out
    assert res.passed and bool(res)
    assert "verdict: PASS" in out and "~ numeric" in out and "~ reference" in out
    assert len(res.tables) >= 2  # several random shapes


@pytest.mark.parametrize("name", NAMES)
def test_stub_fails_naming_the_exercise(name, capsys):
    stub = getattr(stubs, f"{name}_backward")
    with pytest.raises(NotImplementedError, match=name):
        stub(*([None] * stub.__code__.co_argcount))
    res = check(name, stub)
    out = capsys.readouterr().out
    assert not res.passed
    assert res.hint_keys == ["not_implemented"]
    assert "verdict: FAIL" in out and name in out


def test_check_rejects_unknown_name_and_non_callable():
    with pytest.raises(ValueError, match="name must be one of"):
        check("nope", S.linear_backward)
    with pytest.raises(TypeError, match="fn must be a function"):
        check("linear", 3)


def _assert_caught(name, fn, key):
    res = check(name, fn, verbose=False)
    assert not res.passed, f"{name}: wrong gradient passed"
    assert key in res.hint_keys, f"{name}: expected hint {key}, got {res.hint_keys}"
    return res


# ------------------------------------------------------------------ generic mistakes

def test_mutating_dy_in_place_is_caught():
    def gelu_inplace(dy, x):
        cdf = 0.5 * (1.0 + F._erf(x / math.sqrt(2.0)))
        dy *= cdf + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)  # writes into dy
        return dy
    res = _assert_caught("gelu", gelu_inplace, "mutates_input")
    assert "in place" in res.hints[0].text


def test_mutating_dy_after_unlocking_is_caught():
    def ln_sneaky(dy, x, gamma, eps=1e-12):
        dy.flags.writeable = True  # a copy can be unlocked: the checker also compares copies
        dx, dg, db = S.layernorm_backward(dy, x, gamma, eps)
        dy[...] = 0.0
        return dx, dg, db
    _assert_caught("layernorm", ln_sneaky, "mutates_input")


def test_transposed_weight_is_caught():
    def linear_T(dy, x, weight):
        dx, dw, db = S.linear_backward(dy, x, weight)
        return dx, x.reshape(-1, x.shape[-1]).T @ dy.reshape(-1, dy.shape[-1]), db
    _assert_caught("linear", linear_T, "transposed_weight")


def test_bias_not_summed_is_caught():
    def linear_b(dy, x, weight):
        dx, dw, db = S.linear_backward(dy, x, weight)
        return dx, dw, dy.copy()
    _assert_caught("linear", linear_b, "bias_not_summed")


def test_bad_return_is_caught():
    _assert_caught("linear", lambda dy, x, weight: dy @ weight, "bad_return")


# ------------------------------------------------------------------ per-exercise mistakes

def test_gelu_product_rule():
    _assert_caught("gelu", lambda dy, x: dy * 0.5 * (1.0 + F._erf(x / math.sqrt(2.0))),
                   "gelu_product_rule")


def test_layernorm_mean_term():
    def ln_no_mean(dy, x, gamma, eps=1e-12):
        mean = x.mean(-1, keepdims=True)
        rstd = 1 / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps)
        xhat = (x - mean) * rstd
        g = dy * gamma
        dx = rstd * (g - xhat * (g * xhat).mean(-1, keepdims=True))  # the mean(g) term dropped
        lead = tuple(range(x.ndim - 1))
        return dx, (dy * xhat).sum(lead), dy.sum(lead)
    _assert_caught("layernorm", ln_no_mean, "layernorm_mean_term")


def test_layernorm_forgot_gamma():
    def ln_no_gamma(dy, x, gamma, eps=1e-12):
        ones = np.ones_like(gamma)
        dx, _, _ = S.layernorm_backward(dy, x, ones, eps)
        _, dg, db = S.layernorm_backward(dy, x, gamma, eps)
        return dx, dg, db
    _assert_caught("layernorm", ln_no_gamma, "layernorm_gamma")


def test_temperature_is_tau_and_the_old_name_T_still_works():
    """The stubs call the temperature ``tau`` (T is the sequence length in every shape); a
    learner's function written with ``T`` gets the same grade, and a wrong one the same hint."""
    assert "tau" in inspect.signature(stubs.softmax_t_backward).parameters
    for fn in (lambda dp, x, tau: S.softmax_t_backward(dp, x, tau),
               lambda dp, x, T: S.softmax_t_backward(dp, x, T)):
        assert check("softmax_t", fn, verbose=False).passed
    old = check("kl_soft_target", lambda dloss, s_logits, t_logits, T:
                S.kl_soft_target_backward(dloss, s_logits, t_logits, T) / T ** 2, verbose=False)
    new = check("kl_soft_target", lambda dloss, s_logits, t_logits, tau:
                S.kl_soft_target_backward(dloss, s_logits, t_logits, tau) / tau ** 2, verbose=False)
    assert not old.passed and old.hint_keys == new.hint_keys == ["kl_tau_squared"]


def test_softmax_forgot_temperature():
    _assert_caught("softmax_t", lambda dp, x, T: S.softmax_t_backward(dp, x, T) * T,
                   "softmax_temperature")


def test_softmax_diagonal_jacobian():
    def diag(dp, x, T):
        p = F.softmax_t(x, T)
        return p * (1 - p) * dp / T
    _assert_caught("softmax_t", diag, "softmax_jacobian")


def test_attention_forgot_scale():
    def no_scale(dout, q, k, v, probs):
        dq, dk, dv = S.attention_backward(dout, q, k, v, probs)
        s = math.sqrt(q.shape[-1])
        return dq * s, dk * s, dv
    _assert_caught("attention", no_scale, "attention_scale")


def test_attention_dk_not_transposed():
    def dk_wrong(dout, q, k, v, probs):
        dq, dk, dv = S.attention_backward(dout, q, k, v, probs)
        dprobs = dout @ v.swapaxes(-1, -2)
        ds = probs * (dprobs - (dprobs * probs).sum(-1, keepdims=True))
        return dq, ds @ q / math.sqrt(q.shape[-1]), dv
    _assert_caught("attention", dk_wrong, "attention_dk_transposed")


def test_tied_embedding_only_one_gradient():
    def out_only(dlogits, ids, weight):
        C = weight.shape[1]
        dw = dlogits.reshape(-1, dlogits.shape[-1]).T @ weight[ids].reshape(-1, C)
        return dw, dlogits.reshape(-1, dlogits.shape[-1]).sum(0)
    _assert_caught("embedding_tied", out_only, "tied_two_gradients")


def test_tied_embedding_repeated_ids_lost():
    def fancy(dlogits, ids, weight):
        C = weight.shape[1]
        d2 = dlogits.reshape(-1, dlogits.shape[-1])
        dw = d2.T @ weight[ids].reshape(-1, C)
        dw[ids.reshape(-1)] += (dlogits @ weight).reshape(-1, C)  # repeated ids overwrite
        return dw, d2.sum(0)
    _assert_caught("embedding_tied", fancy, "embedding_repeated_ids")


def test_kl_forgot_T_squared():
    _assert_caught("kl_soft_target",
                   lambda dloss, s_logits, t_logits, T:
                   S.kl_soft_target_backward(dloss, s_logits, t_logits, T) / T ** 2,
                   "kl_tau_squared")


def test_kl_forgot_mean_and_sign():
    _assert_caught("kl_soft_target",
                   lambda dloss, s_logits, t_logits, T:
                   S.kl_soft_target_backward(dloss, s_logits, t_logits, T) * len(s_logits),
                   "kl_mean")
    _assert_caught("kl_soft_target",
                   lambda dloss, s_logits, t_logits, T:
                   -S.kl_soft_target_backward(dloss, s_logits, t_logits, T), "kl_sign")


def test_cosine_padding_not_masked():
    def unmasked(dloss, s_h, t_h, mask):
        return S.cosine_backward(dloss, s_h, t_h, np.ones_like(mask)) * np.ones_like(mask).sum() / np.sum(mask)
    _assert_caught("cosine", unmasked, "cosine_padding")


def test_cosine_norm_term():
    def no_norm(dloss, s_h, t_h, mask):
        m = np.asarray(mask, bool)
        ns = np.linalg.norm(s_h, axis=-1, keepdims=True)
        nt = np.linalg.norm(t_h, axis=-1, keepdims=True)
        return -dloss * t_h / (ns * nt) * m[..., None] / m.sum()
    _assert_caught("cosine", no_norm, "cosine_norm_term")


def test_cosine_ignores_upstream():
    _assert_caught("cosine", lambda dloss, s_h, t_h, mask: S.cosine_backward(1.0, s_h, t_h, mask),
                   "upstream_ignored")


def test_block_names_first_failing_gradient():
    def no_ffn_residual(dy, x, mask, p, num_heads, eps=1e-12):
        dx, g = S.encoder_block_backward(dy, x, mask, p, num_heads, eps)
        g = dict(g)
        g["ln2.bias"] = g["ln2.bias"] * 2.0
        return dx, g
    res = _assert_caught("encoder_block", no_ffn_residual, "block_first_failure")
    assert "ln2.bias" in res.hints[0].text and "scale_" not in res.hints[0].key


def test_block_missing_key():
    def missing(dy, x, mask, p, num_heads, eps=1e-12):
        dx, g = S.encoder_block_backward(dy, x, mask, p, num_heads, eps)
        return dx, {k: v for k, v in g.items() if k != "q.bias"}
    _assert_caught("encoder_block", missing, "missing_gradient")
