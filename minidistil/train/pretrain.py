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


def make_mlm_step(model, tokenizer, cfg: StageConfig, token_probs=None):
    """The ``step_fn`` of the teacher: one MLM forward/backward on a micro-batch."""
    from ..losses import mlm_backward, mlm_forward
    from ..masking import mask_tokens

    def step_fn(input_ids, attention_mask, rng):
        masked_ids, labels = mask_tokens(input_ids, attention_mask, rng, tokenizer.vocab_size,
                                         tokenizer.mask_id, tokenizer.special_ids,
                                         mlm_prob=cfg.mlm_prob, token_probs=token_probs)
        positions = labels != -100  # (B, T) the masked tokens
        if not positions.any():
            return None
        out = model.forward(masked_ids, attention_mask, mlm_positions=positions)  # logits (P, V)
        loss, cache = mlm_forward(out.logits, labels[positions])
        dlogits = mlm_backward(1.0, cache)  # (P, V)
        grads = model.backward(dlogits, out.cache)
        return {"loss": float(loss)}, grads

    return step_fn


def make_val_evaluator(model, data: Data, cfg: RunConfig):
    """``evaluate() -> {"val_loss", "val_acc"}`` on the validation split with one fixed mask.

    The mask is drawn once, from the evaluation seed, so every point of the curve scores the same
    tokens and the curve shows the model changing, not the mask.
    """
    from .evaluate import make_eval_set, predict
    evalset = make_eval_set(data.val, data.tokenizer, cfg.eval, mlm_prob=cfg.pretrain.mlm_prob)

    def evaluate() -> dict:
        r = predict(model, evalset)
        return {"val_loss": round(r["mlm_loss"], 5), "val_acc": round(r["accuracy"], 5)}

    return evaluate


def pretrain(cfg: RunConfig, out: str, data: Data, resume: bool = False,
             max_steps: int | None = None, progress: bool = True):
    """Train a teacher from scratch; returns ``(teacher, LoopResult)``.

    The finished teacher is saved to ``out/pretrain/model.npz``.
    """
    from ..models import Bert
    bcfg = bert_config(cfg.model, data.tokenizer.vocab_size, cfg.data.max_len)
    teacher = Bert(bcfg, dtype=np.float32, seed=cfg.seed)
    folder = stage_dir(out, "pretrain")
    probs = token_probs_for(cfg.pretrain, data.counts, data.tokenizer.special_ids)
    step_fn = make_mlm_step(teacher, data.tokenizer, cfg.pretrain, probs)
    result = train_loop("pretrain", teacher, step_fn, data.train, data.tokenizer.pad_id,
                        cfg.pretrain, cfg.seed, folder, resume=resume, max_steps=max_steps,
                        progress=progress,
                        evaluate=make_val_evaluator(teacher, data, cfg) if cfg.pretrain.eval_every else None)
    if result.finished:
        save_model(os.path.join(folder, MODEL_FILE), teacher, {"steps": result.step})
    return teacher, result
