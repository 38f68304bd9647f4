"""Which rows of a global micro-batch a rank computes, and how its losses are weighted.

Legend: B global micro-batch, T its padded length, N ranks, B_r = rows of rank r, T_r <= T the
longest real sequence among them.

Rank r takes the contiguous block of rows ``[r B // N, (r + 1) B // N)``: the blocks of all
ranks, in rank order, are the batch again (the sizes differ by at most one row; a rank gets no
row at all when B < N, and then contributes zeros). Its block is cut to its own longest
sequence (padding sits at the end of every row, so the columns cut were padding everywhere and
the result is the same, only cheaper).

Why the weights. Every loss here is a MEAN over some positions of the batch (masked tokens for
Lmlm, real tokens for Lcos and Lce). A rank that averaged over its own n_r positions would give
``L_r = S_r / n_r``; the mean over the whole batch is ``L = (S_1 + ... + S_N) / n`` with
``n = n_1 + ... + n_N``, which is NOT the mean of the L_r when the n_r differ (they do: the mask
is drawn over the whole batch). Weighting each rank's mean by ``n_r / n`` gives
``sum_r (n_r / n) S_r / n_r = L`` exactly, and the same weights on the gradients give the
gradient of L, since it is linear in the per-position terms. Every rank knows n without any
communication, because every rank drew the mask of the whole batch.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Shard(NamedTuple):
    """Rank ``rank`` of ``size`` ranks."""
    rank: int
    size: int

    def rows(self, batch: int) -> slice:
        """The rows ``[rank * B // size, (rank + 1) * B // size)`` of a batch of ``batch`` rows."""
        return slice(self.rank * batch // self.size, (self.rank + 1) * batch // self.size)

    def take(self, attention_mask: np.ndarray, *arrays: np.ndarray) -> tuple:
        """``(attention_mask, *arrays)`` cut to this rank's rows and their longest real sequence.

        Every array is (B, T, ...) like ``attention_mask`` (B, T); returns views, (B_r, T_r, ...).
        """
        rows = self.rows(attention_mask.shape[0])
        attn = attention_mask[rows]  # (B_r, T)
        t_r = int(attn.sum(axis=1).max()) if attn.shape[0] else 0  # padding is at the row ends
        return tuple(a[rows, :t_r] for a in (attention_mask, *arrays))  # (B_r, T_r, ...) each


def share(local: int, total: int) -> float:
    """``local / total``, the weight of a rank's mean in the mean over the whole batch (0 if empty)."""
    if local < 0 or total < local:
        raise ValueError(f"need 0 <= local <= total, got local={local}, total={total}")
    return local / total if total else 0.0


def zero_grads(params) -> dict:
    """Zero gradients shaped like ``params``: what a rank with no row (or no target) contributes."""
    return {k: np.zeros_like(p) for k, p in params.items()}
