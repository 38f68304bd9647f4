"""WordPiece tokenizer: BERT pre-tokenization, greedy longest match, vocab files, the trainer."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidistil.data.corpus import load_default_corpus
from minidistil.data.tokenizer import (SPECIAL_TOKENS, WordPieceTokenizer, count_words,
                                       pre_tokenize, train_wordpiece)

SPECIALS = list(SPECIAL_TOKENS)


# ---------------------------------------------------------------- pre-tokenization

def test_ascii_punctuation_is_split_off():
    assert pre_tokenize("Hello, world! a+b=c $5 `x` don't snake_case") == [
        "hello", ",", "world", "!", "a", "+", "b", "=", "c", "$", "5", "`", "x", "`",
        "don", "'", "t", "snake", "_", "case"]


def test_unicode_punctuation_is_split_off():
    # « Pi, » Pf, — Pd, … Po, ¿ Po: all Unicode punctuation; © is a symbol (So) and stays
    assert pre_tokenize("«quote»—dash… ¿qué? ©2024") == [
        "«", "quote", "»", "—", "dash", "…", "¿", "que", "?", "©2024"]


def test_lower_case_and_accents_stripped():
    assert pre_tokenize("Café ÑANDÚ Über naïve") == ["cafe", "nandu", "uber", "naive"]


def test_cased_mode_keeps_case_and_accents():
    assert pre_tokenize("Café Über", do_lower_case=False) == ["Café", "Über"]


def test_cjk_ideographs_are_single_words_but_kana_is_not():
    assert pre_tokenize("我爱NLP和Python") == ["我", "爱", "nlp", "和", "python"]
    assert pre_tokenize("カタカナ") == ["カタカナ"]


def test_control_characters_deleted_and_whitespace_split():
    # NUL and VT (controls) are deleted, joining their neighbours; NBSP (Zs) and TAB split;
    # U+200B (format char) is deleted; U+2028 (Zl) is neither BERT whitespace nor a control, but
    # Hugging Face's whitespace_tokenize splits with str.split(), which splits on it (issue 20)
    assert pre_tokenize("a\x00b\x0bc\td\u00a0e\u200bf g\u2028h") == ["abc", "d", "ef", "g", "h"]
    assert pre_tokenize("x\u2029y") == ["x", "y"]
    assert pre_tokenize("a\x00b\x0bc\td") == ["abc", "d"]  # the same on the ASCII fast path
    assert pre_tokenize("x\ue000y\ufffdz") == ["xyz"]  # private use (Co) and U+FFFD deleted too


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=40))
def test_ascii_fast_path_matches_general_path(text):
    # a trailing non-ASCII word forces the character-by-character path for the whole text
    assert pre_tokenize(text + " é") == pre_tokenize(text) + ["e"]


# ---------------------------------------------------------------- WordPiece with a hand-written vocab

# BERT-style vocab.txt with the special tokens NOT at our positions: lookup must be by text
HAND_VOCAB = ["[PAD]", "un", "##aff", "##able", "##a", "##ff", "[UNK]", "play", "##ing", "##s",
              "[CLS]", "[SEP]", "ab", "a", "##cd", "##bcd", "[MASK]", ",", "the", "##e", "##ed",
              "##b", "b"]


@pytest.fixture()
def hand_tok(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(HAND_VOCAB) + "\n", encoding="utf-8")
    return WordPieceTokenizer.from_file(str(path))


def test_hand_vocab_special_ids_looked_up_by_text(hand_tok):
    assert (hand_tok.pad_id, hand_tok.unk_id, hand_tok.cls_id, hand_tok.sep_id, hand_tok.mask_id) \
        == (0, 6, 10, 11, 16)
    assert hand_tok.special_ids == (0, 6, 10, 11, 16)
    assert hand_tok.vocab_size == len(HAND_VOCAB)


def test_hand_vocab_pieces(hand_tok):
    assert hand_tok.tokenize("Unaffable, playing plays the") == [
        "un", "##aff", "##able", ",", "play", "##ing", "play", "##s", "the"]
    # longest match first, not the best split: "ab"+"##cd" although "a"+"##bcd" exists
    assert hand_tok.tokenize("abcd") == ["ab", "##cd"]
    # falls back to shorter pieces when the longest one does not lead anywhere
    assert hand_tok.tokenize("unaffa") == ["un", "##aff", "##a"]


def test_unknown_words_become_one_unk(hand_tok):
    # "playx": "play" matches, "##x" never does -> the whole word is [UNK], not play + [UNK]
    assert hand_tok.tokenize("playx the zzz") == ["[UNK]", "the", "[UNK]"]
    assert hand_tok.encode("a☃", add_special_tokens=False) == [hand_tok.unk_id]


def test_word_longer_than_100_chars_is_unk():
    tok = WordPieceTokenizer(SPECIALS + ["a", "##a"])
    assert tok.tokenize("a" * 100) == ["a"] + ["##a"] * 99
    assert tok.tokenize("a" * 101) == ["[UNK]"]


def test_encode_specials_decode(hand_tok):
    ids = hand_tok.encode("the unaffable")  # [CLS] ... [SEP] by default, as in transformers
    assert ids == [10, 18, 1, 2, 3, 11]
    assert hand_tok.encode("the unaffable", add_special_tokens=False) == [18, 1, 2, 3]
    assert hand_tok.decode(ids) == "[CLS] the unaffable [SEP]"
    assert hand_tok.decode(ids, skip_special_tokens=True) == "the unaffable"
    assert hand_tok.decode(np.array(ids)) == hand_tok.decode(iter(ids)) == "[CLS] the unaffable [SEP]"
    # special tokens written in the text stay whole
    assert hand_tok.tokenize("the [MASK] plays[SEP]") == ["the", "[MASK]", "play", "##s", "[SEP]"]
    assert hand_tok.convert_tokens_to_ids(["play", "nope", "[MASK]"]) == [7, 6, 16]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        hand_tok.decode([len(HAND_VOCAB)])
    with pytest.raises(TypeError, match="text must be a str"):
        hand_tok.encode(b"bytes")


def test_vocab_round_trip(tmp_path, hand_tok):
    path = tmp_path / "out" / "vocab.txt"
    path.parent.mkdir()
    hand_tok.save(str(path))
    assert path.read_text(encoding="utf-8").split("\n")[:-1] == HAND_VOCAB  # line number = id
    assert [p.name for p in path.parent.iterdir()] == ["vocab.txt"]  # no temporary file left
    again = WordPieceTokenizer.from_file(str(path))
    assert again.vocab == HAND_VOCAB
    text = "Unaffable plays, the abcd zzz"
    assert again.encode(text) == hand_tok.encode(text)


def test_windows_line_endings_load(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes(("\r\n".join(SPECIALS + ["x"]) + "\r\n").encode())
    assert WordPieceTokenizer.from_file(str(path)).vocab == SPECIALS + ["x"]


def test_bad_vocab_files(tmp_path):
    no_mask = tmp_path / "a.txt"
    no_mask.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nx\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        WordPieceTokenizer.from_file(str(no_mask))
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="binary"):
        WordPieceTokenizer.from_file(str(binary))
    with pytest.raises(FileNotFoundError):
        WordPieceTokenizer.from_file(str(tmp_path / "missing.txt"))
    with pytest.raises(TypeError, match="vocab"):
        WordPieceTokenizer("[PAD] [UNK]")


# ---------------------------------------------------------------- the trainer

def test_trainer_merges_by_frequency_worked_example():
    # word counts: hug 10, pug 5, pun 12, bun 4, hugs 5. Pair counts at the start:
    # (##u,##g) 20, (p,##u) 17, (##u,##n) 16, (h,##u) 15, (##g,##s) 5, (b,##u) 4. Worked by hand:
    #   ##u+##g=##ug (20); ##u+##n=##un (16); h+##ug=hug (15); p+##un=pun (12);
    #   then (hug,##s) and (p,##ug) tie at 5 -> text order: hugs, then pug; b+##un=bun (4)
    text = " ".join(["hug"] * 10 + ["pug"] * 5 + ["pun"] * 12 + ["bun"] * 4 + ["hugs"] * 5)
    alphabet = ["b", "h", "p", "##g", "##n", "##s", "##u"]
    merges = ["##ug", "##un", "hug", "pun", "hugs", "pug", "bun"]
    tok = train_wordpiece([text], vocab_size=len(SPECIALS) + len(alphabet) + len(merges))
    assert tok.vocab == SPECIALS + alphabet + merges
    assert tok.tokenize("hugs puns bug") == ["hugs", "pun", "##s", "b", "##ug"]


def test_trainer_respects_min_frequency():
    # "c" occurs once: not in the alphabet with min_frequency=2, so "abc" cannot be learned
    tok = train_wordpiece(["ab ab ab abc"], vocab_size=8)
    assert tok.vocab == SPECIALS + ["a", "##b", "ab"]
    assert tok.tokenize("abc") == ["[UNK]"]
    with pytest.warns(UserWarning, match="only supports"):
        small = train_wordpiece(["ab ab ab abc"], vocab_size=50)
    assert small.vocab_size == 8


@pytest.fixture(scope="module")
def corpus_slice():
    return load_default_corpus()[:150]  # memoised: the corpus is harvested once per session


@pytest.fixture(scope="module")
def trained(corpus_slice):
    return train_wordpiece(corpus_slice, vocab_size=600)


def test_trainer_size_specials_first_unique(trained):
    assert trained.vocab_size == 600
    assert trained.vocab[:5] == SPECIALS and trained.pad_id == 0
    assert len(set(trained.vocab)) == 600
    assert all(t == t.lower() for t in trained.vocab[5:])  # uncased
    assert "the" in trained.token_to_id  # the most frequent English word is one token


def test_trainer_is_deterministic(corpus_slice, trained):
    assert train_wordpiece(corpus_slice, vocab_size=600).vocab == trained.vocab


def test_trained_vocab_covers_its_text(corpus_slice):
    tok = train_wordpiece(corpus_slice[:40], vocab_size=400, min_frequency=1)
    ids = [i for d in corpus_slice[:40] for i in tok.encode(d, add_special_tokens=False)]
    assert tok.unk_id not in ids  # min_frequency=1: every character of the text is known
    # merges shorten the text: fewer tokens than characters without spaces
    n_chars = sum(len("".join(w)) for w in count_words(corpus_slice[:40]).elements())
    assert len(ids) < 0.6 * n_chars


def test_trained_tokenizer_saves_and_loads(tmp_path, trained):
    path = tmp_path / "vocab.txt"
    trained.save(str(path))
    again = WordPieceTokenizer.from_file(str(path))
    assert again.vocab == trained.vocab
    text = "Return the number of items in a container; raise ValueError otherwise."
    assert again.encode(text) == trained.encode(text)
    assert trained.decode(trained.encode("the items"), skip_special_tokens=True) == "the items"


def test_trainer_argument_errors():
    with pytest.raises(TypeError, match="not one str"):
        train_wordpiece("some text", 100)
    with pytest.raises(ValueError, match="vocab_size must be at least"):
        train_wordpiece(["a b"], 3)
    with pytest.raises(ValueError, match="min_frequency"):
        train_wordpiece(["a b"], 100, min_frequency=0)
    with pytest.raises(ValueError, match="no words"):
        train_wordpiece(["   ", ""], 100)


def test_no_warning_when_full(trained):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_wordpiece(["ab ab ab"], vocab_size=8)


def test_duplicated_vocab_line_keeps_the_last_id_as_hugging_face():
    """issue 20: HF's load_vocab fills a dict line by line, so a repeated token keeps its last id."""
    from minidistil.data.tokenizer import SPECIAL_TOKENS, WordPieceTokenizer
    vocab = list(SPECIAL_TOKENS) + ["cat", "dog", "cat"]
    tok = WordPieceTokenizer(vocab)
    assert tok.token_to_id["cat"] == len(vocab) - 1
    assert tok.encode("cat", add_special_tokens=False) == [len(vocab) - 1]
