"""The ``torch.compile`` peer of the two training steps (bench/torch_peer.py, compiled).

Legend: B batch, T sequence, C hidden, V vocabulary.

The same modules, batches and optimiser as the eager peer, with the models and the loss
computation wrapped by ``torch.compile`` (default backend ``inductor``, default mode):

* **teacher MLM step**: ``torch.compile(model)`` and a compiled cross-entropy;
* **distillation step**: ``torch.compile(teacher)`` called under ``torch.no_grad()``,
  ``torch.compile(student)`` and a compiled ``alpha_ce Lce + alpha_mlm Lmlm + alpha_cos Lcos``
  (the weights, temperature, clipping norms and ignore label come in the payload's recipe, as
  for the eager peer: ``torch_peer.Recipe``).

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

import numpy as np
import torch
from torch.nn import functional as F

from . import torch_peer
from .shapes import BenchShapes

MIN_WARMUP = 2
# What a compiled step raises when the compile or the compiled code fails, reported per step:
# every torch._dynamo and torch._inductor error is a RuntimeError (BackendCompilerFailed wraps
# whatever the forward's backend raised; the backward, compiled at the first backward, raises
# CppCompileError or InvalidCxxCompiler, no C++ compiler), as is torch's own out-of-memory;
# OSError: the compile cache or the compiler's temporary files. Anything else (TypeError,
# KeyError, ...) is a bug here and propagates (the sweep then reports the child as failed).
COMPILE_FAILURES = (RuntimeError, OSError)


def masked_distill_loss(s_logits, t_logits, s_hidden, t_hidden, mask, labels, r: torch_peer.Recipe):
    """The eager peer's ``alpha_ce Lce + alpha_mlm Lmlm + alpha_cos Lcos``, as masked sums (no
    data-dependent shapes), with the weights, temperature and ignore label of ``r``.

    s_logits, t_logits (B, T, V); s_hidden, t_hidden (B, T, C); mask (B, T) 0/1; labels (B, T)."""
    tau = r.temperature
    m = mask.to(s_logits.dtype)  # (B, T)
    P = m.sum()
    kl = F.kl_div(F.log_softmax(s_logits / tau, dim=-1), F.softmax(t_logits / tau, dim=-1),
                  reduction="none").sum(-1)  # (B, T)
    loss_ce = (kl * m).sum() / P * tau ** 2
    loss_mlm = torch_peer.mlm_loss(s_logits, labels, r.ignore_index)
    cos = F.cosine_similarity(s_hidden, t_hidden, dim=-1)  # (B, T)
    loss_cos = ((1.0 - cos) * m).sum() / P
    return r.alpha_ce * loss_ce + r.alpha_mlm * loss_mlm + r.alpha_cos * loss_cos


def make_teacher_step(s: BenchShapes, recipe, seed: int = 0, compile_fn=torch.compile):
    """One BertForMaskedLM training step with the model and the loss compiled."""
    return torch_peer.make_teacher_step(s, recipe, seed, wrap=compile_fn)


def make_distill_step(s: BenchShapes, recipe, seed: int = 0, compile_fn=torch.compile):
    """One ``Distiller.step`` with the teacher, the student and the loss compiled."""
    return torch_peer.make_distill_step(s, recipe, seed, wrap=compile_fn, loss=masked_distill_loss)


def _why(e: BaseException) -> str:
    """One line: the exception's type and the first line of its message."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:300]


def time_steps(s: BenchShapes, repeats: int = 5, warmup: int = MIN_WARMUP, threads: int = 2,
               compile_fn=torch.compile, *, recipe) -> dict:
    """Per step: median seconds of ``repeats`` compiled steps after ``max(2, warmup)`` untimed
    ones, whose seconds (the compile) are ``warmup_s``; ``{"error": ...}`` when it fails.
    ``recipe``: the payload's (a ``torch_peer.Recipe`` or its dict)."""
    recipe = torch_peer.as_recipe(recipe)  # a bad recipe is our bug: raised, not reported
    torch.set_num_threads(threads)
    out = {"torch_version": torch.__version__, "threads": torch.get_num_threads(), "backend": "inductor",
           "mode": "default"}
    for name, maker in (("teacher_mlm_step", make_teacher_step), ("distill_step", make_distill_step)):
        try:
            warm, times = torch_peer.run_timed(maker(s, recipe, compile_fn=compile_fn), max(MIN_WARMUP, warmup),
                                               repeats)
        except COMPILE_FAILURES as e:  # the sweep prints "torch.compile failed at <shape> <step>: <why>"
            out[name] = {"error": _why(e)}
            continue
        out[name] = {"median_s": float(np.median(times)), "min_s": float(min(times)), "times_s": times,
                     "warmup_s": warm, "compile_s": float(sum(warm))}
    return out
