"""The PyTorch eager peer of the two training steps that ``minidistil bench`` measures.

Legend: B batch, T sequence, C hidden, NH heads, HS head size, F feed-forward, V vocabulary,
L layers, P selected positions.

This module is optional: it is imported only when ``torch`` is installed, and minidistil never
requires it. It writes, in plain ``torch`` (no ``transformers``), what the Hugging Face classes
compute for the two steps, so that the benchmark can put minidistil next to the usual way of
doing the same work on the same CPU:

* **teacher MLM step**: ``BertForMaskedLM`` (post-LN blocks, exact erf GELU, MLM head with the
  decoder tied to the word embeddings), logits at EVERY position as Hugging Face computes them,
  cross-entropy with ``ignore_index`` (-100), ``loss.backward()``, gradient clipping, AdamW;
* **distillation step**: the research project's ``Distiller.step``: the teacher's forward under
  ``torch.no_grad()``, the student's (``DistilBertForMaskedLM``) forward, then
  ``alpha_ce Lce + alpha_mlm Lmlm + alpha_cos Lcos`` (5, 2, 1) with Lce = ``KLDivLoss(batchmean)``
  of the tempered distributions times tau**2 over every real token, Lmlm the cross-entropy at the
  masked tokens, Lcos the ``CosineEmbeddingLoss`` of the last hidden states at real tokens;
  backward, clipping, AdamW.

The loss weights, the temperature, the clipping norms, the optimizer's settings and the ignore
label are minidistil's (``DistillLossConfig``, the stages' ``clip_norm`` and ``weight_decay``,
train/optim.py's betas and eps, the bench's learning rate, ``IGNORE_INDEX``), declared there only: the
parent process reads them from the config (bench/steps.py's ``peer_recipe``) and sends them in
the child's payload, and this module takes them as a :class:`Recipe`.

Differences from the Hugging Face models, all of which make this peer slightly *faster*, never
slower: no dropout (minidistil has none either), no token-type/position-id bookkeeping beyond
what the math needs, eager ``matmul + softmax`` attention (the ``attn_implementation="eager"``
path). The temperature is written ``tau`` here, as T is the sequence length.
"""
from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .shapes import BenchShapes


class Recipe(NamedTuple):
    """What both sides compute with, from minidistil's config (bench/steps.py's ``peer_recipe``,
    sent in the child's payload); nothing here has a default of its own."""
    alpha_ce: float
    alpha_mlm: float
    alpha_cos: float
    temperature: float
    ce_positions: str  # only "all" (Lce over every real token) is written here
    teacher_clip_norm: float
    distill_clip_norm: float
    ignore_index: int
    lr: float
    betas: tuple  # (beta1, beta2)
    adam_eps: float
    teacher_weight_decay: float
    distill_weight_decay: float


def as_recipe(recipe) -> Recipe:
    """A :class:`Recipe` from one or from its payload dict."""
    r = recipe if isinstance(recipe, Recipe) else Recipe(**recipe)
    r = r._replace(betas=r.betas)  # JSON made it a list
    if r.ce_positions != "all":
        raise ValueError(f"the PyTorch peer computes Lce over every real token (ce_positions 'all'), "
                         f"got {r.ce_positions!r}")
    return r


# ---------------------------------------------------------------------------- the modules

class SelfAttention(nn.Module):
    def __init__(self, C: int, NH: int):
        super().__init__()
        self.NH, self.HS = NH, C // NH
        self.q, self.k, self.v, self.o = (nn.Linear(C, C) for _ in range(4))

    def forward(self, x, bias):  # x (B, T, C), bias (B, 1, 1, T) additive padding bias
        B, T, C = x.shape

        def heads(t):
            return t.view(B, T, self.NH, self.HS).transpose(1, 2)  # (B, NH, T, HS)

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.HS) + bias  # (B, NH, T, T)
        a = torch.softmax(scores, dim=-1) @ v  # (B, NH, T, HS)
        return self.o(a.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


class Block(nn.Module):
    """Post-LN: ``h = LN(x + Attn(x)); y = LN(h + FFN(h))`` (BertLayer / TransformerBlock)."""

    def __init__(self, C: int, NH: int, FF: int, eps: float = 1e-12):
        super().__init__()
        self.attn = SelfAttention(C, NH)
        self.ln1 = nn.LayerNorm(C, eps=eps)
        self.ff1, self.ff2 = nn.Linear(C, FF), nn.Linear(FF, C)
        self.ln2 = nn.LayerNorm(C, eps=eps)

    def forward(self, x, bias):
        h = self.ln1(x + self.attn(x, bias))  # (B, T, C)
        return self.ln2(h + self.ff2(F.gelu(self.ff1(h))))  # (B, T, C), exact erf GELU


class MaskedLM(nn.Module):
    """BertForMaskedLM (``token_types=True``) or DistilBertForMaskedLM (``False``), no pooler."""

    def __init__(self, s: BenchShapes, layers: int, token_types: bool):
        super().__init__()
        C = s.hidden
        self.word = nn.Embedding(s.vocab, C)
        self.pos = nn.Embedding(s.seq, C)
        self.tok = nn.Embedding(2, C) if token_types else None
        self.emb_ln = nn.LayerNorm(C, eps=1e-12)
        self.blocks = nn.ModuleList(Block(C, s.heads, s.ff) for _ in range(layers))
        self.head_dense = nn.Linear(C, C)
        self.head_ln = nn.LayerNorm(C, eps=1e-12)
        self.head_bias = nn.Parameter(torch.zeros(s.vocab))
        for m in self.modules():  # BERT's initialisation: N(0, 0.02), zero biases
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, ids, attention_mask):  # ids (B, T) int64, attention_mask (B, T) 0/1
        x = self.encode(ids, attention_mask)  # (B, T, C)
        h = self.head_ln(F.gelu(self.head_dense(x)))  # (B, T, C)
        logits = h @ self.word.weight.T + self.head_bias  # (B, T, V), decoder tied to word embeddings
        return logits, x

    def encode(self, ids, attention_mask):
        """The last hidden states (B, T, C): embeddings and blocks, no MLM head (inference)."""
        B, T = ids.shape
        x = self.word(ids) + self.pos.weight[:T]  # (B, T, C)
        if self.tok is not None:
            x = x + self.tok.weight[0]  # token type 0 everywhere
        x = self.emb_ln(x)  # (B, T, C)
        dtype = x.dtype
        bias = (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min  # (B, 1, 1, T)
        for blk in self.blocks:
            x = blk(x, bias)  # (B, T, C)
        return x


# ---------------------------------------------------------------------------- the two steps

def _batch(s: BenchShapes, seed: int, ignore_index: int):
    """Random ids, a padding mask with a few short rows, and 15% masked labels (as minidistil's)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, s.vocab, size=(s.batch, s.seq))  # (B, T)
    mask = np.ones((s.batch, s.seq), dtype=np.int64)  # (B, T)
    labels = np.full((s.batch, s.seq), ignore_index, dtype=np.int64)  # (B, T)
    chosen = rng.random((s.batch, s.seq)) < 0.15  # (B, T)
    chosen[:, 0] = True  # at least one label per row
    labels[chosen] = ids[chosen]
    ids = np.where(chosen, 4, ids)  # [MASK] id 4
    return (torch.from_numpy(ids).long(), torch.from_numpy(mask).long(),
            torch.from_numpy(labels).long())


def _eager(f):
    """The ``wrap`` of the eager peer: the module or function as it is."""
    return f


def mlm_loss(logits, labels, ignore_index: int):
    """Cross-entropy at the labelled positions; logits (B, T, V), labels (B, T) with
    ``ignore_index`` elsewhere."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=ignore_index)


def make_teacher_step(s: BenchShapes, recipe, seed: int = 0, wrap=_eager):
    """A closure running one BertForMaskedLM training step; returns the loss as a float.

    ``wrap`` is applied to the model and to the loss function (``torch.compile`` in
    bench/torch_compile_peer.py); the optimizer step stays as it is."""
    r = as_recipe(recipe)
    torch.manual_seed(seed)
    model = MaskedLM(s, s.teacher_layers, token_types=True)
    run_model, loss_fn = wrap(model), wrap(mlm_loss)
    opt = torch.optim.AdamW(model.parameters(), lr=r.lr, betas=r.betas, eps=r.adam_eps,
                            weight_decay=r.teacher_weight_decay)
    ids, mask, labels = _batch(s, seed, r.ignore_index)

    def step() -> float:
        logits, _ = run_model(ids, mask)  # (B, T, V): Hugging Face computes every position
        loss = loss_fn(logits, labels, r.ignore_index)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), r.teacher_clip_norm)
        opt.step()
        return float(loss.detach())

    return step


def distill_loss(s_logits, t_logits, s_hidden, t_hidden, mask, labels, r: Recipe):
    """``alpha_ce Lce + alpha_mlm Lmlm + alpha_cos Lcos`` as the research project's
    ``Distiller.step`` computes it, with the weights, temperature and ignore label of ``r``.

    s_logits, t_logits (B, T, V); s_hidden, t_hidden (B, T, C); mask (B, T) 0/1; labels (B, T)."""
    tau = r.temperature
    V = s_logits.shape[-1]
    sel = mask.bool()  # (B, T) every real token (restrict_ce_to_mask=False)
    s_sel = s_logits[sel]  # (P, V)
    t_sel = t_logits[sel]  # (P, V)
    loss_ce = F.kl_div(F.log_softmax(s_sel / tau, dim=-1), F.softmax(t_sel / tau, dim=-1),
                       reduction="batchmean") * tau ** 2
    loss_mlm = F.cross_entropy(s_logits.reshape(-1, V), labels.reshape(-1), ignore_index=r.ignore_index)
    s_h, t_h = s_hidden[sel], t_hidden[sel]  # (P, C)
    loss_cos = F.cosine_embedding_loss(s_h, t_h, torch.ones(s_h.shape[0], dtype=s_h.dtype), reduction="mean")
    return r.alpha_ce * loss_ce + r.alpha_mlm * loss_mlm + r.alpha_cos * loss_cos


def make_distill_step(s: BenchShapes, recipe, seed: int = 0, wrap=_eager, loss=distill_loss):
    """A closure running one ``Distiller.step``: teacher no-grad forward, student step, AdamW.

    ``wrap`` is applied to the teacher, the student and ``loss`` (a function of the same
    arguments as :func:`distill_loss`); the optimizer step stays as it is."""
    r = as_recipe(recipe)
    torch.manual_seed(seed)
    teacher = MaskedLM(s, s.teacher_layers, token_types=True).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = MaskedLM(s, s.student_layers, token_types=False)
    run_teacher, run_student, loss_fn = wrap(teacher), wrap(student), wrap(loss)
    opt = torch.optim.AdamW(student.parameters(), lr=r.lr, betas=r.betas, eps=r.adam_eps,
                            weight_decay=r.distill_weight_decay)
    ids, mask, labels = _batch(s, seed, r.ignore_index)

    def step() -> float:
        with torch.no_grad():
            t_logits, t_hidden = run_teacher(ids, mask)  # (B, T, V), (B, T, C)
        s_logits, s_hidden = run_student(ids, mask)
        loss = loss_fn(s_logits, t_logits, s_hidden, t_hidden, mask, labels, r)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(student.parameters(), r.distill_clip_norm)
        opt.step()
        return float(loss.detach())

    return step


def run_timed(step, warmup: int, repeats: int) -> tuple[list, list]:
    """``(warm-up seconds, timed seconds)``: ``warmup`` untimed calls of ``step``, then ``repeats``."""
    def seconds(n):
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            step()
            out.append(time.perf_counter() - t0)
        return out
    warm = seconds(warmup)
    return warm, seconds(repeats)


def time_steps(s: BenchShapes, repeats: int = 5, warmup: int = 2, threads: int = 2, *, recipe) -> dict:
    """Median seconds of each step (after ``warmup`` untimed steps); also the per-step times.
    ``recipe``: the payload's (a :class:`Recipe` or its dict)."""
    torch.set_num_threads(threads)
    out = {"torch_version": torch.__version__, "threads": torch.get_num_threads()}
    for name, maker in (("teacher_mlm_step", make_teacher_step), ("distill_step", make_distill_step)):
        _, times = run_timed(maker(s, recipe), warmup, repeats)
        out[name] = {"median_s": float(np.median(times)), "times_s": times}
    return out
