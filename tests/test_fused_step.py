"""The distillation step with the fused vocabulary head (``head_chunk > 0``) equals the reference
step: the same loss parts and the same gradient for every student parameter, within 1e-12 in
float64 and 1e-5 in float32 (relative to each tensor's largest entry)."""
import dataclasses

import numpy as np
import pytest

from minidistil.bench.shapes import PRESETS
from minidistil.bench.steps import BenchVocab, build_models
from minidistil.losses import DistillLossConfig
from minidistil.train.distill import make_distill_step
from minidistil.train.runs import DistillStageConfig, RunConfig

TOL = {np.float64: 1e-12, np.float32: 1e-5}


def _batch(s, rng):
    ids = rng.integers(5, s.vocab, size=(s.batch, s.seq)).astype(np.int64)  # (B, T)
    attn = np.ones((s.batch, s.seq), dtype=np.int64)  # (B, T)
    attn[1, s.seq - 5:] = 0  # padding in one row: positions != every (B, T) entry
    ids[attn == 0] = 0
    return ids, attn


def _run(dtype, cfg, seed=4):
    s = PRESETS["quick"].replace(batch=3)
    teacher, student = build_models(s, dtype, seed=1)
    # Non-trivial parameters: at initialisation every logit is ~0.02 and the student starts as
    # the teacher's layers, so Lce ~ 1e-3 is a difference of nearly equal sums, where float32
    # rounding of the logits alone moves it by 1e-5 relative whatever the head does. Larger
    # decoder weights and a perturbed student give O(1) logits and an Lce of O(0.1).
    rng = np.random.default_rng(2)
    for model, scale in ((teacher, 40.0), (student, 40.0)):
        model.params[model.naming.word][...] *= scale
    for v in student.params.values():
        v += (0.05 * rng.standard_normal(v.shape)).astype(dtype)
    step = make_distill_step(student, teacher, BenchVocab(s.vocab), cfg)
    ids, attn = _batch(s, np.random.default_rng(0))
    return step(ids, attn, np.random.default_rng(seed)), student


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss,chunk", [
    (DistillLossConfig(), 1),  # 5 Lce + 2 Lmlm + 1 Lcos, Lce on every real token
    (DistillLossConfig(), 7),
    (DistillLossConfig(ce_positions="masked", temperature=1.5), 3),
    (DistillLossConfig(alpha_ce=0.0, alpha_cos=0.0), 7),  # Lmlm alone: no teacher
    (DistillLossConfig(alpha_mlm=0.0, alpha_cos=0.0), 7),  # Lce alone
])
def test_fused_step_equals_reference(dtype, loss, chunk):
    ref_cfg = DistillStageConfig(loss=loss)
    (ref_parts, ref_grads), student = _run(dtype, ref_cfg)
    (parts, grads), _ = _run(dtype, dataclasses.replace(ref_cfg, head_chunk=chunk))
    tol = TOL[dtype]
    assert set(parts) == set(ref_parts)
    for k, v in ref_parts.items():
        assert abs(parts[k] - v) <= tol * max(abs(v), 1e-300), (k, parts[k], v)
    assert list(grads) == list(ref_grads) == list(student.params)
    # A tensor whose true gradient is zero (the key bias: softmax ignores a constant added to
    # every score of a query) holds only rounding; its scale is floored at 1e-3 of the largest
    # gradient (the floor of gradcheck.rel_error).
    floor = 1e-3 * max(float(np.max(np.abs(g))) for g in ref_grads.values())
    for k, want in ref_grads.items():
        got = grads[k]
        assert got.dtype == want.dtype and got.shape == want.shape, k
        scale = float(np.max(np.abs(want)))
        if scale == 0:  # e.g. the head's gradients when the only loss has none
            assert not np.any(got), k
            continue
        err = float(np.max(np.abs(got.astype(np.float64) - want))) / max(scale, floor)
        assert err <= tol, (k, err)


def test_head_chunk_config():
    assert DistillStageConfig().head_chunk == 0  # the reference path is the default
    for bad in (-1, 1.5, True, "8"):
        with pytest.raises(ValueError, match="head_chunk must be an int >= 0"):
            DistillStageConfig(head_chunk=bad)
    cfg = RunConfig()
    cfg.distill = DistillStageConfig(head_chunk=64)
    assert RunConfig.from_dict(cfg.to_dict()).distill.head_chunk == 64
    old = cfg.to_dict()
    del old["distill"]["head_chunk"]  # a run directory written before the field existed
    assert RunConfig.from_dict(old).distill.head_chunk == 0


def test_head_chunk_flag():
    from argparse import Namespace
    from minidistil.cli_config import ConfigError, apply_flags
    cfg = apply_flags(RunConfig(), Namespace(command="distill", corpus=None, head_chunk=128))
    assert cfg.distill.head_chunk == 128
    with pytest.raises(ConfigError, match="--head-chunk -1: head_chunk must be an int >= 0"):
        apply_flags(RunConfig(), Namespace(command="distill", corpus=None, head_chunk=-1))


def test_resume_with_the_fused_head_reproduces_the_uninterrupted_run(tmp_path):
    """Variable-length batches (padding), accumulation, a kill at step 3: the same metrics."""
    import os
    from types import SimpleNamespace
    from minidistil.models import Bert, BertConfig, DistilBert
    from minidistil.train.loop import METRICS_FILE, read_metrics, train_loop
    V = 40
    tok = SimpleNamespace(vocab_size=V, pad_id=0, unk_id=1, cls_id=2, sep_id=3, mask_id=4, special_ids=[0, 1, 2, 3, 4])
    rng = np.random.default_rng(0)
    seqs = [np.array([2] + list(rng.integers(5, V, size=int(rng.integers(8, 14)))) + [3], dtype=np.int64)
            for _ in range(24)]
    stage = DistillStageConfig(steps=5, batch_size=6, accum_steps=2, lr=3e-3, ckpt_every=3, head_chunk=5)

    def run(folder, resume=False, max_steps=None):
        teacher = Bert(BertConfig.tiny(vocab_size=V), dtype=np.float32, seed=0)
        student = DistilBert.from_teacher(teacher, layers=[0])
        step_fn = make_distill_step(student, teacher, tok, stage)
        return train_loop("distill", student, step_fn, seqs, tok.pad_id, stage, seed=5, folder=str(folder),
                          resume=resume, max_steps=max_steps, progress=False)

    def metrics(folder):
        return [(r["step"], r["loss"], r["grad_norm"]) for r in read_metrics(os.path.join(folder, METRICS_FILE))]
    assert not run(tmp_path / "a", max_steps=3).finished
    assert run(tmp_path / "a", resume=True).finished
    run(tmp_path / "b")
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b") and len(metrics(tmp_path / "b")) == 5
