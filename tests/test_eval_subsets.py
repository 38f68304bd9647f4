"""Scoring controls on the first masks only (train/eval_subsets.py) and its use in the report."""
from types import SimpleNamespace

import numpy as np
import pytest

from minidistil.train.eval_subsets import first_masks, merge, predict_nested
from minidistil.train.evaluate import cluster_masked, compare, evaluate_models, make_eval_set, predict, retention_of
from minidistil.train.runs import EvalConfig

V = 30
TOK = SimpleNamespace(vocab_size=V, pad_id=0, mask_id=4, special_ids=[0, 1, 2, 3, 4])


def _seqs(n=13, seed=3):
    rng = np.random.default_rng(seed)
    return [np.array([2] + list(rng.integers(5, V, size=int(rng.integers(8, 20)))) + [3]) for _ in range(n)]


class _LeftNeighbour:
    """Predicts (the token left of each masked position + shift) mod V: right now and then,
    differently for each shift, and from the input only (so it is a function of the mask)."""

    def __init__(self, shift, layers=3):
        self.shift = shift
        self.config = SimpleNamespace(num_hidden_layers=layers)

    def num_parameters(self):
        return 1000 * self.config.num_hidden_layers

    def forward(self, ids, attn, mlm_positions, keep_cache):
        r, c = np.nonzero(mlm_positions)  # (P,) each
        guess = (ids[r, np.maximum(c - 1, 0)] + self.shift) % V  # (P,)
        logits = np.zeros((len(r), V), dtype=np.float32)  # (P, V)
        logits[np.arange(len(r)), guess] = 3.0
        logits[:, 7] += 1.0  # a fallback guess, so that every model is right on some tokens
        return SimpleNamespace(logits=logits)


def _same(a, b):
    assert a["n_masked"] == b["n_masked"]
    assert np.array_equal(a["cluster_correct"], b["cluster_correct"])
    assert np.array_equal(a["preds"], b["preds"])
    for key in ("accuracy", "se", "mlm_loss", "perplexity"):
        assert a[key] == pytest.approx(b[key], rel=1e-12), key


def test_the_first_k_masks_are_the_k_mask_evaluation():
    seqs = _seqs()
    six = make_eval_set(seqs, TOK, EvalConfig(batch_size=4, n_masks=6))
    two = make_eval_set(seqs, TOK, EvalConfig(batch_size=4, n_masks=2))
    head, tail = first_masks(six, 2)
    assert head.n_masks == 2 and tail.n_masks == 4 and head.n_seqs == tail.n_seqs == len(seqs)
    assert len(head) == len(two) and len(head) + len(tail) == len(six)
    for a, b in zip(head, two):
        assert np.array_equal(a.input_ids, b.input_ids) and np.array_equal(a.labels, b.labels)
    assert np.array_equal(cluster_masked(head) + cluster_masked(tail), cluster_masked(six))


def test_nested_prediction_equals_two_separate_evaluations():
    seqs = _seqs()
    six = make_eval_set(seqs, TOK, EvalConfig(batch_size=4, n_masks=6))
    two = make_eval_set(seqs, TOK, EvalConfig(batch_size=4, n_masks=2))
    model = _LeftNeighbour(shift=0)
    full, head = predict_nested(model, six, 2)
    _same(full, predict(model, six))
    _same(head, predict(model, two))
    assert 0 < full["accuracy"] < 1
    whole, same = predict_nested(model, six, 6)  # k = every mask: nothing left to merge
    _same(whole, predict(model, six))
    assert same is whole


def test_merge_of_disjoint_halves_by_hand():
    a = {"n_masked": 4, "cluster_correct": np.array([1.0, 2.0]), "mlm_loss": 1.0, "preds": np.array([1, 2, 3, 4])}
    b = {"n_masked": 6, "cluster_correct": np.array([3.0, 0.0]), "mlm_loss": 2.0, "preds": np.arange(6)}
    m = merge(a, b, np.array([5, 5]))
    assert m["accuracy"] == pytest.approx(0.6) and m["mlm_loss"] == pytest.approx(1.6)
    assert m["n_masked"] == 10 and m["preds"].tolist() == [1, 2, 3, 4, 0, 1, 2, 3, 4, 5]


def test_bad_k_is_refused():
    six = make_eval_set(_seqs(), TOK, EvalConfig(batch_size=4, n_masks=6))
    for k in (0, 7):
        with pytest.raises(ValueError, match="k must be in 1..6"):
            first_masks(six, k)


def _diff(row):
    return row["diff"], row["se"]


def test_report_scores_coarse_controls_on_the_same_first_masks():
    seqs = _seqs(n=17)
    data = SimpleNamespace(val=seqs, tokenizer=TOK, counts=np.arange(V, dtype=np.int64))
    teacher, student = _LeftNeighbour(0, layers=6), _LeftNeighbour(1)
    controls = {"fine": _LeftNeighbour(2), "coarse": _LeftNeighbour(3)}
    cfg = EvalConfig(batch_size=4, n_masks=6, control_masks=2)
    rep = evaluate_models(teacher, student, data, cfg, timing=False, controls=controls, gain_against="fine")
    six = make_eval_set(seqs, TOK, cfg)
    two = make_eval_set(seqs, TOK, EvalConfig(batch_size=4, n_masks=2))
    t6, s6, t2, s2 = predict(teacher, six), predict(student, six), predict(teacher, two), predict(student, two)
    assert rep["control_masks"] == {"n_masks": 2, "n_masked": t2["n_masked"], "controls": ["coarse"]}
    assert rep["n_masked"] == t6["n_masked"] and rep["student"]["accuracy"] == pytest.approx(s6["accuracy"])
    fine, coarse = rep["controls"]["fine"], rep["controls"]["coarse"]
    f6, c2 = predict(controls["fine"], six), predict(controls["coarse"], two)
    assert fine["n_masked"] == t6["n_masked"] and coarse["n_masked"] == t2["n_masked"] < t6["n_masked"]
    assert _diff(fine["student_minus_this"]) == pytest.approx(_diff(compare(s6, f6, cluster_masked(six))))
    assert rep["gain"]["diff"] == pytest.approx(fine["student_minus_this"]["diff"])
    assert _diff(coarse["student_minus_this"]) == pytest.approx(_diff(compare(s2, c2, cluster_masked(two))))
    assert coarse["retention"]["value"] == pytest.approx(retention_of(c2, t2)["value"])
    # without control_masks every control is scored on every mask
    plain = evaluate_models(teacher, student, data, EvalConfig(batch_size=4, n_masks=6), timing=False,
                            controls=controls, gain_against="fine")
    assert "control_masks" not in plain and plain["controls"]["coarse"]["n_masked"] == t6["n_masked"]
