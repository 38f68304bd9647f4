"""Sequences ([CLS] ... [SEP], chunking, the 11-token drop), length-grouped padded batches, counts."""
from collections import Counter

import numpy as np
import pytest

from minidistil.data.batches import (batch_iterator, eval_batches, make_sequences, pad_batch,
                                     token_counts)
from minidistil.data.tokenizer import SPECIAL_TOKENS, WordPieceTokenizer

CLS, SEP, PAD = 2, 3, 0


class NumberTokenizer:
    """Each whitespace word is an integer n and becomes the id 10 + n: lengths are exact."""
    cls_id, sep_id, pad_id = CLS, SEP, PAD

    def encode(self, text, add_special_tokens=True):
        body = [10 + int(w) for w in text.split()]
        return [CLS] + body + [SEP] if add_special_tokens else body


def doc(n, start=0):
    return " ".join(str(start + k) for k in range(n))


# ---------------------------------------------------------------- sequences

def test_long_documents_are_chunked_with_specials_readded():
    seqs = make_sequences([doc(25)], NumberTokenizer(), max_len=12)
    # body of max_len - 2 = 10 tokens: chunks of 10, 10 and 5; the last gives 7 < 12 tokens
    assert len(seqs) == 2
    assert seqs[0].tolist() == [CLS] + list(range(10, 20)) + [SEP]
    assert seqs[1].tolist() == [CLS] + list(range(20, 30)) + [SEP]
    assert all(s.dtype == np.int64 for s in seqs)


def test_sequences_of_11_tokens_or_fewer_are_dropped():
    tok = NumberTokenizer()
    assert make_sequences([doc(9)], tok, max_len=64) == []  # 9 + 2 = 11 tokens: dropped
    (kept,) = make_sequences([doc(10)], tok, max_len=64)  # 12 tokens: kept
    assert len(kept) == 12 and kept[0] == CLS and kept[-1] == SEP
    seqs = make_sequences([doc(3), doc(40), doc(5)], tok, max_len=16, min_len=5)
    assert [len(s) for s in seqs] == [5, 16, 16, 14, 7]  # 3 | 14+14+12 | 5 tokens, in order


def test_sequences_with_a_real_tokenizer():
    vocab = list(SPECIAL_TOKENS) + list("abcdefghijklmnopqrstuvwxyz") + \
        ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"] + ["the", "cat", "sat", "."]
    tok = WordPieceTokenizer(vocab)
    text = "The cat sat on the mat. " * 20
    seqs = make_sequences([text, "too short."], tok, max_len=32)
    assert len(seqs) > 1 and all(len(s) <= 32 for s in seqs)
    assert all(s[0] == tok.cls_id and s[-1] == tok.sep_id for s in seqs)
    assert sum(len(s) - 2 for s in seqs) <= len(tok.encode(text, add_special_tokens=False))
    inner = np.concatenate([s[1:-1] for s in seqs])
    assert tok.cls_id not in inner and tok.sep_id not in inner


def test_make_sequences_argument_errors():
    tok = NumberTokenizer()
    with pytest.raises(TypeError, match="not one str"):
        make_sequences("1 2 3", tok, 16)
    with pytest.raises(ValueError, match="max_len must be >= 3"):
        make_sequences([doc(5)], tok, 2)
    with pytest.raises(ValueError, match="min_len"):
        make_sequences([doc(5)], tok, 16, min_len=17)
    with pytest.raises(TypeError, match="max_len must be an int"):
        make_sequences([doc(5)], tok, 16.0)
    with pytest.raises(TypeError, match="tokenizer"):
        make_sequences([doc(5)], object(), 16)
    with pytest.raises(TypeError, match=r"docs\[1\]"):
        make_sequences([doc(5), 7], tok, 16)


# ---------------------------------------------------------------- batches

def random_seqs(n, rng, lo=12, hi=40):
    return [rng.integers(5, 100, size=rng.integers(lo, hi + 1)) for _ in range(n)]


def unpad(ids, mask):
    return [tuple(row[m == 1]) for row, m in zip(ids, mask)]


def test_pad_batch():
    ids, mask = pad_batch([np.array([2, 7, 3]), np.array([2, 3])], pad_id=0)
    assert ids.tolist() == [[2, 7, 3], [2, 3, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert ids.dtype == np.int64 and mask.dtype == np.int64


def test_batches_cover_every_sequence_once_padded_correctly():
    rng = np.random.default_rng(0)
    seqs = random_seqs(103, rng)
    seen = []
    for ids, mask in batch_iterator(seqs, 8, np.random.default_rng(1), pad_id=PAD):
        assert ids.shape == mask.shape and ids.shape[0] <= 8
        assert ids.dtype == np.int64 and mask.dtype == np.int64
        lengths = mask.sum(axis=1)  # (B,)
        assert ids.shape[1] == lengths.max()  # padded to the batch's own longest sequence
        for row, m, n in zip(ids, mask, lengths):
            assert (m[:n] == 1).all() and (m[n:] == 0).all()  # real tokens first, then padding
            assert (row[n:] == PAD).all()
        seen.extend(unpad(ids, mask))
    assert Counter(seen) == Counter(tuple(s) for s in seqs)


def test_batches_grouped_by_length():
    rng = np.random.default_rng(0)
    lengths = rng.permutation(np.arange(12, 52))  # 40 distinct lengths
    seqs = [np.full(n, 7) for n in lengths]
    # one bucket holds everything: each batch is 4 neighbours in sorted order
    for ids, mask in batch_iterator(seqs, 4, np.random.default_rng(3), PAD, bucket_batches=10):
        n = mask.sum(axis=1)
        assert n.max() - n.min() == 3
    # sorting inside buckets pads much less than random batches (one batch per bucket)
    def padding(bucket_batches):
        return sum(int((1 - m).sum()) for _, m in batch_iterator(
            seqs, 4, np.random.default_rng(3), PAD, bucket_batches=bucket_batches))
    assert padding(10) == 10 * (3 + 2 + 1)
    assert padding(1) > 3 * padding(10)


def test_batch_order_is_seeded_and_shuffled():
    seqs = random_seqs(64, np.random.default_rng(0))

    def run(seed):
        return [ids.tolist() for ids, _ in batch_iterator(seqs, 4, np.random.default_rng(seed), PAD)]
    assert run(5) == run(5)
    assert run(5) != run(6)
    first_lengths = [len(b[0]) for b in run(5)]
    assert first_lengths != sorted(first_lengths)  # batches are not served shortest first


def test_drop_last():
    seqs = random_seqs(10, np.random.default_rng(0))
    sizes = [ids.shape[0] for ids, _ in batch_iterator(seqs, 4, np.random.default_rng(0), PAD,
                                                        drop_last=True)]
    assert sizes == [4, 4]
    sizes = sorted(ids.shape[0] for ids, _ in batch_iterator(seqs, 4, np.random.default_rng(0), PAD))
    assert sizes == [2, 4, 4]


def test_eval_batches_deterministic():
    seqs = random_seqs(21, np.random.default_rng(0))
    a = [ids.tolist() for ids, _ in eval_batches(seqs, 5, PAD)]
    assert a == [ids.tolist() for ids, _ in eval_batches(seqs, 5, PAD)]
    lens = [len(r) - r.count(PAD) for b in a for r in b]  # ids >= 5 are never PAD
    assert lens == sorted(len(s) for s in seqs)
    kept = [row for ids, mask in eval_batches(seqs, 5, PAD, sort_by_length=False)
            for row in unpad(ids, mask)]
    assert kept == [tuple(s) for s in seqs]


def test_batch_argument_errors():
    seqs = random_seqs(4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        list(batch_iterator(seqs, 0, np.random.default_rng(0), PAD))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        list(batch_iterator(seqs, 2, 0, PAD))
    with pytest.raises(ValueError, match="pad_id must be >= 0"):
        list(batch_iterator(seqs, 2, np.random.default_rng(0), -1))
    with pytest.raises(TypeError, match="1-D id arrays"):
        list(batch_iterator(np.zeros((3, 4), dtype=np.int64), 2, np.random.default_rng(0), PAD))
    with pytest.raises(ValueError, match=r"seqs\[1\]"):
        list(eval_batches([np.array([1, 2]), np.array([0.5])], 2, PAD))
    assert list(batch_iterator([], 2, np.random.default_rng(0), PAD)) == []


def test_token_counts():
    seqs = [np.array([2, 5, 5, 3]), np.array([2, 9, 3])]
    counts = token_counts(seqs, vocab_size=12)
    assert counts.shape == (12,) and counts.dtype == np.int64
    expected = Counter([2, 5, 5, 3, 2, 9, 3])
    assert counts.tolist() == [expected.get(i, 0) for i in range(12)]
    assert token_counts([], 4).tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        token_counts(seqs, vocab_size=9)
