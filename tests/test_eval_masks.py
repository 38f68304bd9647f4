"""The evaluation masks come in rounds that cover every token (minidistil/train/eval_masks.py)."""
import numpy as np
import pytest

from minidistil.masking import IGNORE_INDEX
from minidistil.train.eval_masks import cover_mask, masks_per_round

V, MASK, SPECIAL = 30, 4, (0, 1, 2, 3, 4)


def _group(seed=0, G=5):
    rng = np.random.default_rng(seed)
    lens = rng.integers(6, 15, size=G)
    T = int(lens.max())
    ids = np.zeros((G, T), dtype=np.int64)  # (G, T) padded with 0
    attn = np.zeros((G, T), dtype=np.int64)  # (G, T)
    for g, n in enumerate(lens):
        ids[g, :n] = [2] + list(rng.integers(5, V, size=n - 2)) + [3]
        attn[g, :n] = 1
    return ids, attn


def test_masks_per_round():
    # 15% of a 32-sequence group (about 1,700 tokens): 7; of 23 tokens (3 per mask): 8
    assert masks_per_round(1700, 255) == 7 and masks_per_round(23, 3) == 8 and masks_per_round(20, 4) == 5


def test_a_round_masks_every_token_and_each_mask_the_training_count():
    ids, attn = _group()
    eligible = attn.astype(bool) & (ids >= 5)  # (G, T)
    n = int(eligible.sum())
    c = int(np.floor(0.15 * n + 0.5))
    R = masks_per_round(n, c)
    for r in range(2):
        hits = np.zeros(ids.shape, dtype=np.int64)  # (G, T) times each token was masked
        for k in range(r * R, (r + 1) * R):
            masked, labels = cover_mask(ids, attn, 1234, k, 0, V, MASK, SPECIAL)
            chosen = labels != IGNORE_INDEX  # (G, T)
            assert chosen.sum() == c and not (chosen & ~eligible).any()
            assert np.array_equal(labels[chosen], ids[chosen])
            assert np.array_equal(masked[~chosen], ids[~chosen])  # nothing else is touched
            hits += chosen
        assert hits[eligible].min() == 1 and hits.sum() == R * c  # every token, some twice
        assert (hits[eligible] == 2).sum() == R * c - n


def test_fixed_and_different_between_masks_and_groups():
    ids, attn = _group()
    a = cover_mask(ids, attn, 1234, 3, 0, V, MASK, SPECIAL)
    b = cover_mask(ids, attn, 1234, 3, 0, V, MASK, SPECIAL)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    for other in (cover_mask(ids, attn, 1234, 4, 0, V, MASK, SPECIAL),
                  cover_mask(ids, attn, 1234, 3, 1, V, MASK, SPECIAL),
                  cover_mask(ids, attn, 99, 3, 0, V, MASK, SPECIAL)):
        assert not np.array_equal(a[1], other[1])


def test_80_10_10_split_over_many_masks():
    ids, attn = _group(seed=3, G=32)
    kinds = np.zeros(3)
    for k in range(14):
        masked, labels = cover_mask(ids, attn, 7, k, 0, V, MASK, SPECIAL)
        chosen = labels != IGNORE_INDEX
        kinds += [(masked[chosen] == MASK).sum(), ((masked[chosen] != MASK) & (masked[chosen] != ids[chosen])).sum(),
                  (masked[chosen] == ids[chosen]).sum()]
    share = kinds / kinds.sum()
    # random replacements equal to the original (1 in 25) count as kept
    assert abs(share[0] - 0.8) < 0.04 and abs(share[1] - 0.096) < 0.03 and abs(share[2] - 0.104) < 0.03


def test_nothing_to_mask_and_bad_prob():
    ids = np.array([[2, 3, 0]])  # (1, 3) only specials
    attn = np.array([[1, 1, 0]])
    masked, labels = cover_mask(ids, attn, 0, 0, 0, V, MASK, SPECIAL)
    assert (labels == IGNORE_INDEX).all() and np.array_equal(masked, ids)
    with pytest.raises(ValueError, match="mlm_prob"):
        cover_mask(ids, attn, 0, 0, 0, V, MASK, SPECIAL, mlm_prob=1.0)
