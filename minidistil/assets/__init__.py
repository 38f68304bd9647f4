"""The teacher that ships with minidistil.

``minidistil/assets/teacher/`` is a Hugging Face ``BertForMaskedLM`` folder (``config.json``,
``vocab.txt``, ``model.safetensors`` stored in float16) trained by
``minidistil pretrain --preset teacher`` on the embedded corpus. Beside it, ``recipe.json`` holds the
exact command, the wall time and the final validation figures, and ``metrics.jsonl`` the training
curve. The demo, the ablation and the distillation notebooks start from it, so none of them has to
pretrain a teacher first.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TEACHER_DIR = Path(__file__).resolve().parent / "teacher"
RECIPE_FILE = "recipe.json"


def teacher_folder() -> Path:
    """The shipped teacher's folder; ``FileNotFoundError`` naming what is missing otherwise."""
    weights = TEACHER_DIR / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"the shipped teacher is missing from this install ({weights} not found); "
                                "reinstall minidistil or train one with `minidistil pretrain --preset teacher`")
    return TEACHER_DIR


def teacher_recipe() -> dict:
    """``recipe.json``: the command that trained the shipped teacher and its recorded figures."""
    with open(teacher_folder() / RECIPE_FILE, encoding="utf-8") as f:
        return json.load(f)


def load_teacher(dtype=np.float32):
    """``(Bert, WordPieceTokenizer)``: the shipped teacher, in ``dtype`` (float32 by default)."""
    from ..io.pretrained import load_pretrained
    return load_pretrained(teacher_folder(), dtype=dtype)
