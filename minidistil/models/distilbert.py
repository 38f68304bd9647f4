"""The DistilBERT student (``DistilBertForMaskedLM``) and its initialisation from a teacher.

Architecture = the teacher's without token-type embeddings and without the pooler; the MLM head
is vocab_transform -> GELU -> vocab_layer_norm -> vocab_projector (tied to the word embeddings,
own bias ``vocab_projector.bias``). ``config.num_hidden_layers`` is the student's own depth.

Initialisation (Sanh et al. 2019, section 3): "taking one layer out of two" from the teacher;
:func:`student_layers` is the one rule for which teacher blocks a student starts from.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .base import EncoderMLM
from .bert import Bert
from .config import BertConfig
from .params import DISTILBERT_NAMING


def student_depth(n_teacher: int) -> int:
    """The student's default number of layers: half the teacher's, rounded up (the paper's factor
    of two; 6 -> 3, 12 -> 6, 3 -> 2). Every default student depth in the package comes from here."""
    return (int(n_teacher) + 1) // 2


ALIGNS = ("bottom", "top")


def student_layers(n_teacher: int, n_student: int, align: str = "bottom") -> list:
    """The teacher blocks a student of ``n_student`` layers is initialised from.

    Half the teacher's depth (:func:`student_depth`, rounded up): one layer out of two. With
    ``align="bottom"`` (the default) it starts at the first block, ``[0, 2, 4, ...]`` (6 -> 3 gives
    [0, 2, 4], 12 -> 6 gives [0, 2, 4, 6, 8, 10], and 2 -> 1, half of two, gives [0]); with
    ``align="top"`` it ends at the last block, the one the MLM head was trained on (6 -> 3 gives
    [1, 3, 5], 12 -> 6 gives [1, 3, ..., 11]; an odd depth gives the same list both ways).
    Any other depth: spread evenly with the first and last kept (6 -> 2 gives [0, 5]); a single
    layer that is not half the depth is the last one (4 -> 1 gives [3]). The released DistilBERT
    used ``[0, 2, 4, 7, 9, 11]`` for 12 -> 6: pass that list to :meth:`DistilBert.from_teacher`
    explicitly.
    """
    for name, v in (("n_teacher", n_teacher), ("n_student", n_student)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if align not in ALIGNS:
        raise ValueError(f"align must be one of {ALIGNS}, got {align!r}")
    L, n = int(n_teacher), int(n_student)
    if n > L:
        raise ValueError(f"n_student ({n}) must not exceed n_teacher ({L})")
    if n == student_depth(L):
        return list(range(L - 1 - 2 * (n - 1), L, 2)) if align == "top" else list(range(0, L, 2))
    if n == 1:
        return [L - 1]
    return [int(round(i * (L - 1) / (n - 1))) for i in range(n)]


class DistilBert(EncoderMLM):
    """DistilBERT student: ``DistilBert(config, dtype=np.float32, seed=0)`` (random init)."""

    naming = DISTILBERT_NAMING
    has_pooler = False

    def __init__(self, config: BertConfig, dtype=np.float32, seed: int = 0):
        super().__init__(config, dtype, seed)
        self.teacher_layers: Optional[list] = None  # set by from_teacher: which teacher block each came from

    @classmethod
    def random_init(cls, config: BertConfig, dtype=np.float32, seed: int = 0) -> "DistilBert":
        """A student with BERT's random initialisation (the paper's ablation, Table 4)."""
        return cls(config, dtype, seed)

    @classmethod
    def from_teacher(cls, teacher: Bert, layers: Optional[Sequence[int]] = None) -> "DistilBert":
        """A student initialised from ``teacher``: same sizes and dtype, blocks ``layers`` copied.

        ``layers`` defaults to ``student_layers(L, student_depth(L))``, one of two: ``[0, 2, 4, ...]``
        (for a 12-layer teacher ``[0, 2, 4, 6, 8, 10]``; the released DistilBERT used
        ``[0, 2, 4, 7, 9, 11]``, pass it explicitly). The list must be non-empty, within ``0..L-1``, without repeats and
        STRICTLY INCREASING: the student runs its blocks in the teacher's order, and an unsorted
        list is far more likely a typo than a wish to permute layers, so it is rejected.

        Copied: word and position embeddings, the embedding LayerNorm, the chosen blocks (renamed
        to the student's names) and the MLM head (transform -> vocab_transform, its LayerNorm ->
        vocab_layer_norm, decoder bias -> vocab_projector.bias). Dropped: token types, pooler.
        All arrays are copies: training the student never touches the teacher.
        """
        if not isinstance(teacher, Bert):
            raise TypeError(f"teacher must be a Bert, got {type(teacher).__name__}")
        L = teacher.config.num_hidden_layers
        layers = cls._check_layers(layers, L)
        config = teacher.config.replace(num_hidden_layers=len(layers))
        student = cls(config, teacher.dtype, seed=0)
        t, s = teacher.naming, student.naming
        tp = teacher.params
        copy_map = {
            s.word: t.word, s.position: t.position,
            s.emb_ln + ".weight": t.emb_ln + ".weight", s.emb_ln + ".bias": t.emb_ln + ".bias",
            s.head_dense + ".weight": t.head_dense + ".weight", s.head_dense + ".bias": t.head_dense + ".bias",
            s.head_ln + ".weight": t.head_ln + ".weight", s.head_ln + ".bias": t.head_ln + ".bias",
            s.head_bias: t.head_bias,
        }
        for j, i in enumerate(layers):
            t_names, s_names = t.block_names(i), s.block_names(j)
            for local in s_names:
                copy_map[s_names[local]] = t_names[local]
        missing = sorted(set(student.params) - set(copy_map))
        assert not missing, f"from_teacher does not fill {missing}"  # a bug here, not a user error
        student.load_state_dict({sk: tp[tk] for sk, tk in copy_map.items()})
        student.teacher_layers = list(layers)
        return student

    @staticmethod
    def _check_layers(layers, L: int) -> list:
        if layers is None:
            return student_layers(L, student_depth(L))
        if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
            raise TypeError(f"layers must be a sequence of layer indices, got {type(layers).__name__}")
        out = []
        for i in layers:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
                raise TypeError(f"layers must hold integers, got {i!r}")
            out.append(int(i))
        if not out:
            raise ValueError("layers must not be empty")
        bad = [i for i in out if not 0 <= i < L]
        if bad:
            raise ValueError(f"layers must lie in 0..{L - 1} (the teacher has {L} layers), got {bad}")
        if len(set(out)) != len(out):
            raise ValueError(f"layers must not repeat a layer, got {out}")
        if out != sorted(out):
            raise ValueError(f"layers must be strictly increasing (the student keeps the teacher's order), got {out}")
        return out
