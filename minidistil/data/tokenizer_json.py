"""Reading a ``tokenizer.json`` (the Hugging Face ``tokenizers`` format) into a WordPiece tokenizer.

transformers 5 saves a BERT tokenizer as ``tokenizer.json`` only (no ``vocab.txt``). Of that file
minidistil supports what its own tokenizer implements, and checks every setting that changes the
ids; anything else is refused with a ``ValueError`` naming the setting, never silently ignored:

- ``model``: ``WordPiece`` with ``continuing_subword_prefix`` "##", an ``unk_token`` of the
  vocabulary, ``max_input_chars_per_word``; the vocabulary's ids must be 0..V-1 without gaps;
- ``normalizer``: ``BertNormalizer`` with ``clean_text`` and ``handle_chinese_chars`` on, and
  ``strip_accents`` either unset or equal to ``lowercase`` (that is what BERT's uncased/cased
  pre-tokenization does);
- ``pre_tokenizer``: ``BertPreTokenizer``; ``post_processor``: ``BertProcessing``, or a
  ``TemplateProcessing`` of the form ``[CLS] A [SEP] (B [SEP])``, or none;
- ``added_tokens``: each must already be in the vocabulary with the same id.

Padding and truncation settings in the file are ignored: here, as in transformers' Python API,
they are arguments of ``tokenizer(...)``.
"""
from __future__ import annotations

import json
import os

SUPPORTED_POST = ("BertProcessing", "TemplateProcessing")


def _template_ok(post: dict) -> bool:
    def ids(seq):
        out = []
        for piece in seq or []:
            if "SpecialToken" in piece:
                out.append(piece["SpecialToken"].get("id"))
            elif "Sequence" in piece:
                out.append(piece["Sequence"].get("id"))
            else:
                return None
        return out
    return ids(post.get("single")) == ["[CLS]", "A", "[SEP]"] and \
        ids(post.get("pair")) in (None, [], ["[CLS]", "A", "[SEP]", "B", "[SEP]"])


def read_tokenizer_json(path) -> dict:
    """Checked settings of a ``tokenizer.json``: ``{"vocab", "do_lower_case", "max_word_chars"}``.

    Raises ``ValueError`` (naming ``path`` and the setting) for anything minidistil cannot
    reproduce exactly.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: must hold a JSON object, got {type(obj).__name__}")

    def bad(what):
        return ValueError(f"{path}: {what} is not supported (minidistil reads BERT WordPiece tokenizers only)")

    model = obj.get("model")
    if not isinstance(model, dict) or model.get("type") != "WordPiece":
        raise bad(f"model type {model.get('type') if isinstance(model, dict) else model!r}")
    if model.get("continuing_subword_prefix", "##") != "##":
        raise bad(f"continuing_subword_prefix {model['continuing_subword_prefix']!r}")
    vocab_map = model.get("vocab")
    if not isinstance(vocab_map, dict) or not vocab_map:
        raise ValueError(f"{path}: model.vocab must be a non-empty {{token: id}} object")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in vocab_map.values()):
        raise ValueError(f"{path}: model.vocab ids must be integers")
    ids = sorted(vocab_map.values())
    if ids != list(range(len(ids))):
        raise ValueError(f"{path}: model.vocab ids must be 0..{len(ids) - 1} without gaps or repeats")
    vocab = [""] * len(ids)
    for tok, i in vocab_map.items():
        vocab[i] = tok
    if model.get("unk_token", "[UNK]") != "[UNK]":
        raise bad(f"unk_token {model['unk_token']!r} (BERT's is '[UNK]')")
    max_chars = model.get("max_input_chars_per_word", 100)
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
        raise ValueError(f"{path}: max_input_chars_per_word must be a positive int, got {max_chars!r}")

    norm = obj.get("normalizer")
    if not isinstance(norm, dict) or norm.get("type") != "BertNormalizer":
        raise bad(f"normalizer {norm.get('type') if isinstance(norm, dict) else norm!r}")
    for key in ("clean_text", "handle_chinese_chars"):
        if not norm.get(key, True):
            raise bad(f"normalizer {key}=false")
    lower = bool(norm.get("lowercase", True))
    strip = norm.get("strip_accents")
    if strip is not None and bool(strip) != lower:
        raise bad(f"normalizer strip_accents={strip} with lowercase={lower}")

    pre = obj.get("pre_tokenizer")
    if not isinstance(pre, dict) or pre.get("type") != "BertPreTokenizer":
        raise bad(f"pre_tokenizer {pre.get('type') if isinstance(pre, dict) else pre!r}")
    post = obj.get("post_processor")
    if post is not None:
        kind = post.get("type") if isinstance(post, dict) else post
        if kind not in SUPPORTED_POST or (kind == "TemplateProcessing" and not _template_ok(post)):
            raise bad(f"post_processor {kind!r} (other than [CLS] A [SEP] B [SEP])")
    for added in obj.get("added_tokens") or []:
        content, i = added.get("content"), added.get("id")
        if vocab_map.get(content) != i:
            raise bad(f"added token {content!r} (id {i}) outside the WordPiece vocabulary")
    return {"vocab": vocab, "do_lower_case": lower, "max_word_chars": max_chars}


def tokenizer_json(tokenizer) -> dict:
    """The ``tokenizer.json`` object of one of our tokenizers (what transformers 5 writes)."""
    special = set(tokenizer.special_ids)
    cls, sep = tokenizer.cls_id, tokenizer.sep_id
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": tokenizer.vocab[i], "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True} for i in sorted(special)],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": tokenizer.do_lower_case},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", sep], "cls": ["[CLS]", cls]},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": tokenizer.max_word_chars,
                  "vocab": {t: i for i, t in enumerate(tokenizer.vocab)}},
    }
