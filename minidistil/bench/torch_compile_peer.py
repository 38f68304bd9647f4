"""The ``torch.compile`` peer of the two training steps (bench/torch_peer.py, compiled).

Legend: B batch, T sequence, C hidden, V vocabulary.

The same modules, batches and optimiser as the eager peer, with the models and the loss
computation wrapped by ``torch.compile`` (default backend ``inductor``, default mode):

* **teacher MLM step**: ``torch.compile(model)`` and a compiled cross-entropy;
* **distillation step**: ``torch.compile(teacher)`` called under ``torch.no_grad()``,
  ``torch.compile(student)`` and a compiled ``5 Lce + 2 Lmlm + 1 Lcos``.

The backward runs through the graphs AOTAutograd compiled with the forwards. Gradient clipping
and ``AdamW.step`` stay eager (as ``torch.compile(model)`` leaves them in a training loop).

The compiled loss is the eager peer's loss written without data-dependent shapes: masked sums
over the real tokens instead of boolean indexing (``s_logits[mask]``), which would break the
graph at an ``aten.nonzero``. It is the same number (``tests/test_bench_inference.py`` checks it
in eager mode against the eager peer's formula).

The compile happens in the warm-up (at least 2 steps: the first traces and compiles the forward
and backward graphs, the second runs them once more and catches a recompile); its seconds are
reported separately (``warmup_s``) and never timed as a step. A step that fails to compile (no C++
compiler, an unsupported operator) is reported as ``{"error": "..."}``, not raised.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .shapes import BenchShapes
from .torch_peer import MaskedLM, _batch

MIN_WARMUP = 2


def masked_distill_loss(s_logits, t_logits, s_hidden, t_hidden, mask, labels, tau: float = 2.0):
    """``5 Lce + 2 Lmlm + 1 Lcos`` of the eager peer, as masked sums (no data-dependent shapes).

    s_logits, t_logits (B, T, V); s_hidden, t_hidden (B, T, C); mask (B, T) 0/1; labels (B, T)."""
    m = mask.to(s_logits.dtype)  # (B, T)
    P = m.sum()
    kl = F.kl_div(F.log_softmax(s_logits / tau, dim=-1), F.softmax(t_logits / tau, dim=-1),
                  reduction="none").sum(-1)  # (B, T)
    loss_ce = (kl * m).sum() / P * tau ** 2
    V = s_logits.shape[-1]
    loss_mlm = F.cross_entropy(s_logits.reshape(-1, V), labels.reshape(-1), ignore_index=-100)
    cos = F.cosine_similarity(s_hidden, t_hidden, dim=-1)  # (B, T)
    loss_cos = ((1.0 - cos) * m).sum() / P
    return 5.0 * loss_ce + 2.0 * loss_mlm + 1.0 * loss_cos


def _mlm_loss(logits, labels):  # logits (B, T, V), labels (B, T)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def make_teacher_step(s: BenchShapes, seed: int = 0, compile_fn=torch.compile):
    """One BertForMaskedLM training step with the model and the loss compiled."""
    torch.manual_seed(seed)
    model = MaskedLM(s, s.teacher_layers, token_types=True)
    cmodel, closs = compile_fn(model), compile_fn(_mlm_loss)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.0)
    ids, mask, labels = _batch(s, seed)

    def step() -> float:
        logits, _ = cmodel(ids, mask)  # (B, T, V)
        loss = closs(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        return float(loss.detach())

    return step


def make_distill_step(s: BenchShapes, seed: int = 0, temperature: float = 2.0, compile_fn=torch.compile):
    """One ``Distiller.step`` with the teacher, the student and the loss compiled."""
    torch.manual_seed(seed)
    teacher = MaskedLM(s, s.teacher_layers, token_types=True).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = MaskedLM(s, s.student_layers, token_types=False)
    cteacher, cstudent, closs = compile_fn(teacher), compile_fn(student), compile_fn(masked_distill_loss)
    opt = torch.optim.AdamW(student.parameters(), lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.0)
    ids, mask, labels = _batch(s, seed)

    def step() -> float:
        with torch.no_grad():
            t_logits, t_hidden = cteacher(ids, mask)  # (B, T, V), (B, T, C)
        s_logits, s_hidden = cstudent(ids, mask)  # (B, T, V), (B, T, C)
        loss = closs(s_logits, t_logits, s_hidden, t_hidden, mask, labels, temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(student.parameters(), 5.0)
        opt.step()
        return float(loss.detach())

    return step


def _why(e: BaseException) -> str:
    """One line: the exception's type and the first line of its message."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:300]


def time_steps(s: BenchShapes, repeats: int = 5, warmup: int = MIN_WARMUP, threads: int = 2,
               compile_fn=torch.compile) -> dict:
    """Per step: median seconds of ``repeats`` compiled steps after ``max(2, warmup)`` untimed
    ones, whose seconds (the compile) are ``warmup_s``; ``{"error": ...}`` when it fails."""
    torch.set_num_threads(threads)
    out = {"torch_version": torch.__version__, "threads": torch.get_num_threads(), "backend": "inductor",
           "mode": "default"}
    for name, maker in (("teacher_mlm_step", make_teacher_step), ("distill_step", make_distill_step)):
        try:
            step = maker(s, compile_fn=compile_fn)
            warm = []
            for _ in range(max(MIN_WARMUP, warmup)):
                t0 = time.perf_counter()
                step()
                warm.append(time.perf_counter() - t0)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                step()
                times.append(time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001 - the sweep reports why, it does not crash
            out[name] = {"error": _why(e)}
            continue
        out[name] = {"median_s": float(np.median(times)), "min_s": float(min(times)), "times_s": times,
                     "warmup_s": warm, "compile_s": float(sum(warm))}
    return out
