"""Tests of dynamic MLM masking: invariants (hypothesis), statistics within binomial bounds,
determinism, frequency smoothing and bad input."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidistil.masking import fixed_eval_mask, mask_tokens, smoothing_weights

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIAL = [PAD, UNK, CLS, SEP, MASK]


def make_batch(rng, B, T, V, pad_frac=0.3):
    """[CLS] words [SEP] [PAD]...; each row a random length >= 2; words may include [UNK]/[MASK]."""
    ids = np.full((B, T), PAD, dtype=np.int64)  # (B, T)
    am = np.zeros((B, T), dtype=np.int64)  # (B, T)
    for b in range(B):
        n = int(rng.integers(2, T + 1)) if rng.random() < pad_frac else T
        ids[b, :n] = rng.integers(UNK, V, size=n)
        ids[b, 0], ids[b, n - 1] = CLS, SEP
        am[b, :n] = 1
    return ids, am


def expected_count(n, p=0.15):
    return 0 if n == 0 else min(n, max(1, math.floor(p * n + 0.5)))


def binom_ok(count, n, p, z=5.0):
    """|count - n p| within z standard deviations (and a little slack for tiny n p)."""
    return abs(count - n * p) <= z * math.sqrt(n * p * (1 - p)) + 1


# ---------------------------------------------------------------- invariants

@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), B=st.integers(1, 5), T=st.integers(2, 24),
       V=st.integers(6, 60), mlm_prob=st.floats(0.01, 0.99), smooth=st.booleans())
def test_mask_invariants(seed, B, T, V, mlm_prob, smooth):
    rng = np.random.default_rng(seed)
    ids, am = make_batch(rng, B, T, V)
    ids_before, am_before = ids.copy(), am.copy()
    probs = None
    if smooth:
        probs = smoothing_weights(rng.integers(0, 1000, size=V), 0.7, SPECIAL)
    masked, labels = mask_tokens(ids, am, rng, V, MASK, SPECIAL, mlm_prob, probs)

    assert np.array_equal(ids, ids_before) and np.array_equal(am, am_before)  # inputs untouched
    assert masked.shape == ids.shape and masked.dtype == ids.dtype
    assert labels.shape == ids.shape and labels.dtype == np.int64
    chosen = labels != -100
    eligible = (am == 1) & ~np.isin(ids, SPECIAL)
    assert not np.any(chosen & ~eligible)  # never padding, never a special token
    assert chosen.sum() == expected_count(int(eligible.sum()), mlm_prob)
    assert np.array_equal(labels[chosen], ids[chosen])  # labels are the original ids
    assert np.array_equal(masked[~chosen], ids[~chosen])  # nothing else changes
    changed = masked[chosen]
    assert np.all((changed == MASK) | ~np.isin(changed, SPECIAL))  # random ids are non-special


def test_no_eligible_tokens():
    ids = np.array([[CLS, SEP, PAD, PAD]])  # (1, 4)
    am = np.array([[1, 1, 0, 0]])  # (1, 4)
    masked, labels = mask_tokens(ids, am, np.random.default_rng(0), 10, MASK, SPECIAL)
    assert np.all(labels == -100) and np.array_equal(masked, ids)


def test_one_eligible_token_is_always_chosen():
    ids = np.array([[CLS, 7, SEP]])  # (1, 3)
    _, labels = mask_tokens(ids, np.ones((1, 3)), np.random.default_rng(1), 10, MASK, SPECIAL)
    assert labels.tolist() == [[-100, 7, -100]]


# ---------------------------------------------------------------- statistics

def test_split_80_10_10_within_binomial_bounds():
    rng = np.random.default_rng(2)
    V = 40
    n_mask = n_rand = n_keep = total = 0
    for _ in range(50):
        ids, am = make_batch(rng, 8, 32, V)
        masked, labels = mask_tokens(ids, am, rng, V, MASK, SPECIAL)
        chosen = labels != -100
        new, old = masked[chosen], ids[chosen]
        total += int(chosen.sum())
        n_mask += int(np.sum(new == MASK))
        n_rand += int(np.sum((new != MASK) & (new != old)))
        n_keep += int(np.sum(new == old))
    assert n_mask + n_rand + n_keep == total and total > 1000
    q = 1.0 / (V - len(SPECIAL))  # a random id equals the original with probability q
    assert binom_ok(n_mask, total, 0.8)
    assert binom_ok(n_rand, total, 0.1 * (1 - q))
    assert binom_ok(n_keep, total, 0.1 + 0.1 * q)


def test_every_eligible_position_equally_likely():
    """Uniform choice: each of the n eligible positions is picked with probability k/n."""
    rng = np.random.default_rng(3)
    ids, am = make_batch(rng, 2, 10, 30, pad_frac=1.0)
    eligible = (am == 1) & ~np.isin(ids, SPECIAL)
    n = int(eligible.sum())
    k = expected_count(n)
    draws = 2000
    hits = np.zeros(ids.shape)  # (B, T)
    for _ in range(draws):
        hits += mask_tokens(ids, am, rng, 30, MASK, SPECIAL)[1] != -100
    assert np.all(hits[~eligible] == 0)
    for h in hits[eligible]:
        assert binom_ok(int(h), draws, k / n, z=5.0)


def test_token_probs_bias_the_choice():
    """Two candidates, one target: the choice follows the weights 0.9 : 0.1."""
    rng = np.random.default_rng(4)
    V = 10
    probs = np.zeros(V)  # (V,)
    probs[5], probs[6] = 0.9, 0.1
    ids = np.array([[CLS, 5, 6, SEP]])  # (1, 4): n = 2 eligible, k = round(0.3) -> 1
    am = np.ones((1, 4))
    draws = 2000
    first = sum(int(mask_tokens(ids, am, rng, V, MASK, SPECIAL, 0.15, probs)[1][0, 1] != -100)
                for _ in range(draws))
    assert binom_ok(first, draws, 0.9)


def test_zero_weight_tokens_are_never_chosen():
    rng = np.random.default_rng(5)
    V = 20
    probs = np.ones(V)  # (V,)
    probs[7] = 0.0
    ids, am = make_batch(rng, 4, 16, V)
    ids[:, 1:4] = 7
    for _ in range(20):
        _, labels = mask_tokens(ids, am, rng, V, MASK, SPECIAL, 0.5, probs)
        assert not np.any(labels == 7)


def test_smoothing_weights():
    counts = np.array([100, 0, 5, 1000, 1, 50])  # (V,)
    w = smoothing_weights(counts, 0.7, special_ids=[0])
    assert w[0] == 0.0 and abs(w.sum() - 1.0) < 1e-12
    assert w[1] == w[4]  # unseen counts as 1
    np.testing.assert_allclose(w[3] / w[5], (1000 / 50) ** -0.7, rtol=1e-12)
    assert np.all(np.diff(w[[4, 2, 5, 3]]) < 0)  # rarer -> more likely
    uniform = smoothing_weights(counts, 0.0, special_ids=[0, 1])
    np.testing.assert_allclose(uniform, [0, 0, 0.25, 0.25, 0.25, 0.25])
    with pytest.raises(ValueError, match="counts"):
        smoothing_weights(np.array([1, -2, 3]))
    with pytest.raises(ValueError, match="power"):
        smoothing_weights(counts, -1.0)
    with pytest.raises(ValueError, match="special"):
        smoothing_weights(np.array([1, 2]), 0.7, special_ids=[0, 1])


# ---------------------------------------------------------------- determinism

def test_same_seed_repeats_and_consecutive_calls_differ():
    ids, am = make_batch(np.random.default_rng(6), 4, 20, 50)
    a1 = mask_tokens(ids, am, np.random.default_rng(42), 50, MASK, SPECIAL)
    a2 = mask_tokens(ids, am, np.random.default_rng(42), 50, MASK, SPECIAL)
    assert all(np.array_equal(x, y) for x, y in zip(a1, a2))
    rng = np.random.default_rng(42)
    b1 = mask_tokens(ids, am, rng, 50, MASK, SPECIAL)
    b2 = mask_tokens(ids, am, rng, 50, MASK, SPECIAL)
    assert not np.array_equal(b1[1], b2[1])  # dynamic masking: a fresh mask every call


def test_fixed_eval_mask_is_deterministic():
    ids, am = make_batch(np.random.default_rng(7), 4, 20, 50)
    a = fixed_eval_mask(ids, am, 123, 50, MASK, SPECIAL)
    b = fixed_eval_mask(ids, am, 123, 50, MASK, SPECIAL)
    c = fixed_eval_mask(ids, am, 124, 50, MASK, SPECIAL)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    only_mask = fixed_eval_mask(ids, am, 123, 50, MASK, SPECIAL, split=(1.0, 0.0, 0.0))
    assert np.all(only_mask[0][only_mask[1] != -100] == MASK)


# ---------------------------------------------------------------- bad input

def test_bad_inputs_name_the_argument():
    ids, am = make_batch(np.random.default_rng(8), 2, 6, 20)
    rng = np.random.default_rng(0)
    cases = [
        (dict(rng=0), TypeError, "rng"),
        (dict(rng=np.random.RandomState(0)), TypeError, "rng"),
        (dict(input_ids=ids.astype(float)), TypeError, "input_ids"),
        (dict(input_ids=ids[0]), ValueError, "input_ids"),
        (dict(input_ids=ids + 20), ValueError, "input_ids"),
        (dict(attention_mask=am[:, :-1]), ValueError, "attention_mask"),
        (dict(attention_mask=am * 2), ValueError, "attention_mask"),
        (dict(mlm_prob=0.0), ValueError, "mlm_prob"),
        (dict(mlm_prob=1.0), ValueError, "mlm_prob"),
        (dict(mlm_prob=float("nan")), ValueError, "mlm_prob"),
        (dict(vocab_size=0), ValueError, "vocab_size"),
        (dict(vocab_size=20.0), TypeError, "vocab_size"),
        (dict(mask_id=20), ValueError, "mask_id"),
        (dict(special_ids=4), TypeError, "special_ids"),
        (dict(special_ids=[0, 99]), ValueError, "special_ids"),
        (dict(special_ids=list(range(20))), ValueError, "special_ids"),
        (dict(token_probs=np.ones(19)), ValueError, "token_probs"),
        (dict(token_probs=-np.ones(20)), ValueError, "token_probs"),
        (dict(token_probs=np.ones(20, dtype=int)), TypeError, "token_probs"),
        (dict(split=(0.5, 0.1, 0.1)), ValueError, "split"),
    ]
    base = dict(input_ids=ids, attention_mask=am, rng=rng, vocab_size=20, mask_id=MASK,
                special_ids=SPECIAL)
    for change, exc, match in cases:
        with pytest.raises(exc, match=match):
            mask_tokens(**{**base, **change})
    with pytest.raises(TypeError, match="seed"):
        fixed_eval_mask(ids, am, "s", 20, MASK, SPECIAL)
