"""Stage 1: pretrain the teacher (``Bert``) with masked language modelling.

Each micro-batch: dynamic masking (15% of the real, non-special tokens; 80% [MASK], 10% random,
10% kept; drawn afresh every time), the teacher's forward with logits only at the masked
positions (the V-wide MLM head is the most expensive matmul, and the other positions have no
label), cross-entropy against the original ids, and the manual backward.
"""
from __future__ import annotations

import os

import numpy as np

from .loop import train_loop
from .runs import MODEL_FILE, Data, RunConfig, StageConfig, bert_config, save_model, stage_dir


def token_probs_for(cfg: StageConfig, counts: np.ndarray, special_ids) -> np.ndarray | None:
    """Frequency-smoothing weights for masking (``None`` when smoothing is off)."""
    if cfg.mlm_smoothing is None:
        return None
    from ..masking import smoothing_weights
    return smoothing_weights(counts, power=cfg.mlm_smoothing, special_ids=special_ids)


def make_mlm_step(model, tokenizer, cfg: StageConfig, token_probs=None, shard=None):
    """The ``step_fn`` of the teacher: one MLM forward/backward on a micro-batch.

    With a ``shard`` (data parallelism) the mask is drawn over the whole micro-batch, then only
    the shard's rows are computed, their mean loss weighted by their share of the masked tokens
    (minidistil/parallel/shard.py), so the ranks' losses and gradients add up to the batch's.
    """
    from ..losses import mlm_backward, mlm_forward
    from ..masking import IGNORE_INDEX, mask_tokens
    from ..parallel.shard import share, zero_grads

    def step_fn(input_ids, attention_mask, rng):
        masked_ids, labels = mask_tokens(input_ids, attention_mask, rng, tokenizer.vocab_size,
                                         tokenizer.mask_id, tokenizer.special_ids,
                                         mlm_prob=cfg.mlm_prob, token_probs=token_probs)
        positions = labels != IGNORE_INDEX  # (B, T) the masked tokens
        if not positions.any():
            return None
        weight = 1.0
        if shard is not None:
            n_batch = int(positions.sum())
            attention_mask, masked_ids, labels = shard.take(attention_mask, masked_ids, labels)
            positions = labels != IGNORE_INDEX  # (B_r, T_r)
            weight = share(int(positions.sum()), n_batch)
            if weight == 0.0:
                return {"loss": 0.0}, zero_grads(model.params)
        out = model.forward(masked_ids, attention_mask, mlm_positions=positions)  # logits (P, V)
        loss, cache = mlm_forward(out.logits, labels[positions])
        dlogits = mlm_backward(weight, cache)  # (P, V)
        grads = model.backward(dlogits, out.cache)
        return {"loss": weight * float(loss)}, grads

    return step_fn


def make_val_evaluator(model, data: Data, cfg: RunConfig):
    """``evaluate() -> {"val_loss", "val_acc"}`` on the validation split with one fixed mask.

    The mask is drawn once, from the evaluation seed, so every point of the curve scores the same
    tokens and the curve shows the model changing, not the mask.
    """
    from .evaluate import make_eval_set, predict
    # one mask (mask 0) keeps each point of the curve cheap; the final figures use all of them
    evalset = make_eval_set(data.val, data.tokenizer, cfg.eval, mlm_prob=cfg.pretrain.mlm_prob, n_masks=1)

    def evaluate() -> dict:
        r = predict(model, evalset)
        return {"val_loss": round(r["mlm_loss"], 5), "val_acc": round(r["accuracy"], 5)}

    return evaluate


def pretrain(cfg: RunConfig, out: str, data: Data, resume: bool = False,
             max_steps: int | None = None, progress: bool = True, comm=None):
    """Train a teacher from scratch; returns ``(teacher, LoopResult)``.

    The finished teacher is saved to ``out/pretrain/model.npz`` (by rank 0 when ``comm`` spreads
    the run over MPI ranks, :mod:`minidistil.parallel`).
    """
    from ..models import Bert
    bcfg = bert_config(cfg.model, data.tokenizer.vocab_size, cfg.data.max_len)
    teacher = Bert(bcfg, dtype=np.float32, seed=cfg.seed)
    folder = stage_dir(out, "pretrain")
    probs = token_probs_for(cfg.pretrain, data.counts, data.tokenizer.special_ids)
    step_fn = make_mlm_step(teacher, data.tokenizer, cfg.pretrain, probs,
                            shard=getattr(comm, "shard", None))
    result = train_loop("pretrain", teacher, step_fn, data.train, data.tokenizer.pad_id,
                        cfg.pretrain, cfg.seed, folder, resume=resume, max_steps=max_steps,
                        progress=progress, comm=comm,
                        evaluate=make_val_evaluator(teacher, data, cfg) if cfg.pretrain.eval_every else None)
    if result.finished and getattr(comm, "is_root", True):
        save_model(os.path.join(folder, MODEL_FILE), teacher, {"steps": result.step})
    return teacher, result
