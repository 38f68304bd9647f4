"""Stage 2: distil the student (``DistilBert``) from the teacher with the triple loss.

Each micro-batch (reference.md, "The distillation recipe"):

1. dynamic masking of the batch, as in pretraining;
2. the teacher's forward without a cache (``keep_cache=False``: it is never differentiated);
3. the student's forward; both produce logits only at the positions a loss needs: every real
   token when Lce covers all tokens (the HF default), only the masked ones otherwise;
4. ``total = 5 Lce + 2 Lmlm + 1 Lcos`` (weights from ``DistillStageConfig``; an ablation sets one
   to 0), and the student's backward with the cosine gradient entering at its last hidden state.
"""
from __future__ import annotations

import dataclasses
import os

from .loop import train_loop
from .pretrain import token_probs_for
from .runs import MODEL_FILE, Data, DistillStageConfig, RunConfig, save_model, stage_dir


def loss_config(cfg: DistillStageConfig):
    """The stage's ``DistillLossConfig`` (kept in ``cfg.loss``)."""
    return cfg.loss


def make_student(teacher, cfg: RunConfig, init: str | None = None):
    """The student: ``from_teacher`` with the blocks of the stage's ``init_layers``
    (:func:`init_layer_list`; by default :func:`~minidistil.models.student_layers`), or a random
    initialisation."""
    from ..models import DistilBert
    init = init or cfg.distill.student_init
    n_student = cfg.model.student_layers
    if init == "teacher":
        layers = init_layer_list(cfg.distill.init_layers, teacher.config.num_hidden_layers, n_student)
        return DistilBert.from_teacher(teacher, layers=layers)
    if init == "random":
        scfg = dataclasses.replace(teacher.config, num_hidden_layers=n_student)
        return DistilBert.random_init(scfg, dtype=teacher.dtype, seed=cfg.seed)
    raise ValueError(f"student_init must be 'teacher' or 'random', got {init!r}")


def init_layer_list(spec: str, n_teacher: int, n_student: int) -> list:
    """The teacher blocks named by a stage's ``init_layers`` ("bottom", "top" or "1,3,5") for a
    student of ``n_student`` layers; an explicit list must name that many blocks below
    ``n_teacher``."""
    from ..models import student_layers
    from .runs import INIT_LAYER_RULES, check_init_layers
    spec = check_init_layers(spec)
    if spec in INIT_LAYER_RULES:
        return student_layers(n_teacher, n_student, align=spec)
    layers = [int(i) for i in spec.split(",")]
    if len(layers) != n_student:
        raise ValueError(f"init_layers {spec} names {len(layers)} teacher layers, but the student has "
                         f"{n_student} (model.student_layers)")
    if layers[-1] >= n_teacher:
        raise ValueError(f"init_layers {spec}: the teacher has {n_teacher} layers, numbered 0 to "
                         f"{n_teacher - 1}")
    return layers


def logit_positions(cfg: DistillStageConfig, attention_mask, labels):
    """The (B, T) boolean positions at which the losses need logits."""
    from ..masking import IGNORE_INDEX
    masked = labels != IGNORE_INDEX  # (B, T)
    if cfg.loss.alpha_ce > 0 and cfg.loss.ce_positions == "all":
        return attention_mask.astype(bool)  # (B, T) every real token (includes the masked ones)
    return masked


def _term_counts(cfg: DistillStageConfig, attention_mask, labels) -> dict:
    """How many positions each loss term averages over: its mean's denominator."""
    from ..masking import IGNORE_INDEX
    n_real, n_masked = int(attention_mask.sum()), int((labels != IGNORE_INDEX).sum())
    return {"ce": n_real if cfg.loss.ce_positions == "all" else n_masked, "mlm": n_masked, "cos": n_real}


def _shard_loss_config(lcfg, cfg: DistillStageConfig, shard, attention_mask, labels):
    """A shard's rows and the triple loss with each alpha times the shard's share of its term.

    Returns ``(attention_mask, labels, rows, lcfg_r, shares)``; ``lcfg_r`` is None when the shard
    has nothing to contribute (minidistil/parallel/shard.py explains the weights).
    """
    import dataclasses as dc
    from ..parallel.shard import share
    n_batch = _term_counts(cfg, attention_mask, labels)
    rows = shard.rows(attention_mask.shape[0])
    attention_mask, labels = shard.take(attention_mask, labels)
    n_rank = _term_counts(cfg, attention_mask, labels)
    w = {k: share(n_rank[k], n_batch[k]) for k in n_batch}
    alphas = {"alpha_ce": lcfg.alpha_ce * w["ce"], "alpha_mlm": lcfg.alpha_mlm * w["mlm"],
              "alpha_cos": lcfg.alpha_cos * w["cos"]}
    lcfg_r = dc.replace(lcfg, **alphas) if any(alphas.values()) else None
    return attention_mask, labels, rows, lcfg_r, w


def make_distill_step(student, teacher, tokenizer, cfg: DistillStageConfig, token_probs=None,
                      shard=None):
    """The ``step_fn`` of the student; with a ``shard`` it computes only that shard's rows, each
    loss term weighted by the shard's share of that term's positions (as ``make_mlm_step``)."""
    from ..losses import distill_loss_backward, distill_loss_forward
    from ..masking import IGNORE_INDEX, mask_tokens
    from ..parallel.shard import zero_grads
    lcfg = loss_config(cfg)
    L = student.config.num_hidden_layers
    needs_teacher = lcfg.alpha_ce > 0 or lcfg.alpha_cos > 0  # Lmlm alone (a control) needs none

    def step_fn(input_ids, attention_mask, rng):
        masked_ids, labels = mask_tokens(input_ids, attention_mask, rng, tokenizer.vocab_size,
                                         tokenizer.mask_id, tokenizer.special_ids,
                                         mlm_prob=cfg.mlm_prob, token_probs=token_probs)
        if not (labels != IGNORE_INDEX).any():
            return None
        lcfg_r, w = lcfg, None
        if shard is not None:
            attention_mask, labels, rows, lcfg_r, w = _shard_loss_config(
                lcfg, cfg, shard, attention_mask, labels)
            masked_ids = masked_ids[rows, :attention_mask.shape[1]]  # (B_r, T_r)
            if lcfg_r is None:
                return {"loss": 0.0, "loss_ce": 0.0, "loss_mlm": 0.0, "loss_cos": 0.0}, \
                    zero_grads(student.params)
        positions = logit_positions(cfg, attention_mask, labels)  # (B, T)
        if cfg.head_chunk:  # the fused vocabulary head: the same losses, no (P, V) array
            from .fused_step import fused_distill_losses
            _, parts, grads = fused_distill_losses(student, teacher if needs_teacher else None, masked_ids,
                                                   attention_mask, labels, positions, lcfg_r, cfg.head_chunk)
            return _shard_parts(parts, w), grads
        s_out = student.forward(masked_ids, attention_mask, mlm_positions=positions)
        t_out = teacher.forward(masked_ids, attention_mask, mlm_positions=positions,
                                keep_cache=False) if needs_teacher else s_out  # s_out: unused stand-in
        total, parts, cache = distill_loss_forward(
            s_out.logits, t_out.logits, labels, s_out.hidden_states[-1], t_out.hidden_states[-1],
            attention_mask, lcfg_r, positions)
        ds_logits, ds_hidden = distill_loss_backward(1.0, cache)
        grads = student.backward(ds_logits, s_out.cache, dhidden={L: ds_hidden})
        return _shard_parts(parts, w), grads

    return step_fn


def _shard_parts(parts: dict, w) -> dict:
    """Each part as this shard's share of the batch's mean ("loss" already is); floats."""
    if w is not None:
        parts = dict(parts, loss_ce=parts["loss_ce"] * w["ce"], loss_mlm=parts["loss_mlm"] * w["mlm"],
                     loss_cos=parts["loss_cos"] * w["cos"])
    return {k: float(v) for k, v in parts.items()}


def distill(cfg: RunConfig, out: str, data: Data, teacher, resume: bool = False,
            max_steps: int | None = None, progress: bool = True, folder: str | None = None,
            on_step=None, comm=None):
    """Distil a student from ``teacher``; returns ``(student, LoopResult)``.

    The finished student is saved to ``<folder>/model.npz`` (default ``out/distill``), by rank 0
    when ``comm`` spreads the run over MPI ranks (:mod:`minidistil.parallel`).
    """
    student = make_student(teacher, cfg)
    folder = folder or stage_dir(out, "distill")
    probs = token_probs_for(cfg.distill, data.counts, data.tokenizer.special_ids)
    step_fn = make_distill_step(student, teacher, data.tokenizer, cfg.distill, probs,
                                shard=getattr(comm, "shard", None))
    result = train_loop("distill", student, step_fn, data.train, data.tokenizer.pad_id,
                        cfg.distill, cfg.seed, folder, resume=resume, max_steps=max_steps,
                        progress=progress, on_step=on_step, comm=comm)
    if result.finished and getattr(comm, "is_root", True):
        save_model(os.path.join(folder, MODEL_FILE), student, {"steps": result.step})
    return student, result
