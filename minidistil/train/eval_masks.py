"""The fixed evaluation masks: rounds of windows that cover every token.

Legend: G sequences of one mask group, T their padded length, n eligible tokens of the group,
c = round(mlm_prob * n) tokens per mask, R = ceil(n / c) masks per round (7 at 15% in a
group of a few hundred tokens or more, as a group of 32 validation sequences is).

Each evaluation mask of a group masks exactly ``c`` of its ``n`` eligible tokens (real, not
special), as :func:`minidistil.masking.mask_tokens` does in training. Independent masks would
draw those tokens afresh each time, so after a few masks some tokens have been scored three
times and others never, and that unevenness is noise in every accuracy. Here the masks come in
**rounds** of ``R``: a round draws one random order of the group's eligible tokens, and mask
``j`` of the round takes the ``j``-th window of ``c`` tokens of that order (cyclically, so the
last window wraps round to the first tokens). One round masks every eligible token at least
once (``R * c >= n``), a few twice. Each mask on its own is still a uniformly random set of
``c`` tokens, so the expected accuracy is that of independent masks; only the unevenness
between tokens is gone. The chosen tokens then become [MASK] / a random id / stay (80/10/10),
drawn per mask, as in training.
"""
from __future__ import annotations

import math

import numpy as np


def masks_per_round(n: int, c: int) -> int:
    """``R = ceil(n / c)``: the masks of one round, the fewest windows of ``c`` that cover ``n``."""
    return -(-n // c)


def mask_rng(eval_seed: int, k: int, group: int) -> np.random.Generator:
    """The generator of the 80/10/10 draw of evaluation mask ``k`` of mask group ``group``."""
    return np.random.default_rng([eval_seed, k, group])


def order_rng(eval_seed: int, round_: int, group: int) -> np.random.Generator:
    """The generator of the token order shared by the masks of round ``round_`` of ``group``."""
    return np.random.default_rng([eval_seed, round_, group, 1])  # 4 words: never a mask_rng seed


def cover_mask(input_ids: np.ndarray, attention_mask: np.ndarray, eval_seed: int, k: int, group: int,
               vocab_size: int, mask_id: int, special_ids, mlm_prob: float = 0.15,
               split=(0.8, 0.1, 0.1)):
    """Evaluation mask ``k`` of one group: ``(masked_ids (G, T), labels (G, T))``, labels -100
    where nothing is masked (as ``mask_tokens``)."""
    from ..masking import IGNORE_INDEX
    if not 0.0 < mlm_prob < 1.0:
        raise ValueError(f"mlm_prob must be in (0, 1), got {mlm_prob!r}")
    special = np.zeros(vocab_size, dtype=bool)  # (V,)
    special[list(special_ids)] = True
    flat = input_ids.reshape(-1)  # (G*T,)
    cand = np.flatnonzero(attention_mask.reshape(-1).astype(bool) & ~special[flat])  # (n,)
    n = cand.size
    masked_ids = input_ids.copy()  # (G, T)
    labels = np.full(input_ids.shape, IGNORE_INDEX, dtype=np.int64)  # (G, T)
    if n == 0:
        return masked_ids, labels
    c = min(n, max(1, math.floor(mlm_prob * n + 0.5)))
    R = masks_per_round(n, c)
    order = cand[order_rng(eval_seed, k // R, group).permutation(n)]  # (n,) this round's order
    j = k % R
    chosen = np.sort(order[(j * c + np.arange(c)) % n])  # (c,) window j, cyclic
    rng = mask_rng(eval_seed, k, group)
    u = rng.random(c)  # (c,)
    non_special = np.flatnonzero(~special)  # (V - S,)
    rand_ids = non_special[rng.integers(0, non_special.size, size=c)]  # (c,)
    to_mask = u < split[0]  # (c,)
    to_rand = (u >= split[0]) & (u < split[0] + split[1])  # (c,)
    out = masked_ids.reshape(-1)  # (G*T,) view
    out[chosen[to_mask]] = mask_id
    out[chosen[to_rand]] = rand_ids[to_rand]
    labels.reshape(-1)[chosen] = flat[chosen]
    return masked_ids, labels
