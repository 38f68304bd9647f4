"""Ranks against threads: the same training step as 1 x 1, 1 rank x 2 threads, 2 ranks x 1 thread.

    python -m minidistil.parallel.bench [--stage distill|pretrain] [--rounds 3] [--steps 8]
    minidistil bench-ranks ...                       (the same)

Each configuration runs the real ``train_loop`` (demo shapes: hidden 128, 4 heads, FF 512,
teacher 6 layers, student 3, vocabulary 4096, micro-batch 32 x 64 tokens) in its own process(es),
on the same global batch, for ``--warmup`` untimed and ``--steps`` timed optimizer steps; the
configurations are interleaved over ``--rounds`` rounds so that a change in the machine's load
hits all of them. Per-step time comes from the loop's own clock (``time_s`` in metrics.jsonl).

Reported: step time (mean of the rounds' means, 95% t-interval over rounds), speed-up and
scaling efficiency ``E = T(1x1) / (2 T)`` against one rank with one thread, and, for 2 ranks,
the time inside the Allreduce (including waiting for the slower rank) and the bytes reduced.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

CONFIGS = (("1 rank x 1 thread", 1, 1), ("1 rank x 2 threads", 1, 2), ("2 ranks x 1 thread", 2, 1))
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}


# ---------------------------------------------------------------- one configuration (a worker)

def _worker(args) -> None:
    from ..kernels.backend import set_num_threads
    from ..models import Bert, BertConfig, DistilBert
    from ..train.distill import make_distill_step
    from ..train.loop import METRICS_FILE, read_metrics, train_loop
    from ..train.pretrain import make_mlm_step
    from ..train.runs import DistillStageConfig, StageConfig
    from . import SingleProcess, mpi_comm
    if args.no_fast:
        # BLAS gets the same thread count: left alone, OpenBLAS starts one thread per core in
        # every rank, and 2 ranks x 1 thread (or Numba's 2 threads beside BLAS's 2) oversubscribe
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=args.threads, user_api="blas")
    else:  # as the CLI runs: the speed layer holds BLAS to one thread and splits products itself
        from .. import fast
        fast.enable()
    set_num_threads(args.threads)
    comm = mpi_comm() if args.ranks > 1 else SingleProcess()
    spent = {"allreduce_s": 0.0, "calls": 0}
    if args.ranks > 1:
        inner = comm.allreduce

        def timed(grads, sums):
            t0 = time.perf_counter()
            out = inner(grads, sums)
            spent["allreduce_s"] += time.perf_counter() - t0
            spent["calls"] += 1
            return out
        comm.allreduce = timed
    V, T, B = 4096, 64, args.batch_size
    rng = np.random.default_rng(0)
    seqs = [np.concatenate([[2], rng.integers(5, V, size=T - 2), [3]]) for _ in range(B * 4)]  # (T,) each
    cfg_t = BertConfig(vocab_size=V, hidden_size=128, num_hidden_layers=6, num_attention_heads=4,
                       intermediate_size=512, max_position_embeddings=T)
    teacher = Bert(cfg_t, dtype=np.float32, seed=0)
    tok = type("Tok", (), {"vocab_size": V, "mask_id": 4, "special_ids": [0, 1, 2, 3, 4]})
    n = args.warmup + args.steps
    if args.stage == "distill":
        model = DistilBert.from_teacher(teacher)
        cfg = DistillStageConfig(steps=10**6, batch_size=B, ckpt_every=10**6)
        step_fn = make_distill_step(model, teacher, tok, cfg, shard=comm.shard)
    else:
        model, cfg = teacher, StageConfig(steps=10**6, batch_size=B, ckpt_every=10**6)
        step_fn = make_mlm_step(model, tok, cfg, shard=comm.shard)
    with tempfile.TemporaryDirectory() as folder:
        if comm.is_root:  # everyone in one folder: rank 0 writes it
            folder_name = [folder]
        else:
            folder_name = [None]
        if args.ranks > 1:
            folder_name = comm.comm.bcast(folder_name, root=0)
        t0 = time.perf_counter()
        train_loop(args.stage, model, step_fn, seqs, 0, cfg, seed=0, folder=folder_name[0],
                   max_steps=n, progress=False, comm=comm)
        wall = time.perf_counter() - t0
        if comm.is_root:
            clock = [0.0] + [r["time_s"] for r in read_metrics(os.path.join(folder_name[0], METRICS_FILE))]
            times = np.diff(clock)[args.warmup:].tolist()
            per_step_ar = spent["allreduce_s"] / max(1, spent["calls"])
            n_params = sum(p.size for p in model.params.values())
            print(json.dumps({"times": times, "wall_s": wall, "allreduce_s": per_step_ar,
                              "bytes": 4 * n_params}), flush=True)
        if args.ranks > 1:
            comm.barrier()


# ---------------------------------------------------------------- the driver

def _run_config(args, ranks, threads, timeout):
    env = dict(os.environ, NUMBA_NUM_THREADS=str(max(2, threads)))
    cmd = [sys.executable, "-m", "minidistil.parallel.bench", "--worker", "--stage", args.stage,
           "--ranks", str(ranks), "--threads", str(threads), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--batch-size", str(args.batch_size)] + \
        (["--no-fast"] if args.no_fast else [])
    if ranks > 1:
        from ..parallel.comm import MPI_EXTRA_HINT
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        if not os.path.exists(mpiexec):
            import shutil
            mpiexec = shutil.which("mpiexec")
        if mpiexec is None:
            raise SystemExit(f"bench-ranks: no mpiexec found: {MPI_EXTRA_HINT}")
        cmd = [mpiexec, "-n", str(ranks)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if out.returncode != 0:
        raise SystemExit(f"bench-ranks: {ranks} x {threads} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _mean_ci(values):
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), T95.get(v.size - 1, 1.96) * float(v.std(ddof=1)) / math.sqrt(v.size)


def measure(args) -> dict:
    per = {name: [] for name, _, _ in CONFIGS}
    extra = {name: [] for name, _, _ in CONFIGS}
    for r in range(args.rounds):
        for name, ranks, threads in CONFIGS:
            res = _run_config(args, ranks, threads, timeout=args.timeout)
            per[name].append(float(np.mean(res["times"])))
            extra[name].append(res)
            print(f"round {r + 1}: {name}: {1e3 * per[name][-1]:.0f} ms/step", file=sys.stderr, flush=True)
    base = np.asarray(per[CONFIGS[0][0]])
    report = {"stage": args.stage, "no_fast": bool(args.no_fast), "batch_size": args.batch_size, "rounds": args.rounds,
              "steps": args.steps, "configs": []}
    for name, ranks, threads in CONFIGS:
        t = np.asarray(per[name])
        mean, ci = _mean_ci(t)
        eff_mean, eff_ci = _mean_ci(base / (2 * t))  # paired by round
        row = {"config": name, "ranks": ranks, "threads": threads, "step_s": mean, "step_ci95_s": ci,
               "speedup": float(np.mean(base / t)), "efficiency": eff_mean, "efficiency_ci95": eff_ci}
        if ranks > 1:
            row["allreduce_s"] = float(np.mean([e["allreduce_s"] for e in extra[name]]))
            row["allreduce_bytes"] = extra[name][0]["bytes"]
        report["configs"].append(row)
    thr, rk = np.asarray(per[CONFIGS[1][0]]), np.asarray(per[CONFIGS[2][0]])
    report["threads_over_ranks"] = _mean_ci(thr / rk)  # > 1: ranks faster
    return report


def format_report(rep) -> str:
    lines = [f"{rep['stage']} step, global micro-batch {rep['batch_size']} x 64 tokens, "
             f"{rep['rounds']} rounds x {rep['steps']} steps (95% intervals over rounds), "
             f"{'plain code (--no-fast)' if rep.get('no_fast') else 'speed layer on, as the CLI runs'}",
             f"{'configuration':<22}{'step (ms)':>18}{'speed-up':>10}{'efficiency':>18}"]
    for r in rep["configs"]:
        eff = "-" if r["ranks"] * r["threads"] == 1 else f"{r['efficiency']:.2f} +- {r['efficiency_ci95']:.2f}"
        lines.append(f"{r['config']:<22}{1e3 * r['step_s']:>10.0f} +- {1e3 * r['step_ci95_s']:<5.0f}"
                     f"{r['speedup']:>10.2f}{eff:>18}")
        if "allreduce_s" in r:
            lines.append(f"{'':<22}Allreduce {1e3 * r['allreduce_s']:.1f} ms/step incl. waiting, "
                         f"{r['allreduce_bytes'] / 1e6:.1f} MB of gradients")
    m, ci = rep["threads_over_ranks"]
    lines.append(f"time(1 rank x 2 threads) / time(2 ranks x 1 thread) = {m:.2f} +- {ci:.2f} "
                 f"({'ranks faster' if m - ci > 1 else 'threads faster' if m + ci < 1 else 'not resolved'})")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="minidistil bench-ranks", description=__doc__.split("\n\n")[0])
    p.add_argument("--stage", choices=["distill", "pretrain"], default="distill",
                   help="which training step to time (default distill)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the three configurations, "
                   "interleaved (default 3)")
    p.add_argument("--steps", type=int, default=8, help="timed optimizer steps per run")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    p.add_argument("--no-fast", action="store_true", help="time the plain reference code: no "
                   "speed layer, BLAS limited to each configuration's thread count")
    p.add_argument("--batch-size", type=int, default=32, help="global micro-batch (sequences)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per run before it is killed")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--ranks", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if min(args.rounds, args.steps, args.batch_size) < 1 or args.warmup < 0:
        p.error("--rounds, --steps and --batch-size must be >= 1, --warmup >= 0")
    if args.worker:
        _worker(args)
        return 0
    rep = measure(args)
    print(format_report(rep))
    if args.json:
        from ..atomic import atomic_write_json
        atomic_write_json(args.json, rep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
