"""Scoring some models on the first masks of the evaluation only.

Legend: n clusters (validation sequences), N masked tokens, P masked tokens of one batch.

The demo compares five models on the same validation tokens. Only one comparison needs the finest
evaluation: the distilled student against control (a), the same start without the teacher, whose
paired standard error must stay under 0.15 points (that takes 42 masks of every sequence). The
other controls differ from the distilled student by 20 points or more; for them the first
``EvalConfig.control_masks`` masks are plenty, and scoring them on a third of the tokens keeps
the demo inside its time budget.

The masks are fixed and the same whatever their number (``eval_masks.py``), so the first k masks
of a 42-mask evaluation are exactly a k-mask evaluation. The teacher and the distilled student
are scored once on every mask; their results on the first k masks are kept on the way, so that a
coarse row is still compared with them on the same tokens.
"""
from __future__ import annotations

import numpy as np

from .eval_set import EvalSet, cluster_masked, predict, prediction_result


def first_masks(evalset: EvalSet, k: int) -> tuple[EvalSet, EvalSet]:
    """``(head, tail)``: the batches of masks ``0 .. k-1`` and those of masks ``k ..``."""
    if not 0 < k <= evalset.n_masks:
        raise ValueError(f"k must be in 1..{evalset.n_masks} (the evaluation's masks), got {k}")
    head, tail = EvalSet(), EvalSet()
    for b in evalset:
        (head if b.mask_index < k else tail).append(b)
    head.n_seqs = tail.n_seqs = evalset.n_seqs
    head.n_masks, tail.n_masks = k, evalset.n_masks - k
    return head, tail


def merge(a: dict, b: dict, masked: np.ndarray) -> dict:
    """The :func:`~minidistil.train.eval_set.predict` result of two disjoint sets of batches
    together (``a``'s batches first); ``masked`` (n,) is the union's masked tokens per sequence."""
    n = a["n_masked"] + b["n_masked"]
    loss = (a["mlm_loss"] * a["n_masked"] + b["mlm_loss"] * b["n_masked"]) / n
    return prediction_result(a["cluster_correct"] + b["cluster_correct"], masked, loss, n,
                             np.concatenate([a["preds"], b["preds"]]))


def predict_nested(model, evalset: EvalSet, k: int) -> tuple[dict, dict]:
    """``(every mask, the first k masks)``: each token is scored once."""
    head, tail = first_masks(evalset, k)
    h = predict(model, head)
    if not tail:
        return h, h
    return merge(h, predict(model, tail), cluster_masked(evalset)), h
