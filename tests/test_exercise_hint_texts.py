"""Hints that say WHICH: where a key names a kind of mistake with two or more places (which axis
the bias summed, which half of a tied gradient, which term of the triple loss, which residual or
LayerNorm of the block), the checker compares the answer with each candidate and its text names
the one the learner wrote (the borderline "names" verdicts of outside sets 7, 9 and 10).
"""
import pytest

from minidistil.exercises import check

import learner_mistakes_losses as LL
from hint_cases_set9 import (_block_ln1_gets_ln2_gamma, _block_ln2_no_mean, _block_softmax_diag,
                             _triple_mlm_minus)
from hint_cases_set13 import SET13_TEXT_CASES


def _text(name, fn, key):
    res = check(name, fn, verbose=False)
    assert not res.passed and key in res.hint_keys, res.hint_keys
    return next(h.text for h in res.hints if h.key == key)


@pytest.mark.parametrize("fn,says", [
    (lambda dy, x, weight: (dy @ weight, dy.T @ x, dy.sum(1)), "dy.sum(axis=-1)"),
    (lambda dy, x, weight: (dy @ weight, dy.T @ x, dy), "dy itself"),
    (lambda dy, x, weight: (dy @ weight, dy.T @ x, dy.sum()), "one number"),
])
def test_bias_not_summed_says_what_was_summed(fn, says):
    assert says in _text("linear", fn, "bias_not_summed")


def test_tied_two_gradients_says_which_half_is_missing():
    assert "only the projection's part" in _text("embedding_tied", LL.emb_output_only, "tied_two_gradients")

    def lookup_only(dlogits, ids, weight):
        import numpy as np
        dW = np.zeros_like(weight)
        np.add.at(dW, ids.reshape(-1), (dlogits @ weight).reshape(-1, weight.shape[1]))
        return dW, dlogits.reshape(-1, weight.shape[0]).sum(0)
    assert "only the lookup's part" in _text("embedding_tied", lookup_only, "tied_two_gradients")


def test_triple_missing_term_names_the_term():
    assert "no Lcos part" in _text("triple_loss", LL.tri_no_cos, "triple_missing_term")


def test_triple_term_sign_names_the_term():
    text = _text("triple_loss", _triple_mlm_minus, "triple_term_sign")
    assert "Lmlm" in text and "Lce" not in text.split("part")[0]


@pytest.mark.parametrize("fn,says", [(LL.block_no_ffn_residual, "the FFN's residual"),
                                     (LL.block_no_attn_residual, "the attention's residual")])
def test_block_residual_names_the_residual(fn, says):
    assert says in _text("encoder_block", fn, "block_residual")


def test_the_block_layernorm_and_softmax_hints_say_which():
    assert "LN2" in _text("encoder_block", _block_ln2_no_mean, "block_ln_mean_term")
    assert "LN1's backward used ln2.weight" in _text("encoder_block", _block_ln1_gets_ln2_gamma, "block_ln_gamma")
    assert "diagonal" in _text("encoder_block", _block_softmax_diag, "block_attention_softmax")


def test_a_scale_suspect_is_named_only_when_every_case_agrees():
    """A mean over the C features of the cosine (C = 3, 4, 2 in the cases) is 1/2 in the case with
    C = 2 alone: that is not the stray factor 1/2, so only scale_other may fire."""
    from minidistil.exercises import solutions as S
    res = check("cosine", lambda dloss, s_h, t_h, mask: S.cosine_backward(dloss, s_h, t_h, mask)
                / s_h.shape[-1], verbose=False)
    assert not res.passed and res.hint_keys == ["scale_other"], res.hint_keys


def test_block_first_failure_says_when_only_dx_fails():
    from minidistil.exercises import solutions as S

    def dx_off(dy, x, mask, p, num_heads, eps=1e-12):
        dx, grads = S.encoder_block_backward(dy, x, mask, p, num_heads, eps)
        return dx * 1.1 + 0.01, grads
    assert "Only dx fails" in _text("encoder_block", dx_off, "block_first_failure")


# after sets 11 and 12: which factor of the triple loss's KL part, both transposes of attention,
# and a scale_other factor that is a known quantity in every case
def _triple_kl_times(f):
    def fn(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
        from minidistil.exercises.problems_distill import triple_parts
        p = triple_parts(dict(dloss=dloss, h=h, weight=weight, t_logits=t_logits, t_h=t_h,
                              labels=labels, tau=tau))
        return alphas[0] * f(tau) * p[0] + alphas[1] * p[1] + alphas[2] * p[2]
    return fn


@pytest.mark.parametrize("f,says", [(lambda t: t ** -2, "τ**2 of the loss is missing"),
                                    (lambda t: t, "1/τ of the softmax's chain rule"),
                                    (lambda t: 1 / t, "τ times too small")])
def test_triple_kl_scale_says_which_factor(f, says):
    assert says in _text("triple_loss", _triple_kl_times(f), "triple_kl_scale")


def test_attention_says_when_both_transposes_are_swapped():
    from minidistil.exercises import solutions as S

    def swapped(dout, q, k, v, probs):
        dq, dk, dv = S.attention_backward(dout, q, k, v, probs)
        dP = dout @ v.swapaxes(-1, -2)
        dS = probs * (dP - (dP * probs).sum(-1, keepdims=True)) / q.shape[-1] ** 0.5
        return dS.swapaxes(-1, -2) @ k, dS @ q, dv
    assert "swapped between dq and dk" in _text("attention", swapped, "attention_dk_transposed")


def test_scale_other_names_a_known_quantity():
    from minidistil.exercises import solutions as S

    def doubled(dy, x, weight):
        dx, dw, db = S.linear_backward(dy, x, weight)
        return dx, 2 * dw, db
    assert "equals 2" in _text("linear", doubled, "scale_other")


@pytest.mark.parametrize("name,fn,key,says", SET13_TEXT_CASES, ids=[c[2] for c in SET13_TEXT_CASES])
def test_the_hints_sharpened_after_sets_13_and_14_say_which(name, fn, key, says):
    assert says in _text(name, fn, key)


def test_the_block_qkv_hint_counts_the_missing_paths():
    from minidistil.exercises import problems_attention as PA
    from minidistil.exercises import solutions as S

    def only_q(dy, x, mask, p, num_heads, eps=1e-12):  # the k and v paths both forgotten
        return (PA.block_backward_variant(dy, x, mask, p, num_heads, eps, paths=("q",)),
                S.encoder_block_backward(dy, x, mask, p, num_heads, eps)[1])
    assert "two: the k and v paths" in _text("encoder_block", only_q, "block_qkv_paths")


def test_the_linear_mean_is_called_a_mean_over_n():
    from minidistil.exercises import solutions as S

    def mean_rows(dy, x, weight):
        dx, dw, db = S.linear_backward(dy, x, weight)
        return dx, dw / len(x), db / len(x)
    text = " ".join(h.text for h in check("linear", mean_rows, verbose=False).hints)
    assert "1/N" in text and "1/B" not in text
