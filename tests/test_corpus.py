"""Corpus: the embedded stdlib corpus (content, determinism), user text files, the split."""
import os
import random
import subprocess
import sys

import pytest

from minidistil.data import corpus as corpus_mod
from minidistil.data.corpus import (MIN_CORPUS_CHARS, CorpusError, CorpusNotFoundError,
                                    corpus_stats, load_corpus, load_default_corpus,
                                    split_documents)


@pytest.fixture(scope="module")
def docs():
    return load_default_corpus()  # memoised: harvested once per test session


# ---------------------------------------------------------------- the embedded corpus

def test_default_corpus_size_and_shape(docs):
    stats = corpus_stats(docs)
    assert stats["documents"] > 1000
    assert stats["megabytes"] > 1.0  # about 3 MB on CPython 3.11
    assert all(isinstance(d, str) and len(d) >= corpus_mod.MIN_DOCUMENT_CHARS for d in docs)
    assert len(set(docs)) == len(docs)  # exact duplicates removed


def test_default_corpus_content(docs):
    from pydoc_data.topics import topics
    assert topics["assert"].strip() in docs  # the language reference topics come first
    text = "\n".join(docs)
    # docstrings of Python sources and of compiled modules
    assert "Return a new list containing all items from the iterable in ascending order" in text
    assert "Return the square root of x." in text
    # CPython's test suite is left out
    assert all(os.sep + "test" + os.sep not in p and "site-packages" not in p
               for p in corpus_mod._stdlib_sources(corpus_mod._stdlib_dir()))


def test_default_corpus_returns_a_fresh_list(docs):
    again = load_default_corpus()
    assert again == docs and again is not docs
    again.clear()
    assert load_default_corpus() == docs


_SLICE = """
import hashlib, sys
from minidistil.data import corpus as c
paths = c._stdlib_sources(c._stdlib_dir())[:60]
raw = [[t] for t in c._pydoc_topics()[:5]]
for p in paths:
    raw.extend(c._source_documents(p))
for name in c._compiled_module_names()[:8]:
    raw.append(c._compiled_documents(name))
sys.stdout.write(hashlib.sha256("\\x01".join(c._finish(raw)).encode()).hexdigest())
"""


def test_harvest_is_deterministic_across_processes():
    # a slice of the harvest, in two processes with different string-hash seeds
    digests = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        r = subprocess.run([sys.executable, "-c", _SLICE], capture_output=True, text=True,
                           env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        digests.append(r.stdout)
    assert digests[0] == digests[1] and len(digests[0]) == 64


_COMPILED = """
import json, sys
from minidistil.data import corpus as c
sys.stdout.write(json.dumps({n: c._compiled_documents(n) for n in ("sys", "builtins")}))
"""


def test_compiled_harvest_ignores_what_the_host_process_swapped(monkeypatch):
    # pytest swaps sys.unraisablehook and IPython sys.displayhook; a notebook adds Python
    # functions to builtins. None of it may reach the corpus, or the vocabulary a test or a
    # notebook builds would differ from the CLI's.
    import builtins
    import json

    def host_hook(*args):
        """A hook the host process installed: this sentence must not reach the corpus."""

    for name in ("excepthook", "displayhook", "unraisablehook", "breakpointhook"):
        monkeypatch.setattr(sys, name, host_hook)
    monkeypatch.setattr(builtins, "get_ipython", host_hook, raising=False)
    here = {n: corpus_mod._compiled_documents(n) for n in ("sys", "builtins")}
    r = subprocess.run([sys.executable, "-c", _COMPILED], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert here == json.loads(r.stdout)
    assert not any("host process installed" in d for docs in here.values() for d in docs)
    assert any("unraisable" in d for d in here["sys"])  # the original hook's docstring


def test_compiled_harvest_is_read_in_a_fresh_interpreter(monkeypatch):
    # Jupyter's kernel replaces builtins.input with a bound method and faulthandler.enable with
    # a Python function: read in this process, the builtins document changed, its hash moved it
    # across the train/validation split, and a notebook validated the shipped teacher on ~190
    # sequences it had trained on. The harvest now runs in a child interpreter.
    import builtins
    import faulthandler

    class Kernel:
        def raw_input(self, prompt=""):
            """Forward raw_input to the frontend: this sentence must not reach the corpus."""

    def enable(*args, **kwargs):
        """A host's replacement: this sentence must not reach the corpus either."""

    monkeypatch.setattr(builtins, "input", Kernel().raw_input)
    monkeypatch.setattr(faulthandler, "enable", enable)
    harvested = corpus_mod._compiled_harvest()
    names = corpus_mod._compiled_module_names()
    assert len(harvested) == len(names)
    flat = [d for docs in harvested for d in docs]
    assert not any("must not reach the corpus" in d for d in flat)
    assert any(d.startswith("Read a string from standard input") for d in flat)  # the real input()
    assert any(d.startswith("enable(file=sys.stderr") for d in flat)  # the real faulthandler.enable
    in_process = [d for n in names for d in corpus_mod._compiled_documents(n)]
    assert any("must not reach the corpus" in d for d in in_process)  # what the child avoids


def test_prose_filter_for_comments():
    src = ("x = 1\n# Walk the list once and remember the largest value seen so far\n"
           "# so that the caller never sorts.\ny = 2\n# x = foo(y)  # commented-out code here ok\n"
           "# short one\n# Copyright 2001 Python Software Foundation all rights reserved\n")
    assert corpus_mod._comment_blocks(src) == [
        "Walk the list once and remember the largest value seen so far so that the caller never sorts."]


# ---------------------------------------------------------------- the split

def test_split_disjoint_complete_deterministic(docs):
    train, val = split_documents(docs, 0.05, seed=0)
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(docs)
    assert 0.02 < len(val) / len(docs) < 0.09
    assert split_documents(docs, 0.05, seed=0) == (train, val)
    # order of the documents does not matter, only their text and the seed
    shuffled = docs[:]
    random.Random(1).shuffle(shuffled)
    assert set(split_documents(shuffled, 0.05, seed=0)[1]) == set(val)
    assert set(split_documents(docs, 0.05, seed=1)[1]) != set(val)
    # order is kept inside each part
    pos = {d: k for k, d in enumerate(docs)}
    assert [pos[d] for d in val] == sorted(pos[d] for d in val)


def test_split_edge_cases():
    two = ["first document text", "second document text"]
    train, val = split_documents(two, 0.01)
    assert len(train) == 1 and len(val) == 1  # never an empty validation part
    assert split_documents(two, 0.0) == (two, [])
    with pytest.raises(ValueError, match="val_fraction"):
        split_documents(two, 1.0)
    with pytest.raises(ValueError, match="val_fraction"):
        split_documents(two, -0.1)
    with pytest.raises(TypeError, match="list of str"):
        split_documents("one string", 0.1)
    with pytest.raises(ValueError, match="at least 2"):
        split_documents(["only one"], 0.1)


# ---------------------------------------------------------------- user text

def _paragraphs(n, words=60):
    return "\n\n".join(" ".join(f"word{k}x{j}" for j in range(words)) for k in range(n))


def test_load_txt_file_splits_paragraphs(tmp_path):
    text = _paragraphs(40)
    path = tmp_path / "book.txt"
    path.write_text("\ufeff" + text.replace("\n\n", "\r\n  \r\n", 3), encoding="utf-8")  # BOM, CRLF
    got = load_corpus(str(path))
    assert got == text.split("\n\n")
    assert load_corpus(path) == got  # a pathlib.Path works too


def test_load_folder_of_txt_files(tmp_path):
    (tmp_path / "b.txt").write_text(_paragraphs(20), encoding="utf-8")
    (tmp_path / "a.txt").write_text("First paragraph of a.\n\n" + _paragraphs(20), encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored", encoding="utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\x00\x00")
    got = load_corpus(str(tmp_path))
    assert got[0] == "First paragraph of a."  # files in name order
    assert len(got) == 41 and "ignored" not in got


def test_corpus_errors(tmp_path, monkeypatch):
    missing = tmp_path / "nope.txt"
    with pytest.raises(CorpusNotFoundError, match="not found"):
        load_corpus(str(missing))
    with pytest.raises(FileNotFoundError):  # also an OSError for callers that expect one
        load_corpus(str(missing))
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n \n", encoding="utf-8")
    with pytest.raises(CorpusError, match=f"empty.*{MIN_CORPUS_CHARS:,}"):
        load_corpus(str(empty))
    small = tmp_path / "small.txt"
    small.write_text("A short note.\n\nAnother one.", encoding="utf-8")
    with pytest.raises(CorpusError, match=f"only 25 characters; at least {MIN_CORPUS_CHARS:,}"):
        load_corpus(str(small))
    binary = tmp_path / "data.txt"
    binary.write_bytes(os.urandom(64) + b"\x00" + b"x" * MIN_CORPUS_CHARS)
    with pytest.raises(CorpusError, match="binary"):
        load_corpus(str(binary))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(("caf\xe9 " * 10_000).encode("latin-1"))
    with pytest.raises(CorpusError, match="not UTF-8"):
        load_corpus(str(latin1))
    one_para = tmp_path / "one.txt"
    one_para.write_text("word " * 10_000, encoding="utf-8")
    with pytest.raises(CorpusError, match="paragraph"):
        load_corpus(str(one_para))
    no_txt = tmp_path / "folder"
    no_txt.mkdir()
    with pytest.raises(CorpusError, match="no .txt files"):
        load_corpus(str(no_txt))
    with pytest.raises(TypeError, match="path"):
        load_corpus(42)

    def unreadable(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    good = tmp_path / "good.txt"
    good.write_text(_paragraphs(40), encoding="utf-8")
    monkeypatch.setattr(corpus_mod, "open", unreadable, raising=False)
    with pytest.raises(CorpusError, match="cannot read.*Permission denied"):
        load_corpus(str(good))
    assert issubclass(CorpusError, ValueError)
