"""The training loop both stages share: batches, accumulation, schedule, clipping, guard, resume.

``train_loop`` knows nothing about MLM or distillation: it is given a ``step_fn`` that turns one
micro-batch into ``(losses, grads)``. Around it, the loop

* draws the batches of each epoch from a generator seeded by ``(seed, epoch)`` (so a resumed run
  can rebuild the epoch and skip to the batch it stopped at) and the masking randomness from a
  generator whose state is checkpointed;
* averages ``accum_steps`` micro-batches into one optimizer step (gradient accumulation),
  clips the global gradient norm, and steps AdamW at the linear warm-up/decay learning rate;
* stops with :class:`TrainingDiverged` if a loss or the gradient norm is NaN or infinite, before
  the bad update touches the parameters; the last good checkpoint stays on disk;
* appends one JSON line per optimizer step to ``metrics.jsonl`` and saves ``checkpoint.npz``
  every ``ckpt_every`` steps, atomically.

``--resume`` with the same seed therefore reproduces exactly the losses of an uninterrupted run.
"""
from __future__ import annotations

import json
import math
import os
import time
from typing import Callable, NamedTuple

import numpy as np

from ..atomic import atomic_write_text, remove_stale_temp_files
from .checkpoint import (RunFileError, load_checkpoint, prefixed, rng_from_state, rng_state,
                         save_checkpoint, unprefixed)
from ..losses import NonFiniteLoss
from .optim import AdamW, accumulate_grads, clip_grad_norm, linear_schedule
from .runs import StageConfig
from ..parallel.comm import SingleProcess

CKPT_FILE = "checkpoint.npz"
METRICS_FILE = "metrics.jsonl"


class TrainingDiverged(RuntimeError):
    """A loss or gradient became NaN/inf; the message says where and which checkpoint is kept."""


class LoopResult(NamedTuple):
    step: int            # optimizer steps done
    finished: bool       # False when stopped early by max_steps
    last_losses: dict


def _epoch_batches(seqs, batch_size, seed, stage_id, epoch, pad_id):
    from ..data.batches import batch_iterator
    rng = np.random.default_rng([seed, stage_id, epoch])
    return list(batch_iterator(seqs, batch_size, rng, pad_id))


def read_metrics(path: str, repair: bool = False) -> list[dict]:
    """The rows of ``metrics.jsonl``. A last line cut by a kill (no newline, not JSON) is
    dropped when ``repair``; any other unreadable line raises :class:`RunFileError`."""
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
        except ValueError:
            if repair and i == len(lines) - 1:  # the last line, without its newline: cut by a kill
                break
            raise RunFileError(f"{path}: line {i + 1} is not a JSON object (the file was edited "
                               "or damaged); fix or delete that line") from None
        rows.append(row)
    return rows


def _truncate_metrics(path: str, step: int) -> None:
    """Keep only the metric lines of steps <= ``step`` (those the checkpoint has seen)."""
    rows = [r for r in read_metrics(path, repair=True) if r.get("step", 0) <= step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def _resume_state(ckpt_path, model, opt, stage):
    """Load the checkpoint into ``model`` and ``opt``; ``(step, epoch, pos, rng)``. Every way the
    file can be wrong raises RunFileError naming it."""
    arrays, meta = load_checkpoint(ckpt_path)
    if meta.get("stage", stage) != stage:
        raise RunFileError(f"{ckpt_path}: a {meta.get('stage')!r} checkpoint, not a {stage!r} one")
    try:
        model.load_state_dict(unprefixed("model/", arrays))
        opt.load_state_dict(unprefixed("optim/", arrays))
        step, epoch, pos = int(meta["step"]), int(meta["epoch"]), int(meta["pos"])
        rng = rng_from_state(meta["rng"])
    except (KeyError, ValueError, TypeError) as e:
        raise RunFileError(f"{ckpt_path}: does not fit this run's model and optimizer "
                           f"({' '.join(str(e).split())[:300]}); was it written by another "
                           "configuration? Start afresh without --resume in another --out") from None
    return step, epoch, pos, rng


def train_loop(stage: str, model, step_fn: Callable, seqs: list, pad_id: int, cfg: StageConfig,
               seed: int, folder: str, resume: bool = False, max_steps: int | None = None,
               progress: bool = True, extra_meta: dict | None = None,
               evaluate: Callable[[], dict] | None = None,
               on_step: Callable | None = None, comm=None) -> LoopResult:
    """Train ``model.params`` for ``cfg.steps`` optimizer steps.

    ``step_fn(input_ids (B,T), attention_mask (B,T), rng) -> (losses: dict, grads: dict)`` or
    ``None`` to skip a micro-batch; ``losses["loss"]`` is the total that was differentiated.
    ``max_steps`` stops after that many optimizer steps (a checkpoint is written), as if killed.
    ``evaluate() -> dict`` (optional) is called every ``cfg.eval_every`` steps and at the last
    step; its figures (e.g. ``val_loss``) join that step's metrics line, so a resumed run keeps them.
    ``on_step(step, model)``, if given, is called before the first update and after every update
    (e.g. a validation curve); it must not touch the parameters or the loop's randomness.
    ``comm`` spreads the run over ranks (:mod:`minidistil.parallel`; default one process): its
    ``step_fn`` computes the rows of ``comm.shard``, and rank 0 alone writes the files (and
    runs ``evaluate``).
    """
    comm = SingleProcess() if comm is None else comm
    os.makedirs(folder, exist_ok=True)
    ckpt_path = os.path.join(folder, CKPT_FILE)
    metrics_path = os.path.join(folder, METRICS_FILE)
    stage_id = {"pretrain": 1, "distill": 2}.get(stage, 3)
    opt = AdamW(model.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, epoch, pos = 0, 0, 0
    rng = np.random.default_rng([seed, stage_id, 10**6])  # masking and any other randomness
    remove_stale_temp_files(folder)  # left by a kill inside an atomic write
    if resume and os.path.isfile(ckpt_path):
        step, epoch, pos, rng = _resume_state(ckpt_path, model, opt, stage)
        if comm.is_root:
            _truncate_metrics(metrics_path, step)
    elif comm.is_root and os.path.isfile(metrics_path):
        os.unlink(metrics_path)  # a fresh run starts a fresh log

    def save(step_now):
        arrays = prefixed("model/", model.state_dict())
        arrays.update(prefixed("optim/", opt.state_dict()))
        meta = {"stage": stage, "step": step_now, "epoch": epoch, "pos": pos, "rng": rng_state(rng),
                "seed": seed, "total_steps": cfg.steps}
        meta.update(extra_meta or {})
        try:
            save_checkpoint(ckpt_path, arrays, meta)
        except OSError as e:  # a full disk, a quota: the previous checkpoint is still intact
            raise RunFileError(f"cannot write {ckpt_path}: {e.strerror or e}; the previous "
                               "checkpoint is kept; free some space and continue with --resume") from None

    batches = _epoch_batches(seqs, cfg.batch_size, seed, stage_id, epoch, pad_id)
    bar = None
    if progress and comm.is_root:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.steps, initial=step, desc=stage, unit="step", leave=True)
    t0 = time.perf_counter()
    last = {}
    stop_at = cfg.steps if max_steps is None else min(cfg.steps, max_steps)
    if on_step is not None:
        on_step(step, model)
    try:
        log_path = metrics_path if comm.is_root else os.devnull
        with open(log_path, "a", encoding="utf-8") as log:
            comm.check_params(model.params, step)  # same start on every rank (e.g. same checkpoint)
            while step < stop_at:
                acc, sums, n = comm.grad_buffer(model.params), {}, 0
                while n < cfg.accum_steps:
                    if pos >= len(batches):
                        epoch, pos = epoch + 1, 0
                        batches = _epoch_batches(seqs, cfg.batch_size, seed, stage_id, epoch, pad_id)
                    ids, attn = batches[pos]
                    pos += 1
                    try:
                        out = step_fn(ids, attn, rng)
                    except NonFiniteLoss as e:  # the losses' own check fired first
                        raise TrainingDiverged(_diverged_msg(stage, "a loss", "NaN/inf", step, ckpt_path,
                                                             cfg, model, e)) from None
                    if out is None:
                        continue
                    losses, grads = out
                    for k, v in losses.items():
                        if not math.isfinite(float(v)):
                            raise TrainingDiverged(_diverged_msg(stage, k, v, step, ckpt_path, cfg, model))
                        sums[k] = sums.get(k, 0.0) + float(v)
                    acc = accumulate_grads(acc, grads, 1.0 / cfg.accum_steps)
                    n += 1
                acc, sums = comm.allreduce(acc, sums)  # summed over ranks (no-op in one process)
                gnorm = clip_grad_norm(acc, cfg.clip_norm)
                if not math.isfinite(gnorm):
                    raise TrainingDiverged(_diverged_msg(stage, "gradient norm", gnorm, step, ckpt_path,
                                                         cfg, model))
                lr = linear_schedule(step, cfg.steps, cfg.warmup_frac, cfg.lr)
                opt.step(acc, lr)
                step += 1
                last = {k: v / n for k, v in sums.items()}
                row = {"step": step, "lr": lr, "grad_norm": gnorm, **last,
                       "time_s": round(time.perf_counter() - t0, 3)}
                if comm.is_root and evaluate is not None and cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.steps):
                    row.update(evaluate())
                log.write(json.dumps(row) + "\n")
                log.flush()
                comm.check_params(model.params, step)
                if comm.is_root and (step % cfg.ckpt_every == 0 or step == stop_at):
                    save(step)
                if on_step is not None:
                    on_step(step, model)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{last.get('loss', float('nan')):.3f}")
    finally:
        if bar is not None:
            bar.close()
    return LoopResult(step, step >= cfg.steps, last)


def _likely_cause(cfg, model, step, err) -> str:
    """The most probable reason a loss or gradient became NaN/inf, as a hint to the user."""
    bad = next((k for k, p in model.params.items() if not np.all(np.isfinite(p))), None)
    if bad is not None:
        return f"the model's parameter {bad!r} is not finite (a damaged checkpoint?)"
    if err is not None and err.input and err.input.startswith("t_"):
        return "the teacher's outputs are not finite (NaN/inf teacher weights?)"
    lcfg = getattr(cfg, "loss", cfg)  # a distill stage keeps its loss settings in .loss
    tau = getattr(lcfg, "temperature", None)
    if tau is not None and not (1e-6 <= tau <= 1e6):
        return f"--temperature {tau:g} is extreme (1/temperature or its square overflows); try 1-8"
    for name in ("alpha_ce", "alpha_mlm", "alpha_cos"):
        a = getattr(lcfg, name, None)
        if a is not None and a > 1e6:
            return f"--{name.replace('_', '-')} {a:g} overflows the weighted loss; try 0-10"
    if step > 0 or cfg.lr > 1.0:
        return f"the learning rate --lr {cfg.lr:g} is too high for this model; try a lower --lr"
    return "the inputs or the model (this was the first step: no update had been made yet)"


def _diverged_msg(stage, what, value, step, ckpt_path, cfg=None, model=None, err=None):
    kept = (f"the last good checkpoint {ckpt_path} is kept" if os.path.isfile(ckpt_path)
            else "no checkpoint had been written yet")
    detail = f" ({err})" if err is not None else ""
    cause = _likely_cause(cfg, model, step, err) if cfg is not None else "try a lower --lr"
    return (f"{stage}: {what} became {value} at step {step + 1}{detail}; training stopped before "
            f"the update. Likely cause: {cause}; {kept}")
