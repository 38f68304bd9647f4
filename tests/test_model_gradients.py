"""Model-level finite-difference checks: every parameter tensor of the teacher and the student.

Objective: a random linear function of the model's outputs,
    f = sum(logits * R) + sum(hidden_states[L] * R_L) + sum(hidden_states[1] * R_1) (+ sum(pooled * R_p)),
so the exact gradient is ``model.backward(R, cache, dhidden={L: R_L, 1: R_1}, dpooled=R_p)``.
Central differences in float64 (h = 1e-5) on sampled entries of every tensor (all entries of
small ones). Bound: 1e-6 relative (minidistil.gradcheck.compare / rel_error), and entrywise
|exact - numerical| <= atol + 1e-6 |numerical| with atol = 5e-15 |f| / h, the float64 rounding
of the difference quotient (entries whose gradient is ~0 can only be held to that).

The same check then runs on the real objectives of minidistil.losses: the teacher's MLM loss and
the student's triple loss (each alpha set to 0 in turn, and Lce over masked positions only).
"""
import numpy as np
import pytest

from minidistil.gradcheck import compare, numerical_grad, sample_indices
from minidistil.losses import DistillLossConfig, distill_loss_backward, distill_loss_forward, mlm_backward, mlm_forward
from minidistil.models import Bert, BertConfig, DistilBert

TOL = 1e-6  # relative, whole model in float64
V, B, T = 30, 3, 6
N_SAMPLES = 6  # entries per large tensor (tensors with <= 2 * N_SAMPLES entries are checked fully)

# The key bias has an exactly zero gradient (it adds q.bk to a whole row of attention scores,
# which softmax ignores): relative error there is only finite-difference noise, so both the
# exact and the numerical value must instead be ~0 in absolute terms.
ZERO_GRAD_SUFFIXES = ("attention.self.key.bias", "attention.k_lin.bias")


def _batch(rng):
    ids = rng.integers(0, V, size=(B, T))  # (B, T)
    mask = np.ones((B, T), dtype=np.int64)  # (B, T)
    mask[1, 4:] = 0  # padding
    mask[2, 3:] = 0
    return ids, mask


def _perturb(model, rng, scale=10.0):
    """Non-trivial parameters: LayerNorm gains away from 1, biases away from 0, larger weights
    (std 0.02 * scale: the nonlinearities see more than their linear part). The losses get a
    smaller scale: a loss in the hundreds would put float64 rounding (1e-16 * |f| / h) near 1e-9."""
    for name, a in model.params.items():
        if a.ndim == 1:
            a += rng.normal(0, 0.2, a.shape)
        else:
            a *= scale


def _indices(name, a, g, rng, T_used, n_samples=N_SAMPLES):
    """Entries of parameter ``a`` to difference: all of a small tensor, else ``n_samples`` random
    ones plus the entry of largest exact gradient ``g``, so that rel_error's floor (1e-3 of the
    largest compared magnitude) follows the tensor's scale, not that of a few tiny samples."""
    if "position_embeddings" in name:
        a, g = a[:T_used], g[:T_used]  # rows >= T are unused by this batch (their gradient is exactly 0)
    if a.size <= 2 * n_samples:
        return list(np.ndindex(*a.shape))
    idx = sample_indices(a.shape, n_samples, rng)
    top = tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(g)), g.shape))
    return idx if top in idx else idx + [top]


def _fd_check_all(model, f, grads, rng, T_used, h=1e-5, richardson=False, n_samples=N_SAMPLES):
    """Central differences of the scalar ``f()`` against ``grads`` for every parameter tensor."""
    assert list(grads) == list(model.params)  # every parameter, same order
    atol = 5e-15 * max(1.0, abs(f())) / h  # float64 rounding of (f(x+h) - f(x-h)) / 2h
    pairs, masks, zero = {}, {}, {}
    for name, p in model.params.items():
        idx = _indices(name, p, grads[name], rng, T_used, n_samples)
        num = richardson_grad(f, p, h, idx) if richardson else numerical_grad(f, p, h=h, indices=idx)
        if name.endswith(ZERO_GRAD_SUFFIXES):
            zero[name] = (grads[name], num)
            continue
        pairs[name] = (grads[name], num)
        masks[name] = idx
    verdict = compare(pairs, tol=TOL, atol=atol, mask=masks, verbose=True)
    assert verdict, verdict.failed()
    for name, (mine, num) in zero.items():
        assert np.max(np.abs(mine)) < 1e-10 and np.max(np.abs(num)) < 1e-7, name


def _check_model(model, rng, fwd_kwargs, use_pooled, hidden_mid=1):
    L = model.config.num_hidden_layers
    out = model.forward(**fwd_kwargs)
    R = rng.standard_normal(out.logits.shape)  # random upstream gradients
    R_last = rng.standard_normal(out.hidden_states[L].shape)
    R_mid = rng.standard_normal(out.hidden_states[hidden_mid].shape)
    R_pool = rng.standard_normal(out.pooled.shape) if use_pooled else None

    def f():
        o = model.forward(**fwd_kwargs, keep_cache=False)
        val = np.sum(o.logits * R) + np.sum(o.hidden_states[L] * R_last) + np.sum(o.hidden_states[hidden_mid] * R_mid)
        if use_pooled:
            val += np.sum(o.pooled * R_pool)
        return float(val)

    grads = model.backward(R, out.cache, dhidden={L: R_last, hidden_mid: R_mid}, dpooled=R_pool)
    _fd_check_all(model, f, grads, rng, fwd_kwargs["input_ids"].shape[1])


def test_teacher_all_parameters_full_logits_with_token_types_and_pooler():
    rng = np.random.default_rng(0)
    model = Bert(BertConfig.tiny(vocab_size=V), np.float64, seed=0)
    _perturb(model, rng)
    ids, mask = _batch(rng)
    tt = np.zeros_like(ids)
    tt[:, 3:] = 1
    _check_model(model, rng, dict(input_ids=ids, attention_mask=mask, token_type_ids=tt), use_pooled=True)


def test_teacher_all_parameters_mlm_positions():
    rng = np.random.default_rng(1)
    model = Bert(BertConfig.tiny(vocab_size=V), np.float64, seed=1)
    _perturb(model, rng)
    ids, mask = _batch(rng)
    pos = (rng.random(ids.shape) < 0.4) & mask.astype(bool)  # (B, T)
    pos[0, 0] = True
    _check_model(model, rng, dict(input_ids=ids, attention_mask=mask, mlm_positions=pos), use_pooled=False)


def test_student_all_parameters_mlm_positions():
    rng = np.random.default_rng(2)
    teacher = Bert(BertConfig.tiny(vocab_size=V, num_hidden_layers=4), np.float64, seed=2)
    _perturb(teacher, rng)
    model = DistilBert.from_teacher(teacher)
    ids, mask = _batch(rng)
    pos = mask.astype(bool)  # the distillation default: every real token
    _check_model(model, rng, dict(input_ids=ids, attention_mask=mask, mlm_positions=pos), use_pooled=False,
                 hidden_mid=0)


def test_unused_parts_get_zero_gradients():
    rng = np.random.default_rng(3)
    model = Bert(BertConfig.tiny(vocab_size=V), np.float64, seed=3)
    ids, mask = _batch(rng)
    out = model.forward(ids, mask)
    g = model.backward(rng.standard_normal(out.logits.shape), out.cache)  # no dpooled
    assert np.all(g["bert.pooler.dense.weight"] == 0) and np.all(g["bert.pooler.dense.bias"] == 0)
    assert np.any(g["cls.predictions.bias"] != 0)
    g = model.backward(None, out.cache, dhidden={2: rng.standard_normal(out.hidden_states[2].shape)})
    assert np.all(g["cls.predictions.bias"] == 0) and np.all(g["cls.predictions.transform.dense.weight"] == 0)
    assert np.any(g["bert.encoder.layer.1.output.dense.weight"] != 0)
    # only the head's positions 0..T-1 of the position table are used
    assert np.all(g["bert.embeddings.position_embeddings.weight"][T:] == 0)


def test_tied_word_embedding_gradient_is_lookup_plus_decoder():
    """With dlogits only at masked positions, rows of ids never seen still get the decoder's gradient."""
    rng = np.random.default_rng(4)
    model = DistilBert(BertConfig.tiny(vocab_size=V), np.float64, seed=4)
    ids, mask = _batch(rng)
    ids = ids % 10  # ids 10.. never looked up
    pos = mask.astype(bool)
    out = model.forward(ids, mask, mlm_positions=pos)
    R = rng.standard_normal(out.logits.shape)
    g = model.backward(R, out.cache)
    t = out.cache.head_cache.decoder_cache.x  # (P, C) input of the decoder
    np.testing.assert_allclose(g["distilbert.embeddings.word_embeddings.weight"][10:], (R.T @ t)[10:], rtol=1e-12)


def test_backward_does_not_mutate_inputs():
    rng = np.random.default_rng(5)
    model = Bert(BertConfig.tiny(vocab_size=V), np.float64, seed=5)
    ids, mask = _batch(rng)
    out = model.forward(ids, mask)
    R = rng.standard_normal(out.logits.shape)
    dh = {2: rng.standard_normal(out.hidden_states[2].shape)}
    R0, dh0 = R.copy(), dh[2].copy()
    hs0 = [h.copy() for h in out.hidden_states]
    g1 = model.backward(R, out.cache, dhidden=dh)
    g2 = model.backward(R, out.cache, dhidden=dh)
    np.testing.assert_array_equal(R, R0)
    np.testing.assert_array_equal(dh[2], dh0)
    for a, b in zip(out.hidden_states, hs0):
        np.testing.assert_array_equal(a, b)
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k])


@pytest.mark.parametrize("cls", [Bert, DistilBert])
def test_float32_gradients_stay_float32_and_agree(cls):
    rng = np.random.default_rng(6)
    c = BertConfig.tiny(vocab_size=V)
    m64 = cls(c, np.float64, seed=6)
    m32 = cls(c, np.float32, seed=6)
    m32.load_state_dict(m64.state_dict())
    ids, mask = _batch(rng)
    o64, o32 = m64.forward(ids, mask), m32.forward(ids, mask)
    R = rng.standard_normal(o64.logits.shape)
    g64 = m64.backward(R, o64.cache)
    g32 = m32.backward(R.astype(np.float32), o32.cache)
    for k in g64:
        assert g32[k].dtype == np.float32
        np.testing.assert_allclose(g32[k], g64[k], rtol=2e-3, atol=2e-4 * np.abs(g64[k]).max() + 1e-6)


# ---------------------------------------------------------------- the real objectives (minidistil.losses)

# The losses are O(1-10) and some of their parameter gradients are small (1e-5), so the float64
# rounding of a plain central difference, about 1e-15 * |f| / h, is not far below 1e-6 of them
# (measured: worst entries at 4e-7 - 9e-7 for h between 1e-4 and 5e-4). For the losses we take a
# larger h and cancel the h^2 truncation term by Richardson extrapolation of two central
# differences, (4 D(h) - D(2h)) / 3, whose error is O(h^4): worst entries then about 1e-7.
LOSS_H = 1e-3
LOSS_SAMPLES = 3  # entries per large tensor: Richardson costs 4 evaluations per entry


def richardson_grad(f, x, h, indices):
    """Central differences at h and 2h combined to cancel the O(h^2) error term."""
    d1 = numerical_grad(f, x, h=h, indices=indices)
    d2 = numerical_grad(f, x, h=2 * h, indices=indices)
    return (4.0 * d1 - d2) / 3.0


def _labels(rng, ids, mask):
    """MLM labels (B, T): the original id at ~40% of the real positions (at least one), -100 elsewhere."""
    chosen = (rng.random(ids.shape) < 0.4) & mask.astype(bool)  # (B, T)
    chosen[0, 1] = True
    return np.where(chosen, ids, -100)  # (B, T)


def test_teacher_mlm_loss_all_parameters():
    rng = np.random.default_rng(10)
    model = Bert(BertConfig.tiny(vocab_size=V), np.float64, seed=10)
    _perturb(model, rng, scale=5.0)
    ids, mask = _batch(rng)
    labels = _labels(rng, ids, mask)
    pos = labels != -100  # (B, T) the head runs only where there is a label

    def f():
        o = model.forward(ids, mask, mlm_positions=pos, keep_cache=False)
        return mlm_forward(o.logits, labels[pos])[0]

    out = model.forward(ids, mask, mlm_positions=pos)
    loss, cache = mlm_forward(out.logits, labels[pos])
    grads = model.backward(mlm_backward(1.0, cache), out.cache)
    _fd_check_all(model, f, grads, rng, T, h=LOSS_H, richardson=True, n_samples=LOSS_SAMPLES)


@pytest.mark.parametrize("cfg", [
    DistillLossConfig(),
    DistillLossConfig(alpha_ce=0.0),
    DistillLossConfig(alpha_mlm=0.0),
    DistillLossConfig(alpha_cos=0.0),
    DistillLossConfig(ce_positions="masked"),
], ids=["triple", "no_ce", "no_mlm", "no_cos", "ce_masked_only"])
def test_student_triple_loss_all_parameters(cfg):
    rng = np.random.default_rng(11)
    teacher = Bert(BertConfig.tiny(vocab_size=V, num_hidden_layers=4), np.float64, seed=11)
    _perturb(teacher, rng, scale=5.0)
    student = DistilBert.from_teacher(teacher)
    _perturb(student, rng, scale=1.0)  # new biases and gains: differ from the teacher, no term at its minimum
    ids, mask = _batch(rng)
    labels = _labels(rng, ids, mask)
    pos = mask.astype(bool)  # logits at every real token (Lce "all" needs them)
    t_out = teacher.forward(ids, mask, mlm_positions=pos, keep_cache=False)  # constants for the student
    t_logits, t_hidden = t_out.logits, t_out.hidden_states[-1]
    L = student.config.num_hidden_layers

    def f():
        o = student.forward(ids, mask, mlm_positions=pos, keep_cache=False)
        return distill_loss_forward(o.logits, t_logits, labels, o.hidden_states[-1], t_hidden, mask, cfg, pos)[0]

    out = student.forward(ids, mask, mlm_positions=pos)
    total, parts, cache = distill_loss_forward(out.logits, t_logits, labels, out.hidden_states[-1], t_hidden,
                                               mask, cfg, pos)
    for name, alpha in (("loss_ce", cfg.alpha_ce), ("loss_mlm", cfg.alpha_mlm), ("loss_cos", cfg.alpha_cos)):
        assert (parts[name] > 0) == (alpha > 0), (name, parts)  # every active term contributes
    ds_logits, ds_hidden = distill_loss_backward(1.0, cache)
    grads = student.backward(ds_logits, out.cache, dhidden={L: ds_hidden})
    _fd_check_all(student, f, grads, rng, T, h=LOSS_H, richardson=True, n_samples=LOSS_SAMPLES)
