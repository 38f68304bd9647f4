"""The fixed evaluation set, and one model scored on it.

Every validation sequence is masked ``EvalConfig.n_masks`` times with fixed seeds (eval_masks.py:
each round of 7 masks covers every token), the same masks whatever the batch size, so every model
is scored on exactly the same masked tokens. Each masked token remembers the validation sequence
it came from: that sequence is the sampling unit of every standard error (``intervals.py``).
``evaluate.py`` compares models with what :func:`predict` returns.

Legend: B batch, T sequence, P masked tokens of a batch, N masked tokens in all, n validation
sequences (the clusters).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from . import intervals
from .runs import EvalConfig


class EvalBatch(NamedTuple):
    input_ids: np.ndarray       # (B, T) with the evaluation mask applied
    attention_mask: np.ndarray  # (B, T)
    positions: np.ndarray       # (B, T) bool, the masked tokens
    labels: np.ndarray          # (P,) original ids at the masked tokens
    seq: np.ndarray             # (P,) index of the validation sequence each masked token is in
    mask_index: int = 0         # which of the n_masks masks


class EvalSet(list):
    """The list of :class:`EvalBatch` of every mask, plus ``n_seqs`` (the number of clusters)."""
    n_seqs: int = 0
    n_masks: int = 1


MASK_GROUP = 32  # sequences (in length order) that share one draw of an evaluation mask
# Masks are drawn for fixed groups of MASK_GROUP sequences, whatever the batch size, so every
# command that evaluates the same validation split scores the same tokens. A group (rather than
# one sequence) keeps the masked share at mlm_prob: round(mlm_prob * n) tokens are masked per
# draw, which on one short sequence would round away a few percent. Within a group the masks come
# in rounds that cover every token (eval_masks.py).


def make_eval_set(val_seqs, tokenizer, cfg: EvalConfig, mlm_prob: float = 0.15,
                  n_masks: int | None = None) -> EvalSet:
    """The validation batches under ``cfg.n_masks`` fixed masks (the same for every model, and
    for every batch size: see ``MASK_GROUP``); every ``masks_per_round(mlm_prob)`` masks cover
    every maskable token at least once (eval_masks.py)."""
    from ..data.batches import pad_batch
    from ..masking import IGNORE_INDEX
    from .eval_masks import cover_mask
    n_masks = cfg.n_masks if n_masks is None else n_masks
    if n_masks < 1:
        raise ValueError(f"n_masks must be >= 1, got {n_masks}")
    order = np.argsort(np.array([len(s) for s in val_seqs]), kind="stable")  # (N,) short first
    out = EvalSet()
    out.n_seqs, out.n_masks = len(val_seqs), n_masks
    for k in range(n_masks):
        masked, labels = {}, {}  # sequence index -> its masked ids, its labels (unpadded)
        for g, start in enumerate(range(0, len(order), MASK_GROUP)):
            idx = order[start:start + MASK_GROUP]  # (G,)
            ids, attn = pad_batch([val_seqs[i] for i in idx], tokenizer.pad_id)  # (G, T) each
            m, lab = cover_mask(ids, attn, cfg.eval_seed, k, g, tokenizer.vocab_size,
                                tokenizer.mask_id, tokenizer.special_ids, mlm_prob=mlm_prob)
            for row, i in enumerate(idx):
                masked[i], labels[i] = m[row, :len(val_seqs[i])], lab[row, :len(val_seqs[i])]
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]  # (B,)
            ids, attn = pad_batch([masked[i] for i in idx], tokenizer.pad_id)  # (B, T) each
            lab = np.full(ids.shape, IGNORE_INDEX, dtype=np.int64)  # (B, T)
            for row, i in enumerate(idx):
                lab[row, :len(labels[i])] = labels[i]
            pos = lab != IGNORE_INDEX  # (B, T)
            if pos.any():
                seq = np.broadcast_to(idx[:, None], pos.shape)[pos]  # (P,)
                out.append(EvalBatch(ids, attn, pos, lab[pos], seq, k))
    if not out:
        raise ValueError("the validation split has no maskable tokens")
    return out


def cluster_masked(evalset: EvalSet) -> np.ndarray:
    """(n,) masked tokens per validation sequence, over all masks."""
    n = max(evalset.n_seqs, 1 + max(int(b.seq.max()) for b in evalset))
    return np.bincount(np.concatenate([b.seq for b in evalset]), minlength=n).astype(np.int64)


def predict(model, evalset: list[EvalBatch]) -> dict:
    """Top-1 predictions, accuracy (+ standard error), MLM loss and perplexity on ``evalset``.

    ``cluster_correct`` (n,) holds the correct predictions per validation sequence, the input of
    every interval in ``intervals.py``.
    """
    from ..losses import mlm_forward
    preds, loss_sum, n = [], 0.0, 0
    seqs, hits = [], []
    for b in evalset:
        out = model.forward(b.input_ids, b.attention_mask, mlm_positions=b.positions, keep_cache=False)
        p = out.logits.argmax(axis=-1)  # (P,)
        preds.append(p)
        hit = p == b.labels  # (P,)
        seqs.append(b.seq)
        hits.append(hit)
        loss, _ = mlm_forward(out.logits, b.labels)
        loss_sum += float(loss) * len(b.labels)
        n += len(b.labels)
    m = cluster_masked(evalset) if isinstance(evalset, EvalSet) else None
    seq = np.concatenate(seqs)  # (N,)
    nclus = len(m) if m is not None else int(seq.max()) + 1
    cc = np.bincount(seq, weights=np.concatenate(hits), minlength=nclus)  # (n,)
    if m is None:
        m = np.bincount(seq, minlength=nclus)  # (n,)
    return prediction_result(cc, m, loss_sum / n, n, np.concatenate(preds))


def prediction_result(cc: np.ndarray, masked: np.ndarray, loss: float, n: int, preds: np.ndarray) -> dict:
    """What :func:`predict` returns, from the correct (``cc``) and masked tokens per sequence
    (n,), the mean MLM loss over the ``n`` scored tokens and their top-1 predictions (N,)."""
    correct = float(cc.sum())
    _, se = intervals.accuracy_se(cc, masked) if np.count_nonzero(masked) >= 2 else (None, float("nan"))
    return {"accuracy": correct / n, "se": se, "mlm_loss": loss,
            "perplexity": math.exp(min(loss, 700.0)), "n_masked": n,
            "preds": preds, "cluster_correct": cc}
