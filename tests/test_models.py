"""Models: config, parameter counts, names, init, forward shapes, from_teacher, state dicts, bad input."""
import dataclasses

import numpy as np
import pytest

from minidistil.layers import block_forward, layernorm_layer_forward
from minidistil.models import Bert, BertConfig, DistilBert, count_parameters

V = 40


def _batch(rng, B=3, T=6, V=V):
    ids = rng.integers(0, V, size=(B, T))  # (B, T)
    mask = np.ones((B, T), dtype=np.int64)  # (B, T)
    mask[1, 4:] = 0
    mask[2, 2:] = 0
    return ids, mask


# ---------------------------------------------------------------- config

def test_config_defaults_are_bert_base_and_presets():
    c = BertConfig()
    assert (c.vocab_size, c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size,
            c.max_position_embeddings, c.type_vocab_size, c.layer_norm_eps, c.hidden_act,
            c.initializer_range) == (30522, 768, 12, 12, 3072, 512, 2, 1e-12, "gelu", 0.02)
    d = BertConfig.demo(vocab_size=1000)
    assert (d.vocab_size, d.hidden_size, d.num_attention_heads, d.intermediate_size, d.num_hidden_layers,
            d.max_position_embeddings) == (1000, 128, 4, 512, 6, 128)
    assert BertConfig.tiny(vocab_size=77).vocab_size == 77


def test_config_roundtrip_and_unknown_fields():
    c = BertConfig.tiny(vocab_size=50, num_hidden_layers=3)
    assert BertConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown fields.*model_type"):
        BertConfig.from_dict({**c.to_dict(), "model_type": "bert"})
    assert BertConfig.from_dict({**c.to_dict(), "model_type": "bert"}, strict=False) == c


@pytest.mark.parametrize("change, match", [
    (dict(hidden_size=10, num_attention_heads=3), "divisible"),
    (dict(num_hidden_layers=0), "num_hidden_layers"),
    (dict(vocab_size=-5), "vocab_size"),
    (dict(hidden_act="swish"), "hidden_act"),
    (dict(layer_norm_eps=0.0), "layer_norm_eps"),
])
def test_config_validation(change, match):
    with pytest.raises(ValueError, match=match):
        BertConfig.tiny(**change)


def test_config_type_validation():
    with pytest.raises(TypeError, match="hidden_size"):
        BertConfig.tiny(hidden_size=16.0)


# ---------------------------------------------------------------- parameters

def test_parameter_counts_reproduce_reference():
    base = BertConfig()
    assert count_parameters(base, "bert_model") == 109_482_240
    assert count_parameters(base, "bert_mlm") == 109_514_298
    six = dataclasses.replace(base, num_hidden_layers=6)
    assert count_parameters(six, "distilbert_model") == 66_362_880
    assert count_parameters(six, "distilbert_mlm") == 66_985_530
    with pytest.raises(ValueError, match="kind"):
        count_parameters(base, "gpt2")


def test_num_parameters_matches_count_and_names():
    c = BertConfig.tiny(vocab_size=V)
    t = Bert(c, np.float64)
    s = DistilBert(c, np.float64)
    assert t.num_parameters() == count_parameters(c, "bert")
    assert s.num_parameters() == count_parameters(c, "distilbert_mlm")
    assert "bert.encoder.layer.1.attention.output.LayerNorm.weight" in t.params
    assert "bert.pooler.dense.bias" in t.params and "cls.predictions.bias" in t.params
    assert "cls.predictions.decoder.weight" not in t.params  # tied
    assert "distilbert.transformer.layer.1.ffn.lin2.weight" in s.params
    assert "vocab_projector.bias" in s.params and "vocab_projector.weight" not in s.params
    assert not any("token_type" in k or "pooler" in k for k in s.params)
    assert t.params["bert.encoder.layer.0.intermediate.dense.weight"].shape == (c.intermediate_size, c.hidden_size)


def test_init_statistics_and_dtype():
    c = BertConfig.tiny(vocab_size=500, hidden_size=32)
    t = Bert(c, np.float32, seed=3)
    assert all(a.dtype == np.float32 for a in t.params.values())
    w = t.params["bert.embeddings.word_embeddings.weight"]
    assert abs(w.std() - 0.02) < 0.002 and abs(w.mean()) < 0.002
    assert np.all(t.params["bert.embeddings.LayerNorm.weight"] == 1)
    assert np.all(t.params["cls.predictions.bias"] == 0)
    assert np.all(t.params["bert.encoder.layer.0.attention.self.query.bias"] == 0)
    t2 = Bert(c, np.float32, seed=3)
    assert np.array_equal(w, t2.params["bert.embeddings.word_embeddings.weight"])
    assert not np.array_equal(w, Bert(c, np.float32, seed=4).params["bert.embeddings.word_embeddings.weight"])
    with pytest.raises(TypeError, match="dtype"):
        Bert(c, np.float16)
    with pytest.raises(TypeError, match="config"):
        Bert({"vocab_size": 10})


# ---------------------------------------------------------------- forward

@pytest.mark.parametrize("cls", [Bert, DistilBert])
def test_forward_shapes_and_dtype(cls):
    c = BertConfig.tiny(vocab_size=V)
    rng = np.random.default_rng(0)
    ids, mask = _batch(rng)
    for dt in (np.float32, np.float64):
        m = cls(c, dt)
        out = m.forward(ids, mask)
        assert len(out.hidden_states) == c.num_hidden_layers + 1
        assert all(h.shape == (3, 6, c.hidden_size) and h.dtype == dt for h in out.hidden_states)
        assert out.logits.shape == (3, 6, V) and out.logits.dtype == dt
        assert (out.pooled is not None) == (cls is Bert)
        if cls is Bert:
            assert out.pooled.shape == (3, c.hidden_size) and out.pooled.dtype == dt


def test_mlm_positions_select_rows_in_nonzero_order():
    c = BertConfig.tiny(vocab_size=V)
    rng = np.random.default_rng(1)
    ids, mask = _batch(rng)
    t = Bert(c, np.float64)
    pos = np.zeros(ids.shape, dtype=bool)
    pos[0, 1] = pos[0, 4] = pos[1, 0] = pos[2, 1] = True
    full = t.forward(ids, mask).logits
    sel = t.forward(ids, mask, mlm_positions=pos).logits
    assert sel.shape == (4, V)
    np.testing.assert_allclose(sel, full[np.nonzero(pos)], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_no_mlm_positions_selected_gives_empty_logits(dt):
    """An all-False mlm_positions switches the V-wide head off (hidden states only, e.g. for Lcos)."""
    s = DistilBert(BertConfig.tiny(vocab_size=V), dt)
    ids, mask = _batch(np.random.default_rng(7))
    out = s.forward(ids, mask, mlm_positions=np.zeros(ids.shape, dtype=bool))
    assert out.logits.shape == (0, V) and out.logits.dtype == dt
    dh = np.ones_like(out.hidden_states[-1])
    g = s.backward(None, out.cache, dhidden={s.config.num_hidden_layers: dh})
    g0 = s.backward(np.zeros((0, V), dtype=dt), out.cache, dhidden={s.config.num_hidden_layers: dh})
    for k in g:
        np.testing.assert_array_equal(g[k], g0[k])
        assert g[k].dtype == dt
    assert np.all(g["vocab_projector.bias"] == 0) and np.any(g["distilbert.embeddings.LayerNorm.weight"] != 0)


def test_keep_cache_false_same_outputs_no_cache():
    c = BertConfig.tiny(vocab_size=V)
    ids, mask = _batch(np.random.default_rng(2))
    t = Bert(c, np.float64)
    a, b = t.forward(ids, mask), t.forward(ids, mask, keep_cache=False)
    assert b.cache is None and a.cache is not None
    np.testing.assert_array_equal(a.logits, b.logits)
    np.testing.assert_array_equal(a.hidden_states[-1], b.hidden_states[-1])
    with pytest.raises(ValueError, match="keep_cache"):
        t.backward(np.zeros_like(b.logits), b.cache)


def test_padding_does_not_leak_into_real_positions():
    c = BertConfig.tiny(vocab_size=V)
    ids, mask = _batch(np.random.default_rng(3))
    t = Bert(c, np.float64, seed=1)
    ids2 = ids.copy()
    ids2[1, 4:] = (ids[1, 4:] + 1) % V  # change padded tokens only
    a, b = t.forward(ids, mask), t.forward(ids2, mask)
    np.testing.assert_allclose(a.logits[1, :4], b.logits[1, :4], rtol=1e-12, atol=1e-12)
    assert not np.allclose(a.logits[1, 4:], b.logits[1, 4:])


def test_token_types_change_the_teacher():
    c = BertConfig.tiny(vocab_size=V)
    ids, mask = _batch(np.random.default_rng(4))
    t = Bert(c, np.float64)
    tt = np.zeros_like(ids)
    tt[:, 3:] = 1
    zero = t.forward(ids, mask).logits
    np.testing.assert_array_equal(zero, t.forward(ids, mask, token_type_ids=np.zeros_like(ids)).logits)
    assert not np.allclose(zero, t.forward(ids, mask, token_type_ids=tt).logits)


# ---------------------------------------------------------------- from_teacher

def test_from_teacher_copies_and_default_layers():
    c = BertConfig.tiny(vocab_size=V, num_hidden_layers=5)
    t = Bert(c, np.float64, seed=5)
    s = DistilBert.from_teacher(t)
    assert s.teacher_layers == [0, 2, 4] and s.config.num_hidden_layers == 3 and s.dtype == np.float64
    tp, sp = t.params, s.params
    pairs = {
        "distilbert.embeddings.word_embeddings.weight": "bert.embeddings.word_embeddings.weight",
        "distilbert.embeddings.position_embeddings.weight": "bert.embeddings.position_embeddings.weight",
        "distilbert.embeddings.LayerNorm.weight": "bert.embeddings.LayerNorm.weight",
        "vocab_transform.weight": "cls.predictions.transform.dense.weight",
        "vocab_layer_norm.bias": "cls.predictions.transform.LayerNorm.bias",
        "vocab_projector.bias": "cls.predictions.bias",
        "distilbert.transformer.layer.1.attention.q_lin.weight": "bert.encoder.layer.2.attention.self.query.weight",
        "distilbert.transformer.layer.2.output_layer_norm.bias": "bert.encoder.layer.4.output.LayerNorm.bias",
        "distilbert.transformer.layer.0.ffn.lin1.weight": "bert.encoder.layer.0.intermediate.dense.weight",
    }
    for sk, tk in pairs.items():
        np.testing.assert_array_equal(sp[sk], tp[tk])
    for j, i in enumerate([0, 2, 4]):
        for local in s.block_params(j):
            np.testing.assert_array_equal(s.block_params(j)[local], t.block_params(i)[local])
    # copies, not views: training the student leaves the teacher alone
    sp["vocab_projector.bias"] += 1.0
    assert not np.array_equal(sp["vocab_projector.bias"], tp["cls.predictions.bias"])


def test_student_from_layers_024_equals_teacher_blocks_by_hand():
    c = BertConfig.tiny(vocab_size=V, num_hidden_layers=6)
    t = Bert(c, np.float64, seed=6)
    rng = np.random.default_rng(6)
    for k, a in t.params.items():  # non-trivial LayerNorms and biases
        if a.ndim == 1:
            a += rng.normal(0, 0.1, a.shape)
    t.params["bert.embeddings.token_type_embeddings.weight"][...] = 0.0  # the student has no token types
    s = DistilBert.from_teacher(t, [0, 2, 4])
    ids, mask = _batch(rng)
    out = s.forward(ids, mask)
    tp = t.params
    e = tp["bert.embeddings.word_embeddings.weight"][ids] + tp["bert.embeddings.position_embeddings.weight"][:6]
    h, _ = layernorm_layer_forward(e, tp["bert.embeddings.LayerNorm.weight"], tp["bert.embeddings.LayerNorm.bias"],
                                   c.layer_norm_eps)
    np.testing.assert_allclose(out.hidden_states[0], h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(t.forward(ids, mask).hidden_states[0], h, rtol=1e-12, atol=1e-12)
    for j, i in enumerate([0, 2, 4]):
        h, _ = block_forward(h, mask, t.block_params(i), c.num_attention_heads, c.layer_norm_eps, c.hidden_act)
        np.testing.assert_allclose(out.hidden_states[j + 1], h, rtol=1e-12, atol=1e-12)
    # the student's head is the teacher's head
    t_head, _ = t._head_forward(h)
    np.testing.assert_allclose(out.logits, t_head, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layers, err, match", [
    ([], ValueError, "empty"), ([0, 4], ValueError, "0..3"), ([-1, 2], ValueError, "0..3"),
    ([0, 0, 2], ValueError, "repeat"), ([2, 0], ValueError, "increasing"),
    ([0.0, 2], TypeError, "integers"), (3, TypeError, "sequence"),
])
def test_from_teacher_bad_layers(layers, err, match):
    t = Bert(BertConfig.tiny(vocab_size=V, num_hidden_layers=4), np.float64)
    with pytest.raises(err, match=match):
        DistilBert.from_teacher(t, layers)


def test_from_teacher_needs_a_teacher():
    with pytest.raises(TypeError, match="teacher"):
        DistilBert.from_teacher(DistilBert(BertConfig.tiny(vocab_size=V)))


def test_random_init_differs_from_teacher():
    c = BertConfig.tiny(vocab_size=V)
    s = DistilBert.random_init(c, np.float64, seed=1)
    assert isinstance(s, DistilBert) and s.dtype == np.float64 and s.teacher_layers is None
    assert not np.array_equal(s.params["distilbert.embeddings.word_embeddings.weight"],
                              Bert(c, np.float64, seed=0).params["bert.embeddings.word_embeddings.weight"])


# ---------------------------------------------------------------- state dicts

def test_state_dict_roundtrip_in_place():
    c = BertConfig.tiny(vocab_size=V)
    a, b = Bert(c, np.float32, seed=1), Bert(c, np.float32, seed=2)
    held = b.params["bert.pooler.dense.weight"]
    sd = a.state_dict()
    sd["cls.predictions.bias"][0] = 123.0  # a snapshot: editing it leaves the model alone
    assert a.params["cls.predictions.bias"][0] == 0
    b.load_state_dict(sd)
    assert b.params["bert.pooler.dense.weight"] is held  # loaded in place
    for k in sd:
        np.testing.assert_array_equal(b.params[k], sd[k])
    b.load_state_dict({k: v.astype(np.float64) for k, v in sd.items()})
    assert all(v.dtype == np.float32 for v in b.params.values())  # dtype never changes


def test_state_dict_errors_list_every_problem():
    c = BertConfig.tiny(vocab_size=V)
    s = DistilBert(c, np.float64)
    sd = s.state_dict()
    del sd["vocab_layer_norm.weight"]
    del sd["distilbert.embeddings.LayerNorm.bias"]
    sd["bert.pooler.dense.bias"] = np.zeros(16)
    sd["vocab_projector.bias"] = np.zeros(V + 1)
    sd["vocab_transform.bias"] = np.zeros(16, dtype=np.int64)
    with pytest.raises(ValueError) as e:
        s.load_state_dict(sd)
    msg = str(e.value)
    for name in ("vocab_layer_norm.weight", "distilbert.embeddings.LayerNorm.bias", "bert.pooler.dense.bias",
                 "vocab_projector.bias", "vocab_transform.bias", "missing", "unexpected", "wrong shapes"):
        assert name in msg
    with pytest.raises(TypeError):
        s.load_state_dict([1, 2])


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs, err, match", [
    (dict(input_ids=np.array([[1, 2, V]])), ValueError, "input_ids"),
    (dict(input_ids=np.array([[1, -2]])), ValueError, "input_ids"),
    (dict(input_ids=np.array([[1.0, 2.0]])), TypeError, "input_ids"),
    (dict(input_ids=np.array([1, 2])), ValueError, r"\(B, T\)"),
    (dict(input_ids=np.ones((1, 33), dtype=np.int64)), ValueError, "max_position_embeddings"),
    (dict(attention_mask=np.ones((2, 3))), ValueError, "attention_mask"),
    (dict(attention_mask=np.full((2, 4), 2)), ValueError, "attention_mask"),
    (dict(token_type_ids=np.full((2, 4), 2)), ValueError, "token_type_ids"),
    (dict(token_type_ids=np.zeros((2, 5), dtype=np.int64)), ValueError, "token_type_ids"),
    (dict(mlm_positions=np.ones((2, 4), dtype=np.int64)), TypeError, "mlm_positions"),
    (dict(mlm_positions=np.ones((2, 5), dtype=bool)), ValueError, "mlm_positions"),
])
def test_bad_model_inputs(kwargs, err, match):
    t = Bert(BertConfig.tiny(vocab_size=V), np.float64)
    args = dict(input_ids=np.ones((2, 4), dtype=np.int64))
    args.update(kwargs)
    with pytest.raises(err, match=match):
        t.forward(**args)


def test_student_rejects_token_types_and_dpooled():
    s = DistilBert(BertConfig.tiny(vocab_size=V), np.float64)
    ids = np.ones((2, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="token_type_ids"):
        s.forward(ids, token_type_ids=np.zeros_like(ids))
    out = s.forward(ids)
    with pytest.raises(ValueError, match="dpooled"):
        s.backward(None, out.cache, dpooled=np.zeros((2, 16)))


def test_bad_backward_inputs():
    t = Bert(BertConfig.tiny(vocab_size=V), np.float64)
    ids = np.ones((2, 4), dtype=np.int64)
    out = t.forward(ids)
    with pytest.raises(ValueError, match="dlogits"):
        t.backward(np.zeros((2, 4, V + 1)), out.cache)
    with pytest.raises(TypeError, match="dlogits"):
        t.backward(np.zeros((2, 4, V), dtype=np.float32), out.cache)
    with pytest.raises(ValueError, match="dhidden"):
        t.backward(None, out.cache, dhidden={3: np.zeros((2, 4, 16))})
    with pytest.raises(ValueError, match=r"dhidden\[1\]"):
        t.backward(None, out.cache, dhidden={1: np.zeros((2, 5, 16))})
    with pytest.raises(ValueError, match="DistilBert"):
        DistilBert(BertConfig.tiny(vocab_size=V), np.float64).backward(None, out.cache)


def test_student_layers_is_the_one_rule():
    from minidistil.models import student_layers
    assert student_layers(6, 3) == [0, 2, 4] and student_layers(12, 6) == [0, 2, 4, 6, 8, 10]
    assert student_layers(5, 3) == [0, 2, 4] and student_layers(2, 1) == [0]
    assert student_layers(6, 2) == [0, 5] and student_layers(4, 1) == [3] and student_layers(3, 3) == [0, 1, 2]
    assert student_layers(12, 4) == [0, 4, 7, 11]
    for bad in ((6, 7), (6, 0), (0, 1), (6, 2.0), (True, 1)):
        with pytest.raises(ValueError):
            student_layers(*bad)


def test_student_depth_is_half_the_teacher_rounded_up_wherever_a_depth_is_chosen():
    """One rule for the default depth: from_teacher, load_student (io) and the command line's
    --teacher / demo configs all call student_depth; an odd teacher (3 layers) gives 2, not 1."""
    import inspect

    import minidistil.cli_checks as cli_checks
    import minidistil.io.pretrained as pretrained
    import minidistil.train.demo as demo
    from minidistil.models import student_depth, student_layers
    assert [student_depth(L) for L in (1, 2, 3, 6, 7, 12)] == [1, 1, 2, 3, 4, 6]
    t = Bert(BertConfig.tiny(vocab_size=V, num_hidden_layers=3), np.float64, seed=1)
    assert DistilBert.from_teacher(t).teacher_layers == student_layers(3, student_depth(3)) == [0, 2]
    for mod in (cli_checks, pretrained, demo):  # the callers that pick a depth themselves
        src = inspect.getsource(mod)
        assert "student_depth(" in src and "num_hidden_layers // 2" not in src, mod.__name__
