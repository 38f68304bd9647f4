"""Fine-tuning a sequence-classification head on one task, the way ``run_glue.py`` does it:
AdamW, linear warm-up and decay, a few epochs, and early stopping on the dev score.

Legend: B batch, T sequence, K labels.

Inputs are ``[CLS] a [SEP]`` or ``[CLS] a [SEP] b [SEP]`` (longest side cut first to fit
``max_len``); BERT also gets token types (0 for ``a`` and its [SEP], 1 for ``b``), DistilBERT has
none. After each epoch the dev score is measured; the best epoch's parameters are kept and
training stops after ``patience`` epochs without improvement.

Batches group examples of similar length (``group_by_length``, as in Hugging Face's ``Trainer``):
each epoch the examples are shuffled, cut into spans of ``50 * batch_size``, each span is sorted by
length and cut into batches, and the batches are shuffled. A batch is padded to its own longest
example, so grouping halves the padded tokens on the built-in tasks without changing what an
epoch sees. ``group_by_length=False`` gives plain shuffled batches.

"DistilBERT (D)" (Sanh et al., 2019, section 4.2, on SQuAD): the student is fine-tuned with an
extra soft-target loss against the logits of a teacher that was itself fine-tuned on the task::

    L = (1 - alpha) * L_task(s, y) + alpha * tau**2 * KL(softmax(t / tau) || softmax(s / tau))

with tau the temperature (``temperature``) and ``soft_targets`` the fine-tuned teacher's (N, K)
training logits, computed in eval mode.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

from ..losses import soft_target_backward, soft_target_forward
from ..models.heads import SequenceClassifier
from ..task_losses import check_class_labels, task_loss_backward, task_loss_forward
from .optim import AdamW, clip_grad_norm, linear_schedule
from .task_metrics import task_score


@dataclass
class FinetuneConfig:
    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-4
    warmup_frac: float = 0.1
    weight_decay: float = 0.01
    clip_norm: float = 1.0
    patience: int = 1  # epochs without a better dev score before stopping
    max_len: int = 64
    eval_batch_size: int = 128
    group_by_length: bool = True  # batches of similar length (less padding); False: plain shuffle
    alpha_soft: float = 0.0  # weight of the soft-target loss ("DistilBERT (D)"); 0: plain fine-tuning
    temperature: float = 2.0


class Encoded(NamedTuple):
    ids: list  # N arrays (T_i,) int64
    types: list  # N arrays (T_i,) int64 (all 0 for single sentences)
    labels: np.ndarray  # (N,) int64 or float64


def encode_examples(examples, tokenizer, max_len: int, regression: bool) -> Encoded:
    """Tokenize ``[CLS] a [SEP] (b [SEP])``; the longer side is cut first until it fits."""
    ids, types = [], []
    for ex in examples:
        a = tokenizer.encode(ex.a)
        b = tokenizer.encode(ex.b) if ex.b is not None else None
        room = max_len - (3 if b is not None else 2)
        if b is None:
            a = a[:room]
        else:
            while len(a) + len(b) > room:
                if len(a) >= len(b):
                    a = a[:-1]
                else:
                    b = b[:-1]
        seq = [tokenizer.cls_id] + a + [tokenizer.sep_id]
        tt = [0] * len(seq)
        if b is not None:
            seq += b + [tokenizer.sep_id]
            tt += [1] * (len(b) + 1)
        ids.append(np.array(seq, np.int64))  # (T_i,)
        types.append(np.array(tt, np.int64))  # (T_i,)
    dtype = np.float64 if regression else np.int64
    return Encoded(ids, types, np.array([ex.label for ex in examples], dtype))  # labels (N,)


def _pad(enc: Encoded, rows, pad_id: int):
    T = max(len(enc.ids[i]) for i in rows)
    ids = np.full((len(rows), T), pad_id, np.int64)  # (B, T)
    tt = np.zeros((len(rows), T), np.int64)  # (B, T)
    mask = np.zeros((len(rows), T), np.int64)  # (B, T)
    for r, i in enumerate(rows):
        n = len(enc.ids[i])
        ids[r, :n], tt[r, :n], mask[r, :n] = enc.ids[i], enc.types[i], 1
    return ids, tt, mask


def _forward(model, ids, tt, mask, **kw):
    types = tt if model.encoder.naming.token_type is not None else None
    return model.forward(ids, mask, token_type_ids=types, **kw)


def predict_logits(model: SequenceClassifier, enc: Encoded, pad_id: int, batch_size: int = 128) -> np.ndarray:
    """Eval-mode logits (N, K), batches sorted by length (less padding), returned in input order."""
    order = np.argsort([len(s) for s in enc.ids], kind="stable")
    out = np.zeros((len(enc.ids), model.num_labels), model.dtype)  # (N, K)
    for s in range(0, len(order), batch_size):
        rows = order[s:s + batch_size]
        ids, tt, mask = _pad(enc, rows, pad_id)
        out[rows] = _forward(model, ids, tt, mask, keep_cache=False).logits
    return out


GROUP_SPAN = 50  # batches per length-sorted span (Hugging Face's LengthGroupedSampler uses 50 too)


def epoch_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, group_by_length: bool) -> list:
    """One epoch's batches (arrays of example indices): ``ceil(N / batch_size)`` of them either way.

    Spans are whole multiples of ``batch_size``, so only the very last batch can be short.
    """
    order = rng.permutation(len(lengths))  # (N,)
    if not group_by_length:
        return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    span = GROUP_SPAN * batch_size
    batches = []
    for s in range(0, len(order), span):
        chunk = order[s:s + span]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]  # longest first within the span
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def predictions(logits: np.ndarray, regression: bool) -> np.ndarray:
    return logits[:, 0] if regression else logits.argmax(axis=1)  # (N,)


class FinetuneResult(NamedTuple):
    best_score: float  # dev score (0-100) of the kept epoch
    best_epoch: int  # 1-based
    history: list  # per epoch: {"epoch", "train_loss", "dev": {...}}
    dev_pred: np.ndarray  # (N,) predictions of the kept parameters on dev
    steps: int
    seconds: float


def finetune(model: SequenceClassifier, train: Encoded, dev: Encoded, metric: str, pad_id: int,
             cfg: FinetuneConfig, seed: int = 0, soft_targets: Optional[np.ndarray] = None,
             progress=None) -> FinetuneResult:
    """Fine-tune ``model`` in place on ``train``; keep the parameters of its best dev epoch."""
    regression = model.head.problem_type == "regression"
    if not regression:
        check_class_labels(train.labels, model.num_labels)
        check_class_labels(dev.labels, model.num_labels)
    if soft_targets is not None and (regression or soft_targets.shape != (len(train.ids), model.num_labels)):
        raise ValueError(f"soft_targets must be the teacher's ({len(train.ids)}, {model.num_labels}) training "
                         "logits of a classification task")
    rng = np.random.default_rng(seed)
    N = len(train.ids)
    per_epoch = (N + cfg.batch_size - 1) // cfg.batch_size
    total = per_epoch * cfg.epochs
    opt = AdamW(model.params, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=cfg.weight_decay)
    best, best_epoch, best_state, bad, history, step = -np.inf, 0, None, 0, [], 0
    lengths = np.array([len(s) for s in train.ids])  # (N,)
    t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        losses = []
        for rows in epoch_batches(lengths, cfg.batch_size, rng, cfg.group_by_length):
            ids, tt, mask = _pad(train, rows, pad_id)
            out = _forward(model, ids, tt, mask, training=True, rng=rng)
            loss, lc = task_loss_forward(out.logits, train.labels[rows], model.head.problem_type)
            w_task = 1.0 - cfg.alpha_soft if soft_targets is not None else 1.0
            dlogits = task_loss_backward(w_task, lc)  # (B, K)
            if soft_targets is not None:
                soft, sc = soft_target_forward(out.logits, soft_targets[rows].astype(model.dtype), cfg.temperature)
                dlogits = dlogits + soft_target_backward(cfg.alpha_soft, sc)  # (B, K)
                loss = w_task * loss + cfg.alpha_soft * soft
            grads = model.backward(dlogits, out.cache)
            clip_grad_norm(grads, cfg.clip_norm)
            opt.step(grads, lr=linear_schedule(step, total, cfg.warmup_frac, cfg.lr))
            step += 1
            losses.append(loss)
            if progress is not None:
                progress(1)
        logits = predict_logits(model, dev, pad_id, cfg.eval_batch_size)
        pred = predictions(logits, regression)
        dev_scores = task_score(metric, pred, dev.labels)
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "dev": dev_scores})
        if dev_scores["score"] > best:
            best, best_epoch, bad = dev_scores["score"], epoch, 0
            best_state, best_pred = model.state_dict(), pred
        else:
            bad += 1
            if bad >= cfg.patience:
                if progress is not None:
                    progress(per_epoch * (cfg.epochs - epoch))  # the steps early stopping skipped
                break
    model.load_state_dict(best_state)
    return FinetuneResult(float(best), best_epoch, history, best_pred, step, time.perf_counter() - t0)
