"""The embedded corpus with a label per document (which part of the standard library it comes
from) and its sentences: the raw material of the miniature GLUE (:mod:`minidistil.data.tasks`).

:func:`labelled_documents` walks the same sources in the same order as
:func:`minidistil.data.corpus.harvest_stdlib_corpus` and keeps exactly the same documents (a test
holds the two equal), each with its *module*: ``"reference"`` for the language reference topics,
the top-level package or module of a source file (``email/mime/text.py`` -> ``"email"``), or the
compiled module's name without its leading underscore (``_asyncio`` -> ``"asyncio"``).
"""
from __future__ import annotations

import os
import re
import warnings
from functools import lru_cache
from typing import NamedTuple

from . import corpus as C


class Doc(NamedTuple):
    text: str
    module: str  # "reference", "email", "asyncio", ...
    index: int  # position in the embedded corpus


def _module_of(path: str, root: str) -> str:
    first = os.path.relpath(path, root).split(os.sep)[0]
    return first[:-3] if first.endswith(".py") else first


@lru_cache(maxsize=1)
def _labelled() -> tuple:
    raw = [([t], "reference") for t in C._pydoc_topics()]
    root = C._stdlib_dir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in C._stdlib_sources(root):
            module = _module_of(path, root)
            raw.extend((parts, module) for parts in C._source_documents(path))
    for name in C._compiled_module_names():
        raw.append((C._compiled_documents(name), name.lstrip("_")))
    # the same filtering as corpus._finish, carrying the label along
    seen: set = set()
    out = []
    for parts, module in raw:
        kept = []
        for p in parts:
            p = p.strip()
            if len(p) >= C.MIN_DOCSTRING_CHARS and p not in seen:
                seen.add(p)
                kept.append(p)
        text = "\n\n".join(kept)
        if len(text) >= C.MIN_DOCUMENT_CHARS:
            out.append(Doc(text, module, len(out)))
    return tuple(out)


def labelled_documents() -> list[Doc]:
    """Every document of the embedded corpus with its module (harvested once per process)."""
    return list(_labelled())


_SENT_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
_CODE_SYMBOLS = re.compile(r"[{}\[\]<>=_`*#|\\]|\w\(|>>>|::")
MIN_WORDS, MAX_WORDS = 6, 28


def is_prose_sentence(s: str) -> bool:
    """Six to 28 words, at least 85% letters and spaces, no code-like symbols, ends with a stop."""
    words = s.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS or s[-1] not in ".!?":
        return False
    letters = sum(c.isalpha() or c == " " for c in s)
    return letters >= 0.85 * len(s) and not _CODE_SYMBOLS.search(s)


def sentences(text: str) -> list[str]:
    """The prose sentences of a document, in order (paragraphs joined, whitespace normalised)."""
    out = []
    for para in C.split_paragraphs(text):
        flat = " ".join(para.split())
        out.extend(s for s in _SENT_END.split(flat) if is_prose_sentence(s))
    return out


def words(text: str) -> list[str]:
    """Lower-cased alphabetic words: what the bag-of-words baseline counts."""
    return [w.lower() for w in _WORD.findall(text)]
