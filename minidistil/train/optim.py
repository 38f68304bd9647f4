"""AdamW, the learning-rate schedule, gradient clipping and gradient accumulation.

The recipe of the DistilBERT research code (reference.md, "The distillation recipe"):
AdamW with betas (0.9, 0.98), eps 1e-6, weight decay 0 by default (and, when it is used,
never on biases or LayerNorm weights), a linear warm-up over the first 5% of the steps then a
linear decay to 0, the global gradient norm clipped at 5.0, and gradient accumulation to reach
large batches from small ones.

AdamW (Loshchilov & Hutter, "Decoupled weight decay regularization", 2019), for every
parameter ``p`` with gradient ``g`` at step ``t = 1, 2, ...``:

    m = b1 * m + (1 - b1) * g              first moment (running mean of g)
    v = b2 * v + (1 - b2) * g**2           second moment (running mean of g**2)
    m_hat = m / (1 - b1**t);  v_hat = v / (1 - b2**t)        bias corrections
    p = p - lr * wd * p                    decoupled decay (skipped for no_decay names)
    p = p - lr * m_hat / (sqrt(v_hat) + eps)

Parameters are updated in place, so a model holding the same arrays sees the new values.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np


def no_decay(name: str) -> bool:
    """True for parameters that weight decay must never touch: biases and LayerNorm weights.

    Covers both naming schemes: BERT's ``...LayerNorm.weight`` and DistilBERT's
    ``sa_layer_norm``/``output_layer_norm``/``vocab_layer_norm`` (and local ``ln1``/``ln2``).
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    last = name.rsplit(".", 1)[-1]
    if last == "bias":
        return True
    parts = name.split(".")
    return any(p == "LayerNorm" or p.endswith("layer_norm") or p in ("ln1", "ln2") for p in parts)


def linear_schedule(step: int, total: int, warmup_frac: float = 0.05, peak_lr: float = 5e-4) -> float:
    """The learning rate for optimizer step ``step`` (0-based) of ``total``.

    Warm-up: ``peak_lr * (step + 1) / warmup`` for the first ``warmup = ceil(warmup_frac * total)``
    steps (the ``+ 1`` makes the very first step useful instead of a step at lr 0), then a
    linear decay ``peak_lr * (total - step) / (total - warmup)`` that reaches 0 after the last step.
    """
    if total <= 0:
        raise ValueError(f"total must be a positive number of steps, got {total}")
    if not 0.0 <= warmup_frac < 1.0:
        raise ValueError(f"warmup_frac must be in [0, 1), got {warmup_frac}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    warmup = int(math.ceil(warmup_frac * total))
    if step < warmup:
        return peak_lr * (step + 1) / warmup
    return peak_lr * max(0.0, (total - step) / max(1, total - warmup))


def global_grad_norm(grads: Mapping[str, np.ndarray]) -> float:
    """The L2 norm of all gradients taken as one vector (accumulated in float64)."""
    sq = 0.0
    for g in grads.values():
        g64 = g.astype(np.float64, copy=False).ravel()  # (n,)
        # einsum, not np.dot: np.dot would hand this to a multi-threaded BLAS, whose idle workers
        # then spin through the next step's fused kernels (see minidistil/fast/threads.py)
        sq += float(np.einsum("i,i->", g64, g64))
    return math.sqrt(sq)


def clip_grad_norm(grads: Mapping[str, np.ndarray], max_norm: float) -> float:
    """Scale ``grads`` in place so their global norm is at most ``max_norm``; returns the norm
    before clipping (may be ``nan``/``inf``: the caller's guard decides what to do then)."""
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    norm = global_grad_norm(grads)
    if math.isfinite(norm) and norm > max_norm:
        scale = max_norm / (norm + 1e-6)  # as torch.nn.utils.clip_grad_norm_
        for g in grads.values():
            g *= g.dtype.type(scale)
    return norm


def accumulate_grads(acc: dict | None, grads: Mapping[str, np.ndarray], scale: float = 1.0) -> dict:
    """Gradient accumulation: returns ``acc + scale * grads`` (a new dict when ``acc`` is None).

    With ``n`` micro-batches per optimizer step, ``scale = 1 / n`` makes the sum the gradient of
    the mean loss over the ``n`` micro-batches, as if they had been one large batch.
    """
    if acc is None:
        return {k: (g * g.dtype.type(scale)) for k, g in grads.items()}
    if acc.keys() != grads.keys():
        raise ValueError("grads must have the same keys as the accumulated gradients")
    for k, g in grads.items():
        acc[k] += g * g.dtype.type(scale)
    return acc


BETAS = (0.9, 0.98)  # the research code's AdamW settings (module docstring)
EPS = 1e-6


class AdamW:
    """AdamW over a dict of parameter arrays (updated in place).

    >>> opt = AdamW(model.params, lr=5e-4)
    >>> opt.step(grads, lr=linear_schedule(step, total, 0.05, 5e-4))
    """

    def __init__(self, params: Mapping[str, np.ndarray], lr: float = 5e-4, betas=BETAS,
                 eps: float = EPS, weight_decay: float = 0.0):
        if not isinstance(params, Mapping) or not params:
            raise TypeError("params must be a non-empty dict of name -> numpy array")
        for name, p in params.items():
            if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating):
                raise TypeError(f"params[{name!r}] must be a float numpy array")
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.params = params
        self.lr = float(lr)
        self.betas = (float(b1), float(b2))
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.t = 0  # optimizer steps taken
        self.m = {k: np.zeros_like(p) for k, p in params.items()}  # same shapes as params
        self.v = {k: np.zeros_like(p) for k, p in params.items()}  # same shapes as params

    def step(self, grads: Mapping[str, np.ndarray], lr: float | None = None) -> None:
        """One update of every parameter from ``grads`` (same keys as ``params``)."""
        missing = self.params.keys() - grads.keys()
        extra = grads.keys() - self.params.keys()
        if missing or extra:
            raise ValueError(f"grads keys must match params: missing {sorted(missing)[:3]}, "
                             f"unexpected {sorted(extra)[:3]}")
        lr = self.lr if lr is None else float(lr)
        b1, b2 = self.betas
        self.t += 1
        bc1 = 1.0 - b1 ** self.t  # bias corrections
        bc2 = 1.0 - b2 ** self.t
        for name, p in self.params.items():
            g = grads[name]
            if g.shape != p.shape:
                raise ValueError(f"grads[{name!r}] has shape {g.shape}, expected {p.shape}")
            t = p.dtype.type
            m, v = self.m[name], self.v[name]
            m *= t(b1)
            m += t(1.0 - b1) * g
            v *= t(b2)
            v += t(1.0 - b2) * (g * g)
            if self.weight_decay and not no_decay(name):
                p *= t(1.0 - lr * self.weight_decay)
            # lr * m_hat / (sqrt(v_hat) + eps), with the bias corrections folded into scalars
            denom = np.sqrt(v) / t(math.sqrt(bc2)) + t(self.eps)  # same shape as p
            p -= t(lr / bc1) * m / denom

    # ------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict:
        """Arrays only (``m.<name>``, ``v.<name>``, ``t``), ready for ``save_checkpoint``."""
        out = {f"m.{k}": a for k, a in self.m.items()}
        out.update({f"v.{k}": a for k, a in self.v.items()})
        out["t"] = np.array(self.t, dtype=np.int64)
        return out

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        for k, p in self.params.items():
            for which, store in (("m", self.m), ("v", self.v)):
                key = f"{which}.{k}"
                if key not in state:
                    raise ValueError(f"optimizer state is missing {key!r}")
                a = np.asarray(state[key])
                if a.shape != p.shape:
                    raise ValueError(f"optimizer state {key!r} has shape {a.shape}, expected {p.shape}")
                store[k] = a.astype(p.dtype, copy=True)
        if "t" not in state:
            raise ValueError("optimizer state is missing 't'")
        self.t = int(state["t"])
