"""The classification heads in Hugging Face folders: minidistil writes and reads them, and (when
transformers is installed) Hugging Face loads them with no missing or unexpected keys and gives
the same logits, for classification and regression, with token types for BERT."""
import numpy as np
import pytest

from minidistil.data.tokenizer import WordPieceTokenizer
from minidistil.io.pretrained import PretrainedError, load_pretrained, save_pretrained
from minidistil.models import Bert, BertConfig
from minidistil.models.heads import BertForSequenceClassification, DistilBertForSequenceClassification

V = 40
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(V - 5)]
IDS = np.array([[2, 7, 9, 3, 11, 12, 3], [2, 20, 21, 22, 3, 0, 0]])  # (B, T)
MASK = np.array([[1] * 7, [1, 1, 1, 1, 1, 0, 0]])  # (B, T)
TT = np.array([[0, 0, 0, 0, 1, 1, 1], [0] * 7])  # (B, T)
CLASSES = [BertForSequenceClassification, DistilBertForSequenceClassification]


def _model(cls, K, seed=3):
    m = cls(BertConfig.tiny(vocab_size=V), num_labels=K, dtype=np.float32, seed=seed)
    rng = np.random.default_rng(seed)
    for a in m.params.values():  # non-trivial values everywhere (biases, LayerNorm gains)
        a += rng.normal(0, 0.05, a.shape).astype(a.dtype)
    return m


def _kw(cls):
    return {"token_type_ids": TT} if cls is BertForSequenceClassification else {}


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("K", [3, 1])
def test_round_trip(tmp_path, cls, K):
    m = _model(cls, K)
    save_pretrained(m, WordPieceTokenizer(VOCAB), tmp_path / "m", label_names=[f"c{i}" for i in range(K)])
    back, tok = load_pretrained(tmp_path / "m")
    assert type(back) is cls and back.num_labels == K and back.head.problem_type == m.head.problem_type
    assert tok.vocab == VOCAB
    assert set(back.params) == set(m.params)
    for k in m.params:
        np.testing.assert_array_equal(back.params[k], m.params[k])
    np.testing.assert_array_equal(back.forward(IDS, MASK, **_kw(cls)).logits, m.forward(IDS, MASK, **_kw(cls)).logits)


@pytest.mark.parametrize("cls", CLASSES)
def test_num_labels_mismatch_and_fresh_head(tmp_path, cls):
    save_pretrained(_model(cls, 3), WordPieceTokenizer(VOCAB), tmp_path / "m")
    with pytest.raises(PretrainedError, match="has 3 labels but num_labels=2"):
        load_pretrained(tmp_path / "m", num_labels=2)
    assert load_pretrained(tmp_path / "m", num_labels=3)[0].num_labels == 3
    bert = Bert(BertConfig.tiny(vocab_size=V), seed=1)
    save_pretrained(bert, WordPieceTokenizer(VOCAB), tmp_path / "mlm", pooler=True)
    with pytest.warns(UserWarning, match="freshly initialised"):
        fresh, _ = load_pretrained(tmp_path / "mlm", num_labels=4)
    assert isinstance(fresh, BertForSequenceClassification) and fresh.num_labels == 4


def test_a_classifier_weight_that_disagrees_with_id2label_is_named(tmp_path):
    import json
    save_pretrained(_model(DistilBertForSequenceClassification, 3), WordPieceTokenizer(VOCAB), tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["id2label"] = {"0": "a", "1": "b"}
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(PretrainedError, match=r"classifier.weight has shape \(3, 16\), expected \(2, 16\)"):
        load_pretrained(tmp_path / "m")


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("K", [3, 1])
def test_hugging_face_loads_the_heads_when_installed(tmp_path, cls, K):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    m = _model(cls, K)
    save_pretrained(m, WordPieceTokenizer(VOCAB), tmp_path / "m")
    hf_cls = getattr(transformers, cls.__name__)
    model, info = hf_cls.from_pretrained(str(tmp_path / "m"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert model.config.num_labels == K and model.config.problem_type == m.head.problem_type
    kw = {"token_type_ids": torch.tensor(TT)} if cls is BertForSequenceClassification else {}
    with torch.no_grad():
        theirs = model.eval()(torch.tensor(IDS), attention_mask=torch.tensor(MASK), **kw).logits.numpy()
    np.testing.assert_allclose(theirs, m.forward(IDS, MASK, **_kw(cls)).logits, rtol=1e-4, atol=1e-5)
