"""The text the models learn from: an embedded default corpus, or the user's own .txt files.

The default corpus is English prose that ships with every CPython, so nothing is downloaded:

1. ``pydoc_data.topics.topics``: the language reference sections that ``help("if")`` prints.
2. Docstrings of the standard library's Python sources (module, class and function docstrings),
   read with :mod:`ast`: the files are *parsed*, never imported, so no module code runs (no
   ``antigravity`` browser tab, no ``this`` poem on stdout, no Tk window, nothing blocks).
3. Prose-like comment blocks of the same files (runs of ``# ...`` lines that read as sentences).
4. Docstrings of the compiled standard-library modules (``builtins``, ``math``, ``itertools``,
   ``posix``, ...): these only exist at run time, so they are imported, which for C extension
   modules runs no Python code; the few with effects on import (``readline`` may write to the
   terminal, ``_tkinter`` loads Tk, ``_test*`` are CPython's test helpers) are skipped, and
   stdout/stderr/warnings are silenced while importing. They are read in a fresh interpreter
   (one short subprocess): a host such as Jupyter's kernel swaps ``builtins.input`` and
   ``faulthandler.enable`` for its own, and the corpus, its split and its vocabulary must be
   the same in a notebook, under pytest and on the command line.

Test packages (``test``, ``tests``, ``idle_test``), ``site-packages`` and the generated codec
tables in ``encodings`` are left out. Every docstring or comment block is kept once (exact
duplicates such as "Return repr(self)." are dropped), and the order is deterministic (sorted
topics, then sorted file paths in source order, then sorted module names), so the same Python
gives the same documents in every process.

What is a document: a topic; a module docstring; a top-level class with all the docstrings
inside it; a top-level function with those inside it; the prose comments of one file; the
docstrings of one compiled module. The train/validation split is made per document
(:func:`split_documents`), so no document is cut between the two.

User text (:func:`load_corpus`): a ``.txt`` file or a folder of ``.txt`` files, UTF-8; each
paragraph (text between blank lines) is a document. Harvesting takes about a second, so the
default corpus is not cached on disk, only memoised in the process.
"""
from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib
import inspect
import io
import os
import re
import sys
import sysconfig
import warnings
from functools import lru_cache

MIN_CORPUS_CHARS = 20_000  # about 3,500 words: fewer cannot fill a train and a validation split
MIN_DOCUMENTS = 2          # one for training, one for validation
MIN_DOCSTRING_CHARS = 20   # "Return self." and other one-liners carry no language to learn
MIN_DOCUMENT_CHARS = 64

SKIP_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages",
                       "__pycache__", "encodings"})
# compiled modules not imported: terminal escape codes, Tk, CPython's own test helpers, examples
SKIP_COMPILED = frozenset({"readline", "_tkinter", "xxlimited", "xxlimited_35", "xxsubtype",
                           "_xxsubinterpreters", "_xxtestfuzz", "_ctypes_test"})


class CorpusError(ValueError):
    """The text given cannot serve as a corpus (empty, binary, too small, unreadable)."""


class CorpusNotFoundError(CorpusError, FileNotFoundError):
    """The corpus path does not exist (both a ``CorpusError`` and a ``FileNotFoundError``)."""


# ---------------------------------------------------------------- the embedded default corpus

def _pydoc_topics() -> list[str]:
    try:
        from pydoc_data.topics import topics  # plain data: a dict of str
    except ImportError:  # some distributions package it separately
        return []
    return [topics[k] for k in sorted(topics)]


def _stdlib_dir() -> str:
    path = sysconfig.get_path("stdlib")
    if not path or not os.path.isfile(os.path.join(path, "inspect.py")):
        path = os.path.dirname(inspect.__file__)
    return path


def _stdlib_sources(root: str) -> list[str]:
    """Sorted paths of the standard library's ``.py`` files, without tests and site-packages."""
    paths = []
    for folder, dirs, files in os.walk(root):
        # only package-like folders (skips lib-dynload, config-3.x-..., hidden folders)
        dirs[:] = sorted(d for d in dirs if d.isidentifier() and d not in SKIP_DIRS)
        paths.extend(os.path.join(folder, f) for f in sorted(files) if f.endswith(".py"))
    return paths


_DEFS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _nested_docstrings(node: ast.AST) -> list[str]:
    """The docstrings of ``node`` and of every class/function defined inside it, in source order.

    Only statement lists are searched (bodies, ``else``/``except``/``finally`` blocks): a
    docstring can only sit in a definition, and skipping expressions makes this 5x faster
    than ``ast.walk``.
    """
    out = []
    stack = [node]
    while stack:
        sub = stack.pop()
        if isinstance(sub, _DEFS):
            doc = ast.get_docstring(sub, clean=True)
            if doc:
                out.append((sub.lineno, doc))
        for field in ("body", "orelse", "handlers", "finalbody", "cases"):
            block = getattr(sub, field, None)
            if isinstance(block, list):
                stack.extend(b for b in block if isinstance(b, (ast.stmt, ast.excepthandler))
                             or type(b).__name__ == "match_case")
    return [d for _, d in sorted(out, key=lambda t: t[0])]


_CODE_LIKE = re.compile(r"==|!=|\bdef\b|\bimport\b|\breturn\b|[{}\[\]]|->|\w\(|copyright|licen[cs]e",
                        re.IGNORECASE)


def _is_prose(block: str) -> bool:
    """A comment block that reads as sentences: six words or more, mostly letters, no code."""
    if len(block.split()) < 6:
        return False
    letters = sum(c.isalpha() or c == " " for c in block)
    return letters >= 0.8 * len(block) and not _CODE_LIKE.search(block)


def _comment_blocks(source: str) -> list[str]:
    """Runs of full-line ``#`` comments, each joined into one line of text."""
    blocks, current = [], []
    for line in source.splitlines() + [""]:
        s = line.strip()
        if s.startswith("#") and not s.startswith("#!"):
            text = s.lstrip("#").strip()
            if text:
                current.append(text)
        elif current:
            blocks.append(" ".join(current))
            current = []
    return [b for b in blocks if _is_prose(b)]


def _source_documents(path: str) -> list[list[str]]:
    """The documents of one source file, each a list of docstrings/comment blocks."""
    try:
        with open(path, "rb") as f:
            source_bytes = f.read()
        tree = ast.parse(source_bytes, filename=path)  # honours a "coding:" line
    except (OSError, SyntaxError, ValueError):
        return []  # an unreadable or Python-2 file is simply skipped
    try:
        source = source_bytes.decode("utf-8")
    except UnicodeDecodeError:
        source = ""  # a file in another encoding keeps its docstrings, loses its comments
    docs = []
    module_doc = ast.get_docstring(tree, clean=True)
    if module_doc:
        docs.append([module_doc])
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            parts = _nested_docstrings(node)
            if parts:
                docs.append(parts)
    comments = _comment_blocks(source)
    if comments:
        docs.append(comments)
    return docs


def _compiled_module_names() -> list[str]:
    """Standard-library modules that exist only compiled (built in or in lib-dynload)."""
    names = set(sys.builtin_module_names)
    from importlib.machinery import EXTENSION_SUFFIXES
    for folder in sys.path:
        if os.path.basename(folder) == "lib-dynload" and os.path.isdir(folder):
            for f in os.listdir(folder):
                if any(f.endswith(s) for s in EXTENSION_SUFFIXES):
                    names.add(f.split(".")[0])
    stdlib_names = getattr(sys, "stdlib_module_names", None)  # never a third-party module
    return sorted(n for n in names
                  if (stdlib_names is None or n in stdlib_names)
                  and n not in SKIP_COMPILED and not n.startswith("_test"))


def _compiled_documents(name: str) -> list[str]:
    """Docstrings of a compiled module, its functions, classes and their methods."""
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            module = importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a module missing on this platform is skipped
        return []
    parts = [module.__doc__]
    namespace = vars(module)
    try:
        for attr, obj in list(namespace.items()):
            if attr.startswith("__"):
                continue
            # The host process may have swapped a hook for its own (pytest replaces
            # sys.unraisablehook, IPython sys.displayhook); the original stays in
            # sys.__unraisablehook__, so read that one and the corpus does not depend on
            # who imported what.
            if attr.endswith("hook") and inspect.isroutine(namespace.get(f"__{attr}__")):
                obj = namespace[f"__{attr}__"]
            if inspect.isfunction(obj):  # written in Python, so added by the host process
                continue
            if inspect.isroutine(obj):
                parts.append(obj.__doc__)
            elif inspect.isclass(obj) and obj.__module__ in (name, "builtins"):
                parts.append(obj.__doc__)
                parts.extend(getattr(m, "__doc__", None) for a, m in list(vars(obj).items())
                             if not a.startswith("__") or a == "__init__")
    except Exception:  # noqa: BLE001 - an odd object ends this module's harvest, not the corpus
        pass
    return [inspect.cleandoc(p) for p in parts if isinstance(p, str)]


def _finish(raw_documents: list[list[str]]) -> list[str]:
    """Drop short pieces and exact duplicates (first one wins), join pieces, drop short docs."""
    seen: set[str] = set()
    docs = []
    for parts in raw_documents:
        kept = []
        for p in parts:
            p = p.strip()
            if len(p) >= MIN_DOCSTRING_CHARS and p not in seen:
                seen.add(p)
                kept.append(p)
        text = "\n\n".join(kept)
        if len(text) >= MIN_DOCUMENT_CHARS:
            docs.append(text)
    return docs


def harvest_stdlib_corpus() -> list[str]:
    """Collect the default corpus from this Python's standard library (about a second)."""
    raw = [[t] for t in _pydoc_topics()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. SyntaxWarning for an odd escape in some file
        for path in _stdlib_sources(_stdlib_dir()):
            raw.extend(_source_documents(path))
    raw.extend(_compiled_harvest())
    return _finish(raw)


_HARVEST = ("import json, sys\n"
            "from minidistil.data.corpus import _compiled_documents, _compiled_module_names\n"
            "sys.stdout.write(json.dumps([_compiled_documents(n) for n in _compiled_module_names()]))\n")


def _compiled_harvest() -> list[list[str]]:
    """The docstrings of every compiled module, read in a fresh interpreter (see the module
    docstring); in this process only if that interpreter cannot run, with a warning."""
    import json
    import subprocess
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [package_parent] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    env.pop("PYTHONSTARTUP", None)
    try:
        r = subprocess.run([sys.executable, "-c", _HARVEST], capture_output=True, text=True,
                           env=env, timeout=300, stdin=subprocess.DEVNULL)
        if r.returncode == 0:
            return json.loads(r.stdout)
        why = (r.stderr.strip().splitlines() or ["no message"])[-1]
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        why = f"{type(e).__name__}: {e}"
    warnings.warn(f"the compiled modules' docstrings were read in this process ({why}); "
                  "inside Jupyter or another host that replaces built-ins, the corpus may "
                  "differ slightly from the command line's", RuntimeWarning, stacklevel=3)
    return [_compiled_documents(name) for name in _compiled_module_names()]


@lru_cache(maxsize=1)
def _default_corpus() -> tuple[str, ...]:
    return tuple(harvest_stdlib_corpus())


def load_default_corpus() -> list[str]:
    """The embedded corpus as a list of documents (harvested once per process)."""
    docs = list(_default_corpus())
    if sum(map(len, docs)) < MIN_CORPUS_CHARS:  # a stripped-down Python without sources
        raise CorpusError(
            f"this Python's standard library gave only {sum(map(len, docs)):,} characters of "
            f"docstrings; at least {MIN_CORPUS_CHARS:,} are needed. Pass your own text with "
            f"--corpus PATH (a .txt file or a folder of .txt files)")
    return docs


# ---------------------------------------------------------------- the user's text

def _read_text_file(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CorpusError(f"cannot read corpus file {path}: {e.strerror or e}") from None
    if b"\x00" in data:
        raise CorpusError(f"corpus file {path} looks binary (it contains NUL bytes); "
                          f"expected UTF-8 text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CorpusError(f"corpus file {path} is not UTF-8 text (bad byte at offset {e.start}); "
                          f"expected UTF-8 text") from None


_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n")


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs (text separated by blank lines), stripped, empty ones dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [p.strip() for p in _BLANK_LINES.split(text) if p.strip()]


def load_corpus(path) -> list[str]:
    """Documents from a ``.txt`` file or a folder of ``.txt`` files (sorted by name).

    Each paragraph is a document. Raises :class:`CorpusError` (a ``ValueError``) for a path
    that is missing, empty, unreadable, binary or gives fewer than ``MIN_CORPUS_CHARS``
    characters or ``MIN_DOCUMENTS`` paragraphs.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path)
                       if f.lower().endswith(".txt") and os.path.isfile(os.path.join(path, f)))
        if not files:
            raise CorpusError(f"corpus folder {path} contains no .txt files")
    elif os.path.isfile(path):
        files = [path]
    else:
        raise CorpusNotFoundError(f"corpus path not found: {path} "
                                  f"(expected a .txt file or a folder of .txt files)")
    docs = []
    for f in files:
        docs.extend(split_paragraphs(_read_text_file(f)))
    n_chars = sum(map(len, docs))
    if n_chars == 0:
        raise CorpusError(f"corpus {path} is empty; at least {MIN_CORPUS_CHARS:,} characters "
                          f"of text are needed")
    if n_chars < MIN_CORPUS_CHARS:
        raise CorpusError(f"corpus {path} has only {n_chars:,} characters; at least "
                          f"{MIN_CORPUS_CHARS:,} (about 3,500 words) are needed")
    if len(docs) < MIN_DOCUMENTS:
        raise CorpusError(f"corpus {path} has {len(docs)} paragraph(s); at least {MIN_DOCUMENTS} "
                          f"are needed for a train/validation split (separate them by blank lines)")
    return docs


# ---------------------------------------------------------------- splitting and statistics

def _unit_hash(text: str, seed: int) -> float:
    """A number in [0, 1) fixed by the text and the seed (same in every process and platform)."""
    h = hashlib.sha256(f"{seed}\x00{text}".encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


def split_documents(docs, val_fraction: float = 0.05, seed: int = 0) -> tuple[list[str], list[str]]:
    """Split documents into ``(train, val)`` by a hash of each document's text and ``seed``.

    A document goes to validation when its hash falls below ``val_fraction``: the split does not
    depend on the order of the documents or on which other documents exist, and it is the same
    in every process. Order is kept within each part. With ``val_fraction > 0`` both parts are
    non-empty (the lowest-hash document is moved over if chance left validation empty).
    """
    if isinstance(docs, str) or not all(isinstance(d, str) for d in docs):
        raise TypeError("docs must be a list of str documents")
    docs = list(docs)
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) \
            or not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if val_fraction == 0.0:
        return docs, []
    if len(docs) < 2:
        raise ValueError(f"docs must hold at least 2 documents to split, got {len(docs)}")
    scores = [_unit_hash(d, seed) for d in docs]
    is_val = [s < val_fraction for s in scores]
    if not any(is_val):
        is_val[min(range(len(docs)), key=scores.__getitem__)] = True
    if all(is_val):
        is_val[max(range(len(docs)), key=scores.__getitem__)] = False
    train = [d for d, v in zip(docs, is_val) if not v]
    val = [d for d, v in zip(docs, is_val) if v]
    return train, val


def corpus_stats(docs) -> dict:
    """``{"documents", "characters", "megabytes", "words"}`` of a list of documents."""
    n_chars = sum(len(d) for d in docs)
    return {"documents": len(docs), "characters": n_chars,
            "megabytes": sum(len(d.encode("utf-8")) for d in docs) / 1e6,
            "words": sum(len(d.split()) for d in docs)}
