"""Sequence-classification heads, dropout and the task losses: finite differences in float64.

Objective per check: the real task loss (cross-entropy, or MSE for num_labels = 1) of the head's
logits plus a random linear function of the last hidden state, sum(h_L * R), so the exact
gradient is ``model.backward(dloss_dlogits, cache, dhidden={L: R})``; this also proves the input
gradient of the head (the gradient it sends into h_L) end to end. Central differences (h = 1e-5)
on sampled entries of every parameter tensor, bound 1e-6 relative (gradcheck.compare).
Dropout runs in training mode with a fixed seed: the same mask in every difference quotient.
"""
import numpy as np
import pytest

from minidistil.gradcheck import compare, numerical_grad, sample_indices
from minidistil.layers.dropout import dropout_backward, dropout_forward
from minidistil.models import Bert, BertConfig, DistilBert
from minidistil.models.heads import (BertForSequenceClassification, DistilBertForSequenceClassification,
                                     HeadConfig, classifier_for)
from minidistil.task_losses import (cross_entropy_backward, cross_entropy_forward, mse_backward, mse_forward,
                                    task_loss_backward, task_loss_forward)

V, B, T = 30, 4, 6
TOL = 1e-6
ZERO_GRAD_SUFFIXES = ("attention.self.key.bias", "attention.k_lin.bias")  # softmax ignores them


def _batch(rng):
    ids = rng.integers(0, V, size=(B, T))  # (B, T)
    mask = np.ones((B, T), dtype=np.int64)  # (B, T)
    mask[1, 4:] = 0
    mask[3, 2:] = 0
    return ids, mask


def _perturb(model, rng):
    for a in model.params.values():
        if a.ndim == 1:
            a += rng.normal(0, 0.2, a.shape)
        else:
            a *= 10.0


def _labels(rng, K):
    return rng.normal(0, 1.5, B) if K == 1 else rng.integers(0, K, B)


@pytest.mark.parametrize("cls", [BertForSequenceClassification, DistilBertForSequenceClassification])
@pytest.mark.parametrize("K", [3, 1])
def test_every_parameter_and_the_input_gradient(cls, K):
    rng = np.random.default_rng(10 + K)
    model = cls(BertConfig.tiny(vocab_size=V), num_labels=K, dtype=np.float64, seed=3,
                classifier_dropout=0.3, seq_classif_dropout=0.3)
    _perturb(model, rng)
    ids, mask = _batch(rng)
    kw = dict(attention_mask=mask, training=True)
    if cls is BertForSequenceClassification:
        kw["token_type_ids"] = (np.arange(T)[None, :] >= 3).astype(np.int64).repeat(B, 0)  # (B, T)
    labels = _labels(rng, K)
    L = model.config.num_hidden_layers
    R = rng.standard_normal((B, T, model.config.hidden_size))  # (B, T, C)

    def f():
        o = model.forward(ids, rng=5, keep_cache=False, **kw)
        return task_loss_forward(o.logits, labels, model.head.problem_type)[0] + float(np.sum(o.hidden_states[L] * R))

    out = model.forward(ids, rng=5, **kw)
    loss, lc = task_loss_forward(out.logits, labels, model.head.problem_type)
    grads = model.backward(task_loss_backward(1.0, lc), out.cache, dhidden={L: R})
    assert list(grads) == list(model.params)
    assert "classifier.weight" in grads and not any("predictions" in k or "vocab_" in k for k in grads)
    atol = 5e-15 * max(1.0, abs(f())) / 1e-5
    pairs, masks = {}, {}
    for name, p in model.params.items():
        a = p[:T] if "position_embeddings" in name else p
        idx = list(np.ndindex(*a.shape)) if a.size <= 12 else sample_indices(a.shape, 6, rng)
        num = numerical_grad(f, p, indices=idx)
        if name.endswith(ZERO_GRAD_SUFFIXES):
            assert np.max(np.abs(grads[name])) < 1e-9 and np.max(np.abs(num)) < 1e-6, name
            continue
        pairs[name], masks[name] = (grads[name], num), idx
    verdict = compare(pairs, tol=TOL, atol=atol, mask=masks, verbose=True)
    assert verdict, verdict.failed()


def test_heads_have_hugging_face_names_and_no_mlm_head():
    cfg = BertConfig.tiny(vocab_size=V)
    t = BertForSequenceClassification(cfg, num_labels=2)
    s = DistilBertForSequenceClassification(cfg, num_labels=2)
    assert {"bert.pooler.dense.weight", "classifier.weight", "classifier.bias"} <= set(t.params)
    assert {"pre_classifier.weight", "pre_classifier.bias", "classifier.weight"} <= set(s.params)
    assert not any(k.startswith("cls.") for k in t.params) and "vocab_projector.bias" not in s.params
    assert t.params["classifier.weight"].shape == (2, cfg.hidden_size)
    assert BertForSequenceClassification(cfg, num_labels=1).head.problem_type == "regression"


def test_from_encoder_copies_and_eval_is_deterministic():
    rng = np.random.default_rng(0)
    bert = Bert(BertConfig.tiny(vocab_size=V), np.float64, seed=4)
    model = classifier_for(bert, num_labels=2)
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert np.array_equal(model.params[key], bert.params[key])
    model.params[key] += 1.0
    assert not np.array_equal(model.params[key], bert.params[key])  # a copy, not the teacher's array
    ids, mask = _batch(rng)
    a = model.forward(ids, mask).logits
    assert np.array_equal(a, model.forward(ids, mask).logits)  # eval: no dropout
    tr1 = model.forward(ids, mask, training=True, rng=1).logits
    assert np.array_equal(tr1, model.forward(ids, mask, training=True, rng=1).logits)  # seeded mask
    assert not np.allclose(tr1, model.forward(ids, mask, training=True, rng=2).logits)
    assert isinstance(classifier_for(DistilBert.from_teacher(bert), num_labels=3),
                      DistilBertForSequenceClassification)


def test_dropout_forward_backward_and_modes():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 40))  # (N, C)
    y, c = dropout_forward(x, 0.25, rng=3)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.03
    assert np.allclose(y[kept], x[kept] / 0.75)
    dy = rng.standard_normal(x.shape)
    num = numerical_grad(lambda: float(np.sum(dropout_forward(x, 0.25, rng=3)[0] * dy)), x,
                         indices=sample_indices(x.shape, 20, rng))
    dx = dropout_backward(dy, c)
    assert np.allclose(dx, dy * (y != 0) / 0.75)
    sampled = num != 0  # the differenced entries that dropout kept
    assert sampled.sum() >= 5 and np.allclose(num[sampled], dx[sampled], rtol=1e-7, atol=1e-10)
    ye, ce = dropout_forward(x, 0.25, training=False)
    assert np.array_equal(ye, x) and np.array_equal(dropout_backward(dy, ce), dy)
    with pytest.raises(ValueError, match="needs rng"):
        dropout_forward(x, 0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        dropout_forward(x, 1.0, rng=0)


def test_losses_gradients_and_bad_labels():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((5, 3))  # (B, K)
    labels = rng.integers(0, 3, 5)
    loss, c = cross_entropy_forward(logits, labels)
    num = numerical_grad(lambda: cross_entropy_forward(logits, labels)[0], logits)
    assert compare({"dlogits": (cross_entropy_backward(1.0, c), num)}, verbose=False)
    y = rng.standard_normal(5)
    reg = rng.standard_normal((5, 1))
    _, c = mse_forward(reg, y)
    num = numerical_grad(lambda: mse_forward(reg, y)[0], reg)
    assert compare({"dreg": (mse_backward(1.0, c), num)}, verbose=False)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\), found 3"):
        cross_entropy_forward(logits, np.array([0, 1, 2, 3, 0]))
    with pytest.raises(ValueError, match="found -1"):
        cross_entropy_forward(logits, np.array([0, 1, 2, -1, 0]))
    with pytest.raises(TypeError, match="integer dtype"):
        cross_entropy_forward(logits, np.zeros(5))
    with pytest.raises(ValueError, match="num_labels == 1"):
        HeadConfig(num_labels=3, problem_type="regression")
    with pytest.raises(ValueError, match="num_labels"):
        HeadConfig(num_labels=0)


def test_load_state_dict_names_a_num_labels_mismatch():
    cfg = BertConfig.tiny(vocab_size=V)
    three = DistilBertForSequenceClassification(cfg, num_labels=3).state_dict()
    with pytest.raises(ValueError, match="3 labels, this model num_labels=2"):
        DistilBertForSequenceClassification(cfg, num_labels=2).load_state_dict(three)
