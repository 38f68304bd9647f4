"""The three distillation losses of DistilBERT (Sanh et al., 2019, section 2) and their backward.

Legend: B batch, T sequence, C hidden, V vocabulary, P positions the model computed logits for
(the True entries of a (B, T) boolean ``positions`` mask, in ``np.nonzero`` row-major order),
N rows a loss actually uses (a subset of the P rows); tau the softmax temperature.

    Lce  = tau**2 * mean_rows KL(softmax(t/tau) || softmax(s/tau))   soft targets, teacher logits t
    Lmlm = mean_masked -log softmax(s)[label]                        labels -100 = ignore
    Lcos = mean_real (1 - cos(s_h, t_h))                             last hidden states
    L    = alpha_ce * Lce + alpha_mlm * Lmlm + alpha_cos * Lcos      (5, 2, 1 in the released recipe)

Every loss follows the layer contract with a scalar output: ``loss, cache = f_forward(...)``
and ``dinput = f_backward(dloss, cache)``. Losses are Python floats; gradients keep the dtype
of the inputs (float32 or float64). Only the student is differentiated: the teacher's logits
and hidden states are constants. Derivations: docs/math.md ("distillation losses").
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple, Sequence

import numpy as np

from .kernels import log_softmax_forward
from .kernels.kl import soft_target_rows
from .kernels.backend import (check_float_array, check_ids, check_mask, check_same_dtype, check_shape,
                              check_temperature)

from .masking import IGNORE_INDEX  # noqa: E402  (kernels/backend.py's, exported where labels are made)
COS_EPS = 1e-12  # added to squared norms in Lcos so that a zero vector gives cos = 0, not NaN


# ---------------------------------------------------------------- input checks

def _check_labels(name: str, labels, shape: tuple, vocab_size: int) -> np.ndarray:
    """Integer labels of ``shape``: each in [0, vocab_size) or equal to IGNORE_INDEX."""
    check_ids(name, labels, vocab_size, ignore=IGNORE_INDEX)
    check_shape(name, labels, shape)
    return labels


def _check_scalar(name: str, x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(x).__name__}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return v


class NonFiniteLoss(ValueError):
    """A loss came out NaN or inf; ``.input`` names the non-finite input (``None``: overflow).
    The training loop turns it into its divergence report (train/loop.py)."""

    def __init__(self, message: str, input_name: str | None = None):
        super().__init__(message)
        self.input = input_name


def _check_finite_loss(loss: float, what: str, **arrays: np.ndarray) -> None:
    """A non-finite loss means non-finite input: name the culprit instead of returning NaN."""
    if math.isfinite(loss):
        return
    for name, a in arrays.items():
        if not np.all(np.isfinite(a)):
            raise NonFiniteLoss(f"{name} contains NaN or inf; {what} is undefined", name)
    raise NonFiniteLoss(f"{what} overflowed to {loss} (inputs too large for their dtype)")


# ---------------------------------------------------------------- the settings
# Declared once: the training config nests this (DistillStageConfig.loss, train/runs.py), and
# every default below (soft_target_forward's tau) is read from it.

CE_POSITIONS = ("all", "masked")


@dataclass(frozen=True)
class DistillLossConfig:
    """Weights of the triple loss and the soft-target temperature (HF research defaults).

    ``ce_positions``: "all" = Lce over every real (non-padding) position the logits were
    computed for; "masked" = only the positions with an MLM label.
    A zero alpha skips that term's work entirely (its part is reported as 0.0).
    """
    alpha_ce: float = 5.0
    alpha_mlm: float = 2.0
    alpha_cos: float = 1.0
    temperature: float = 2.0
    ce_positions: str = "all"

    def __post_init__(self):
        for name in ("alpha_ce", "alpha_mlm", "alpha_cos"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"{name} must be a number, got {type(v).__name__}")
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.alpha_ce == 0 and self.alpha_mlm == 0 and self.alpha_cos == 0:
            raise ValueError("at least one of alpha_ce, alpha_mlm, alpha_cos must be > 0")
        if isinstance(self.temperature, bool):
            raise TypeError("temperature must be a number, got bool")
        object.__setattr__(self, "temperature", check_temperature(self.temperature))
        if self.ce_positions not in CE_POSITIONS:
            raise ValueError(f"ce_positions must be one of {CE_POSITIONS}, got {self.ce_positions!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DistillLossConfig":
        return cls(**d)


# ---------------------------------------------------------------- Lce: soft targets

class SoftTargetCache(NamedTuple):
    s_logits: np.ndarray  # (N, V) the student logits (a reference, not a copy)
    diff: np.ndarray  # (N, V) softmax(s / tau) - softmax(t / tau), the gradient's direction
    tau: float
    n_rows: int


def soft_target_forward(s_logits: np.ndarray, t_logits: np.ndarray, tau: float = DistillLossConfig.temperature):
    """``tau**2 * mean over rows of KL(softmax(t/tau) || softmax(s/tau))``; ``s_logits``, ``t_logits`` (N, V).

    The tau**2 factor (Hinton et al., 2015, section 2) keeps the gradient's size roughly
    independent of tau, see :func:`soft_target_backward`. Zero rows give a loss of 0.
    """
    check_float_array("s_logits", s_logits, 2)
    check_float_array("t_logits", t_logits, 2)
    check_shape("t_logits", t_logits, s_logits.shape)
    check_same_dtype(s_logits.dtype, t_logits=t_logits)
    tau = check_temperature(tau)
    n_rows, V = s_logits.shape
    if V == 0:
        raise ValueError(f"s_logits must have a non-empty vocabulary axis, got shape {s_logits.shape}")
    if n_rows == 0:
        return 0.0, SoftTargetCache(s_logits, t_logits, tau, 0)
    # One fused sweep (kernels/kl.py): KL_n = sum_v pt_v (log pt_v - log ps_v) per row, written
    # with log-sum-exps so that no log(0) appears, and ps - pt, which the backward only rescales.
    kl_rows, diff = soft_target_rows(s_logits, t_logits, tau)  # (N,) float64, (N, V)
    loss = float(tau * tau * kl_rows.sum() / n_rows)
    _check_finite_loss(loss, "the soft-target loss", s_logits=s_logits, t_logits=t_logits)
    return loss, SoftTargetCache(s_logits, diff, tau, n_rows)


def soft_target_backward(dloss, cache: SoftTargetCache) -> np.ndarray:
    """Gradient of the soft-target loss w.r.t. the student logits (N, V); the teacher is constant.

    With ps = softmax(s/tau), log ps_v = s_v/tau - logsumexp(s/tau), so d log ps_v / d s_u
    = (delta_uv - ps_u) / tau. Per row, d/ds_u of sum_v pt_v (log pt_v - log ps_v)
    = -sum_v pt_v (delta_uv - ps_u) / tau = (ps_u - pt_u) / tau   (sum_v pt_v = 1).
    Times tau**2 / N:   dLce/ds = tau * (ps - pt) / N.
    For large tau, ps - pt ~ (s - t) / (tau V), so the tau**2 factor leaves a gradient of size ~1/(V N)
    whatever tau is; without it the gradient would shrink like 1/tau**2.
    """
    dloss = _check_scalar("dloss", dloss)
    if cache.n_rows == 0:
        return np.zeros_like(cache.s_logits)  # (0, V)
    scale = cache.s_logits.dtype.type(dloss * cache.tau / cache.n_rows)
    # ps - pt came from the forward's fused kernel (identical rows give exactly zero)
    return cache.diff * scale  # (N, V), a new array: the cache is left as it was


# ---------------------------------------------------------------- Lmlm: masked-LM cross-entropy

class MlmCache(NamedTuple):
    rows: np.ndarray  # (N,) indices of the rows with a label (label != -100)
    targets: np.ndarray  # (N,) their labels
    log_p: np.ndarray  # (N, V) log softmax of those rows only
    shape: tuple  # (P, V) shape of the logits
    dtype: np.dtype


def mlm_forward(logits: np.ndarray, labels: np.ndarray):
    """Cross-entropy averaged over the rows whose label is not -100; ``logits`` (P, V), ``labels`` (P,).

    With no labelled row the loss is 0 and the gradient is 0 (not NaN from 0/0).
    Only the labelled rows go through log-softmax: usually 15% of them.
    """
    check_float_array("logits", logits, 2)
    P, V = logits.shape
    if V == 0:
        raise ValueError(f"logits must have a non-empty vocabulary axis, got shape {logits.shape}")
    _check_labels("labels", labels, (P,), V)
    rows = np.flatnonzero(labels != IGNORE_INDEX)  # (N,)
    targets = labels[rows].astype(np.intp)  # (N,)
    n = rows.size
    if n == 0:
        empty = np.zeros((0, V), dtype=logits.dtype)  # (0, V)
        return 0.0, MlmCache(rows, targets, empty, (P, V), logits.dtype)
    # all rows labelled: skip the copy that fancy indexing would make
    picked = logits if n == P else logits[rows]  # (N, V)
    log_p, _ = log_softmax_forward(picked)  # (N, V); the backward below needs only log_p
    nll = -log_p[np.arange(n), targets]  # (N,)
    loss = float(nll.sum(dtype=np.float64) / n)
    _check_finite_loss(loss, "the MLM loss", logits=picked)
    return loss, MlmCache(rows, targets, log_p, (P, V), logits.dtype)


def _mlm_row_grads(dloss: float, cache: MlmCache) -> np.ndarray:
    """d(dloss * Lmlm)/d logits for the labelled rows: dloss * (softmax - onehot) / N, (N, V)."""
    n = cache.rows.size
    g = np.exp(cache.log_p)  # (N, V) softmax of the labelled rows
    g[np.arange(n), cache.targets] -= 1
    g *= cache.dtype.type(dloss / n)
    return g  # (N, V)


def mlm_backward(dloss, cache: MlmCache) -> np.ndarray:
    """Gradient w.r.t. the logits (P, V): ``(softmax - onehot(label)) / N`` on labelled rows, 0 elsewhere."""
    dloss = _check_scalar("dloss", dloss)
    dlogits = np.zeros(cache.shape, dtype=cache.dtype)  # (P, V)
    if cache.rows.size:
        dlogits[cache.rows] = _mlm_row_grads(dloss, cache)
    return dlogits  # (P, V)


# ---------------------------------------------------------------- Lcos: hidden-state alignment

class CosineCache(NamedTuple):
    s_h: np.ndarray  # (B, T, C) student hidden states
    t_h: np.ndarray  # (B, T, C) teacher hidden states
    real: np.ndarray  # (B, T) bool, the positions averaged over
    dot: np.ndarray  # (B, T) s . t
    s_sq: np.ndarray  # (B, T) |s|^2 + eps
    t_sq: np.ndarray  # (B, T) |t|^2 + eps
    n: int


def cosine_forward(s_h: np.ndarray, t_h: np.ndarray, attention_mask: np.ndarray):
    """``mean over real positions of 1 - cos(s_h, t_h)``; ``s_h``, ``t_h`` (B, T, C), mask (B, T).

    cos = s.t / sqrt((|s|^2 + eps)(|t|^2 + eps)) with eps = 1e-12 (as torch's cosine
    embedding loss): a zero vector gives cos = 0, loss 1, finite gradient.
    """
    check_float_array("s_h", s_h, 3)
    check_float_array("t_h", t_h, 3)
    check_shape("t_h", t_h, s_h.shape)
    check_same_dtype(s_h.dtype, t_h=t_h)
    B, T, C = s_h.shape
    real = check_mask("attention_mask", attention_mask, (B, T))  # (B, T) bool
    n = int(real.sum())
    eps = s_h.dtype.type(COS_EPS)
    dot = np.einsum("btc,btc->bt", s_h, t_h)  # (B, T)
    s_sq = np.einsum("btc,btc->bt", s_h, s_h) + eps  # (B, T)
    t_sq = np.einsum("btc,btc->bt", t_h, t_h) + eps  # (B, T)
    cos = dot / np.sqrt(s_sq * t_sq)  # (B, T)
    loss = float((1.0 - cos[real]).sum(dtype=np.float64) / n) if n else 0.0
    _check_finite_loss(loss, "the cosine loss", s_h=s_h, t_h=t_h)
    return loss, CosineCache(s_h, t_h, real, dot, s_sq, t_sq, n)


def cosine_backward(dloss, cache: CosineCache) -> np.ndarray:
    """Gradient w.r.t. the student hidden states (B, T, C); 0 at padding.

    With a = |s|^2 + eps, b = |t|^2 + eps, d = s.t, cos = d / sqrt(a b):
    dcos/ds = t / sqrt(a b) - d s / (a sqrt(a b)) = (t - (d / a) s) / sqrt(a b),
    and dLcos/ds = -dcos/ds / n on real positions.
    """
    dloss = _check_scalar("dloss", dloss)
    if cache.n == 0:
        return np.zeros_like(cache.s_h)  # (B, T, C)
    inv = 1.0 / np.sqrt(cache.s_sq * cache.t_sq)  # (B, T)
    coef = np.where(cache.real, -dloss / cache.n * inv, 0).astype(cache.s_h.dtype)  # (B, T)
    ratio = (cache.dot / cache.s_sq).astype(cache.s_h.dtype)  # (B, T) d / a
    ds_h = cache.t_h - ratio[..., None] * cache.s_h  # (B, T, C)
    ds_h *= coef[..., None]
    return ds_h  # (B, T, C)


class CosineLayersCache(NamedTuple):
    pairs: tuple  # ((student_layer, teacher_layer), ...)
    caches: tuple  # one CosineCache per pair


def cosine_layers_forward(s_hiddens: Sequence[np.ndarray], t_hiddens: Sequence[np.ndarray],
                          attention_mask: np.ndarray, pairs: Sequence[tuple]):
    """Sum of :func:`cosine_forward` over ``(student_layer, teacher_layer)`` pairs.

    ``s_hiddens``/``t_hiddens`` are the models' ``hidden_states`` lists (embedding output
    first). The paper aligns only the last layer; intermediate pairs are an option to explore.
    """
    pairs = tuple((int(i), int(j)) for i, j in pairs)
    if not pairs:
        raise ValueError("pairs must list at least one (student_layer, teacher_layer) pair")
    total, caches = 0.0, []
    for i, j in pairs:
        if not -len(s_hiddens) <= i < len(s_hiddens):
            raise ValueError(f"pairs: student layer {i} out of range for {len(s_hiddens)} hidden states")
        if not -len(t_hiddens) <= j < len(t_hiddens):
            raise ValueError(f"pairs: teacher layer {j} out of range for {len(t_hiddens)} hidden states")
        loss, cache = cosine_forward(s_hiddens[i], t_hiddens[j], attention_mask)
        total += loss
        caches.append(cache)
    pairs = tuple((i % len(s_hiddens), j % len(t_hiddens)) for i, j in pairs)
    return total, CosineLayersCache(pairs, tuple(caches))


def cosine_layers_backward(dloss, cache: CosineLayersCache) -> dict:
    """``{student_layer: ds_h (B, T, C)}``, summed when a student layer appears in several pairs;
    the shape ``model.backward(..., dhidden=...)`` takes."""
    out: dict = {}
    for (i, _), c in zip(cache.pairs, cache.caches):
        g = cosine_backward(dloss, c)  # (B, T, C)
        if i in out:
            out[i] += g
        else:
            out[i] = g
    return out


# ---------------------------------------------------------------- the weighted triple loss

class DistillCache(NamedTuple):
    cfg: DistillLossConfig
    ce: SoftTargetCache | None
    ce_rows: np.ndarray | None  # (N,) rows of the P used by Lce; None = all P rows
    mlm: MlmCache | None
    cos: CosineCache | None
    logits_shape: tuple  # (P, V)
    dtype: np.dtype
    hidden_shape: tuple | None  # (B, T, C), None when no hidden states were given


def distill_loss_forward(s_logits: np.ndarray, t_logits: np.ndarray, labels: np.ndarray,
                         s_hidden: np.ndarray | None, t_hidden: np.ndarray | None,
                         attention_mask: np.ndarray, cfg: DistillLossConfig | None = None,
                         positions: np.ndarray | None = None):
    """The DistilBERT triple loss. Returns ``(total, parts, cache)``.

    s_logits, t_logits (P, V): logits at the True entries of ``positions`` (B, T), row-major;
    ``positions=None`` means the non-padding positions (``attention_mask``).
    labels (B, T): original id at masked positions, -100 elsewhere; every labelled position
    must be among ``positions``. s_hidden, t_hidden (B, T, C): last hidden states (may be None
    when ``cfg.alpha_cos == 0``). parts = {"loss", "loss_ce", "loss_mlm", "loss_cos"} (floats).
    """
    cfg = DistillLossConfig() if cfg is None else cfg
    if not isinstance(cfg, DistillLossConfig):
        raise TypeError(f"cfg must be a DistillLossConfig, got {type(cfg).__name__}")
    check_float_array("s_logits", s_logits, 2)
    check_float_array("t_logits", t_logits, 2)
    check_same_dtype(s_logits.dtype, t_logits=t_logits)
    check_shape("t_logits", t_logits, s_logits.shape)
    if not isinstance(attention_mask, np.ndarray) or attention_mask.ndim != 2:
        raise ValueError(
            f"attention_mask must be a 2-D (B, T) array, got {getattr(attention_mask, 'shape', type(attention_mask).__name__)}"
        )
    B, T = attention_mask.shape
    real = check_mask("attention_mask", attention_mask, (B, T))  # (B, T) bool
    pos = real if positions is None else check_mask("positions", positions, (B, T))  # (B, T)
    P, V = s_logits.shape
    if int(pos.sum()) != P:
        raise ValueError(
            f"s_logits must have one row per True entry of positions ({int(pos.sum())}), got {P} rows"
        )
    _check_labels("labels", labels, (B, T), V)
    labelled = labels != IGNORE_INDEX  # (B, T)
    if np.any(labelled & ~pos):
        raise ValueError("labels mark a position (label != -100) that positions does not include")
    labels_rows = labels[pos]  # (P,) labels in logits-row order

    ce = mlm = cos = None
    ce_rows = None
    parts = {"loss": 0.0, "loss_ce": 0.0, "loss_mlm": 0.0, "loss_cos": 0.0}
    if cfg.alpha_ce > 0:
        keep = labelled[pos] if cfg.ce_positions == "masked" else real[pos]  # (P,) bool
        if keep.all():  # the usual case, positions == attention_mask: no copy
            s_sel, t_sel = s_logits, t_logits  # (P, V)
        else:
            ce_rows = np.flatnonzero(keep)  # (N,)
            s_sel, t_sel = s_logits[ce_rows], t_logits[ce_rows]  # (N, V)
        parts["loss_ce"], ce = soft_target_forward(s_sel, t_sel, cfg.temperature)
    if cfg.alpha_mlm > 0:
        parts["loss_mlm"], mlm = mlm_forward(s_logits, labels_rows)
    hidden_shape = None
    if s_hidden is not None:
        check_float_array("s_hidden", s_hidden, 3)
        hidden_shape = s_hidden.shape
        if s_hidden.shape[:2] != (B, T):
            raise ValueError(f"s_hidden must have shape ({B}, {T}, C) like attention_mask, got {s_hidden.shape}")
    if cfg.alpha_cos > 0:
        if s_hidden is None or t_hidden is None:
            raise ValueError("s_hidden and t_hidden are required when cfg.alpha_cos > 0")
        check_same_dtype(s_logits.dtype, s_hidden=s_hidden, t_hidden=t_hidden)
        parts["loss_cos"], cos = cosine_forward(s_hidden, t_hidden, real)
    total = cfg.alpha_ce * parts["loss_ce"] + cfg.alpha_mlm * parts["loss_mlm"] + cfg.alpha_cos * parts["loss_cos"]
    parts["loss"] = float(total)
    cache = DistillCache(cfg, ce, ce_rows, mlm, cos, (P, V), s_logits.dtype, hidden_shape)
    return float(total), parts, cache


def distill_loss_backward(dloss: float, cache: DistillCache):
    """``(ds_logits (P, V), ds_hidden (B, T, C) or None)`` of ``dloss * total``.

    ``dloss`` (1.0 for the loss itself) scales everything, e.g. 1/accumulation_steps; the argument
    order is every backward's, ``(upstream gradient, cache)``. ``ds_hidden`` is zeros
    when alpha_cos is 0 and hidden states were given, None when they were not.
    """
    dloss = _check_scalar("dloss", dloss)
    cfg = cache.cfg
    if cache.ce is not None and cache.ce_rows is None:
        ds_logits = soft_target_backward(dloss * cfg.alpha_ce, cache.ce)  # (P, V), fresh array
    else:
        ds_logits = np.zeros(cache.logits_shape, dtype=cache.dtype)  # (P, V)
        if cache.ce is not None and cache.ce_rows.size:
            ds_logits[cache.ce_rows] = soft_target_backward(dloss * cfg.alpha_ce, cache.ce)  # (N, V)
    if cache.mlm is not None and cache.mlm.rows.size:
        ds_logits[cache.mlm.rows] += _mlm_row_grads(dloss * cfg.alpha_mlm, cache.mlm)  # (N, V)
    if cache.cos is not None:
        ds_hidden = cosine_backward(dloss * cfg.alpha_cos, cache.cos)  # (B, T, C)
    elif cache.hidden_shape is not None:
        ds_hidden = np.zeros(cache.hidden_shape, dtype=cache.dtype)  # (B, T, C)
    else:
        ds_hidden = None
    return ds_logits, ds_hidden

