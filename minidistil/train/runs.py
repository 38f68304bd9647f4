"""Run configuration, the run directory, and the data every stage shares.

A run directory (``--out``) holds everything one experiment produced::

    out/
      config.json        the full RunConfig (JSON), written once by the first stage
      vocab.txt          the WordPiece vocabulary (standard BERT format)
      pretrain/          metrics.jsonl, checkpoint.npz (last good state), model.npz (final)
      distill/           the same for the student
      eval.json          the evaluation figures; plots/*.png

Every file is written through a temporary file and a rename (checkpoint.py), so a killed run
never leaves a truncated file behind.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..atomic import atomic_write_json
from ..losses import DistillLossConfig
from ..models.distilbert import ALIGNS

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.txt"


@dataclass
class DataConfig:
    corpus: str | None = None        # None: the embedded CPython corpus
    max_docs: int | None = None      # keep only the first documents (--quick)
    vocab_size: int = 4096
    max_len: int = 128
    val_fraction: float = 0.05
    split_seed: int = 0              # fixed: every seed sees the same validation documents
    max_val_sequences: int = 512     # evaluation uses at most this many validation sequences


@dataclass
class ModelSpec:
    hidden_size: int = 128
    num_hidden_layers: int = 6       # teacher
    num_attention_heads: int = 4
    intermediate_size: int = 512
    student_layers: int = 3


@dataclass
class StageConfig:
    steps: int = 300                 # optimizer steps
    batch_size: int = 32             # sequences per micro-batch
    accum_steps: int = 1             # micro-batches per optimizer step
    lr: float = 5e-4
    warmup_frac: float = 0.05
    clip_norm: float = 5.0
    weight_decay: float = 0.0
    ckpt_every: int = 50
    mlm_prob: float = 0.15
    mlm_smoothing: float | None = None  # e.g. 0.7: p(token) ~ count ** -0.7 (HF option)
    eval_every: int = 0              # validation MLM loss/accuracy every this many steps (0: off)


INIT_LAYER_RULES = ALIGNS  # the rules of models.student_layers


def check_init_layers(value) -> str:
    """``init_layers`` as stored: "bottom", "top", or teacher block indices such as "1,3,5"
    (comma-separated, from 0, strictly increasing; a list of ints is accepted too). Whether the
    indices fit the teacher is checked when the student is made, where its depth is known."""
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    if not isinstance(value, str):
        raise ValueError(f"init_layers must be 'bottom', 'top' or a list such as '1,3,5', got {value!r}")
    text = value.strip().lower()
    if text in INIT_LAYER_RULES:
        return text
    try:
        idx = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"init_layers must be 'bottom', 'top' or comma-separated layer indices "
                         f"such as '1,3,5', got {value!r}") from None
    if any(i < 0 for i in idx) or any(b <= a for a, b in zip(idx, idx[1:])):
        raise ValueError(f"init_layers {value!r}: the indices must be >= 0 and strictly increasing "
                         "(the student runs its blocks in the teacher's order)")
    return ",".join(str(i) for i in idx)


@dataclass
class DistillStageConfig(StageConfig):
    # the triple loss (weights, temperature, which positions Lce covers): declared once, in losses.py
    loss: DistillLossConfig = field(default_factory=DistillLossConfig)
    student_init: str = "teacher"    # "teacher" (models.student_layers) or "random"
    # which teacher blocks a "teacher" start copies: "bottom" (0,2,4: the paper's one of two),
    # "top" (1,3,5: one of two ending at the last block) or a list such as "0,2,5"
    init_layers: str = "bottom"
    # > 0: the fused vocabulary head, this many positions per chunk (train/fused_step.py, no
    # (P, V) array); 0: the reference path (logits, then losses.py)
    head_chunk: int = 0

    def __post_init__(self):
        self.init_layers = check_init_layers(self.init_layers)
        k = self.head_chunk
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"head_chunk must be an int >= 0 (0: the unfused head), got {k!r}")
        self.head_chunk = int(k)

    @classmethod
    def from_dict(cls, d: dict) -> "DistillStageConfig":
        """From ``to_dict`` output; a run directory written before ``loss`` was nested keeps its
        flat ``alpha_ce ... ce_positions`` keys, which are read into ``loss``."""
        d = dict(d)
        names = DistillLossConfig.__dataclass_fields__
        loss = dict(d.pop("loss", {}))
        loss.update({k: d.pop(k) for k in list(d) if k in names})
        return cls(loss=DistillLossConfig(**loss), **d)


def distill_with(stage: DistillStageConfig, **changes) -> DistillStageConfig:
    """``stage`` with ``changes``: loss fields (``alpha_ce``, ``temperature``, ...) go into
    ``stage.loss``, the others (``student_init``, ``steps``, ...) into the stage itself."""
    names = DistillLossConfig.__dataclass_fields__
    loss = {k: v for k, v in changes.items() if k in names}
    rest = {k: v for k, v in changes.items() if k not in names}
    if loss:
        rest["loss"] = dataclasses.replace(stage.loss, **loss)
    return dataclasses.replace(stage, **rest)


@dataclass
class EvalConfig:
    batch_size: int = 32
    eval_seed: int = 1234            # the fixed evaluation masks (eval_masks.py)
    n_masks: int = 8                 # each validation sequence is masked this many times
    control_masks: int = 0           # > 0: controls other than the gain's are scored on this many
    timing_repeats: int = 3


@dataclass
class RunConfig:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSpec = field(default_factory=ModelSpec)
    pretrain: StageConfig = field(default_factory=StageConfig)
    distill: DistillStageConfig = field(default_factory=DistillStageConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        return cls(seed=int(d.get("seed", 0)),
                   data=DataConfig(**d.get("data", {})),
                   model=ModelSpec(**d.get("model", {})),
                   pretrain=StageConfig(**d.get("pretrain", {})),
                   distill=DistillStageConfig.from_dict(d.get("distill", {})),
                   eval=EvalConfig(**d.get("eval", {})))


def demo_config(seed: int = 0) -> RunConfig:
    """The defaults of ``minidistil demo`` (budget: <= 10 minutes on 2 cores)."""
    return RunConfig(
        seed=seed,
        data=DataConfig(vocab_size=4096, max_len=64, max_val_sequences=512),
        model=ModelSpec(128, 6, 4, 512, 3),
        pretrain=StageConfig(steps=2500, batch_size=32, lr=1e-3, ckpt_every=100),
        distill=DistillStageConfig(steps=500, batch_size=32, lr=1e-3, ckpt_every=100),
    )


def quick_config(seed: int = 0) -> RunConfig:
    """``--quick``: a tiny model on a small slice of the corpus, for tests (seconds)."""
    return RunConfig(
        seed=seed,
        data=DataConfig(max_docs=300, vocab_size=400, max_len=32, max_val_sequences=96),
        model=ModelSpec(32, 2, 2, 64, 1),
        pretrain=StageConfig(steps=200, batch_size=64, lr=5e-3, ckpt_every=50),
        distill=DistillStageConfig(steps=40, batch_size=32, lr=3e-3, ckpt_every=20),
        eval=EvalConfig(batch_size=16, timing_repeats=1, n_masks=2),
    )


def teacher_config(seed: int = 0) -> RunConfig:
    """``pretrain --preset teacher``: the recipe of the teacher that ships in ``minidistil/assets``.

    Chosen by a short sweep of vocabulary size, width and sequence length under a budget of
    75 minutes on 2 cores (docs/reproduction.md has the sweep and the curve); trained until the
    validation MLM loss plateaus. The data split (validation fraction and seed) is the demo's, so
    the demo's validation documents were never seen by the shipped teacher.
    """
    return RunConfig(
        seed=seed,
        data=DataConfig(vocab_size=TEACHER_VOCAB, max_len=TEACHER_MAX_LEN, max_val_sequences=512),
        model=ModelSpec(TEACHER_HIDDEN, 6, 4, 4 * TEACHER_HIDDEN, 3),
        pretrain=StageConfig(steps=TEACHER_STEPS, batch_size=32, lr=TEACHER_LR, ckpt_every=250,
                             eval_every=500),
        distill=DistillStageConfig(steps=500, batch_size=32, lr=1e-3, ckpt_every=100),
    )


# the shipped teacher's recipe (see teacher_config)
TEACHER_VOCAB, TEACHER_MAX_LEN, TEACHER_HIDDEN, TEACHER_STEPS, TEACHER_LR = 4096, 64, 128, 30000, 1e-3

PRESETS = {"demo": demo_config, "quick": quick_config, "teacher": teacher_config}


# ---------------------------------------------------------------- run directory

def save_config(out: str, cfg: RunConfig) -> None:
    atomic_write_json(os.path.join(out, CONFIG_FILE), cfg.to_dict())


def load_config(out: str) -> RunConfig:
    path = os.path.join(out, CONFIG_FILE)
    with open(path, encoding="utf-8") as f:
        return RunConfig.from_dict(json.load(f))


def stage_dir(out: str, stage: str) -> str:
    return os.path.join(out, stage)


def check_writable_dir(out: str) -> None:
    """Raise ``ValueError`` unless ``out`` is (or can be created as) a writable folder."""
    path = os.path.abspath(out)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ValueError(f"--out {out}: exists and is not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"--out {out}: folder is not writable")
        return
    parent = path
    while not os.path.exists(parent):  # the nearest existing ancestor must be a writable folder
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"--out {out}: cannot create a folder under the file {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: cannot create it, {parent} is not writable")


# ---------------------------------------------------------------- data shared by all stages

class Data(NamedTuple):
    tokenizer: object                 # data.tokenizer.WordPieceTokenizer
    train: list                       # list of (T_i,) int arrays, [CLS] ... [SEP]
    val: list                         # the validation sequences used for evaluation
    counts: np.ndarray                # (V,) token counts over the training sequences


def load_documents(cfg: DataConfig) -> list[str]:
    """The corpus documents (embedded or ``cfg.corpus``), cut to ``cfg.max_docs``."""
    from ..data import corpus as corpus_mod
    docs = corpus_mod.load_corpus(cfg.corpus) if cfg.corpus else corpus_mod.load_default_corpus()
    if cfg.max_docs is not None:
        docs = docs[: cfg.max_docs]
    return docs


def prepare_data(cfg: DataConfig, vocab_path: str | None = None, docs: list[str] | None = None,
                 tokenizer=None) -> Data:
    """Split the documents, train (or load from ``vocab_path``) the tokenizer, make sequences.

    Raises ``ValueError`` with a clear message when the corpus gives too little text.
    """
    from ..data import batches, corpus as corpus_mod, tokenizer as tok_mod
    if docs is None:
        docs = load_documents(cfg)
    train_docs, val_docs = corpus_mod.split_documents(docs, cfg.val_fraction, cfg.split_seed)
    if tokenizer is None:
        if vocab_path is not None and os.path.isfile(vocab_path):
            tokenizer = tok_mod.WordPieceTokenizer.from_file(vocab_path)
        else:
            tokenizer = tok_mod.train_wordpiece(train_docs, cfg.vocab_size)
    train = batches.make_sequences(train_docs, tokenizer, cfg.max_len)
    val = batches.make_sequences(val_docs, tokenizer, cfg.max_len)
    if len(train) < 8 or len(val) < 2:
        raise ValueError(
            f"the corpus gives too little text: {len(train)} training and {len(val)} validation "
            f"sequences of 12-{cfg.max_len} tokens; need at least 8 and 2 "
            f"(about 20 KB of prose or more; the demo uses several MB)")
    val = val[: cfg.max_val_sequences]
    counts = batches.token_counts(train, tokenizer.vocab_size)
    return Data(tokenizer, train, val, counts)


def bert_config(spec: ModelSpec, vocab_size: int, max_len: int):
    """The teacher's ``BertConfig`` for ``spec``."""
    from ..models import BertConfig
    return BertConfig(vocab_size=vocab_size, hidden_size=spec.hidden_size,
                      num_hidden_layers=spec.num_hidden_layers,
                      num_attention_heads=spec.num_attention_heads,
                      intermediate_size=spec.intermediate_size,
                      max_position_embeddings=max(max_len, 8))


# ---------------------------------------------------------------- finished models on disk

MODEL_FILE = "model.npz"


def save_model(path: str, model, extra: dict | None = None) -> None:
    """Save a finished teacher (``Bert``) or student (``DistilBert``): parameters + config."""
    from .checkpoint import save_checkpoint
    kind = type(model).__name__
    meta = {"kind": kind, "config": model.config.to_dict(), "dtype": str(np.dtype(model.dtype))}
    meta.update(extra or {})
    save_checkpoint(path, model.state_dict(), meta)


def load_model(path: str):
    """Load a model written by :func:`save_model`; returns ``(model, meta)``.

    A file that is unreadable, of another kind, or whose tensors do not fit its own config
    raises ``checkpoint.RunFileError`` naming the file.
    """
    from .checkpoint import RunFileError, load_checkpoint
    from ..models import Bert, BertConfig, DistilBert
    arrays, meta = load_checkpoint(path)
    cls = {"Bert": Bert, "DistilBert": DistilBert}.get(meta.get("kind"))
    if cls is None:
        raise RunFileError(f"{path}: not a minidistil model file (kind {meta.get('kind')!r})")
    try:
        model = cls(BertConfig.from_dict(meta["config"]), dtype=np.dtype(meta.get("dtype", "float32")), seed=0)
        model.load_state_dict(arrays)
    except (KeyError, ValueError, TypeError) as e:
        raise RunFileError(f"{path}: its tensors do not match its config ({' '.join(str(e).split())})") from None
    return model, meta
