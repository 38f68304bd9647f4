"""Dynamic masking for masked-language modelling (BERT, Devlin et al. 2019, section 3.1; DistilBERT
trains with dynamic masking drawn afresh for every batch, Sanh et al. 2019, section 3).

Legend: B batch, T sequence, V vocabulary, n eligible tokens in the batch, k chosen tokens.

Recipe (as the Hugging Face distillation research code):

1. Eligible tokens: real (attention_mask 1) and not special ([CLS], [SEP], [PAD], [MASK], ...).
2. Choose k = round(mlm_prob * n) of them over the WHOLE batch (exactly that many, at least one
   when n > 0; round half up). A fixed count per batch, rather than an independent coin per
   token, gives every batch the same share of Lmlm targets. (HF draws ceil(mlm_prob * all
   tokens incl. specials) positions and then drops the padded ones; here the count is taken
   over eligible tokens only, so it is exact.) Some rows may receive no target.
3. Without ``token_probs`` every eligible token is equally likely; with it, positions are drawn
   without replacement with weight ``token_probs[id]`` (frequency smoothing, p ~ count**-0.7,
   see :func:`smoothing_weights`), so rare words are masked more often than their frequency.
4. Each chosen token independently becomes [MASK] (80%), a uniformly random NON-special id
   (10%; it may happen to equal the original) or stays unchanged (10%). Its label is the
   original id; every other label is -100.

Weighted sampling without replacement uses the Efraimidis-Spirakis trick: draw
``key = Exp(1) / weight`` for each candidate and keep the k smallest keys. This is exactly
"draw one at a time proportional to weight, remove it, repeat", in one O(n) pass.

The inputs are never modified; the same generator state gives the same result.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from .kernels.backend import IGNORE_INDEX, check_ids, check_mask  # IGNORE_INDEX: labels made here


# ---------------------------------------------------------------- checks

def _check_int(name: str, v, low: int | None = None, high: int | None = None) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(v).__name__}")
    v = int(v)
    if (low is not None and v < low) or (high is not None and v >= high):
        rng = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'})"
        raise ValueError(f"{name} must be in {rng}, got {v}")
    return v


def _check_special_ids(special_ids, vocab_size: int) -> np.ndarray:
    if isinstance(special_ids, (int, np.integer)) or special_ids is None:
        raise TypeError(f"special_ids must be a collection of ids, got {type(special_ids).__name__}")
    ids = [_check_int("special_ids entry", s, 0, vocab_size) for s in special_ids]
    return np.asarray(ids, dtype=np.intp)  # (S,)


def _check_split(split) -> tuple:
    try:
        parts = tuple(float(x) for x in split)
    except (TypeError, ValueError):
        raise TypeError(f"split must be three numbers (mask, random, keep), got {split!r}") from None
    if len(parts) != 3 or not all(math.isfinite(x) and x >= 0 for x in parts) or abs(sum(parts) - 1.0) > 1e-9:
        raise ValueError(f"split must be three non-negative numbers summing to 1, got {split!r}")
    return parts


# ---------------------------------------------------------------- frequency smoothing

def smoothing_weights(counts, power: float = 0.7, special_ids: Iterable[int] = ()) -> np.ndarray:
    """Masking weights ``p(id) ~ max(count, 1) ** -power``, special ids 0, normalised to sum 1. (V,)

    ``counts`` (V,) token frequencies (e.g. ``data.batches.token_counts``). Unseen ids count as 1
    (they never occur in a batch anyway). power 0 = uniform choice.
    """
    counts = np.asarray(counts)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"counts must be a non-empty 1-D array (V,), got shape {counts.shape}")
    if not (np.issubdtype(counts.dtype, np.integer) or np.issubdtype(counts.dtype, np.floating)):
        raise TypeError(f"counts must be numeric, got dtype {counts.dtype}")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError("counts must be finite and >= 0")
    power = float(power)
    if not math.isfinite(power) or power < 0:
        raise ValueError(f"power must be finite and >= 0, got {power!r}")
    V = counts.size
    special = _check_special_ids(special_ids, V)
    w = np.maximum(counts.astype(np.float64), 1.0) ** -power  # (V,)
    w[special] = 0.0
    total = w.sum()
    if total <= 0:
        raise ValueError("every id is special: no token could ever be masked")
    return w / total  # (V,)


# ---------------------------------------------------------------- masking

def mask_tokens(input_ids: np.ndarray, attention_mask: np.ndarray, rng: np.random.Generator,
                vocab_size: int, mask_id: int, special_ids: Iterable[int], mlm_prob: float = 0.15,
                token_probs: np.ndarray | None = None, *, split=(0.8, 0.1, 0.1)):
    """Draw a dynamic MLM mask. Returns ``(masked_ids (B, T) like input_ids, labels (B, T) int64)``.

    ``labels`` holds the original id at the chosen positions and -100 elsewhere.
    ``split`` = (mask, random, keep) shares of the chosen tokens, (0.8, 0.1, 0.1) as BERT.
    """
    if not isinstance(input_ids, np.ndarray) or not np.issubdtype(input_ids.dtype, np.integer):
        check_ids("input_ids", input_ids, 1)  # raises the TypeError
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must be 2-D (B, T), got shape {input_ids.shape}")
    real = check_mask("attention_mask", attention_mask, input_ids.shape)  # (B, T) bool
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}"
        )
    V = _check_int("vocab_size", vocab_size, 1)
    mask_id = _check_int("mask_id", mask_id, 0, V)
    special = np.zeros(V, dtype=bool)  # (V,)
    special[_check_special_ids(special_ids, V)] = True
    if isinstance(mlm_prob, bool):
        raise TypeError("mlm_prob must be a number, got bool")
    mlm_prob = float(mlm_prob)
    if not (0.0 < mlm_prob < 1.0):
        raise ValueError(f"mlm_prob must be in (0, 1), got {mlm_prob!r}")
    p_mask, p_rand, _ = _check_split(split)
    check_ids("input_ids", input_ids, V)
    if token_probs is not None:
        if not isinstance(token_probs, np.ndarray) or not np.issubdtype(token_probs.dtype, np.floating):
            raise TypeError("token_probs must be a float numpy.ndarray of shape (vocab_size,)")
        if token_probs.shape != (V,):
            raise ValueError(f"token_probs must have shape ({V},), got {token_probs.shape}")
        if not np.all(np.isfinite(token_probs)) or np.any(token_probs < 0):
            raise ValueError("token_probs must be finite and >= 0")
    non_special = np.flatnonzero(~special)  # (V - S,) the ids a random replacement may take
    if non_special.size == 0:
        raise ValueError("special_ids cover the whole vocabulary: nothing can be masked")

    flat_ids = input_ids.reshape(-1)  # (B*T,) a view, only read
    eligible = real.reshape(-1) & ~special[flat_ids]  # (B*T,)
    if token_probs is not None:
        eligible &= token_probs[flat_ids] > 0  # a zero weight can never be drawn
    cand = np.flatnonzero(eligible)  # (n,)
    n = cand.size
    k = min(n, max(1, math.floor(mlm_prob * n + 0.5))) if n else 0

    # step 3: pick k of the n candidates (Efraimidis-Spirakis keys; uniform weights = plain subset)
    keys = rng.exponential(size=n)  # (n,)
    if token_probs is not None:
        keys /= token_probs[flat_ids[cand]]
    chosen = cand[np.argpartition(keys, k - 1)[:k]] if 0 < k < n else cand[:k]  # (k,)
    chosen.sort()

    # step 4: 80% [MASK], 10% random non-special id, 10% unchanged
    u = rng.random(k)  # (k,)
    rand_ids = non_special[rng.integers(0, non_special.size, size=k)]  # (k,)
    to_mask = u < p_mask  # (k,)
    to_rand = (u >= p_mask) & (u < p_mask + p_rand)  # (k,)

    masked_ids = input_ids.copy()  # (B, T) a fresh C-contiguous copy
    out = masked_ids.reshape(-1)  # (B*T,) view into masked_ids
    out[chosen[to_mask]] = mask_id
    out[chosen[to_rand]] = rand_ids[to_rand]
    labels = np.full(input_ids.shape, IGNORE_INDEX, dtype=np.int64)  # (B, T)
    labels.reshape(-1)[chosen] = flat_ids[chosen]
    return masked_ids, labels


def fixed_eval_mask(input_ids: np.ndarray, attention_mask: np.ndarray, seed: int, vocab_size: int,
                    mask_id: int, special_ids: Iterable[int], mlm_prob: float = 0.15,
                    token_probs: np.ndarray | None = None, *, split=(0.8, 0.1, 0.1)):
    """A deterministic mask for evaluation: :func:`mask_tokens` with a fresh generator from ``seed``.

    The same batch and seed always give the same mask, so validation losses of different
    checkpoints (teacher vs student, epoch vs epoch) are measured on the same targets.
    """
    seed = _check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    return mask_tokens(input_ids, attention_mask, rng, vocab_size, mask_id, special_ids,
                       mlm_prob, token_probs, split=split)
