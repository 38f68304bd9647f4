"""Every documented hint key: a wrong backward pass that shows its mistake makes the checker
print that key and no other. Also: the generic scale hint names each factor of each exercise's
table, no two suspect factors coincide in any case, shapes are printed, exceptions are read.
"""
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from minidistil.exercises import EXERCISES, check
from minidistil.exercises import forwards as F
from minidistil.exercises import hints as H
from minidistil.exercises import problems_attention as PA
from minidistil.exercises import solutions as S

from hint_cases_outside import MORE_KEY_CASES
from hint_cases_set3 import SECOND_EXERCISE_CASES, SET3_KEY_CASES
from hint_cases_set4 import SET4_KEY_CASES
from hint_cases_set5 import SET5_KEY_CASES, SET5_SECOND_EXERCISE_CASES, return_order_with_a_bias
from hint_cases_set6 import SET6_KEY_CASES, SET6_SECOND_EXERCISE_CASES, write_into_logits
from hint_cases_set9 import SET9_KEY_CASES, SET9_SECOND_EXERCISE_CASES
from hint_cases_set11 import SET11_KEY_CASES, SET11_SECOND_EXERCISE_CASES, STABLE
from hint_cases_set13 import SET13_KEY_CASES
from hint_cases_tail import TAIL_KEY_CASES, TAIL_SECOND_EXERCISE_CASES

DOC = Path(__file__).resolve().parents[1] / "docs" / "exercises.md"


def _ref(name):
    return EXERCISES[name].solution


def _times(name, k_of_args):
    """The reference gradient(s) of ``name`` times a factor read from the arguments."""
    sol = _ref(name)

    def fn(**a):
        out, k = sol(**a), k_of_args(a)
        return tuple(o * k for o in out) if isinstance(out, tuple) else out * k
    return fn


def _block(**kw):
    return lambda dy, x, mask, p, num_heads, eps=1e-12: (
        PA.block_backward_variant(dy, x, mask, p, num_heads, eps, **kw),
        S.encoder_block_backward(dy, x, mask, p, num_heads, eps)[1])


def _lin(dy, x, weight):
    return S.linear_backward(dy, x, weight)


def _ln_unbiased(dy, x, gamma, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    r = 1 / np.sqrt(x.var(-1, ddof=1, keepdims=True) + eps)
    xh = (x - mu) * r
    g = dy * gamma
    lead = tuple(range(x.ndim - 1))
    return (r * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True)),
            (dy * xh).sum(lead), dy.sum(lead))


def _attn_unmasked(dout, q, k, v, probs):
    return S.attention_backward(dout, q, k, v, F.attention(q, k, v, None)[1])


def _ce_with_minus100(dloss, logits, labels):
    p = F.softmax_t(logits).reshape(-1, logits.shape[-1])
    p[np.arange(p.shape[0]), labels.reshape(-1)] -= 1.0
    return dloss * p.reshape(logits.shape)


def _ce_unmasked_rows(dloss, logits, labels):
    g = S.cross_entropy_backward(dloss, logits, labels)
    return g + F.softmax_t(logits) * (labels == -100)[..., None]


def _tri_parts(a):
    return np.array(_unweighted_parts(a))


def _unweighted_parts(a):
    from minidistil.exercises.problems_distill import triple_parts
    return triple_parts(a)


def _tri(combine):
    def fn(**a):
        return combine(a, _unweighted_parts(a))
    return fn


def _keepdims(dy, x):
    return dy - x.sum(-1)  # (..., C) - (...): broadcasts only by accident


# key -> (exercise, wrong function): the mistake the key describes, and nothing else
KEY_CASES = {
    "transposed_weight": ("linear", lambda dy, x, weight: (dy @ weight, x.T @ dy, dy.sum(0))),
    "bias_not_summed": ("linear", lambda dy, x, weight: (dy @ weight, dy.T @ x, dy.sum(1))),
    "linear_dx_weight": ("linear", lambda dy, x, weight: (dy @ weight.T, dy.T @ x, dy.sum(0))),
    "gelu_product_rule": ("gelu", lambda dy, x: dy * 0.5 * (1 + F._erf(x / math.sqrt(2)))),
    "gelu_tanh": ("gelu", lambda dy, x: dy * _tanh_grad(x)),
    "gelu_sigmoid": ("gelu", lambda dy, x: dy * _sig_grad(x)),
    "dy_ignored": ("gelu", lambda dy, x: S.gelu_backward(np.ones_like(dy), x)),
    "layernorm_mean_term": ("layernorm", None),  # filled below
    "layernorm_variance_term": ("layernorm", None),
    "layernorm_gamma": ("layernorm", lambda dy, x, gamma, eps=1e-12: (
        S.layernorm_backward(dy, x, np.ones_like(gamma), eps)[0],) + S.layernorm_backward(dy, x, gamma, eps)[1:]),
    "layernorm_dgamma_xhat": ("layernorm", lambda dy, x, gamma, eps=1e-12: (
        S.layernorm_backward(dy, x, gamma, eps)[0], (dy * x).reshape(-1, x.shape[-1]).sum(0),
        dy.reshape(-1, x.shape[-1]).sum(0))),
    "layernorm_unbiased_var": ("layernorm", _ln_unbiased),
    "softmax_temperature": ("softmax_t", lambda dp, x, T: S.softmax_t_backward(dp, x, T) * T),
    "softmax_jacobian": ("softmax_t", lambda dp, x, T: F.softmax_t(x, T) * (1 - F.softmax_t(x, T)) * dp),
    "softmax_times_tau": ("softmax_t", lambda dp, x, T: S.softmax_t_backward(dp, x, 1 / T)),
    "log_softmax_sum": ("log_softmax_t", lambda dy, x, T: (dy - F.softmax_t(x, T)) / T),
    "log_softmax_jacobian": ("log_softmax_t", lambda dy, x, T: dy * (1 - F.softmax_t(x, T)) / T),
    "attention_scale": ("attention", lambda dout, q, k, v, probs: tuple(
        g * s for g, s in zip(S.attention_backward(dout, q, k, v, probs), (math.sqrt(q.shape[-1]),) * 2 + (1,)))),
    "attention_softmax": ("attention", None),
    "attention_dk_transposed": ("attention", None),
    "attention_dv_transposed": ("attention", lambda dout, q, k, v, probs: (
        S.attention_backward(dout, q, k, v, probs)[:2] + (probs @ dout,))),
    "attention_mask_dropped": ("attention", _attn_unmasked),
    "tied_two_gradients": ("embedding_tied", lambda dlogits, ids, weight: (
        dlogits.reshape(-1, weight.shape[0]).T @ weight[ids].reshape(-1, weight.shape[1]),
        dlogits.reshape(-1, weight.shape[0]).sum(0))),
    "embedding_repeated_ids": ("embedding_tied", None),
    "ce_ignore_index": ("cross_entropy", _ce_with_minus100),
    "ce_ignored_rows": ("cross_entropy", _ce_unmasked_rows),
    "ce_count": ("cross_entropy", lambda dloss, logits, labels: S.cross_entropy_backward(
        dloss, logits, labels) * (labels != -100).sum() / labels.size),
    "ce_wrt_probs": ("cross_entropy", None),
    "kl_tau_squared": ("kl_soft_target", _times("kl_soft_target", lambda a: 1 / a["tau"] ** 2)),
    "kl_chain_tau": ("kl_soft_target", _times("kl_soft_target", lambda a: a["tau"])),
    "kl_mean": ("kl_soft_target", _times("kl_soft_target", lambda a: len(a["s_logits"]))),
    "kl_batchmean": ("kl_soft_target", _times("kl_soft_target", lambda a: 1 / a["s_logits"].shape[1])),
    "kl_sign": ("kl_soft_target", _times("kl_soft_target", lambda a: -1)),
    "upstream_ignored": ("kl_soft_target", _times("kl_soft_target", lambda a: 1 / a["dloss"])),
    "cosine_padding": ("cosine", lambda dloss, s_h, t_h, mask: S.cosine_backward(
        dloss, s_h, t_h, np.ones_like(mask)) * mask.size / mask.sum()),
    "cosine_count": ("cosine", lambda dloss, s_h, t_h, mask: S.cosine_backward(dloss, s_h, t_h, mask)
                     * mask.sum() / mask.size),
    "cosine_per_sequence": ("cosine", lambda dloss, s_h, t_h, mask: S.cosine_backward(
        dloss, s_h, t_h, mask) * mask.sum() / (mask.shape[0] * mask.sum(-1)[:, None, None])),
    "cosine_norm_term": ("cosine", None),
    "cosine_sign": ("cosine", _times("cosine", lambda a: -1)),
    "triple_missing_term": ("triple_loss", _tri(lambda a, d: a["alphas"][0] * d[0] + a["alphas"][1] * d[1])),
    "triple_weights": ("triple_loss", _tri(lambda a, d: d[0] + d[1] + d[2])),
    "triple_kl_scale": ("triple_loss", _tri(lambda a, d: a["alphas"][0] * d[0] / a["tau"] ** 2
                                            + a["alphas"][1] * d[1] + a["alphas"][2] * d[2])),
    "triple_projection": ("triple_loss", lambda dloss, h, weight, t_logits, t_h, labels, T, alphas:
                          S.kl_soft_target_backward(dloss, h @ weight.T, t_logits, T) + h),
    "mse_factor_two": ("hidden_mse", _times("hidden_mse", lambda a: 0.5)),
    "mse_count": ("hidden_mse", _times("hidden_mse", lambda a: a["t_h"].shape[-1])),
    "mse_projection": ("hidden_mse", lambda dloss, s_h, t_h, weight: (
        2 * dloss * (s_h @ weight.T - t_h) / t_h.size, S.hidden_mse_backward(dloss, s_h, t_h, weight)[1])),
    "mse_sign": ("hidden_mse", _times("hidden_mse", lambda a: -1)),
    "block_residual": ("encoder_block", _block(res2=False)),
    "block_ln_order": ("encoder_block", _block(ln_order="swapped")),
    "block_heads_reshaped": ("encoder_block", _block(heads="reshape")),
    "block_first_failure": ("encoder_block", lambda dy, x, mask, p, num_heads, eps=1e-12: (
        S.encoder_block_backward(dy, x, mask, p, num_heads, eps)[0] + 0.01 * np.cos(x),
        S.encoder_block_backward(dy, x, mask, p, num_heads, eps)[1])),
    "keepdims": ("gelu", _keepdims),
    "wrong_shape": ("gelu", lambda dy, x: S.gelu_backward(dy, x)[..., :-1]),
    "scale_other": ("gelu", lambda dy, x: S.gelu_backward(dy, x) * 3.7),
    "exception": ("gelu", lambda dy, x: dy @ np.ones((7, 7)) * x),
    "mutates_input": ("gelu", None),
    "not_implemented": ("gelu", lambda dy, x: (_ for _ in ()).throw(NotImplementedError("todo gelu"))),
    "bad_return": ("linear", lambda dy, x, weight: dy @ weight),
    "missing_gradient": ("encoder_block", lambda dy, x, mask, p, num_heads, eps=1e-12: (
        S.encoder_block_backward(dy, x, mask, p, num_heads, eps)[0],
        {k: g for k, g in S.encoder_block_backward(dy, x, mask, p, num_heads, eps)[1].items() if k != "q.bias"})),
    "generic": ("gelu", lambda dy, x: S.gelu_backward(dy, x) + 0.01 * np.cos(3 * x)),
}


def _tanh_grad(x):
    a = math.sqrt(2 / math.pi)
    t = np.tanh(a * (x + 0.044715 * x ** 3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * a * (1 + 3 * 0.044715 * x * x)


def _sig_grad(x):
    s = 1 / (1 + np.exp(-1.702 * x))
    return s + 1.702 * x * s * (1 - s)


def _ln_pieces(x, eps):
    mu = x.mean(-1, keepdims=True)
    r = 1 / np.sqrt(x.var(-1, keepdims=True) + eps)
    return r, (x - mu) * r, tuple(range(x.ndim - 1))


def _ln_no_mean(dy, x, gamma, eps=1e-12):
    r, xh, lead = _ln_pieces(x, eps)
    g = dy * gamma
    return r * (g - xh * (g * xh).mean(-1, keepdims=True)), (dy * xh).sum(lead), dy.sum(lead)


def _ln_no_var(dy, x, gamma, eps=1e-12):
    r, xh, lead = _ln_pieces(x, eps)
    g = dy * gamma
    return r * (g - g.mean(-1, keepdims=True)), (dy * xh).sum(lead), dy.sum(lead)


def _att_no_inner(dout, q, k, v, probs):
    s = 1 / math.sqrt(q.shape[-1])
    ds = probs * (dout @ v.swapaxes(-1, -2))
    return ds @ k * s, ds.swapaxes(-1, -2) @ q * s, probs.swapaxes(-1, -2) @ dout


def _att_dk(dout, q, k, v, probs):
    dq, dk, dv = S.attention_backward(dout, q, k, v, probs)
    dp = dout @ v.swapaxes(-1, -2)
    ds = probs * (dp - (dp * probs).sum(-1, keepdims=True))
    return dq, ds @ q / math.sqrt(q.shape[-1]), dv


def _emb_fancy(dlogits, ids, weight):
    V, C = weight.shape
    d2 = dlogits.reshape(-1, V)
    dw = d2.T @ weight[ids].reshape(-1, C)
    dw[ids.reshape(-1)] += (dlogits @ weight).reshape(-1, C)
    return dw, d2.sum(0)


def _ce_probs(dloss, logits, labels):
    p = F.softmax_t(logits)
    keep = labels != -100
    g = np.zeros_like(p)
    idx = np.nonzero(keep) + (labels[keep],)
    g[idx] = -1 / p[idx]
    return dloss * g / keep.sum()


def _cos_no_norm(dloss, s_h, t_h, mask):
    ns = np.linalg.norm(s_h, axis=-1, keepdims=True)
    nt = np.linalg.norm(t_h, axis=-1, keepdims=True)
    return -dloss * t_h / (ns * nt) * mask[..., None] / mask.sum()


def _gelu_inplace(dy, x):
    dy *= 0.5 * (1 + F._erf(x / math.sqrt(2))) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return dy


KEY_CASES.update({
    "layernorm_mean_term": ("layernorm", _ln_no_mean),
    "layernorm_variance_term": ("layernorm", _ln_no_var),
    "attention_softmax": ("attention", _att_no_inner),
    "attention_dk_transposed": ("attention", _att_dk),
    "embedding_repeated_ids": ("embedding_tied", _emb_fancy),
    "ce_wrt_probs": ("cross_entropy", _ce_probs),
    "cosine_norm_term": ("cosine", _cos_no_norm),
    "mutates_input": ("gelu", _gelu_inplace),
})
KEY_CASES.update(MORE_KEY_CASES)  # the keys added after the outside sets were measured
KEY_CASES.update(SET3_KEY_CASES)  # ... and after outside set 3
KEY_CASES.update(SET4_KEY_CASES)  # ... and after outside set 4
KEY_CASES.update(SET5_KEY_CASES)  # ... and after outside set 5
KEY_CASES.update(SET6_KEY_CASES)  # ... and after outside set 6
KEY_CASES.update(TAIL_KEY_CASES)  # ... and after outside sets 7 and 8
KEY_CASES.update(SET9_KEY_CASES)  # ... and after outside sets 9 and 10
KEY_CASES.update(SET11_KEY_CASES)  # ... and after outside sets 11 and 12
KEY_CASES.update(SET13_KEY_CASES)  # ... and after outside sets 13 and 14
SECOND_EXERCISE_CASES = (SECOND_EXERCISE_CASES + SET5_SECOND_EXERCISE_CASES + SET6_SECOND_EXERCISE_CASES
                         + TAIL_SECOND_EXERCISE_CASES + SET9_SECOND_EXERCISE_CASES
                         + SET11_SECOND_EXERCISE_CASES)


@pytest.mark.parametrize("key", sorted(KEY_CASES))
def test_the_mistake_fires_its_key_and_no_other(key):
    name, fn = KEY_CASES[key]
    res = check(name, fn, verbose=False)
    assert not res.passed
    assert res.hint_keys == [key], f"{key}: fired {res.hint_keys}"


@pytest.mark.parametrize("name", sorted(STABLE))
def test_a_stable_softmax_passes_the_large_logit_probe(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the probe silences the overflow it provokes
        res = check(name, STABLE[name], verbose=False)
    assert res.passed and res.hint_keys == [], res.hint_keys


@pytest.mark.parametrize("key,name,fn", SECOND_EXERCISE_CASES, ids=[f"{k}-{n}" for k, n, _ in SECOND_EXERCISE_CASES])
def test_a_shared_key_fires_on_its_other_exercise_too(key, name, fn):
    res = check(name, fn, verbose=False)
    assert not res.passed and res.hint_keys == [key], f"{key} on {name}: fired {res.hint_keys}"


def _documented_keys():
    text = DOC.read_text()
    table = text.split("| hint key |", 1)[1].split("\n\n", 1)[0]
    keys = set()
    for line in table.splitlines()[2:]:
        keys |= set(re.findall(r"`([A-Za-z_0-9]+(?:<k>)?)`", line.split("|")[1]))
    return keys


def test_every_documented_key_has_a_test_and_every_tested_key_is_documented():
    doc = _documented_keys()
    assert "scale_<k>" in doc
    assert doc - {"scale_<k>"} == set(KEY_CASES), (doc ^ set(KEY_CASES))


def test_every_mistake_key_of_every_exercise_is_documented():
    keys = {m.key for ex in EXERCISES.values() for m in ex.mistakes}
    assert keys - _documented_keys() == set()


# the arguments a learner's function sees -> the case's constants (for the scale factors)
def _consts(name, a):
    if name == "linear":
        return {"B": a["x"].shape[0]}
    if name in ("softmax_t", "log_softmax_t"):
        return {"tau": a["tau"]}
    if name == "layernorm":
        return {"C": a["x"].shape[-1]}
    if name == "attention":
        return {"HS": a["q"].shape[-1], "B": a["q"].shape[0]}
    if name == "kl_soft_target":
        return {"tau": a["tau"], "P": a["s_logits"].shape[0], "V": a["s_logits"].shape[1]}
    if name == "cross_entropy":
        B, T, V = a["logits"].shape
        return {"B": B, "T": T, "V": V, "n": int((a["labels"] != -100).sum())}
    if name == "cosine":
        B, T, C = a["s_h"].shape
        return {"B": B, "T": T, "C": C, "n": int(np.asarray(a["mask"]).sum())}
    if name == "hidden_mse":
        B, T, C = a["t_h"].shape
        return {"B": B, "T": T, "C": C}
    return {}


SCALE_CASES = [(name, label) for name, ex in EXERCISES.items() for label in ex.scales]


@pytest.mark.parametrize("name,label", SCALE_CASES, ids=[f"{n}-{lab}" for n, lab in SCALE_CASES])
def test_scale_hint_names_each_factor(name, label):
    value = H.SCALES[label][1]
    res = check(name, _times(name, lambda a: value(_consts(name, a))), verbose=False)
    assert res.hint_keys == [H.scale_key(label)], res.hint_keys
    shown = label.replace("B", "N") if name == "linear" else label  # the linear rows are N
    assert shown in res.hints[0].text and EXERCISES[name].scales[label] in res.hints[0].text


def test_the_issue_factors_are_each_named_by_some_key():
    named = {lab for ex in EXERCISES.values() for lab in ex.scales}
    dedicated = {"τ": "kl_chain_tau / softmax_temperature", "1/τ²": "kl_tau_squared", "P": "kl_mean",
                 "√HS": "attention_scale"}
    for k in ("τ", "τ²", "1/τ", "1/τ²", "P", "1/P", "V", "B", "B·T", "C", "√HS", "1/√HS", "−1"):
        assert k in named or k in dedicated, k


# factors with a key of their own (kl_chain_tau, kl_tau_squared, kl_mean, kl_batchmean, kl_sign,
# softmax_temperature, attention_scale): they must not coincide with the others either
DEDICATED = {"kl_soft_target": {"τ", "1/τ²", "P", "1/V", "−1"}, "softmax_t": {"τ"},
             "attention": {"√HS"}, "hidden_mse": {"C"}, "cross_entropy": {"B·T"}}


@pytest.mark.parametrize("name", list(EXERCISES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_two_suspect_factors_coincide(name, seed):
    """No tau * P = 1: within a case, the exercise's factors differ by more than 1%, none is 1."""
    ex = EXERCISES[name]
    for case in ex.make_cases(np.random.default_rng(seed)):
        labels = set(ex.scales) | DEDICATED.get(name, set())
        vals = H.scale_values(dict.fromkeys(labels), case.consts)
        items = sorted(vals.items(), key=lambda kv: kv[1])
        for (la, a), (lb, b) in zip(items, items[1:]):
            assert abs(a - b) > 0.01 * max(abs(a), abs(b)), (case.label, la, lb, a)
        assert all(abs(v - 1) > 0.01 for v in vals.values()), case.label


def test_shape_mismatch_prints_both_shapes(capsys):
    res = check("gelu", lambda dy, x: S.gelu_backward(dy, x)[..., :-1])
    out = capsys.readouterr().out
    assert "shape (4,) != (5,)" in out  # in the table row
    assert "(4,)" in res.hints[0].text and "(5,)" in res.hints[0].text


def test_keepdims_is_read_from_the_exception():
    res = check("softmax_t", lambda dp, x, T: F.softmax_t(x, T) * (dp - (dp * F.softmax_t(x, T)).sum(-1)) / T,
                verbose=False)
    assert res.hint_keys == ["keepdims"] and "keepdims=True" in res.hints[0].text


def test_keepdims_hint_also_names_a_mask_without_its_feature_axis():
    """A (B, T) mask beside (B, T, C) gives the same broadcasting error as a lost keepdims: the
    hint names both causes, so it does not describe the wrong mistake (outside set 4)."""
    def no_axis(dloss, s_h, t_h, mask):
        m = np.asarray(mask, dtype=bool)
        ns = np.sqrt((s_h * s_h).sum(axis=-1, keepdims=True))
        nt = np.sqrt((t_h * t_h).sum(axis=-1, keepdims=True))
        cos = (s_h * t_h).sum(axis=-1, keepdims=True) / (ns * nt)
        return -dloss * (t_h / (ns * nt) - cos * s_h / (ns * ns)) * m / m.sum()  # m lacks [..., None]
    res = check("cosine", no_axis, verbose=False)
    assert not res.passed and res.hint_keys == ["keepdims"]
    assert "[..., None]" in res.hints[0].text and "keepdims=True" in res.hints[0].text


def test_a_transposed_dx_is_not_called_a_transposed_weight():
    """transposed_weight is about a weight's layout; dx in the transposed layout gets its own
    hint, with both shapes (outside set 4 found the weight hint firing for dx)."""
    res = check("linear", lambda dy, x, weight: (weight.T @ dy.T, dy.T @ x, dy.sum(0)), verbose=False)
    assert not res.passed
    assert res.hint_keys == ["transposed_grad"] and "dx is the transpose" in res.hints[0].text
    res = check("linear", lambda dy, x, weight: (dy @ weight, x.T @ dy, dy.sum(0)), verbose=False)
    assert "transposed_weight" in res.hint_keys  # the weight's own mistake still fires it


def test_no_mistake_matches_the_reference():
    """A mistake's recogniser must not accept the right answer (else it could fire on a
    learner who is right for one gradient and wrong for another)."""
    for name, ex in EXERCISES.items():
        for case in ex.make_cases(np.random.default_rng(0)):
            ref = ex.unpack(ex.solution(**case.args))
            ref = {k: np.asarray(v, dtype=np.float64) for k, v in ref.items()}
            for m in ex.mistakes:
                if m.test is None:
                    continue
                try:
                    hit = m.test(ref, ref, case)
                except ValueError:  # e.g. dy @ W.T on a non-square weight: cannot match
                    hit = False
                assert not hit, (name, m.key, case.label)


def test_gradients_in_another_order_get_that_hint_alone():
    """Outside set 5: (dx, dbias, dweight) also fired bias_not_summed, whose advice (sum dy over
    the rows) was already followed. When every number is right, the order is the one mistake."""
    res = check("linear", return_order_with_a_bias, verbose=False)
    assert not res.passed and res.hint_keys == ["return_order"]
    assert "(dx, dweight, dbias)" in res.hints[0].text


def test_an_in_place_write_names_its_line_and_the_inputs():
    """Outside set 6: the hint guessed "(dy?)" for a write into logits."""
    res = check("cross_entropy", write_into_logits, verbose=False)
    assert not res.passed and res.hint_keys == ["mutates_input"]
    text = res.hints[0].text
    assert "`d -= 1.0  # writes into logits`" in text and "logits" in text and "dy?" not in text
