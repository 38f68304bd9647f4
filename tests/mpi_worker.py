"""Run by tests/test_mpi.py under ``mpiexec -n 2 python tests/mpi_worker.py CASE OUT``.

Each case trains or steps a tiny model on 2 ranks; rank 0 then repeats the same work in one
process and writes what the test compares to ``OUT/result.json``. Fault cases make rank 1 fail
on purpose and leave the run directory behind for the test to inspect.
"""
import json
import os
import signal
import sys

import numpy as np

from minidistil.losses import DistillLossConfig
from minidistil.models import Bert, BertConfig, DistilBert
from minidistil.parallel import SingleProcess, mpi_comm
from minidistil.parallel.launch import abort_on_error
from minidistil.train.distill import make_distill_step
from minidistil.train.loop import METRICS_FILE, read_metrics, train_loop
from minidistil.train.optim import accumulate_grads
from minidistil.train.pretrain import make_mlm_step
from minidistil.train.runs import DistillStageConfig, StageConfig

V = 40


class Tok:
    vocab_size, pad_id, unk_id, cls_id, sep_id, mask_id = V, 0, 1, 2, 3, 4
    special_ids = [0, 1, 2, 3, 4]


def sequences(n=40, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        length, start = int(rng.integers(12, 20)), int(rng.integers(5, V))
        out.append(np.array([2] + [(start - 5 + i) % (V - 5) + 5 for i in range(length)] + [3]))
    return out


def models(dtype):
    """A teacher with non-trivial parameters and a student that differs from its initialisation."""
    rng = np.random.default_rng(7)
    teacher = Bert(BertConfig.tiny(vocab_size=V), dtype=dtype, seed=0)
    for a in teacher.params.values():
        a += dtype(0.2) * rng.standard_normal(a.shape).astype(dtype)
    student = DistilBert.from_teacher(teacher)
    for a in student.params.values():
        a += dtype(0.05) * rng.standard_normal(a.shape).astype(dtype)
    return teacher, student


def rel_errors(got, want):
    """(relative error of all gradients as one vector, worst per-tensor relative error over the
    tensors whose gradient is not zero up to rounding: the key biases' is exactly 0 in theory)."""
    total = np.sqrt(sum(float((w.astype(np.float64) ** 2).sum()) for w in want.values()))
    diff = np.sqrt(sum(float(((got[k] - w) ** 2).sum()) for k, w in want.items()))
    per = max(float(np.linalg.norm(got[k] - w) / np.linalg.norm(w)) for k, w in want.items()
              if np.linalg.norm(w) > 1e-8 * total)
    return diff / total, per


def case_grads64(comm, out):
    """Gradients and losses of 2 ranks against one process on the concatenated batch (float64)."""
    from minidistil.data.batches import pad_batch
    teacher, student = models(np.float64)
    seqs = sequences()
    batches = [pad_batch(seqs[:7], 0), pad_batch(seqs[7:16], 0)]  # 7 rows split 3 + 4
    result = {}
    for name, make in (("mlm", lambda sh: make_mlm_step(teacher, Tok, StageConfig(), shard=sh)),
                       ("distill", lambda sh: make_distill_step(student, teacher, Tok, DistillStageConfig(), shard=sh)),
                       ("distill_ce_masked", lambda sh: make_distill_step(
                           student, teacher, Tok, DistillStageConfig(loss=DistillLossConfig(ce_positions="masked")), shard=sh))):
        params = (teacher if name == "mlm" else student).params
        rank_fn, full_fn = make(comm.shard), make(None)
        acc, sums = comm.grad_buffer(params), {}
        ref, ref_sums = None, {}
        for k, (ids, attn) in enumerate(batches):  # two micro-batches, accumulated as the loop does
            losses, grads = rank_fn(ids, attn, np.random.default_rng([3, k]))
            acc = accumulate_grads(acc, grads, 0.5)
            sums = {n: sums.get(n, 0.0) + v for n, v in losses.items()}
            losses, grads = full_fn(ids, attn, np.random.default_rng([3, k]))
            ref = accumulate_grads(ref, grads, 0.5)
            ref_sums = {n: ref_sums.get(n, 0.0) + v for n, v in losses.items()}
        acc, sums = comm.allreduce(acc, sums)
        flat, per = rel_errors(acc, ref)
        loss_err = max(abs(sums[n] - v) / abs(v) for n, v in ref_sums.items() if v)
        result[name] = {"grad_rel": flat, "grad_rel_per_tensor": per, "loss_rel": loss_err}
    # three optimizer steps of the real loop, 2 ranks against one process
    cfg = StageConfig(steps=3, batch_size=7, accum_steps=2, lr=1e-3, ckpt_every=2)
    runs = {}
    for label, c in (("ranks", comm), ("single", SingleProcess())):
        if label == "single" and not comm.is_root:
            break
        teacher, _ = models(np.float64)
        train_loop("pretrain", teacher, make_mlm_step(teacher, Tok, cfg, shard=c.shard), seqs, 0, cfg,
                   seed=1, folder=os.path.join(out, label), progress=False, comm=c)
        runs[label] = read_metrics(os.path.join(out, label, METRICS_FILE)) if c.is_root else None
    if comm.is_root:
        result["loop"] = [{k: abs(a[k] - b[k]) / abs(b[k]) for k in ("loss", "grad_norm")}
                          for a, b in zip(runs["ranks"], runs["single"])]
    return result


def case_steps32(comm, out):
    """Twenty distillation steps in float32: 2 ranks against one process."""
    cfg = DistillStageConfig(steps=20, batch_size=9, accum_steps=2, lr=2e-3, ckpt_every=10)
    seqs = sequences(60)
    runs = {}
    for label, c in (("ranks", comm), ("single", SingleProcess())):
        if label == "single" and not comm.is_root:
            break
        teacher, student = models(np.float32)
        step_fn = make_distill_step(student, teacher, Tok, cfg, shard=c.shard)
        train_loop("distill", student, step_fn, seqs, 0, cfg, seed=2,
                   folder=os.path.join(out, label), progress=False, comm=c)
        runs[label] = (read_metrics(os.path.join(out, label, METRICS_FILE)), student.params) if c.is_root else None
    if not comm.is_root:
        return {}
    (a, pa), (b, pb) = runs["ranks"], runs["single"]
    return {"steps": len(a),
            "loss_rel": max(abs(x[k] - y[k]) / abs(y[k]) for x, y in zip(a, b)
                            for k in ("loss", "loss_ce", "loss_mlm", "loss_cos")),
            "param_abs": max(float(np.abs(pa[k] - pb[k]).max()) for k in pb)}


def case_fault(comm, out, how):
    """Rank 1 fails during optimizer step 4 (checkpoints every 2 steps)."""
    cfg = StageConfig(steps=8, batch_size=8, accum_steps=1, lr=1e-3, ckpt_every=2)
    teacher, _ = models(np.float32)
    step_fn = make_mlm_step(teacher, Tok, cfg, shard=comm.shard)
    calls = {"n": 0}

    def failing(*a):
        calls["n"] += 1
        if comm.rank == 1 and calls["n"] == 4:
            if how == "raise":
                raise RuntimeError("injected failure on rank 1")
            if how == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            if how == "diverge":  # a silent bit-flip: only the hash check can see it
                p = next(iter(teacher.params.values()))
                p.flat[0] = np.nextafter(p.flat[0], np.float32(np.inf))
        return step_fn(*a)

    comm.check_every = 2
    train_loop("pretrain", teacher, failing, sequences(), 0, cfg, seed=1, folder=out,
               progress=False, comm=comm)
    return {}


def main():
    case, out = sys.argv[1], sys.argv[2]
    comm = mpi_comm()
    try:
        if case == "grads64":
            result = case_grads64(comm, out)
        elif case == "steps32":
            result = case_steps32(comm, out)
        else:
            result = case_fault(comm, out, case)
    except Exception as e:
        abort_on_error(comm, "mpi_worker " + case, e)
        raise
    if comm.is_root:
        with open(os.path.join(out, "result.json"), "w") as f:
            json.dump(result, f)
    comm.barrier()


if __name__ == "__main__":
    main()
