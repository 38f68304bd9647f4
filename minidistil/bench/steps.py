"""The two training steps, timed as training runs them: the step functions of ``train.pretrain``
and ``train.distill`` (``make_mlm_step``, ``make_distill_step``), then clipping and AdamW as
``train.loop.train_loop`` applies them. Nothing here re-writes a step.

Legend: B batch, T sequence, C hidden, F feed-forward, V vocabulary, L layers, N = B*T tokens,
P positions that get MLM logits.
"""
from __future__ import annotations

import cProfile
import io
import pstats
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..masking import IGNORE_INDEX, mask_tokens
from ..models import Bert, BertConfig, DistilBert, student_layers
from ..train.distill import loss_config, logit_positions, make_distill_step as train_distill_step
from ..train.optim import BETAS, EPS, AdamW, clip_grad_norm
from ..train.pretrain import make_mlm_step
from ..train.runs import DistillStageConfig, StageConfig
from .measure import Phases, measure
from .shapes import BenchShapes

PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = 0, 1, 2, 3, 4  # the ids the benchmark batches use
LR = 5e-4


class BenchVocab(NamedTuple):
    """What the step functions read from a tokenizer."""
    vocab_size: int
    pad_id: int = PAD_ID
    mask_id: int = MASK_ID
    special_ids: tuple = (PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID)


def batch(s: BenchShapes, rng: np.random.Generator):
    """``[CLS] random ids [SEP]`` rows, no padding (batches are grouped by length in training)."""
    ids = rng.integers(len(BenchVocab(0).special_ids), s.vocab, size=(s.batch, s.seq)).astype(np.int64)  # (B, T)
    ids[:, 0], ids[:, -1] = CLS_ID, SEP_ID
    return ids, np.ones((s.batch, s.seq), dtype=np.int64)  # (B, T), (B, T)


def build_models(s: BenchShapes, dtype=np.float32, seed: int = 0):
    """The teacher ``Bert`` at the bench shapes and a student taken from it by ``student_layers``."""
    cfg = BertConfig(vocab_size=s.vocab, hidden_size=s.hidden, num_hidden_layers=s.teacher_layers,
                     num_attention_heads=s.heads, intermediate_size=s.ff,
                     max_position_embeddings=s.seq, type_vocab_size=2)
    teacher = Bert(cfg, dtype=dtype, seed=seed)
    layers = student_layers(s.teacher_layers, s.student_layers)
    return teacher, DistilBert.from_teacher(teacher, layers=layers)


def _training_step(model, step_fn, cfg: StageConfig, s: BenchShapes, seed: int, ph: Phases):
    """``step()``: one micro-batch through ``step_fn``, then clip + AdamW as the training loop."""
    opt = AdamW(model.params, lr=LR, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(seed)
    ids, attn = batch(s, rng)
    optimizer = ph.timed("optimizer", lambda grads: (clip_grad_norm(grads, cfg.clip_norm), opt.step(grads, LR)))

    def step() -> dict:
        out = step_fn(ids, attn, rng)
        if out is None:  # no token was masked: the loop would skip the batch too
            return {"loss": None}
        losses, grads = out
        optimizer(grads)
        return {"loss": float(losses["loss"])}

    return step


def _timed_model(model, ph: Phases, prefix: str):
    """Wrap ``model.forward`` / ``backward`` (on the instance) so their time goes to phases."""
    model.forward = ph.timed(prefix + "forward", model.forward)
    model.backward = ph.timed(prefix + "backward", model.backward)
    return model


def make_teacher_step(s: BenchShapes, seed: int = 0, phases: Phases | None = None):
    """One MLM training step of the teacher: ``train.pretrain.make_mlm_step`` + clip + AdamW."""
    ph = phases or Phases()
    teacher, _ = build_models(s, seed=seed)
    cfg = StageConfig()
    step_fn = make_mlm_step(_timed_model(teacher, ph, ""), BenchVocab(s.vocab), cfg)
    return _training_step(teacher, step_fn, cfg, s, seed, ph)


def make_distill_step(s: BenchShapes, seed: int = 0, phases: Phases | None = None, models=None,
                      head_chunk: int = 0):
    """One distillation step: ``train.distill.make_distill_step`` (teacher forward without a
    cache, student forward, ``5 Lce + 2 Lmlm + 1 Lcos`` with Lce on every real token, student
    backward) + clip + AdamW. ``head_chunk > 0``: the fused vocabulary head (train/fused_step.py)."""
    ph = phases or Phases()
    teacher, student = models if models is not None else build_models(s, seed=seed)
    cfg = DistillStageConfig(head_chunk=head_chunk)
    step_fn = train_distill_step(_timed_model(student, ph, "student_"), _timed_model(teacher, ph, "teacher_"),
                                 BenchVocab(s.vocab), cfg)
    return _training_step(student, step_fn, cfg, s, seed, ph)


def peer_recipe() -> dict:
    """The settings of the two steps above that the PyTorch peers copy, read from the config tree
    (``DistillStageConfig().loss``, the stages' ``clip_norm`` and ``weight_decay``), AdamW's
    betas and eps (train/optim.py), ``LR`` and ``IGNORE_INDEX``: the parent
    puts them in the peer child's payload (JSON), so the peers (bench/torch_peer.py's ``Recipe``,
    run with torch in their own process) declare none of them."""
    teacher, distill = StageConfig(), DistillStageConfig()
    return {**distill.loss.to_dict(), "teacher_clip_norm": teacher.clip_norm,
            "distill_clip_norm": distill.clip_norm, "ignore_index": IGNORE_INDEX,
            "lr": LR, "betas": list(BETAS), "adam_eps": EPS,
            "teacher_weight_decay": teacher.weight_decay, "distill_weight_decay": distill.weight_decay}


def bench_steps(s: BenchShapes, repeats: int, warmup: int) -> dict:
    """Both steps: median seconds, tokens/s, and the median time of each phase (the rest of the
    step, masking and the losses, is ``other``)."""
    out = {}
    for name, maker in (("teacher_mlm_step", make_teacher_step), ("distill_step", make_distill_step)):
        ph = Phases()
        step = maker(s, phases=ph)
        info = {}
        for _ in range(max(1, warmup)):  # >= 1: the first call compiles what is not cached
            info = step()
        ph.laps.clear()
        t = measure(step, repeats, 0)
        phases = ph.medians()
        phases["other"] = max(0.0, t["median_s"] - sum(phases.values()))
        t.update(tokens_per_s=s.tokens / t["median_s"], phases_s=phases, loss=info.get("loss"))
        out[name] = t
    return out


def profile_distill_step(s: BenchShapes, top: int = 25) -> list:
    """cProfile of one warm distillation step: the ``top`` functions by own time."""
    step = make_distill_step(s)
    step()
    prof = cProfile.Profile()
    prof.enable()
    step()
    prof.disable()
    st = pstats.Stats(prof, stream=io.StringIO())
    rows = [{"function": func, "where": f"{_short_path(file)}:{line}", "calls": int(nc),
             "tottime_s": float(tt), "cumtime_s": float(ct)}
            for (file, line, func), (cc, nc, tt, ct, _) in st.stats.items()]
    rows.sort(key=lambda r: -r["tottime_s"])
    return rows[:top]


def _short_path(file: str) -> str:
    parts = Path(file).parts
    for anchor in ("minidistil", "numpy", "numba"):
        if anchor in parts:
            i = len(parts) - 1 - parts[::-1].index(anchor)
            return "/".join(parts[i:])
    return Path(file).name


def distill_loss_agreement(s: BenchShapes, seed: int = 0) -> dict:
    """The loss of one distillation batch: float32 with Numba vs float64 with the NumPy twins."""
    from ..kernels import use_backend
    from ..losses import distill_loss_forward
    cfg = DistillStageConfig()
    vocab = BenchVocab(s.vocab)
    rng = np.random.default_rng(seed)
    ids, attn = batch(s, rng)
    masked, labels = mask_tokens(ids, attn, rng, s.vocab, vocab.mask_id, vocab.special_ids)
    assert (labels != IGNORE_INDEX).any()
    positions = logit_positions(cfg, attn, labels)  # (B, T)
    t32, s32 = build_models(s, np.float32, seed)
    t64, s64 = build_models(s, np.float64, seed)
    t64.load_state_dict({k: v.astype(np.float64) for k, v in t32.params.items()})
    s64.load_state_dict({k: v.astype(np.float64) for k, v in s32.params.items()})
    losses = {}
    for key, (t, st, backend) in {"float32_numba": (t32, s32, "numba"),
                                  "float64_numpy": (t64, s64, "numpy")}.items():
        with use_backend(backend):
            to = t.forward(masked, attn, mlm_positions=positions, keep_cache=False)
            so = st.forward(masked, attn, mlm_positions=positions, keep_cache=False)
            total, _, _ = distill_loss_forward(so.logits, to.logits, labels, so.hidden_states[-1],
                                               to.hidden_states[-1], attn, loss_config(cfg), positions)
        losses[key] = float(total)
    ref = losses["float64_numpy"]
    return {**losses, "rel_diff": abs(losses["float32_numba"] - ref) / max(abs(ref), 1e-30), "bound": 1e-4}


def layer_flops(s: BenchShapes) -> float:
    """Forward matmul FLOP of one post-LN block on N tokens (2 FLOP per multiply-add):
    q, k, v, o projections ``4 * 2NC^2``, FFN ``2 * 2NCF``, scores and probs @ v ``2 * 2BT^2C``."""
    N, C, F, B, T = s.tokens, s.hidden, s.ff, s.batch, s.seq
    return 8.0 * N * C * C + 4.0 * N * C * F + 4.0 * B * T * T * C


def head_flops(s: BenchShapes, P: float) -> float:
    """Forward matmul FLOP of the MLM head at P positions: transform ``2PC^2``, decoder ``2PCV``."""
    return 2.0 * P * s.hidden * s.hidden + 2.0 * P * s.hidden * s.vocab


def step_flops(s: BenchShapes, P_teacher_step: float, P_distill: float) -> dict:
    """Matmul FLOP of each step; a backward costs twice its forward (dX and dW, one matmul each).

    teacher MLM step = 3 * (L_t * layer + head(P masked))
    distillation step = (L_t * layer + head(P real)) [teacher, forward only]
                      + 3 * (L_s * layer + head(P real)) [student, forward + backward]
    """
    lay = layer_flops(s)
    teacher = 3.0 * (s.teacher_layers * lay + head_flops(s, P_teacher_step))
    distill = (s.teacher_layers * lay + head_flops(s, P_distill)) + \
        3.0 * (s.student_layers * lay + head_flops(s, P_distill))
    return {"layer_forward": lay, "teacher_mlm_step": teacher, "distill_step": distill,
            "P_teacher_step": float(P_teacher_step), "P_distill": float(P_distill)}
