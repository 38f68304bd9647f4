"""The Hugging Face-shaped half of the tokenizer: ``tokenizer(texts, ...)`` and the ``*_token_id`` names.

:class:`~minidistil.data.tokenizer.WordPieceTokenizer` inherits :class:`CallableTokenizer`, so a
reader coming from ``transformers`` can write what they already know::

    enc = tok(["the cat sat", "a dog"], padding=True, truncation=True, max_length=16)
    enc["input_ids"], enc.attention_mask, enc.token_type_ids   # (B, T) int64 arrays

The rules follow Hugging Face's ``BertTokenizer``: a single text is ``[CLS] A [SEP]``, a pair is
``[CLS] A [SEP] B [SEP]`` with token type 0 up to and including the first ``[SEP]`` and 1 after
it; padding goes on the right with ``[PAD]``, attention mask 0 and token type 0; truncation
``"longest_first"`` removes one token at a time from the end of the longer sequence.

Legend: B batch, T sequence.
"""
from __future__ import annotations

import numpy as np

_PADDING = {False: "do_not_pad", None: "do_not_pad", "do_not_pad": "do_not_pad", True: "longest",
            "longest": "longest", "max_length": "max_length"}
_TRUNCATION = {False: None, None: None, "do_not_truncate": None, True: "longest_first",
               "longest_first": "longest_first", "only_first": "only_first", "only_second": "only_second"}


class BatchEncoding(dict):
    """The result of ``tokenizer(...)``: a dict whose keys are also attributes, as in transformers."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no {name!r}; it holds {sorted(self)}") from None


def _as_batch(name, texts):
    """(list of str, was a single str)."""
    if isinstance(texts, str):
        return [texts], True
    if isinstance(texts, (list, tuple)) and all(isinstance(t, str) for t in texts):
        if not texts:
            raise ValueError(f"{name} must not be empty")
        return list(texts), False
    raise TypeError(f"{name} must be a str or a list of str, got {type(texts).__name__}")


def _truncate(a: list, b: list | None, budget: int, strategy: str):
    """Cut ``a`` (and ``b``) to ``budget`` tokens in all, as Hugging Face's strategies do."""
    a, b = list(a), (None if b is None else list(b))
    excess = len(a) + (len(b) if b is not None else 0) - budget
    if excess <= 0:
        return a, b
    if strategy == "longest_first" or b is None and strategy == "only_first":
        for _ in range(excess):
            if b is not None and len(b) > len(a):
                b.pop()
            elif a:
                a.pop()
            else:
                b.pop()
        return a, b
    target, other = (a, "first") if strategy == "only_first" else (b, "second")
    if target is None or len(target) < excess:
        raise ValueError(f"truncation={strategy!r}: the {other} sequence is too short to remove "
                         f"{excess} tokens; use truncation='longest_first' or a larger max_length")
    del target[len(target) - excess:]
    return a, b


class CallableTokenizer:
    """Mixin: needs ``encode``, ``token_to_id``, ``vocab`` and the ``*_id`` attributes."""

    model_max_length: int | None = None  # from tokenizer_config.json when loaded from a folder

    # -- the names transformers uses
    pad_token, unk_token, cls_token, sep_token, mask_token = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"

    @property
    def pad_token_id(self) -> int:
        return self.pad_id

    @property
    def unk_token_id(self) -> int:
        return self.unk_id

    @property
    def cls_token_id(self) -> int:
        return self.cls_id

    @property
    def sep_token_id(self) -> int:
        return self.sep_id

    @property
    def mask_token_id(self) -> int:
        return self.mask_id

    @property
    def all_special_ids(self) -> list[int]:
        return list(self.special_ids)

    def get_vocab(self) -> dict[str, int]:
        """``{token: id}`` (a copy)."""
        return dict(self.token_to_id)

    def build_inputs_with_special_tokens(self, ids_a, ids_b=None) -> list[int]:
        """``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``."""
        out = [self.cls_id] + list(ids_a) + [self.sep_id]
        return out if ids_b is None else out + list(ids_b) + [self.sep_id]

    def batch_decode(self, sequences, skip_special_tokens: bool = False) -> list[str]:
        return [self.decode(s, skip_special_tokens=skip_special_tokens) for s in sequences]

    # -- tokenizer(texts, ...)

    def __call__(self, texts, text_pair=None, padding=False, truncation=None, max_length=None,
                 return_tensors="np", add_special_tokens: bool = True) -> BatchEncoding:
        """Tokenize a text or a batch of texts (optionally paired) into model inputs.

        ``padding``: False (none), True / "longest" (to the longest in the batch), "max_length".
        ``truncation``: False, True / "longest_first", "only_first", "only_second"; needs
        ``max_length`` (or ``model_max_length``). ``return_tensors``: "np" for (B, T) int64 arrays
        (sequences of unequal length then need padding), None for lists. Returns a
        :class:`BatchEncoding` with ``input_ids``, ``token_type_ids`` and ``attention_mask``.
        """
        batch, single = _as_batch("texts", texts)
        pairs = None
        if text_pair is not None:
            pairs, single_pair = _as_batch("text_pair", text_pair)
            if len(pairs) != len(batch) or single_pair != single:
                raise ValueError(f"text_pair must match texts: {len(batch)} text(s) but "
                                 f"{len(pairs)} pair(s)")
        if padding not in _PADDING:
            raise ValueError(f"padding must be True, False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}")
        if truncation not in _TRUNCATION:
            raise ValueError("truncation must be True, False, 'longest_first', 'only_first', 'only_second' "
                             f"or 'do_not_truncate', got {truncation!r}")
        if return_tensors not in ("np", None):
            raise ValueError(f"return_tensors must be 'np' or None (minidistil is NumPy only), got {return_tensors!r}")
        pad, trunc = _PADDING[padding], _TRUNCATION[truncation]
        if max_length is None:
            max_length = self.model_max_length if (trunc or pad == "max_length") else None
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                       or max_length < 1):
            raise ValueError(f"max_length must be a positive int, got {max_length!r}")
        if pad == "max_length" and max_length is None:
            raise ValueError("padding='max_length' needs max_length")

        rows_ids, rows_types = [], []
        n_special = (2 if pairs is None else 3) if add_special_tokens else 0
        for k, text in enumerate(batch):
            a = self.encode(text, add_special_tokens=False)
            b = None if pairs is None else self.encode(pairs[k], add_special_tokens=False)
            if trunc and max_length is not None:
                if max_length < n_special:
                    raise ValueError(f"max_length {max_length} leaves no room for the {n_special} special tokens")
                a, b = _truncate(a, b, max_length - n_special, trunc)
            if add_special_tokens:
                ids = self.build_inputs_with_special_tokens(a, b)
                types = [0] * (len(a) + 2) + ([] if b is None else [1] * (len(b) + 1))
            else:
                ids = a + (b or [])
                types = [0] * len(a) + [1] * len(b or [])
            rows_ids.append(ids)
            rows_types.append(types)

        lengths = [len(r) for r in rows_ids]
        width = max(lengths) if pad == "longest" else max_length if pad == "max_length" else None
        if width is not None:
            width = max(width, max(lengths))  # never cut here: that is truncation's job, as in HF
        if return_tensors == "np" and width is None and len(set(lengths)) > 1:
            raise ValueError(f"texts give sequences of {min(lengths)} to {max(lengths)} tokens: pass "
                             "padding=True to return arrays, or return_tensors=None for lists")
        width = width or max(lengths)
        enc = {"input_ids": [], "token_type_ids": [], "attention_mask": []}
        for ids, types in zip(rows_ids, rows_types):
            gap = width - len(ids) if pad != "do_not_pad" else 0
            enc["input_ids"].append(ids + [self.pad_id] * gap)
            enc["token_type_ids"].append(types + [0] * gap)
            enc["attention_mask"].append([1] * len(ids) + [0] * gap)
        if return_tensors == "np":
            enc = {k: np.array(v, dtype=np.int64).reshape(len(batch), -1) for k, v in enc.items()}  # (B, T)
        elif single:
            enc = {k: v[0] for k, v in enc.items()}
        return BatchEncoding(enc)
