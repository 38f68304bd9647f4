"""A BERT WordPiece tokenizer and a trainer for its vocabulary, from scratch.

Tokenizing is two steps, as in BERT (Devlin et al. 2019; the ``BasicTokenizer`` and
``WordpieceTokenizer`` of the original release):

1. Pre-tokenization ("uncased" BERT): delete NUL, U+FFFD and control characters; turn every
   whitespace character into a space; put spaces around CJK ideographs so each is its own word;
   split on whitespace; lower-case, decompose (NFD) and drop combining accents ("Café" -> "cafe");
   split off every punctuation character as a word of its own (Unicode categories P* and every
   ASCII character that is neither a letter, a digit nor a space, so "$", "+", "^", "`" count).
2. WordPiece: each word becomes the longest vocabulary entry that starts it, then the longest
   ``##`` continuation of the rest, and so on ("unaffable" -> "una ##ffa ##ble"). A word with a
   part no entry covers, or longer than 100 characters, becomes a single ``[UNK]``.

The vocabulary is a list of strings: its index is the token id, and it is saved as the standard
``vocab.txt`` (one token per line), so the ``vocab.txt`` of any BERT checkpoint loads too. The
special tokens are looked up by their text, never assumed at fixed ids.

The trainer (:func:`train_wordpiece`) learns a vocabulary from text. It is the BPE-style learner
that Hugging Face's WordPiece trainer also uses: start from the characters (word-initial form
``a`` and continuation form ``##a``), then repeatedly merge the most *frequent* adjacent pair
in the corpus's words into a new entry (``t`` + ``##h`` -> ``th``), counting over distinct words
weighted by their frequency (never the raw token stream). Plain frequency is used, not the
likelihood score freq(ab)/(freq(a) freq(b)) of the original WordPiece paper: with a small
vocabulary it spends the entries on frequent words and suffixes rather than on rare pairs that
always occur together. Ties are broken by the pair's text, so training is deterministic.

Legend: V vocabulary size.
"""
from __future__ import annotations

import heapq
import os
import re
import unicodedata
import warnings
from collections import Counter

from .tokenizer_call import CallableTokenizer

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)  # the trainer puts them first: [PAD] = 0
MAX_WORD_CHARS = 100                         # longer words become [UNK], as in BERT
_CACHE_LIMIT = 1_000_000                     # cached chunks before the cache is cleared


# ---------------------------------------------------------------- character classes (BERT's)

def is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def is_control(ch: str) -> bool:
    """Unicode categories C* (control, format, private use, unassigned), as Hugging Face's
    ``BertTokenizer``; the original BERT code deletes only Cc and Cf."""
    if ch in "\t\n\r":  # whitespace for our purpose
        return False
    return unicodedata.category(ch).startswith("C")


def is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    # every ASCII non-letter, non-digit, non-space counts, even those Unicode calls symbols
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(cp: int) -> bool:
    """CJK Unified Ideographs blocks (Chinese characters, Japanese kanji; not kana or hangul)."""
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


# ---------------------------------------------------------------- pre-tokenization

# ASCII fast path: delete the control characters that are not whitespace (and NUL)
_ASCII_CONTROL = {cp: None for cp in list(range(0, 9)) + [11, 12] + list(range(14, 32)) + [127]}
_ASCII_PUNCT = r"!-/:-@\[-`{-~"
_ASCII_WORDS = re.compile(rf"[^{_ASCII_PUNCT}]+|[{_ASCII_PUNCT}]")


def whitespace_chunks(text: str) -> list[str]:
    """Clean ``text`` (controls deleted, CJK ideographs spaced) and split it on whitespace."""
    if text.isascii():
        return text.translate(_ASCII_CONTROL).split()
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or is_control(ch):
            continue
        if is_whitespace(ch):
            out.append(" ")
        elif is_cjk(cp):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    # str.split(), as Hugging Face's whitespace_tokenize: besides the characters above it also
    # splits on U+2028 and U+2029 (line and paragraph separators, categories Zl and Zp), the
    # only Python whitespace that is neither BERT whitespace (Zs) nor a deleted control (C*)
    return "".join(out).split()


def strip_accents(word: str) -> str:
    """NFD-decompose and drop the combining marks: "café" -> "cafe"."""
    return "".join(ch for ch in unicodedata.normalize("NFD", word)
                   if unicodedata.category(ch) != "Mn")


def split_punctuation(chunk: str) -> list[str]:
    """"don't!" -> ["don", "'", "t", "!"]."""
    if chunk.isascii():
        return _ASCII_WORDS.findall(chunk)
    words, current = [], []
    for ch in chunk:
        if is_punctuation(ch):
            if current:
                words.append("".join(current))
                current = []
            words.append(ch)
        else:
            current.append(ch)
    if current:
        words.append("".join(current))
    return words


def chunk_words(chunk: str, do_lower_case: bool = True) -> list[str]:
    """The words of one whitespace-free chunk: lower-case, strip accents, split punctuation."""
    if do_lower_case:
        chunk = chunk.lower()
        if not chunk.isascii():
            chunk = strip_accents(chunk)
    elif not chunk.isascii():
        chunk = unicodedata.normalize("NFC", chunk)
    return split_punctuation(chunk)


def pre_tokenize(text: str, do_lower_case: bool = True) -> list[str]:
    """BERT's basic tokenization: the words (and punctuation marks) of ``text``."""
    return [w for c in whitespace_chunks(text) for w in chunk_words(c, do_lower_case)]


# ---------------------------------------------------------------- the tokenizer

def _check_text(text) -> None:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")


class WordPieceTokenizer(CallableTokenizer):
    """Greedy longest-match-first WordPiece over BERT pre-tokenization.

    ``vocab``: list of token strings, index = id; must contain ``[PAD] [UNK] [CLS] [SEP] [MASK]``.
    Attributes ``pad_id, unk_id, cls_id, sep_id, mask_id`` (also under transformers' names
    ``pad_token_id`` ...), ``special_ids`` (sorted tuple), ``vocab_size``. Special-token texts
    written in the input ("the [MASK] sat") are kept whole. ``tok(texts, padding=True)`` returns
    model inputs as transformers' tokenizers do (:mod:`minidistil.data.tokenizer_call`).
    """

    def __init__(self, vocab, do_lower_case: bool = True, max_word_chars: int = MAX_WORD_CHARS):
        if isinstance(vocab, str) or not hasattr(vocab, "__iter__"):
            raise TypeError(f"vocab must be a list of token strings, got {type(vocab).__name__}")
        vocab = list(vocab)
        bad = [i for i, t in enumerate(vocab) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"vocab must hold only str tokens; entry {bad[0]} is "
                            f"{type(vocab[bad[0]]).__name__}")
        if not isinstance(max_word_chars, int) or max_word_chars < 1:
            raise ValueError(f"max_word_chars must be a positive int, got {max_word_chars!r}")
        self.vocab = vocab
        self.do_lower_case = bool(do_lower_case)
        self.max_word_chars = max_word_chars
        self.token_to_id: dict[str, int] = {}
        for i, t in enumerate(vocab):
            self.token_to_id[t] = i  # a duplicated line: the last id wins, as in Hugging Face
        missing = [t for t in SPECIAL_TOKENS if t not in self.token_to_id]
        if missing:
            raise ValueError(f"vocab lacks the special token(s) {', '.join(missing)}; a BERT "
                             f"vocabulary needs all of {', '.join(SPECIAL_TOKENS)}")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            self.token_to_id[t] for t in SPECIAL_TOKENS)
        self.special_ids = tuple(sorted({self.pad_id, self.unk_id, self.cls_id, self.sep_id,
                                         self.mask_id}))
        # no entry is longer than this, so the longest-match search never needs to try more
        self._max_piece = max((len(t[2:]) if t.startswith("##") else len(t)) for t in vocab)
        self._special_re = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")
        self._chunk_cache: dict[str, tuple[int, ...]] = {}
        self._word_cache: dict[str, tuple[int, ...]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return f"WordPieceTokenizer(vocab_size={self.vocab_size}, do_lower_case={self.do_lower_case})"

    # -- WordPiece proper

    def wordpiece(self, word: str) -> tuple[int, ...]:
        """Ids of one pre-tokenized word: greedy longest match first, ``##`` continuations."""
        ids = self._word_cache.get(word)
        if ids is not None:
            return ids
        ids = self._wordpiece_uncached(word)
        self._word_cache[word] = ids
        return ids

    def _wordpiece_uncached(self, word: str) -> tuple[int, ...]:
        if len(word) > self.max_word_chars:
            return (self.unk_id,)
        pieces, start, n = [], 0, len(word)
        while start < n:
            end = min(n, start + self._max_piece)
            found = None
            while end > start:  # shrink from the right until the piece is in the vocabulary
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                found = self.token_to_id.get(piece)
                if found is not None:
                    break
                end -= 1
            if found is None:
                return (self.unk_id,)  # one uncoverable part makes the whole word unknown
            pieces.append(found)
            start = end
        return tuple(pieces)

    def _encode_chunk(self, chunk: str) -> tuple[int, ...]:
        ids = self._chunk_cache.get(chunk)
        if ids is None:
            ids = tuple(i for w in chunk_words(chunk, self.do_lower_case) for i in self.wordpiece(w))
            if len(self._chunk_cache) >= _CACHE_LIMIT:
                self._chunk_cache.clear()
                self._word_cache.clear()
            self._chunk_cache[chunk] = ids
        return ids

    def _encode_plain(self, text: str) -> list[int]:
        out: list[int] = []
        for chunk in whitespace_chunks(text):
            out.extend(self._encode_chunk(chunk))
        return out

    # -- public API

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text``, wrapped as ``[CLS] ... [SEP]`` unless ``add_special_tokens=False``.

        The default adds them, as transformers' ``encode`` does (0.1.0 did not: see CHANGELOG.md).
        """
        _check_text(text)
        if "[" in text:  # special tokens written in the text stay whole
            ids: list[int] = []
            for k, part in enumerate(self._special_re.split(text)):
                if k % 2:
                    ids.append(self.token_to_id[part])
                elif part:
                    ids.extend(self._encode_plain(part))
        else:
            ids = self._encode_plain(text)
        if add_special_tokens:
            ids = [self.cls_id] + ids + [self.sep_id]
        return ids

    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of ``text`` as strings ("playing" -> ["play", "##ing"])."""
        return [self.vocab[i] for i in self.encode(text, add_special_tokens=False)]

    def convert_tokens_to_ids(self, tokens) -> list[int]:
        """Ids of token strings; unknown strings map to ``[UNK]``."""
        if isinstance(tokens, str):
            return [self.token_to_id.get(tokens, self.unk_id)]
        return [self.token_to_id.get(t, self.unk_id) for t in tokens]

    def convert_ids_to_tokens(self, ids) -> list[str]:
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"ids: token id {i} is outside the vocabulary [0, {self.vocab_size})")
            out.append(self.vocab[i])
        return out

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Tokens joined by spaces with ``##`` pieces glued to the word before them.

        Pre-tokenization is lossy (case, accents, the spacing around punctuation), so this is a
        readable rendering, e.g. "the cat ' s toy .", not the original text.
        """
        ids = [int(i) for i in ids]  # also takes numpy arrays and generators
        words: list[str] = []
        special = set(self.special_ids)
        for i, t in zip(ids, self.convert_ids_to_tokens(ids)):
            if skip_special_tokens and i in special:
                continue
            if t.startswith("##") and words:
                words[-1] += t[2:]
            else:
                words.append(t)
        return " ".join(words)

    # -- files

    def save(self, path) -> None:
        """Write the standard ``vocab.txt`` (one token per line, line number = id), atomically."""
        from ..atomic import atomic_write_text
        bad = [t for t in self.vocab if "\n" in t or "\r" in t]
        if bad:
            raise ValueError(f"token {bad[0]!r} contains a line break and cannot be saved")
        atomic_write_text(path, "".join(t + "\n" for t in self.vocab))

    @classmethod
    def from_pretrained(cls, folder) -> "WordPieceTokenizer":
        """The tokenizer of a Hugging Face folder: ``vocab.txt``, else ``tokenizer.json``
        (checked: :mod:`minidistil.data.tokenizer_json`); lower-casing and ``model_max_length``
        from ``tokenizer_config.json`` when present."""
        from ..io.pretrained import load_tokenizer
        return load_tokenizer(folder)

    @classmethod
    def from_file(cls, path, do_lower_case: bool = True) -> "WordPieceTokenizer":
        """Load a ``vocab.txt`` (ours or any BERT checkpoint's)."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"vocabulary file not found: {path}")
        with open(path, "rb") as f:
            data = f.read()
        if b"\x00" in data:
            raise ValueError(f"{path} is binary, not a vocab.txt (one token per line)")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise ValueError(f"{path} is not UTF-8 text (byte {e.start}); expected a vocab.txt") from None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the final newline
        vocab = [t.rstrip("\r") for t in lines]
        if not vocab:
            raise ValueError(f"{path} is empty; expected a vocab.txt with one token per line")
        try:
            return cls(vocab, do_lower_case=do_lower_case)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


# ---------------------------------------------------------------- training a vocabulary

def count_words(texts, do_lower_case: bool = True) -> Counter:
    """Frequency of every pre-tokenized word in ``texts`` (chunks counted first: much faster)."""
    chunks: Counter = Counter()
    for t in texts:
        _check_text(t)
        chunks.update(whitespace_chunks(t))
    words: Counter = Counter()
    for chunk, n in chunks.items():
        for w in chunk_words(chunk, do_lower_case):
            words[w] += n
    return words


def _pairs(symbols: list[str]):
    return zip(symbols, symbols[1:])


def train_wordpiece(texts, vocab_size: int, min_frequency: int = 2, do_lower_case: bool = True,
                    max_word_chars: int = MAX_WORD_CHARS) -> WordPieceTokenizer:
    """Learn a WordPiece vocabulary of ``vocab_size`` entries from ``texts`` (list of str).

    Vocabulary order: the special tokens (``[PAD]`` = 0, ``[UNK]``, ``[CLS]``, ``[SEP]``,
    ``[MASK]``), then the characters seen at least ``min_frequency`` times (word-initial forms,
    then ``##`` forms, each sorted), then the merges in the order they were learned. Merging
    stops when the vocabulary is full or no pair occurs ``min_frequency`` times (then a warning
    says the vocabulary came out smaller). If the characters alone do not fit, the most frequent
    ones are kept.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of str documents, not one str")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
    if vocab_size < len(SPECIAL_TOKENS) + 2:
        raise ValueError(f"vocab_size must be at least {len(SPECIAL_TOKENS) + 2} (the special "
                         f"tokens and one character), got {vocab_size}")
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"min_frequency must be an int >= 1, got {min_frequency!r}")
    word_counts = count_words(texts, do_lower_case)
    word_counts = Counter({w: n for w, n in word_counts.items()
                           if len(w) <= max_word_chars and w not in SPECIAL_TOKENS})
    if not word_counts:
        raise ValueError("texts contain no words to learn a vocabulary from")

    # 1. the alphabet: characters in their two forms, as they occur
    unit_counts: Counter = Counter()
    for w, n in word_counts.items():
        unit_counts[w[0]] += n
        for ch in w[1:]:
            unit_counts["##" + ch] += n
    units = [u for u, n in unit_counts.items() if n >= min_frequency]
    budget = vocab_size - len(SPECIAL_TOKENS)
    if len(units) > budget:
        units = sorted(units, key=lambda u: (-unit_counts[u], u))[:budget]
    alphabet = sorted(u for u in units if not u.startswith("##")) + \
        sorted(u for u in units if u.startswith("##"))
    vocab = list(SPECIAL_TOKENS) + alphabet
    known = set(vocab)

    # 2. every word as a list of symbols; words with a character outside the alphabet are left out
    words: list[list[str]] = []
    freqs: list[int] = []
    for w, n in word_counts.items():
        symbols = [w[0]] + ["##" + ch for ch in w[1:]]
        if len(symbols) > 1 and all(s in known for s in symbols):
            words.append(symbols)
            freqs.append(n)

    pair_counts: Counter = Counter()
    pair_words: dict[tuple[str, str], set[int]] = {}
    for i, (symbols, n) in enumerate(zip(words, freqs)):
        for p in _pairs(symbols):
            pair_counts[p] += n
            pair_words.setdefault(p, set()).add(i)
    # max-heap of (-count, a, b); entries whose count went stale are skipped when popped
    heap = [(-n, a, b) for (a, b), n in pair_counts.items()]
    heapq.heapify(heap)

    # 3. merge the most frequent pair until the vocabulary is full
    while len(vocab) < vocab_size and heap:
        negn, a, b = heapq.heappop(heap)
        if pair_counts.get((a, b), 0) != -negn:
            continue  # stale entry
        if -negn < min_frequency:
            break
        merged = a + b[2:]  # b is always a continuation: "t" + "##h" -> "th", "##i" + "##ng" -> "##ing"
        if merged not in known:  # "a"+"##bc" and "ab"+"##c" can both make "abc"
            vocab.append(merged)
            known.add(merged)
        delta: Counter = Counter()
        for i in pair_words.pop((a, b)):
            old = words[i]
            new, k = [], 0
            while k < len(old):
                if k + 1 < len(old) and old[k] == a and old[k + 1] == b:
                    new.append(merged)
                    k += 2
                else:
                    new.append(old[k])
                    k += 1
            if len(new) == len(old):
                continue  # this word lost the pair to an earlier merge
            n = freqs[i]
            for p in _pairs(old):
                delta[p] -= n
            for p in _pairs(new):
                delta[p] += n
                pair_words.setdefault(p, set()).add(i)
            words[i] = new
        for p, d in delta.items():
            if d:
                c = pair_counts[p] + d
                pair_counts[p] = c
                if c > 0:
                    heapq.heappush(heap, (-c, p[0], p[1]))
        pair_counts.pop((a, b), None)

    if len(vocab) < vocab_size:
        warnings.warn(f"train_wordpiece: the text only supports {len(vocab)} entries with "
                      f"min_frequency={min_frequency}; asked for {vocab_size}", stacklevel=2)
    return WordPieceTokenizer(vocab, do_lower_case=do_lower_case, max_word_chars=max_word_chars)
