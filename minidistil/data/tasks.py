"""The miniature GLUE: four tasks built from the embedded corpus, and the user's own TSV tasks.

Every task is made deterministically from :func:`~minidistil.data.task_sources.labelled_documents`
(nothing is downloaded), split train/dev **by document** (a document's sentences all go to one
side, chosen by a hash of its text, so no sentence or document leaks), and class-balanced by
subsampling. docs/glue.md documents each construction, its sizes and its label balance.

=========  ===========================  ======  ============================================
task       kind                         labels  metric (like GLUE's)
=========  ===========================  ======  ============================================
area       single sentence, topic       5       accuracy                (SST-2's kind of task)
swap       single sentence, acceptable  2       Matthews correlation    (CoLA)
samedoc    sentence pair, same source   2       accuracy                (MRPC/QQP)
related    sentence pair, graded        1       (Pearson + Spearman)/2  (STS-B)
=========  ===========================  ======  ============================================

User tasks (:func:`read_tsv_task`): a folder holding ``train.tsv`` and ``dev.tsv`` in GLUE's
layout, a header row then ``sentence<TAB>label`` or ``sentence1<TAB>sentence2<TAB>label``.
"""
from __future__ import annotations

import os
import random
from functools import lru_cache
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

from .corpus import _unit_hash
from .task_sources import labelled_documents, sentences

DEV_FRACTION = 0.2
SPLIT_SEED = 15  # one split for all tasks; not the pretraining split's seed
# dev: up to 2,000 examples, so that a paired difference of two models on the same dev examples
# is resolved to about +-2 points (500 gave about +-3.5); a task whose smallest class is rarer
# gets fewer, still exactly balanced (area: 5 x 170)
N_TRAIN, N_DEV = 2000, 2000

AREAS = {  # area -> the modules whose documents belong to it (the largest groups of the corpus)
    "language reference": {"reference"},
    "user interfaces": {"idlelib", "tkinter", "turtle", "turtledemo", "curses"},
    "internet and email": {"email", "http", "urllib", "xmlrpc", "smtplib", "imaplib", "poplib", "mailbox",
                           "nntplib", "ftplib", "socket", "ssl", "wsgiref", "telnetlib", "socketserver"},
    "processes and concurrency": {"asyncio", "threading", "multiprocessing", "concurrent", "subprocess",
                                  "posix", "os", "signal", "selectors", "queue", "sched", "thread"},
    "development tools": {"distutils", "importlib", "unittest", "doctest", "pdb", "bdb", "lib2to3", "pydoc",
                          "inspect", "trace", "profile", "pstats", "timeit"},
}


class Example(NamedTuple):
    a: str
    b: Optional[str]  # the second sentence of a pair task, else None
    label: float  # an int class id for classification, a float for regression
    doc: int = -1  # the document of ``a`` (-1 for user tasks)


@dataclass
class Task:
    name: str
    kind: str  # "single" or "pair"
    metric: str  # "accuracy", "mcc" or "pearson_spearman"
    num_labels: int  # 1: regression
    label_names: list
    train: list
    dev: list
    description: str = ""
    source: str = "embedded corpus"
    info: dict = field(default_factory=dict)

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    def balance(self, split: str = "train") -> dict:
        """Label -> count (regression: the target value -> count)."""
        out: dict = {}
        for ex in getattr(self, split):
            key = self.label_names[int(ex.label)] if not self.is_regression else round(float(ex.label), 3)
            out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: str(kv[0])))


# ---------------------------------------------------------------- shared material

@lru_cache(maxsize=1)
def _split_docs():
    """(train, dev) tuples of (Doc, sentences) with at least one prose sentence each."""
    train, dev = [], []
    for d in labelled_documents():
        s = sentences(d.text)
        if s:
            (dev if _unit_hash(d.text, SPLIT_SEED) < DEV_FRACTION else train).append((d, s))
    # a sentence repeated in several documents (a shared docstring line) stays on the train side
    seen = {s for _, sents in train for s in sents}
    dev = [(d, kept) for d, sents in dev if (kept := [s for s in sents if s not in seen])]
    return tuple(train), tuple(dev)


def _balanced(by_label: dict, total: int, rng: random.Random) -> list:
    """The same number of examples of each label, shuffled: total / K, or the rarest label's count."""
    per = min(total // len(by_label), min(len(pool) for pool in by_label.values()))
    out = []
    for label in sorted(by_label):
        pool = by_label[label]
        out.extend(rng.sample(pool, min(per, len(pool))))
    rng.shuffle(out)
    return out


def _make(name, builder, n_train=N_TRAIN, n_dev=N_DEV):
    train_docs, dev_docs = _split_docs()
    parts = []
    for docs, n, tag in ((train_docs, n_train, "train"), (dev_docs, n_dev, "dev")):
        rng = random.Random(f"{name}/{tag}")
        parts.append(_balanced(builder(docs, rng), n, rng))
    return parts


# ---------------------------------------------------------------- the four tasks

def _area_examples(docs, rng):
    module_area = {m: i for i, a in enumerate(AREAS) for m in AREAS[a]}
    by = {}
    for d, sents in docs:
        if d.module in module_area:
            by.setdefault(module_area[d.module], []).extend(Example(s, None, module_area[d.module], d.index)
                                                            for s in sents)
    return by


def swap_two_words(sentence: str, rng: random.Random) -> Optional[str]:
    """The sentence with two different all-letter words swapped (punctuation stays), or None."""
    w = sentence.split()
    idx = [i for i, t in enumerate(w) if t.isalpha()]
    pairs = [(i, j) for k, i in enumerate(idx) for j in idx[k + 1:] if w[i].lower() != w[j].lower()]
    if not pairs:
        return None
    i, j = rng.choice(pairs)
    w[i], w[j] = w[j], w[i]
    return " ".join(w)


def _swap_examples(docs, rng):
    by = {0: [], 1: []}
    for d, sents in docs:
        for s in sents:
            if rng.random() < 0.5:
                by[1].append(Example(s, None, 1, d.index))
            else:
                t = swap_two_words(s, rng)
                if t is not None:
                    by[0].append(Example(t, None, 0, d.index))
    return by


def _by_module(docs):
    out = {}
    for k, (d, _) in enumerate(docs):
        out.setdefault(d.module, []).append(k)
    return out


def _samedoc_examples(docs, rng):
    mod = _by_module(docs)
    by = {0: [], 1: []}
    for k, (d, sents) in enumerate(docs):
        for i, s in enumerate(sents):
            if len(sents) >= 2 and rng.random() < 0.5:
                j = rng.choice([j for j in range(len(sents)) if j != i])
                by[1].append(Example(s, sents[j], 1, d.index))
                continue
            # negatives: half from another document of the same module (a hard negative), half anywhere
            same = [o for o in mod[d.module] if o != k]
            o = rng.choice(same) if same and rng.random() < 0.5 else rng.randrange(len(docs))
            if o != k:
                by[0].append(Example(s, rng.choice(docs[o][1]), 0, d.index))
    return by


RELATED_LEVELS = ("other module", "same module, other document", "same document", "next sentence")


def _related_examples(docs, rng):
    mod = _by_module(docs)
    by = {0: [], 1: [], 2: [], 3: []}
    for k, (d, sents) in enumerate(docs):
        for i, s in enumerate(sents):
            level = rng.randrange(4)
            b = None
            if level == 3 and i + 1 < len(sents):
                b = sents[i + 1]
            elif level == 2:
                far = [j for j in range(len(sents)) if abs(j - i) > 1]
                b = sents[rng.choice(far)] if far else None
            elif level == 1:
                same = [o for o in mod[d.module] if o != k]
                b = rng.choice(docs[rng.choice(same)][1]) if same else None
            elif level == 0:
                o = rng.randrange(len(docs))
                b = rng.choice(docs[o][1]) if docs[o][0].module != d.module else None
            if b is not None:
                by[level].append(Example(s, b, level * 5.0 / 3.0, d.index))  # 0..5 like STS-B
    return by


def _task(name):
    if name == "area":
        tr, dv = _make(name, _area_examples)
        return Task(name, "single", "accuracy", len(AREAS), list(AREAS), tr, dv,
                    "which part of the standard library a sentence comes from")
    if name == "swap":
        tr, dv = _make(name, _swap_examples)
        return Task(name, "single", "mcc", 2, ["two words swapped", "as written"], tr, dv,
                    "is the sentence as written, or were two of its words swapped (acceptability)")
    if name == "samedoc":
        tr, dv = _make(name, _samedoc_examples)
        return Task(name, "pair", "accuracy", 2, ["different documents", "same document"], tr, dv,
                    "do two sentences come from the same document")
    if name == "related":
        tr, dv = _make(name, _related_examples)
        return Task(name, "pair", "pearson_spearman", 1, [], tr, dv,
                    "graded relatedness 0-5: other module < same module < same document < next sentence",
                    info={"levels": dict(zip(RELATED_LEVELS, (0.0, 5 / 3, 10 / 3, 5.0)))})
    raise ValueError(f"unknown task {name!r}: choose from {list(TASK_NAMES)} or give a folder with "
                     "train.tsv and dev.tsv")


TASK_NAMES = ("area", "swap", "samedoc", "related")


def load_task(name: str) -> Task:
    """A built-in task by name, or a user task from a folder (see :func:`read_tsv_task`)."""
    if not isinstance(name, str):
        raise TypeError(f"task must be a name or a folder path, got {type(name).__name__}")
    if name in TASK_NAMES:
        return _task(name)
    if os.path.exists(name):
        return read_tsv_task(name)
    return _task(name)  # raises the unknown-task error


# ---------------------------------------------------------------- user tasks (GLUE TSV)

def _read_tsv(path: str) -> list[list[str]]:
    if not os.path.isfile(path):
        raise ValueError(f"{path}: not found (a task folder needs train.tsv and dev.tsv)")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            lines = f.read().split("\n")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from None
    rows = [ln.rstrip("\r").split("\t") for ln in lines if ln.strip()]
    if len(rows) < 2:
        raise ValueError(f"{path}: needs a header row and at least one example, got {len(rows)} line(s)")
    return rows


def read_tsv_task(folder: str) -> Task:
    """A user task: ``folder/train.tsv`` and ``folder/dev.tsv``, each a header row then
    ``sentence<TAB>label`` (single) or ``sentence1<TAB>sentence2<TAB>label`` (pair) per line.

    Labels: integers 0..K-1 -> K classes; other numbers -> regression (num_labels = 1); words ->
    classes in sorted order. Every malformed line is a ValueError naming the file and line.
    """
    if os.path.isfile(folder):
        raise ValueError(f"--tasks {folder}: give the folder holding train.tsv and dev.tsv, not a file")
    if not os.path.isdir(folder):
        raise ValueError(f"--tasks {folder}: no such folder")
    splits = {}
    ncol = None
    for split in ("train", "dev"):
        path = os.path.join(folder, f"{split}.tsv")
        rows = _read_tsv(path)
        n = len(rows[0])
        if n not in (2, 3):
            raise ValueError(f"{path} line 1: the header must have 2 columns (sentence, label) or 3 "
                             f"(sentence1, sentence2, label), got {n}")
        if ncol is not None and n != ncol:
            raise ValueError(f"{path}: {n} columns, but train.tsv has {ncol}")
        ncol = n
        for k, r in enumerate(rows[1:], start=2):
            if len(r) != n:
                raise ValueError(f"{path} line {k}: expected {n} tab-separated columns, got {len(r)}")
            if any(not c.strip() for c in r):
                raise ValueError(f"{path} line {k}: an empty column")
        splits[split] = rows[1:]
    labels = [r[-1].strip() for s in splits.values() for r in s]
    names: list = []
    if all(_is_int(v) for v in labels) and min(int(v) for v in labels) >= 0:
        K = max(int(v) for v in labels) + 1
        conv, names = (lambda v: int(v)), [str(i) for i in range(K)]
    elif all(_is_float(v) for v in labels):
        K, conv = 1, (lambda v: float(v))
    else:
        names = sorted({r[-1].strip() for r in splits["train"]})
        unseen = sorted({r[-1].strip() for r in splits["dev"]} - set(names))
        if unseen:
            raise ValueError(f"{os.path.join(folder, 'dev.tsv')}: labels {unseen} never occur in train.tsv")
        K, conv = len(names), names.index
    if K != 1 and K < 2:
        raise ValueError(f"{folder}: a classification task needs at least 2 labels, got {names}")
    mk = lambda r: Example(r[0].strip(), r[1].strip() if ncol == 3 else None, conv(r[-1].strip()))
    train, dev = [mk(r) for r in splits["train"]], [mk(r) for r in splits["dev"]]
    name = os.path.basename(os.path.normpath(folder))
    metric = "pearson_spearman" if K == 1 else "accuracy"
    return Task(name, "pair" if ncol == 3 else "single", metric, K, names, train, dev,
                f"user task from {name}/", source=f"user TSV ({name})")


def _is_int(v: str) -> bool:
    try:
        int(v)
        return True
    except ValueError:
        return False


def _is_float(v: str) -> bool:
    try:
        return float(v) == float(v) and abs(float(v)) != float("inf")
    except ValueError:
        return False
