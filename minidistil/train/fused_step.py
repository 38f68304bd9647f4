"""The distillation step's losses through the fused vocabulary head (``DistillStageConfig.head_chunk``).

Legend: B batch, T sequence, C hidden, V vocabulary, L student layers, P positions with logits.

It replaces these lines of the reference step (train/distill.py, ``head_chunk = 0``): both models
compute their logits (P, V) at ``positions``, ``losses.distill_loss_forward`` /
``distill_loss_backward`` turn them into the triple loss and ``ds_logits`` (P, V), and the
student's backward starts there. Here instead:

1. both models run with ``mlm_positions`` all False, so their MLM head runs on no row and the
   forward stops, in effect, at the last hidden state;
2. the head's transform (dense -> GELU -> LayerNorm, (P, C)) runs here with the layers' own
   functions, for the student (cache kept) and the teacher;
3. the tied decoder, Lce and Lmlm run chunk by chunk (kernels/fused_head.py), which returns the
   loss parts and the gradients of the transform's output, of ``W_word`` and of the decoder bias;
4. Lcos is losses.py's; the head's input gradient is scattered into the student's last hidden
   state beside Lcos's, and the student's backward starts there (``dlogits=None``).

The loss and every gradient equal the reference path's to rounding (tests/test_fused_step.py);
no (P, V) array is made, which is the point: docs/flops.md has the measured peak memory.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..kernels import gelu_backward, gelu_forward
from ..kernels.gelu import GeluCache
from ..kernels.fused_head import fused_head_backward, fused_head_forward
from ..layers import (LayerNormCache, LinearCache, layernorm_layer_backward, layernorm_layer_forward,
                      linear_backward, linear_forward)
from ..losses import cosine_backward, cosine_forward
from ..masking import IGNORE_INDEX


class TransformCache(NamedTuple):
    dense: LinearCache
    gelu: GeluCache  # holds (P, C) the GELU input
    ln: LayerNormCache


def transform_forward(model, x: np.ndarray):
    """The MLM head's transform of ``model`` on ``x`` (P, C), as models/base.py's ``_head_forward``
    computes it before the decoder; returns ``(t (P, C), TransformCache)``."""
    p, n = model.params, model.naming
    u, dense = linear_forward(x, p[n.head_dense + ".weight"], p[n.head_dense + ".bias"])  # (P, C)
    g, gelu = gelu_forward(u, model._approximate)  # (P, C)
    t, ln = layernorm_layer_forward(g, p[n.head_ln + ".weight"], p[n.head_ln + ".bias"],
                                    model.config.layer_norm_eps)  # (P, C)
    return t, TransformCache(dense, gelu, ln)


def transform_backward(dt: np.ndarray, cache: TransformCache, model):
    """``(dx (P, C), grads)`` of the transform; ``grads`` keyed by ``model``'s parameter names."""
    n = model.naming
    dg, g_ln = layernorm_layer_backward(dt, cache.ln)  # (P, C)
    du = gelu_backward(dg, cache.gelu)  # (P, C)
    dx, g_dense = linear_backward(du, cache.dense)  # (P, C)
    return dx, {n.head_dense + ".weight": g_dense["weight"], n.head_dense + ".bias": g_dense["bias"],
                n.head_ln + ".weight": g_ln["weight"], n.head_ln + ".bias": g_ln["bias"]}


def fused_distill_losses(student, teacher, masked_ids, attention_mask, labels, positions, lcfg, chunk: int):
    """``(total, parts, grads)`` of one distillation micro-batch, as the reference step's
    ``distill_loss_forward`` + ``distill_loss_backward(1.0)`` + ``student.backward`` give them.

    ``teacher`` may be None when neither Lce nor Lcos needs it (an Lmlm-only control);
    ``positions`` (B, T) bool are the rows that get logits (``distill.logit_positions``).
    """
    L = student.config.num_hidden_layers
    real = attention_mask.astype(bool)  # (B, T)
    no_head = np.zeros(positions.shape, dtype=bool)  # (B, T): the models' own head runs on no row
    s_out = student.forward(masked_ids, attention_mask, mlm_positions=no_head)
    t_out = None
    if teacher is not None:
        t_out = teacher.forward(masked_ids, attention_mask, mlm_positions=no_head, keep_cache=False)
    s_last = s_out.hidden_states[-1]  # (B, T, C)
    labels_rows = labels[positions]  # (P,) in np.nonzero order, as the models' logits rows
    ce_mask = (labels_rows != IGNORE_INDEX) if lcfg.ce_positions == "masked" else real[positions]  # (P,)

    s_t, s_cache = transform_forward(student, s_last[positions])  # (P, C)
    t_t = t_w = t_b = None
    if lcfg.alpha_ce > 0:
        t_t, _ = transform_forward(teacher, t_out.hidden_states[-1][positions])  # (P, C)
        t_w, t_b = teacher.params[teacher.naming.word], teacher.params[teacher.naming.head_bias]
    sp, sn = student.params, student.naming
    _, parts, hcache = fused_head_forward(s_t, sp[sn.word], sp[sn.head_bias], labels_rows, t_t, t_w, t_b,
                                          ce_mask, lcfg.temperature, lcfg.alpha_ce, lcfg.alpha_mlm, chunk)
    parts = {"loss": 0.0, **parts, "loss_cos": 0.0}
    dh = None
    if lcfg.alpha_cos > 0:
        parts["loss_cos"], ccache = cosine_forward(s_last, t_out.hidden_states[-1], real)
        dh = cosine_backward(lcfg.alpha_cos, ccache)  # (B, T, C), a fresh array
    # the same sum, in the same order, as losses.distill_loss_forward
    parts["loss"] = float(lcfg.alpha_ce * parts["loss_ce"] + lcfg.alpha_mlm * parts["loss_mlm"]
                          + lcfg.alpha_cos * parts["loss_cos"])

    dt, g_dec = fused_head_backward(1.0, hcache)  # (P, C)
    dsel, g_transform = transform_backward(dt, s_cache, student)  # (P, C)
    if dh is None:
        dh = np.zeros_like(s_last)  # (B, T, C)
    dh[positions] += dsel  # positions are distinct: one row each
    grads = student.backward(None, s_out.cache, dhidden={L: dh})  # head parts come back as zeros
    grads.update(g_transform)
    grads[sn.head_bias] = g_dec["bias"]
    grads[sn.word] += g_dec["weight"]  # tied decoder: lookup (in grads already) + decoder
    return parts["loss"], parts, grads
