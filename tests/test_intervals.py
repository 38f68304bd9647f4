"""Standard errors and 95% intervals (train/intervals.py), checked against hand computations."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from minidistil.train import intervals
from minidistil.train.evaluate import cluster_masked, make_eval_set, predict
from minidistil.train.runs import EvalConfig

# three validation sequences: model A got 2/4, 1/2, 3/4 right; model B 1/4, 1/2, 2/4
CA, CB, M = [2, 1, 3], [1, 1, 2], [4, 2, 4]


def test_accuracy_se_by_hand():
    # a = 6/10; residuals c - a m = -0.4, -0.2, 0.6; squares sum 0.56; times n/(n-1) = 1.5 -> 0.84
    a, se = intervals.accuracy_se(CA, M)
    assert a == pytest.approx(0.6)
    assert se == pytest.approx(math.sqrt(0.84) / 10, rel=1e-12)  # 0.0916515...


def test_paired_difference_by_hand():
    # d = 1, 0, 1 -> diff 0.2; residuals d - 0.2 m = 0.2, -0.4, 0.2; squares 0.24; x 1.5 = 0.36
    d, se = intervals.paired_difference(CA, CB, M)
    assert d == pytest.approx(0.2)
    assert se == pytest.approx(0.6 / 10, rel=1e-12)
    lo, hi = intervals.ci95(d, se)
    assert (lo, hi) == pytest.approx((0.2 - 1.959964 * 0.06, 0.2 + 1.959964 * 0.06), rel=1e-6)


def test_retention_delta_method_by_hand():
    # student B over teacher A: r = 4/6; residuals 1 - 2r, 1 - r, 2 - 3r = -1/3, 1/3, 0
    # squares 2/9; x 1.5 = 1/3; se = sqrt(1/3) / 6
    r, se = intervals.retention(CB, CA)
    assert r == pytest.approx(2 / 3)
    assert se == pytest.approx(math.sqrt(1 / 3) / 6, rel=1e-12)  # 0.0962250...


def test_one_token_per_cluster_is_the_binomial_standard_error():
    rng = np.random.default_rng(0)
    c = (rng.random(500) < 0.3).astype(float)
    p = c.mean()
    _, se = intervals.accuracy_se(c, np.ones(500))
    assert se == pytest.approx(math.sqrt(p * (1 - p) / 499), rel=1e-12)


def test_seed_token_interval_by_hand():
    # deltas 1, 2, 3: mean 2, sample variance 1; se^2 = 1/3 + 0.5^2; t(2 dof) = 4.303
    out = intervals.seed_token_interval([1.0, 2.0, 3.0], 0.5)
    se = math.sqrt(1 / 3 + 0.25)
    assert out["mean"] == 2.0 and out["se"] == pytest.approx(se)
    assert out["ci95"] == pytest.approx([2 - 4.303 * se, 2 + 4.303 * se])
    assert intervals.verdict(out["ci95"]) == "not resolved"
    assert intervals.verdict([-3.0, -0.1]) == "the paper's sign, significant"
    assert intervals.verdict([0.2, 0.9]) == "opposite sign, significant"
    assert intervals.verdict([0.2, 0.9], expected_sign=+1) == "the paper's sign, significant"


def test_paired_ratio_by_hand():
    # ratios 2, 2e, 2/e: log-ratios log2 + (0, 1, -1), mean log 2, sd 1, se 1/sqrt(3); t(2 dof) 4.303
    out = intervals.paired_ratio([2.0, 2.0 * math.e, 2.0], [1.0, 1.0, math.e])
    se = 1 / math.sqrt(3)
    assert out["ratio"] == pytest.approx(2.0) and out["n"] == 3
    assert out["log_se"] == pytest.approx(se)
    assert out["ci95"] == pytest.approx([2.0 * math.exp(-4.303 * se), 2.0 * math.exp(4.303 * se)])
    # identical ratios: no spread, the interval is the point
    assert intervals.paired_ratio([3.0, 6.0], [1.0, 2.0])["ci95"] == pytest.approx([3.0, 3.0])


def test_paired_ratio_bad_input():
    with pytest.raises(ValueError, match="one length"):
        intervals.paired_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least 2 pairs"):
        intervals.paired_ratio([1.0], [1.0])
    with pytest.raises(ValueError, match="positive"):
        intervals.paired_ratio([1.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="positive"):
        intervals.paired_ratio([1.0, float("nan")], [1.0, 1.0])


def test_bad_input():
    with pytest.raises(ValueError, match="same length"):
        intervals.paired_difference([1, 2], [1], [2, 2])
    with pytest.raises(ValueError, match="at least 2"):
        intervals.accuracy_se([1], [2])
    with pytest.raises(ValueError, match="at least 2 seeds"):
        intervals.seed_token_interval([1.0], 0.1)


@pytest.fixture
def fake_model(monkeypatch):
    """A fake clock, and models whose forward on batch j advances it by cost + 0.1 j units."""
    from minidistil.train import evaluate as ev
    clock = [0.0]
    monkeypatch.setattr(ev.time, "perf_counter", lambda: clock[0])

    class Fake:
        def __init__(self, cost):
            self.cost = cost

        def forward(self, ids, attn, mlm_positions=None, keep_cache=False):
            clock[0] += self.cost + 0.1 * int(ids[0, 0])
    return Fake


def test_speedup_is_paired_per_batch_with_its_interval(fake_model):
    # the teacher's forward takes 2 + 0.1 j units on batch j, the student's 1 + 0.1 j
    from minidistil.train import evaluate as ev
    Fake = fake_model
    batches = [SimpleNamespace(input_ids=np.full((1, 1), j), attention_mask=None, positions=None)
               for j in range(4)]
    report = {"teacher": {}, "student": {}}
    ev._add_timing(report, Fake(2.0), Fake(1.0), batches, repeats=3)
    assert report["teacher"]["time_per_batch_s"] == pytest.approx(2.15)
    assert report["student"]["time_per_batch_s"] == pytest.approx(1.15)
    ratios = np.array([(2 + 0.1 * j) / (1 + 0.1 * j) for j in range(4)] * 3)
    g = float(np.exp(np.log(ratios).mean()))
    assert report["speedup"] == pytest.approx(g) and report["speedup_pairs"] == 12
    lo, hi = report["speedup_ci95"]
    assert lo < g < hi and lo > 1.6  # the ratios run from 2.0 down to 1.77
    line = ev._speedup_text(report)
    assert f"{g:.2f}x" in line and "95% CI" in line and "not resolved" not in line
    report["speedup_ci95"] = [1.55, 1.7]
    assert "not resolved from 1.6x" in ev._speedup_text(report)


def test_speedup_from_one_pair_or_a_coarse_clock_has_no_interval(fake_model):
    from minidistil.train import evaluate as ev
    Fake = fake_model
    one = [SimpleNamespace(input_ids=np.zeros((1, 1), int), attention_mask=None, positions=None)]
    report = {"teacher": {}, "student": {}}
    ev._add_timing(report, Fake(3.0), Fake(2.0), one, repeats=1)  # one pair: no interval
    assert report["speedup"] == pytest.approx(1.5) and "speedup_ci95" not in report
    report = {"teacher": {}, "student": {}}
    ev._add_timing(report, Fake(3.0), Fake(0.0), one * 2, repeats=2)  # the student reads 0 s
    assert "speedup_ci95" not in report  # no interval from zero times, and no exception


# ---------------------------------------------------------------- the multi-mask evaluation set

V = 30
TOK = SimpleNamespace(vocab_size=V, pad_id=0, mask_id=4, special_ids=[0, 1, 2, 3, 4])


def _seqs(n=11, seed=1):
    rng = np.random.default_rng(seed)
    return [np.array([2] + list(rng.integers(5, V, size=int(rng.integers(10, 20)))) + [3]) for _ in range(n)]


def test_eval_set_masks_are_fixed_and_tokens_know_their_sequence():
    seqs = _seqs()
    cfg = EvalConfig(batch_size=4, n_masks=3)
    one = make_eval_set(seqs, TOK, EvalConfig(batch_size=4, n_masks=1))
    three = make_eval_set(seqs, TOK, cfg)
    again = make_eval_set(seqs, TOK, cfg)
    assert three.n_seqs == len(seqs) and three.n_masks == 3
    first = [b for b in three if b.mask_index == 0]
    assert len(first) == len(one)
    for a, b in zip(first, one):  # mask 0 is the one-mask evaluation
        assert np.array_equal(a.input_ids, b.input_ids) and np.array_equal(a.seq, b.seq)
    for a, b in zip(three, again):
        assert np.array_equal(a.input_ids, b.input_ids)
    masks = {k: np.concatenate([b.input_ids.ravel() for b in three if b.mask_index == k]) for k in range(3)}
    assert not np.array_equal(masks[0], masks[1])  # different masks
    for b in three:  # the label of each masked token is a token of the sequence it names
        assert all(lab in seqs[j] for lab, j in zip(b.labels, b.seq))
    m = cluster_masked(three)
    assert m.sum() == sum(len(b.labels) for b in three) and m.shape == (len(seqs),)


def test_eval_set_masks_do_not_depend_on_the_batch_size():
    # the demo (batches of 64) and the teacher's build (batches of 32) must score the same tokens
    seqs = _seqs(n=13)
    sets = [make_eval_set(seqs, TOK, EvalConfig(batch_size=bs, n_masks=2)) for bs in (1, 4, 64)]

    def per_sequence(ev):  # (mask, sequence) -> (masked labels, their positions' inputs)
        got = {}
        for b in ev:
            rows = np.nonzero(b.positions)[0]
            for j in np.unique(b.seq):
                r = rows[b.seq == j][0]
                n = len(seqs[j])
                got[(b.mask_index, int(j))] = (b.input_ids[r, :n].tolist(), b.labels[b.seq == j].tolist())
        return got

    first = per_sequence(sets[0])
    assert len(first) > len(seqs)  # both masks, most sequences
    for ev in sets[1:]:
        assert per_sequence(ev) == first
        assert sum(len(b.labels) for b in ev) == sum(len(b.labels) for b in sets[0])


class _Oracle:
    """Predicts the right token at the first masked position of every batch row-major, else 5."""

    def __init__(self, seqs):
        self.seqs = seqs

    def forward(self, ids, attn, mlm_positions, keep_cache):
        P = int(mlm_positions.sum())
        logits = np.zeros((P, V), dtype=np.float32)  # (P, V)
        logits[:, 5] = 1.0
        return SimpleNamespace(logits=logits)


def test_predict_cluster_counts_add_up():
    seqs = _seqs()
    ev = make_eval_set(seqs, TOK, EvalConfig(batch_size=4, n_masks=2))
    res = predict(_Oracle(seqs), ev)
    labels = np.concatenate([b.labels for b in ev])
    assert res["cluster_correct"].sum() == (labels == 5).sum()
    assert res["accuracy"] == pytest.approx((labels == 5).mean())
    a, se = intervals.accuracy_se(res["cluster_correct"], cluster_masked(ev))
    assert a == pytest.approx(res["accuracy"]) and res["se"] == pytest.approx(se)
