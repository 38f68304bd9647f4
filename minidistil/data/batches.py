"""From documents to padded batches: sequences, length grouping, padding, token counts.

Legend: B batch, T sequence length (the longest sequence of the batch), V vocabulary.

A sequence is ``[CLS] tokens [SEP]`` (no sentence pairs: DistilBERT drops next-sentence
prediction). A long document is cut into chunks of ``max_len - 2`` tokens, each wrapped in its
own ``[CLS]``/``[SEP]``; sequences of 11 tokens or fewer (specials included) are dropped, as in
the Hugging Face distillation recipe, so a document's short tail is lost.

Training batches are grouped by length, to pad little: shuffle all sequences, cut them into
large buckets (``bucket_batches`` batches each), sort every bucket by length, cut it into
batches, then shuffle the order of all batches. Each batch is padded only to its own longest
sequence. The attention mask is 1 on real tokens and 0 on padding.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

DEFAULT_MIN_LEN = 12  # keep sequences of 12 tokens or more ("11 or fewer are dropped")


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_seqs(seqs) -> list[np.ndarray]:
    if isinstance(seqs, np.ndarray) and seqs.ndim == 2:
        raise TypeError("seqs must be a list of 1-D id arrays (one per sequence), "
                        "not one 2-D array")
    out = []
    for k, s in enumerate(seqs):
        a = np.asarray(s)
        if a.ndim != 1 or a.size == 0 or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"seqs[{k}] must be a non-empty 1-D integer array, got "
                             f"shape {a.shape} dtype {a.dtype}")
        out.append(a)
    return out


def make_sequences(docs, tokenizer, max_len: int, min_len: int = DEFAULT_MIN_LEN) -> list[np.ndarray]:
    """Tokenize ``docs`` into ``[CLS] ... [SEP]`` sequences of ``min_len`` to ``max_len`` tokens.

    Returns a list of (T_i,) int64 arrays, in document order.
    """
    if isinstance(docs, str):
        raise TypeError("docs must be a list of str documents, not one str")
    _check_int("max_len", max_len, 3)
    _check_int("min_len", min_len, 2)
    if min_len > max_len:
        raise ValueError(f"min_len ({min_len}) must not exceed max_len ({max_len})")
    for attr in ("encode", "cls_id", "sep_id"):
        if not hasattr(tokenizer, attr):
            raise TypeError(f"tokenizer must be a WordPieceTokenizer (has no .{attr}), "
                            f"got {type(tokenizer).__name__}")
    body = max_len - 2  # room left for [CLS] and [SEP]
    cls_id, sep_id = tokenizer.cls_id, tokenizer.sep_id
    seqs = []
    for k, doc in enumerate(docs):
        if not isinstance(doc, str):
            raise TypeError(f"docs[{k}] must be a str, got {type(doc).__name__}")
        ids = tokenizer.encode(doc, add_special_tokens=False)
        for start in range(0, len(ids), body):
            chunk = ids[start:start + body]
            if len(chunk) + 2 >= min_len:
                seqs.append(np.array([cls_id] + chunk + [sep_id], dtype=np.int64))  # (T_i,)
    return seqs


def pad_batch(seqs, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack sequences into ``(input_ids (B,T) int64, attention_mask (B,T) int64)``."""
    _check_int("pad_id", pad_id, 0)
    seqs = list(seqs)
    if not seqs:
        raise ValueError("pad_batch needs at least one sequence")
    T = max(len(s) for s in seqs)
    input_ids = np.full((len(seqs), T), pad_id, dtype=np.int64)  # (B, T)
    attention_mask = np.zeros((len(seqs), T), dtype=np.int64)  # (B, T)
    for b, s in enumerate(seqs):
        input_ids[b, :len(s)] = s
        attention_mask[b, :len(s)] = 1
    return input_ids, attention_mask


def batch_iterator(seqs, batch_size: int, rng: np.random.Generator, pad_id: int,
                   bucket_batches: int = 50, drop_last: bool = False
                   ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One shuffled pass over ``seqs`` in length-grouped batches.

    Yields ``(input_ids (B,T) int64, attention_mask (B,T) int64)``; every sequence appears
    exactly once (the last batch of a bucket may be smaller, unless ``drop_last``). The order
    depends only on ``rng``, so a seeded generator gives the same batches every time.
    """
    seqs = _check_seqs(seqs)
    _check_int("batch_size", batch_size, 1)
    _check_int("pad_id", pad_id, 0)
    _check_int("bucket_batches", bucket_batches, 1)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    if not seqs:
        return
    lengths = np.array([len(s) for s in seqs])  # (N,)
    order = rng.permutation(len(seqs))  # (N,)
    bucket = batch_size * bucket_batches
    batches = []
    for start in range(0, len(order), bucket):
        idx = order[start:start + bucket]
        idx = idx[np.argsort(lengths[idx], kind="stable")]  # shortest first within the bucket
        for b in range(0, len(idx), batch_size):
            chunk = idx[b:b + batch_size]
            if drop_last and len(chunk) < batch_size:
                continue
            batches.append(chunk)
    for k in rng.permutation(len(batches)):
        yield pad_batch([seqs[i] for i in batches[k]], pad_id)


def eval_batches(seqs, batch_size: int, pad_id: int, sort_by_length: bool = True
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Deterministic batches for evaluation: no randomness, every sequence once.

    With ``sort_by_length`` (stable sort) batches pad little; otherwise the given order is kept.
    """
    seqs = _check_seqs(seqs)
    _check_int("batch_size", batch_size, 1)
    _check_int("pad_id", pad_id, 0)
    idx = np.arange(len(seqs))  # (N,)
    if sort_by_length and seqs:
        idx = np.argsort(np.array([len(s) for s in seqs]), kind="stable")  # (N,)
    for b in range(0, len(idx), batch_size):
        yield pad_batch([seqs[i] for i in idx[b:b + batch_size]], pad_id)


def token_counts(seqs, vocab_size: int) -> np.ndarray:
    """How often each id occurs in ``seqs``: (V,) int64, for frequency-smoothed masking."""
    seqs = _check_seqs(seqs)
    _check_int("vocab_size", vocab_size, 1)
    if not seqs:
        return np.zeros(vocab_size, dtype=np.int64)  # (V,)
    ids = np.concatenate(seqs)  # (total tokens,)
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(f"seqs hold ids in [{ids.min()}, {ids.max()}], outside the vocabulary "
                         f"[0, {vocab_size})")
    return np.bincount(ids, minlength=vocab_size).astype(np.int64)  # (V,)
