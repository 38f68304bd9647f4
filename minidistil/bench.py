"""``minidistil bench``: how fast the kernels and the two training steps run, and against what.

Legend: B batch, T sequence, C hidden, NH heads, HS head size, F feed-forward, V vocabulary,
L layers, N = B*T tokens, P positions that get MLM logits.

One run measures, in float32 with a fixed thread count, median of ``--repeats`` runs after
``--warmup`` untimed ones (issue 5; docs/performance.md is regenerated from it with ``--write-doc``):

1. every kernel's forward+backward with the Numba backend and with its NumPy twin
   (``minidistil.kernels.use_backend``), and the speed-up;
2. NumPy's float32 matmul peak (the hardware yardstick of this run) and the throughput of the
   matmul shapes the steps actually use;
3. the teacher MLM training step and the student distillation step (teacher forward + student
   forward/backward + clipping + AdamW): seconds, tokens/s, a time breakdown by phase, and the
   matmul GFLOP/s of the step (the FLOP model is :func:`step_flops`) as a fraction of the peak;
4. in subprocesses, so that nothing this process already compiled or allocated counts: the cold
   compile of all kernels (an empty ``NUMBA_CACHE_DIR``), then the time from ``import minidistil``
   to the end of the first distillation step with that cache warm, and that process's peak
   resident memory (``ru_maxrss`` and ``VmHWM``);
5. when ``torch`` is importable (never required): the same two steps in PyTorch eager
   (:mod:`minidistil.bench_torch`), in a subprocess, and the ratios.

Every field of the JSON is always present: a part that was skipped is ``null`` with the reason
in ``"skipped"``. ``python -m minidistil.bench --help`` lists the options.
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as _dt
import importlib.util
import io
import json
import os
import platform
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numba
import numpy as np

from .atomic import atomic_write_text

SCHEMA = 1
DEFAULT_JSON = "bench.json"
DEFAULT_DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = 0, 1, 2, 3, 4  # the ids the benchmark batches use
SPECIAL_IDS = (PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID)
TEMPERATURE = 2.0
CLIP = 5.0

# The issue's targets; "<=" means smaller is better.
TARGETS = {
    "distill_vs_torch": ("<=", 0.4),
    "distill_matmul_fraction_of_peak": (">=", 0.5),
    "teacher_vs_torch": ("<=", 0.5),
    "kernel_speedup": (">=", 3.0),
    "cold_compile_s": ("<=", 30.0),
    "warm_import_to_first_step_s": ("<=", 3.0),
    "distill_peak_memory_mb": ("<=", 1500.0),
}

# Every top-level key of the JSON (the tests hold the output to this list).
RESULT_KEYS = ("schema", "conditions", "shapes", "kernels", "matmul", "steps", "flops", "numerics",
               "subprocess", "torch", "ratios", "single_thread", "targets", "profile", "skipped")


@dataclass(frozen=True)
class BenchShapes:
    """The sizes of one run: the demo model by default, tiny ones with ``quick()``."""
    batch: int = 32
    seq: int = 128
    hidden: int = 128
    heads: int = 4
    ff: int = 512
    vocab: int = 4096
    teacher_layers: int = 6
    student_layers: int = 3

    @classmethod
    def quick(cls) -> "BenchShapes":
        return cls(batch=2, seq=16, hidden=16, heads=2, ff=32, vocab=64, teacher_layers=2, student_layers=1)

    @property
    def tokens(self) -> int:
        return self.batch * self.seq

    def __post_init__(self):
        for name, v in asdict(self).items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"BenchShapes.{name} must be a positive int, got {v!r}")
        if self.hidden % self.heads:
            raise ValueError(f"BenchShapes.hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.student_layers > self.teacher_layers:
            raise ValueError("BenchShapes.student_layers must not exceed teacher_layers")


# ============================================================================ timing helpers

# The untimed warm-up lasts at least this long. After even a short pause (the 0.3 s in which
# OpenBLAS's workers go to sleep, see _let_blas_workers_sleep) the cores of the development
# machine take about 50 ms to come back to speed: a 2.4 ms attention call took 5-6 ms in that
# window, so a turn of a few short calls right after a pause measured the wake-up, not the kernel.
WARMUP_MIN_S = 0.2


def measure(fn: Callable[[], object], repeats: int, warmup: int, min_warmup_s: float = WARMUP_MIN_S) -> dict:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed runs (and at
    least ``min_warmup_s`` seconds of them when ``warmup`` > 0).

    ``cpu_over_wall`` (process CPU time / wall time) shows how many cores the run really got:
    near the thread count on an idle machine, lower when other processes take the cores.
    """
    t_warm = time.perf_counter()
    done = 0
    while done < warmup or (warmup > 0 and time.perf_counter() - t_warm < min_warmup_s):
        fn()
        done += 1
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    med = float(np.median(wall))
    return {"median_s": med, "min_s": float(min(wall)), "times_s": [float(t) for t in wall],
            "cpu_over_wall": float(np.median(cpu)) / med if med > 0 else None}


class Phases:
    """Lap timer for the phases of a step: ``start()``, then ``lap(name)`` after each phase."""

    def __init__(self):
        self.laps: dict[str, list[float]] = {}
        self._t = 0.0

    def start(self) -> None:
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps.setdefault(name, []).append(now - self._t)
        self._t = now

    def medians(self) -> dict:
        return {k: float(np.median(v)) for k, v in self.laps.items()}


def _atomic_write(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


# ============================================================================ 1. kernels

def _has_numba_version(fn) -> bool:
    """True when the public kernel ``fn`` has a Numba version distinct from its NumPy twin."""
    mod = sys.modules.get(fn.__module__)
    nb = getattr(mod, fn.__name__ + "_numba", None)
    npy = getattr(mod, fn.__name__ + "_numpy", None)
    if nb is None and npy is None:
        return True  # dispatches some other way: assume it has one
    return nb is not None and nb is not npy


def kernel_cases(s: BenchShapes, seed: int = 0) -> list:
    """``[(name, shape, run, public_fns)]``: each ``run()`` does one forward+backward in float32.

    The shapes are where each kernel runs in the distillation step: softmax with T over the
    (N, V) logits of every real token (the soft-target loss), LayerNorm on (B, T, C), GELU on
    the (B, T, F) feed-forward activations, attention on (B, NH, T, HS) with some padded keys,
    and the embedding scatter-add of N rows into a (V, C) table.
    """
    from . import kernels as K
    rng = np.random.default_rng(seed)
    f32 = np.float32
    B, T, C, NH, F, V = s.batch, s.seq, s.hidden, s.heads, s.ff, s.vocab
    HS, N = C // NH, s.tokens
    x_v = (3.0 * rng.standard_normal((N, V))).astype(f32)  # (N, V)
    dp_v = rng.standard_normal((N, V)).astype(f32)  # (N, V)
    x_c = rng.standard_normal((B, T, C)).astype(f32)  # (B, T, C)
    dy_c = rng.standard_normal((B, T, C)).astype(f32)  # (B, T, C)
    gamma = (1.0 + 0.1 * rng.standard_normal(C)).astype(f32)  # (C,)
    beta = (0.1 * rng.standard_normal(C)).astype(f32)  # (C,)
    x_f = rng.standard_normal((B, T, F)).astype(f32)  # (B, T, F)
    dy_f = rng.standard_normal((B, T, F)).astype(f32)  # (B, T, F)
    q, k, v, dout = (rng.standard_normal((B, NH, T, HS)).astype(f32) for _ in range(4))  # (B, NH, T, HS)
    mask = np.ones((B, T), dtype=np.int64)  # (B, T)
    mask[::2, T - max(1, T // 8):] = 0  # every other row ends in padding

    def softmax():
        p = K.softmax_forward(x_v, TEMPERATURE)  # (N, V)
        K.softmax_backward(dp_v, p, TEMPERATURE)

    def layernorm():
        y, mean, rstd = K.layernorm_forward(x_c, gamma, beta, 1e-12)
        K.layernorm_backward(dy_c, x_c, gamma, mean, rstd)

    def gelu():
        K.gelu_forward(x_f, "none")
        K.gelu_backward(dy_f, x_f, "none")

    def attention():
        out, probs = K.attention_forward(q, k, v, mask)
        K.attention_backward(dout, q, k, v, probs)

    cases = [
        ("softmax_T", f"({N}, {V}) T={TEMPERATURE}", softmax, (K.softmax_forward, K.softmax_backward)),
        ("layernorm", f"({B}, {T}, {C})", layernorm, (K.layernorm_forward, K.layernorm_backward)),
        ("gelu", f"({B}, {T}, {F}) erf", gelu, (K.gelu_forward, K.gelu_backward)),
        ("attention", f"({B}, {NH}, {T}, {HS}) masked", attention, (K.attention_forward, K.attention_backward)),
    ]
    emb = getattr(K, "embedding_backward", None)
    if emb is not None:  # the scatter-add kernel of the embedding layer, when it exists
        ids = rng.integers(0, V, size=N).astype(np.int64)  # (N,)
        dy_e = rng.standard_normal((N, C)).astype(f32)  # (N, C)
        cases.append(("embedding_backward", f"({N}, {C}) -> ({V}, {C})",
                      lambda: emb(dy_e, ids, V), (emb,)))
    return cases


KERNEL_ROUNDS = 3  # Numba and twin timed in turns, so a slow spell of the machine hits both


def bench_kernels(s: BenchShapes, repeats: int, warmup: int, rounds: int = KERNEL_ROUNDS,
                  only: Optional[tuple] = None) -> list:
    """Forward+backward of each kernel under both backends; ``speedup`` = NumPy / Numba time.

    Each backend is timed in ``rounds`` turns (Numba, twin, Numba, twin, ...), ``repeats`` runs
    each; the medians are over all turns. On a shared machine the speed drifts from second to
    second, and one block per backend would let a slow spell fall on one side only.
    """
    from .kernels import use_backend
    rows = []
    for name, shape, run, fns in kernel_cases(s):
        if only is not None and name not in only:
            continue
        row = {"kernel": name, "shape": shape,
               "has_numba": all(_has_numba_version(f) for f in fns)}
        turns = {"numba": [], "numpy": []}
        probes = []
        for turn in range(max(1, rounds)):
            for backend in ("numba", "numpy"):
                if backend == "numba":
                    _let_blas_workers_sleep()  # the previous twin may have run BLAS's own threads
                    probes.append(two_core_probe())
                with use_backend(backend):  # >= 1 warm-up in the first turn: the compile
                    turns[backend].append(measure(run, repeats, max(1, warmup) if turn == 0 else 1))
        for backend, ms in turns.items():
            wall = [t for m in ms for t in m["times_s"]]
            row[backend] = {"median_s": float(np.median(wall)), "min_s": float(min(wall)), "times_s": wall,
                            "turn_medians_s": [m["median_s"] for m in ms],
                            "cpu_over_wall": float(np.median([m["cpu_over_wall"] or 0.0 for m in ms]))}
        row["speedup"] = row["numpy"]["median_s"] / row["numba"]["median_s"]
        row["two_core_probe"] = probes
        rows.append(row)
    return rows


def _gemm_route() -> str:
    """How the attention kernel runs its products: "avx512", "cblas", or "pool" (kernels/gemm.py)."""
    from .kernels.gemm import gemm_functions
    g = gemm_functions()
    return "pool" if g is None else g.route


def gemm_route_text() -> str:
    """The route, and why it is not AVX-512 when it is not, in words for the doc."""
    from .kernels.gemm import gemm_functions
    g = gemm_functions()
    if g is None:
        return "pool (BLAS cannot be called from Numba here: products on minidistil's pool)"
    if g.route == "avx512":
        return "avx512 (OpenBLAS's AVX-512 small-matrix kernels, called from Numba)"
    return f"cblas (cblas_sgemm from Numba; no AVX-512 route: {g.why_not_avx512})"


# ============================================================================ 2. matmul yardstick

def _probe_loop(a, rounds):
    """``rounds`` passes of a multiply-add over each row of ``a`` (P, n): compute-bound in L1."""
    P, n = a.shape
    mul, add = a.dtype.type(0.9999), a.dtype.type(0.0001)
    for p in numba.prange(P):
        row = a[p]
        for _ in range(rounds):
            for j in range(n):
                row[j] = row[j] * mul + add


_probe_kernel = None


def two_core_probe(rounds: int = 4000) -> Optional[float]:
    """How much a second thread speeds up a compute-bound Numba loop: about 2 when the run has
    two free cores, about 1 when something else holds the second one, which would make every
    two-thread kernel lose against its mostly single-threaded twin. None under NUMBA_DISABLE_JIT."""
    global _probe_kernel
    if numba.config.DISABLE_JIT:
        return None
    if _probe_kernel is None:
        from .kernels.backend import jit
        _probe_kernel = jit(parallel=True)(_probe_loop)
    a = np.ones((8, 2048), dtype=np.float32)  # (P, n), 64 KB
    _probe_kernel(a, 1)  # compiled (or loaded) outside the timing
    threads = numba.get_num_threads()
    times = {}
    try:
        for n in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(n)
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                _probe_kernel(a, rounds)
                best = min(best, time.perf_counter() - t)
            times[n] = best
    finally:
        numba.set_num_threads(threads)
    return times[1] / times[max(times)]


def _let_blas_workers_sleep(seconds: float = 0.3) -> None:
    """After a multi-threaded BLAS call OpenBLAS's idle workers busy-wait for about 0.1 s
    (``THREAD_TIMEOUT``: 2^28 cycles) before they sleep; anything timed in that window shares the
    cores with them. Wait it out before timing minidistil's own pool."""
    time.sleep(seconds)


def _gflops(flop: float, seconds: float) -> float:
    return flop / seconds / 1e9 if seconds > 0 else float("nan")


def matmul_peak(quick: bool, repeats: int) -> dict:
    """NumPy float32 square matmuls; the peak is the best median GFLOP/s over the sizes
    (``best_gflops``, from the fastest single run, shows what an idle machine gives)."""
    rng = np.random.default_rng(1)
    sizes = (128, 256) if quick else (512, 1024, 2048)
    rows = []
    for n in sizes:
        a = rng.standard_normal((n, n)).astype(np.float32)  # (n, n)
        b = rng.standard_normal((n, n)).astype(np.float32)  # (n, n)
        c = np.empty((n, n), dtype=np.float32)  # (n, n)
        t = measure(lambda: np.matmul(a, b, out=c), max(3, repeats), 1)
        rows.append({"n": n, "median_s": t["median_s"], "gflops": _gflops(2.0 * n ** 3, t["median_s"]),
                     "best_gflops": _gflops(2.0 * n ** 3, t["min_s"])})
    return {"sizes": rows, "peak_gflops": max(r["gflops"] for r in rows),
            "best_gflops": max(r["best_gflops"] for r in rows)}


def step_matmul_shapes(s: BenchShapes, repeats: int) -> list:
    """The matmuls the steps are made of, timed alone: how close each shape can get to the peak,
    as plain ``a @ b`` (BLAS's own threads) and as the steps run them (``kernels/blas.py``: cut
    over minidistil's pool, BLAS single-threaded)."""
    from .kernels.blas import matmul_threaded, owned_cores
    rng = np.random.default_rng(2)
    B, T, C, NH, F, V, N = s.batch, s.seq, s.hidden, s.heads, s.ff, s.vocab, s.tokens
    HS = C // NH
    shapes = [  # (name, a shape, b shape)
        ("projection x @ W^T", (N, C), (C, C)),
        ("FFN up", (N, C), (C, F)),
        ("FFN down", (N, F), (F, C)),
        ("weight grad dy^T @ x (C x N x C)", (C, N), (N, C)),
        ("attention q @ k^T (batched)", (B * NH, T, HS), (B * NH, HS, T)),
        ("attention probs @ v (batched)", (B * NH, T, T), (B * NH, T, HS)),
        ("MLM decoder, all tokens", (N, C), (C, V)),
        ("MLM decoder grad dlogits^T @ h", (V, N), (N, C)),
    ]
    operands = [(name, sa, sb, rng.standard_normal(sa).astype(np.float32),
                 rng.standard_normal(sb).astype(np.float32)) for name, sa, sb in shapes]
    pool = {}
    _let_blas_workers_sleep()  # the pool first: after plain `@`, OpenBLAS's idle workers spin a while
    with owned_cores():
        for name, sa, sb, a, b in operands:
            pool[name] = measure(lambda: matmul_threaded(a, b), max(3, repeats), 1)
    rows = []
    for name, sa, sb, a, b in operands:
        flop = 2.0 * np.prod(sa) * sb[-1]
        t = measure(lambda: a @ b, max(3, repeats), 1)
        rows.append({"name": name, "a": list(sa), "b": list(sb), "median_s": t["median_s"],
                     "gflops": _gflops(flop, t["median_s"]), "pool_median_s": pool[name]["median_s"],
                     "pool_gflops": _gflops(flop, pool[name]["median_s"])})
    return rows


# ============================================================================ 3. the steps

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
    Elementwise work (softmax, LayerNorm, GELU, AdamW) is not counted: it is memory-bound.
    """
    lay = layer_flops(s)
    teacher = 3.0 * (s.teacher_layers * lay + head_flops(s, P_teacher_step))
    distill = (s.teacher_layers * lay + head_flops(s, P_distill)) + \
        3.0 * (s.student_layers * lay + head_flops(s, P_distill))
    return {"layer_forward": lay, "teacher_mlm_step": teacher, "distill_step": distill,
            "P_teacher_step": float(P_teacher_step), "P_distill": float(P_distill)}


def _batch(s: BenchShapes, rng: np.random.Generator):
    """``[CLS] random ids [SEP]`` rows, no padding (batches are grouped by length in training)."""
    ids = rng.integers(len(SPECIAL_IDS), s.vocab, size=(s.batch, s.seq)).astype(np.int64)  # (B, T)
    ids[:, 0], ids[:, -1] = CLS_ID, SEP_ID
    return ids, np.ones((s.batch, s.seq), dtype=np.int64)  # (B, T), (B, T)


def build_models(s: BenchShapes, dtype=np.float32, seed: int = 0):
    """The teacher ``Bert`` at the bench shapes and a student taken from it layer by layer."""
    from .models import Bert, BertConfig, DistilBert
    cfg = BertConfig(vocab_size=s.vocab, hidden_size=s.hidden, num_hidden_layers=s.teacher_layers,
                     num_attention_heads=s.heads, intermediate_size=s.ff,
                     max_position_embeddings=s.seq, type_vocab_size=2)
    teacher = Bert(cfg, dtype=dtype, seed=seed)
    Lt, Ls = s.teacher_layers, s.student_layers
    layers = None if Ls == Lt // 2 else sorted({int(round(i)) for i in np.linspace(0, Lt - 1, Ls)})
    return teacher, DistilBert.from_teacher(teacher, layers=layers)


def make_teacher_step(s: BenchShapes, seed: int = 0, phases: Phases | None = None):
    """One MLM training step of the teacher (as ``train/pretrain.py``): mask, forward with logits
    at the masked positions only, cross-entropy, backward, clip, AdamW. Returns ``step()``."""
    from .kernels.blas import on_owned_cores
    from .losses import mlm_backward, mlm_forward
    from .masking import mask_tokens
    from .train.optim import AdamW, clip_grad_norm
    teacher, _ = build_models(s, seed=seed)
    opt = AdamW(teacher.params, lr=5e-4, betas=(0.9, 0.98), eps=1e-6)
    rng = np.random.default_rng(seed)
    ids, attn = _batch(s, rng)
    ph = phases or Phases()

    def step() -> dict:
        ph.start()
        masked, labels = mask_tokens(ids, attn, rng, s.vocab, MASK_ID, SPECIAL_IDS)
        positions = labels != -100  # (B, T)
        ph.lap("mask")
        out = teacher.forward(masked, attn, mlm_positions=positions)  # logits (P, V)
        ph.lap("forward")
        loss, cache = mlm_forward(out.logits, labels[positions])
        dlogits = mlm_backward(1.0, cache)  # (P, V)
        ph.lap("loss")
        grads = teacher.backward(dlogits, out.cache)
        ph.lap("backward")
        clip_grad_norm(grads, CLIP)
        opt.step(grads)
        ph.lap("optimizer")
        return {"loss": float(loss), "positions": int(positions.sum())}

    return on_owned_cores(step)  # as train/loop.py runs every step


def make_distill_step(s: BenchShapes, seed: int = 0, phases: Phases | None = None, models=None):
    """One distillation step (as ``train/distill.py``): mask, teacher forward without a cache,
    student forward, ``5 Lce + 2 Lmlm + 1 Lcos`` with Lce on every real token, student backward
    with the cosine gradient entering at the last hidden state, clip, AdamW. Returns ``step()``."""
    from .kernels.blas import on_owned_cores
    from .losses import DistillLossConfig, distill_loss_backward, distill_loss_forward
    from .masking import mask_tokens
    from .train.optim import AdamW, clip_grad_norm
    teacher, student = models if models is not None else build_models(s, seed=seed)
    opt = AdamW(student.params, lr=5e-4, betas=(0.9, 0.98), eps=1e-6)
    lcfg = DistillLossConfig(temperature=TEMPERATURE, ce_positions="all")
    L = student.config.num_hidden_layers
    rng = np.random.default_rng(seed)
    ids, attn = _batch(s, rng)
    ph = phases or Phases()

    def step() -> dict:
        ph.start()
        masked, labels = mask_tokens(ids, attn, rng, s.vocab, MASK_ID, SPECIAL_IDS)
        positions = attn.astype(bool)  # (B, T) every real token: Lce covers them all
        ph.lap("mask")
        t_out = teacher.forward(masked, attn, mlm_positions=positions, keep_cache=False)
        ph.lap("teacher_forward")
        s_out = student.forward(masked, attn, mlm_positions=positions)
        ph.lap("student_forward")
        total, parts, cache = distill_loss_forward(
            s_out.logits, t_out.logits, labels, s_out.hidden_states[-1], t_out.hidden_states[-1],
            attn, lcfg, positions)
        ds_logits, ds_hidden = distill_loss_backward(cache)
        ph.lap("loss")
        grads = student.backward(ds_logits, s_out.cache, dhidden={L: ds_hidden})
        ph.lap("student_backward")
        clip_grad_norm(grads, CLIP)
        opt.step(grads)
        ph.lap("optimizer")
        return {"loss": float(total), "positions": int(positions.sum())}

    return on_owned_cores(step)  # as train/loop.py runs every step


def bench_steps(s: BenchShapes, repeats: int, warmup: int) -> dict:
    out = {}
    for name, maker in (("teacher_mlm_step", make_teacher_step), ("distill_step", make_distill_step)):
        ph = Phases()
        step = maker(s, phases=ph)
        info = {}
        for _ in range(max(1, warmup)):  # >= 1: the first call compiles what is not cached
            info = step()
        ph.laps.clear()
        positions = []

        def timed():
            positions.append(step()["positions"])

        t = measure(timed, repeats, 0)
        t.update(tokens_per_s=s.tokens / t["median_s"], phases_s=ph.medians(),
                 mean_positions=float(np.mean(positions)), loss=info.get("loss"))
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
    rows = []
    for (file, line, func), (cc, nc, tt, ct, _) in st.stats.items():
        rows.append({"function": func, "where": f"{_short_path(file)}:{line}", "calls": int(nc),
                     "tottime_s": float(tt), "cumtime_s": float(ct)})
    rows.sort(key=lambda r: -r["tottime_s"])
    return rows[:top]


def _short_path(file: str) -> str:
    parts = Path(file).parts
    for anchor in ("minidistil", "numpy", "numba"):
        if anchor in parts:
            i = len(parts) - 1 - parts[::-1].index(anchor)
            return "/".join(parts[i:])
    return file


def distill_loss_agreement(s: BenchShapes, seed: int = 0) -> dict:
    """The loss of one distillation batch: float32 with Numba vs float64 with the NumPy twins."""
    from .kernels import use_backend
    from .losses import DistillLossConfig, distill_loss_forward
    from .masking import mask_tokens
    lcfg = DistillLossConfig(temperature=TEMPERATURE, ce_positions="all")
    rng = np.random.default_rng(seed)
    ids, attn = _batch(s, rng)
    masked, labels = mask_tokens(ids, attn, rng, s.vocab, MASK_ID, SPECIAL_IDS)
    positions = attn.astype(bool)  # (B, T)
    losses = {}
    t32, s32 = build_models(s, np.float32, seed)
    t64, s64 = build_models(s, np.float64, seed)
    t64.load_state_dict({k: v.astype(np.float64) for k, v in t32.params.items()})
    s64.load_state_dict({k: v.astype(np.float64) for k, v in s32.params.items()})
    for key, (t, st, backend) in {"float32_numba": (t32, s32, "numba"),
                                  "float64_numpy": (t64, s64, "numpy")}.items():
        with use_backend(backend):
            to = t.forward(masked, attn, mlm_positions=positions, keep_cache=False)
            so = st.forward(masked, attn, mlm_positions=positions, keep_cache=False)
            total, _, _ = distill_loss_forward(so.logits, to.logits, labels, so.hidden_states[-1],
                                               to.hidden_states[-1], attn, lcfg, positions)
        losses[key] = float(total)
    ref = losses["float64_numpy"]
    return {**losses, "rel_diff": abs(losses["float32_numba"] - ref) / max(abs(ref), 1e-30), "bound": 1e-4}


# ============================================================================ 4./5. subprocesses

_CHILD = """
import time; t0 = time.perf_counter()
import json, sys
from minidistil.bench import _child
_child(sys.argv[1], t0, json.loads(sys.argv[2]), sys.argv[3])
"""


def _rss_mb() -> dict:
    """This process's peak resident memory, two ways (MB = 10**6 bytes)."""
    out = {"ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6}
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    key, val = line.split(":", 1)
                    out[key.strip() + "_mb"] = int(val.split()[0]) * 1024 / 1e6
    except OSError:  # not Linux: ru_maxrss is all there is
        pass
    return out


def _child(mode: str, t0: float, shapes: dict, out_path: str) -> None:
    """Runs in a fresh interpreter (see ``_CHILD``); ``t0`` was taken before any import."""
    res: dict = {}
    if mode == "cold":  # compile every kernel, then the rest of both steps, from an empty cache
        from . import kernels as K  # noqa: F401  (the import itself is part of the cold start)
        res["import_s"] = time.perf_counter() - t0
        first = {}
        with K.use_backend("numba"):
            for name, _, run, _ in kernel_cases(BenchShapes.quick()):
                a = time.perf_counter()
                run()  # compiles (float32) and runs
                b = time.perf_counter()
                run()  # runs only
                first[name] = (b - a) - (time.perf_counter() - b)
            res["kernels_compile_s"] = first
            res["kernels_total_s"] = float(sum(first.values()))
            a = time.perf_counter()
            make_teacher_step(BenchShapes.quick())()
            make_distill_step(BenchShapes.quick())()
            res["tiny_steps_s"] = time.perf_counter() - a
        res["total_s"] = time.perf_counter() - t0
    elif mode == "first_step":  # import -> models -> first distillation step, then a second one
        step = make_distill_step(BenchShapes(**shapes))
        res["build_s"] = time.perf_counter() - t0
        res["rss_before_step"] = _rss_mb()
        step()
        res["import_to_first_step_s"] = time.perf_counter() - t0
        a = time.perf_counter()
        step()
        res["second_step_s"] = time.perf_counter() - a
        res["memory"] = _rss_mb()
    elif mode == "steps":  # both steps at this process's thread count (see bench_single_thread)
        steps = bench_steps(BenchShapes(**shapes["shapes"]), shapes["repeats"], shapes["warmup"])
        res = {k: {"median_s": v["median_s"], "min_s": v["min_s"], "cpu_over_wall": v["cpu_over_wall"],
                   "phases_s": v["phases_s"]} for k, v in steps.items()}
        res["matmul_peak_gflops"] = matmul_peak(shapes["shapes"]["hidden"] < 64, shapes["repeats"])["peak_gflops"]
    elif mode == "kernels":  # some kernels, e.g. with MINIDISTIL_GEMM=cblas (see attention_cblas_route)
        res = {"rows": bench_kernels(BenchShapes(**shapes["shapes"]), shapes["repeats"], shapes["warmup"],
                                     only=tuple(shapes["only"])), "route": gemm_route_text()}
    elif mode == "torch":
        from .bench_torch import TorchShapes, time_steps
        res = time_steps(TorchShapes(**shapes["shapes"]), repeats=shapes["repeats"],
                         warmup=shapes["warmup"], threads=shapes["threads"])
        res["memory"] = _rss_mb()
    else:
        raise ValueError(f"unknown child mode {mode!r}")
    _atomic_write(out_path, json.dumps(res))


def _run_child(mode: str, payload: dict, env_extra: dict, threads: int, timeout: float = 1800) -> dict:
    env = dict(os.environ)
    env.update({"OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
                "MKL_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads)})
    env.update(env_extra)
    with tempfile.TemporaryDirectory(prefix="minidistil-bench-") as d:
        out = os.path.join(d, "out.json")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _CHILD, mode, json.dumps(payload), out],
                              env=env, capture_output=True, text=True, timeout=timeout)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"bench child {mode!r} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        with open(out, encoding="utf-8") as f:
            res = json.load(f)
    res["process_wall_s"] = wall
    return res


def bench_subprocesses(s: BenchShapes, threads: int) -> dict:
    """Cold compile (empty cache dir), then import-to-first-step and memory with that cache warm."""
    with tempfile.TemporaryDirectory(prefix="minidistil-numba-cache-") as cache:
        env = {"NUMBA_CACHE_DIR": cache}
        cold = _run_child("cold", asdict(s), env, threads)
        warm = _run_child("first_step", asdict(s), env, threads)
    return {"cold": cold, "warm_first_step": warm,
            "numba_disable_jit": os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")}


def attention_cblas_route(s: BenchShapes, repeats: int, warmup: int, threads: int) -> Optional[dict]:
    """Where the attention kernel runs OpenBLAS's AVX-512 kernels, the same kernel and its twin
    timed again with ``MINIDISTIL_GEMM=cblas``, as information (None where cblas is the route).

    In a fresh process: running both routes in one process slowed the AVX-512 runs that followed
    cblas ones about 2x (2.5 -> 4.5-5 ms, and the twin's next first call 12 -> 28-40 ms), for a
    reason not found; a process of its own keeps the two from touching.
    """
    if _gemm_route() != "avx512":
        return None
    payload = {"shapes": asdict(s), "repeats": repeats, "warmup": warmup, "only": ["attention"]}
    res = _run_child("kernels", payload, {"MINIDISTIL_GEMM": "cblas"}, threads)
    return {**res["rows"][0], "route": res["route"]}


def bench_single_thread(s: BenchShapes, repeats: int, warmup: int, with_torch: bool) -> dict:
    """Both steps with ONE thread for BLAS and Numba (and torch), each in a fresh process.

    Set beside the main figures, this shows how much the second core buys, and whether the
    2-thread figures suffered from sharing the machine: a multi-threaded BLAS call waits for
    its slowest thread, so it loses most when another process takes a core.
    """
    payload = {"shapes": asdict(s), "repeats": repeats, "warmup": max(1, warmup)}
    out = {"minidistil": _run_child("steps", payload, {}, 1)}
    out["torch"] = bench_torch(s, repeats, warmup, 1) if with_torch else None
    f = step_flops(s, 0.15 * s.tokens, s.tokens)  # P of the teacher step: its expected 15%
    m = out["minidistil"]
    out["distill_fraction_of_peak"] = f["distill_step"] / m["distill_step"]["median_s"] / 1e9 / m["matmul_peak_gflops"]
    return out


def bench_torch(s: BenchShapes, repeats: int, warmup: int, threads: int) -> dict:
    payload = {"shapes": asdict(s), "repeats": repeats, "warmup": max(1, warmup), "threads": threads}
    return _run_child("torch", payload, {}, threads)


# ============================================================================ the whole run

def conditions(threads: int, quick: bool, repeats: int, warmup: int) -> dict:
    import numba
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    from .kernels import backend as kb
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "numpy": np.__version__, "numba": numba.__version__, "threads": threads,
        "numba_threads": int(numba.get_num_threads()),
        "blas_threads_env": os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS"),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "numba_disable_jit": os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"),
        "backend_default": kb.get_backend(), "dtype": "float32", "quick": quick,
        "repeats": repeats, "warmup": warmup, "loadavg_start": list(os.getloadavg()),
        "attention_gemm": gemm_route_text(),
    }


def _set_threads(threads: int) -> None:
    from .kernels import backend as kb
    if hasattr(kb, "set_num_threads"):
        kb.set_num_threads(threads)
    else:
        import numba
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def evaluate_targets(r: dict) -> list:
    """One row per target: the figure, whether it is met (None when not measured)."""
    rows = []

    def add(key, label, value, name=None):
        op, bound = TARGETS[key]
        met = None if value is None else (value <= bound if op == "<=" else value >= bound)
        rows.append({"target": key, "name": name or key, "label": label, "op": op, "bound": bound,
                     "value": value, "met": met})

    ratios = r.get("ratios") or {}
    add("distill_vs_torch", "distillation step / PyTorch eager", ratios.get("distill_vs_torch"))
    flops = r.get("flops") or {}
    add("distill_matmul_fraction_of_peak", "distillation step matmul GFLOP/s / NumPy peak",
        flops.get("distill_fraction_of_peak"))
    add("teacher_vs_torch", "teacher MLM step / PyTorch eager", ratios.get("teacher_vs_torch"))
    for k in r.get("kernels") or []:
        add("kernel_speedup", f"{k['kernel']} fwd+bwd NumPy / Numba", k["speedup"], name=f"speedup {k['kernel']}")
    sub = r.get("subprocess") or {}
    add("cold_compile_s", "cold compile of all kernels and both steps (s)",
        (sub.get("cold") or {}).get("total_s"))
    add("warm_import_to_first_step_s", "warm import -> end of first distillation step (s)",
        (sub.get("warm_first_step") or {}).get("import_to_first_step_s"))
    mem = (sub.get("warm_first_step") or {}).get("memory") or {}
    add("distill_peak_memory_mb", "peak RSS of the distillation step (MB)",
        mem.get("VmHWM_mb", mem.get("ru_maxrss_mb")))
    return rows


def run(s: BenchShapes, repeats: int = 5, warmup: int = 2, threads: int = 2, quick: bool = False,
        skip: tuple = (), profile_top: int = 25, log=print) -> dict:
    """Everything, as the JSON-ready dict documented in the module docstring."""
    _set_threads(threads)
    r: dict = {k: None for k in RESULT_KEYS}
    r.update(schema=SCHEMA, skipped={}, shapes=asdict(s),
             conditions=conditions(threads, quick, repeats, warmup))

    def part(key, fn):
        if key in skip:
            r["skipped"][key] = "skipped by --skip"
            return
        log(f"[bench] {key} ...")
        t0 = time.perf_counter()
        r[key] = fn()
        log(f"[bench] {key} done in {time.perf_counter() - t0:.1f} s")

    part("kernels", lambda: bench_kernels(s, repeats, warmup))
    if r["kernels"] is not None and "subprocess" not in skip:
        att = next((k for k in r["kernels"] if k["kernel"] == "attention"), None)
        if att is not None:
            cb = attention_cblas_route(s, repeats, warmup, threads)
            if cb is not None:
                att["cblas_route"] = cb
    part("matmul", lambda: {**matmul_peak(quick, repeats), "step_shapes": step_matmul_shapes(s, repeats)})
    part("steps", lambda: bench_steps(s, repeats, warmup))
    if r["matmul"] is not None and r["steps"] is not None:  # the peak again, after the steps
        again = matmul_peak(quick, repeats)
        m = r["matmul"]
        m["peak_gflops_first"], m["peak_gflops_again"] = m["peak_gflops"], again["peak_gflops"]
        m["peak_gflops"] = max(m["peak_gflops"], again["peak_gflops"])
        m["best_gflops"] = max(m["best_gflops"], again["best_gflops"])
    if r["steps"] is not None:
        st = r["steps"]
        f = step_flops(s, st["teacher_mlm_step"]["mean_positions"], st["distill_step"]["mean_positions"])
        f["teacher_gflops"] = _gflops(f["teacher_mlm_step"], st["teacher_mlm_step"]["median_s"])
        f["distill_gflops"] = _gflops(f["distill_step"], st["distill_step"]["median_s"])
        peak = (r["matmul"] or {}).get("peak_gflops")
        f["peak_gflops"] = peak
        f["teacher_fraction_of_peak"] = f["teacher_gflops"] / peak if peak else None
        f["distill_fraction_of_peak"] = f["distill_gflops"] / peak if peak else None
        f["distill_matmul_floor_s"] = f["distill_step"] / (peak * 1e9) if peak else None
        best = (r["matmul"] or {}).get("best_gflops")  # fastest runs: what an idle machine gives
        f["distill_fraction_of_best_peak"] = (_gflops(f["distill_step"], st["distill_step"]["min_s"]) / best
                                              if best else None)
        r["flops"] = f
    else:
        r["skipped"]["flops"] = "needs steps"
    part("numerics", lambda: distill_loss_agreement(s))
    if profile_top > 0:
        part("profile", lambda: profile_distill_step(s, profile_top))
    else:
        r["skipped"]["profile"] = "--profile 0"
    part("subprocess", lambda: bench_subprocesses(s, threads))
    if "torch" not in skip and importlib.util.find_spec("torch") is None:
        r["skipped"]["torch"] = "torch is not installed (optional: pip install torch)"
    else:
        part("torch", lambda: bench_torch(s, repeats, warmup, threads))
    if r["torch"] is not None and r["steps"] is not None:
        # a shared machine drifts over minutes: time our steps again after PyTorch's, so that the
        # ratios compare rounds that bracket it (median of both rounds against PyTorch's median)
        log("[bench] steps again, after PyTorch ...")
        again = bench_steps(s, repeats, warmup)
        for name, st in r["steps"].items():
            st["times_s_after_torch"] = again[name]["times_s"]
            both = st["times_s"] + again[name]["times_s"]
            st["median_s_both_rounds"], st["min_s_both_rounds"] = float(np.median(both)), float(min(both))
    part("single_thread", lambda: bench_single_thread(s, repeats, warmup, r["torch"] is not None))
    if r["torch"] is not None and r["steps"] is not None:
        tt, st = r["torch"], r["steps"]
        r["ratios"] = {
            "teacher_vs_torch": st["teacher_mlm_step"]["median_s_both_rounds"] / tt["teacher_mlm_step"]["median_s"],
            "distill_vs_torch": st["distill_step"]["median_s_both_rounds"] / tt["distill_step"]["median_s"],
            "teacher_vs_torch_best": (st["teacher_mlm_step"]["min_s_both_rounds"]
                                      / min(tt["teacher_mlm_step"]["times_s"])),
            "distill_vs_torch_best": st["distill_step"]["min_s_both_rounds"] / min(tt["distill_step"]["times_s"]),
        }
        one = r["single_thread"] or {}
        if one.get("torch"):
            for name, key in (("teacher_mlm_step", "teacher"), ("distill_step", "distill")):
                r["ratios"][f"{key}_vs_torch_1thread"] = \
                    one["minidistil"][name]["median_s"] / one["torch"][name]["median_s"]
    else:
        r["skipped"]["ratios"] = "needs steps and torch"
    r["targets"] = evaluate_targets(r)
    r["conditions"]["loadavg_end"] = list(os.getloadavg())
    return r


# ============================================================================ output

def _fmt_s(x) -> str:
    if x is None:
        return "-"
    return f"{x * 1e3:.2f} ms" if x < 1.0 else f"{x:.2f} s"


def _fmt(x, spec=".2f") -> str:
    return "-" if x is None else format(x, spec)


def _table(headers: list, rows: list) -> list:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _met(m) -> str:
    return "not measured" if m is None else ("**met**" if m else "**not met**")


def summary_lines(r: dict, targets: bool = True) -> list:
    """The tables shared by stdout and the doc (markdown, readable as plain text)."""
    L: list = []
    c = r["conditions"]
    if targets:
        L += [f"Run {c['date_utc']} on {c['cpu']} ({c['cpu_count']} cores), {c['threads']} threads, "
              f"float32, median of {c['repeats']} after {c['warmup']} warm-up; load average "
              f"{c['loadavg_start'][0]:.1f} at start, {c.get('loadavg_end', [float('nan')])[0]:.1f} at end.",
              "", "### Targets", ""]
        L += _table(["target", "bound", "figure", "status"],
                    [[t["label"], f"{t['op']} {t['bound']:g}", _fmt(t["value"], ".3g"), _met(t["met"])]
                     for t in r["targets"]])
    if r["kernels"]:
        L += ["", "### Kernels, forward + backward", ""]
        L += _table(["kernel", "shape", "Numba", "NumPy twin", "speed-up", "each turn", "two-core probe",
                     "Numba version?"],
                    [row for k in r["kernels"] for row in _kernel_rows(k)])
        if any(k.get("cblas_route") for k in r["kernels"]):
            L += ["", "The attention kernel's products went to OpenBLAS's AVX-512 small-matrix kernels "
                  "(`kernels/gemm.py`); the row marked cblas route is the same kernel with `cblas_sgemm` "
                  "(`MINIDISTIL_GEMM=cblas`, OpenBLAS's own choice for this CPU) and its twin, timed in a "
                  "fresh process (information, not a target)."]
    if r["steps"]:
        L += ["", "### Training steps", ""]
        rows = []
        tor = r["torch"] or {}
        for name in ("teacher_mlm_step", "distill_step"):
            st = r["steps"][name]
            tt = (tor.get(name) or {}).get("median_s")
            f = r["flops"] or {}
            key = "teacher" if name.startswith("teacher") else "distill"
            both = st.get("median_s_both_rounds")
            rows.append([name, _fmt_s(st["median_s"]), _fmt_s(both), f"{st['tokens_per_s']:,.0f}",
                         _fmt(f.get(key + "_gflops"), ".1f"), _fmt(f.get(key + "_fraction_of_peak"), ".0%"),
                         _fmt_s(tt), _fmt(tt and both and both / tt, ".2f"), _fmt(st["cpu_over_wall"], ".2f")])
        L += _table(["step", "minidistil", "both rounds", "tokens/s", "matmul GFLOP/s", "of peak",
                     "PyTorch eager", "ratio", "CPU/wall"], rows)
        if tor:
            L += ["", "\"both rounds\": the median over minidistil's runs before and after PyTorch's; the "
                      "ratio divides it by PyTorch's median."]
        for name in ("teacher_mlm_step", "distill_step"):
            ph = r["steps"][name]["phases_s"]
            tot = sum(ph.values()) or 1.0
            L += ["", f"Phases of {name}: " + ", ".join(f"{k} {_fmt_s(v)} ({v / tot:.0%})" for k, v in ph.items())]
    if r["matmul"]:
        m = r["matmul"]
        L += ["", f"### Matmul yardstick: NumPy float32 peak {m['peak_gflops']:.1f} GFLOP/s "
                  f"(square sizes {', '.join(str(x['n']) for x in m['sizes'])})", ""]
        L += _table(["matmul in the steps", "A", "B", "plain `@`", "of peak", "minidistil's pool", "of peak"],
                    [[x["name"], tuple(x["a"]), tuple(x["b"]), _fmt_s(x["median_s"]),
                      f"{x['gflops'] / m['peak_gflops']:.0%}", _fmt_s(x.get("pool_median_s")),
                      f"{x['pool_gflops'] / m['peak_gflops']:.0%}" if x.get("pool_gflops") else "-"]
                     for x in m["step_shapes"]])
    one = r.get("single_thread")
    if one:
        L += ["", "### The same steps with one thread (fresh processes)", ""]
        rows = []
        for name in ("teacher_mlm_step", "distill_step"):
            m1 = one["minidistil"][name]
            t1 = (one.get("torch") or {}).get(name) or {}
            m2 = (r.get("steps") or {}).get(name) or {}
            rows.append([name, _fmt_s(m1["median_s"]), _fmt_s(m2.get("median_s")),
                         _fmt(m2.get("median_s") and m1["median_s"] / m2["median_s"], ".2f"),
                         _fmt_s(t1.get("median_s")), _fmt(t1.get("median_s") and m1["median_s"] / t1["median_s"], ".2f")])
        L += _table(["step", "minidistil, 1 thread", "minidistil, main run", "speed-up from threads",
                     "PyTorch eager, 1 thread", "ratio at 1 thread"], rows)
    sub = r["subprocess"]
    if sub:
        cold, warm = sub["cold"], sub["warm_first_step"]
        L += ["", "### Start-up and memory (fresh processes)", ""]
        L += _table(["what", "figure"], [
            ["cold: import minidistil.kernels", _fmt_s(cold["import_s"])],
            ["cold: compile all kernels (float32)", _fmt_s(cold["kernels_total_s"])],
            ["cold: + tiny teacher and distillation steps", _fmt_s(cold["tiny_steps_s"])],
            ["cold: total, import to end", _fmt_s(cold["total_s"])],
            ["warm: import -> models built", _fmt_s(warm["build_s"])],
            ["warm: import -> end of first distillation step", _fmt_s(warm["import_to_first_step_s"])],
            ["warm: second step", _fmt_s(warm["second_step_s"])],
            ["RSS before the first step (MB)", _fmt(warm["rss_before_step"].get("VmRSS_mb"), ".0f")],
            ["peak RSS after two steps (MB, VmHWM)", _fmt(warm["memory"].get("VmHWM_mb"), ".0f")],
            ["ru_maxrss (MB; includes the parent's peak at fork)", _fmt(warm["memory"].get("ru_maxrss_mb"), ".0f")],
        ])
    if r["numerics"]:
        n = r["numerics"]
        L += ["", f"Numerics: distillation loss float32+Numba {n['float32_numba']:.6f} vs float64+NumPy "
                  f"{n['float64_numpy']:.6f}, relative difference {n['rel_diff']:.1e} (bound {n['bound']:g})."]
    if r["skipped"]:
        L += ["", "Skipped: " + "; ".join(f"{k}: {v}" for k, v in r["skipped"].items())]
    return L


# ============================================================================ docs/performance.md

# Why a kernel may stay under 3x, from what is known of NumPy and Numba on this machine
# (reference.md, "Numba on this kind of machine"); used only for kernels that miss the target.
KERNEL_LIMITS = {
    "softmax_T": "NumPy's float32 `exp` is SIMD-vectorised while a Numba loop calls scalar libm "
                 "`expf` (no SVML since numba 0.62), so per element the twin is already fast; the "
                 "kernel wins only by fusing the passes (max, exp, sum, scale, backward) and by "
                 "threads, on a (N, V) array that does not fit in cache (memory-bound).",
    "attention": "most of its time is six small products per batch x head (q k^T and probs v "
                 "forward; probs^T dout, dout v^T, dscores k and dscores^T q backward). The Numba "
                 "kernel hands them to BLAS one head at a time from its prange (kernels/gemm.py) and "
                 "fuses everything else, so its floor is those products at the speed BLAS reaches on "
                 "128 x 128 x 32 matrices: with cblas on an AVX2 kernel about 85% of the square-matmul "
                 "peak (3.7 ms at the bench shapes on the development machine), half that where "
                 "OpenBLAS's AVX-512 kernels can be called (the conditions say which route ran); a "
                 "Numba loop cannot run them faster. The speed-up also moves from turn to turn (the "
                 "kernel table): the two-thread kernel loses more to other load on the machine than "
                 "the mostly single-threaded twin.",
    "layernorm": "a memory-bound pass over (B, T, C); the twin's temporaries are cheap at C = 128.",
    "gelu": "the twin's erf is `np.vectorize(math.erf)`, so a miss here means the kernel itself is slow.",
    "embedding_backward": "a small scatter-add (N x C = 0.5M additions, a few ms at most), so the "
                          "figure is sensitive to call overhead and to other processes on the machine.",
}


def _limit_text(t: dict, r: dict) -> str:
    """What holds a missed target back, from this run's own numbers."""
    key = t["target"]
    st, f, m = r.get("steps") or {}, r.get("flops") or {}, r.get("matmul") or {}
    if key in ("distill_vs_torch", "teacher_vs_torch", "distill_matmul_fraction_of_peak"):
        name = "distill_step" if key.startswith("distill") else "teacher_mlm_step"
        if name not in st:
            return ""
        ph = st[name]["phases_s"]
        top = sorted(ph.items(), key=lambda kv: -kv[1])[:2]
        tot = sum(ph.values()) or 1.0
        text = ("Largest phases: " + ", ".join(f"{k} {_fmt_s(v)} ({v / tot:.0%})" for k, v in top) + ". ")
        if f.get("peak_gflops"):
            flop = f["distill_step" if name == "distill_step" else "teacher_mlm_step"]
            floor = flop / (f["peak_gflops"] * 1e9)
            text += (f"Its {flop / 1e9:.1f} GFLOP of matmuls would take {_fmt_s(floor)} at this run's "
                     f"peak ({f['peak_gflops']:.0f} GFLOP/s); the step takes {_fmt_s(st[name]['median_s'])}. ")
        shapes = m.get("step_shapes") or []
        if shapes and m.get("peak_gflops"):
            worst = sorted(shapes, key=lambda x: x.get("pool_gflops", x["gflops"]))[:2]
            text += ("The slowest matmul shapes of the step reach only " + ", ".join(
                f"{x.get('pool_gflops', x['gflops']) / m['peak_gflops']:.0%} ({x['name']})" for x in worst)
                + " of the peak through minidistil's pool. ")
        one = (r.get("ratios") or {}).get(("distill" if name == "distill_step" else "teacher") + "_vs_torch_1thread")
        st1 = ((r.get("single_thread") or {}).get("minidistil") or {}).get(name)
        if st1:
            text += (f"With one thread (fresh process) the step takes {_fmt_s(st1['median_s'])}"
                     + (f", {one:.2f}x PyTorch eager at one thread" if one else "") + ". ")
        prof = r.get("profile") or []
        if prof and name == "distill_step":
            text += "Top functions by own time: " + ", ".join(
                f"`{p['function']}` {_fmt_s(p['tottime_s'])}" for p in prof[:3]) + "."
        return text
    if key == "kernel_speedup":
        kname = t["name"].split(" ", 1)[1]
        k = next((k for k in r.get("kernels") or [] if k["kernel"] == kname), None)
        if k is not None and not k["has_numba"]:
            return "No Numba version yet: the public function falls back to the NumPy twin."
        text = KERNEL_LIMITS.get(kname, "")
        peak = (r.get("matmul") or {}).get("peak_gflops")
        sh = r.get("shapes") or {}
        if kname == "attention" and k is not None and peak and sh:
            # six products of 2 * T * T * HS flop per batch x head: 6 * 2 * B * T^2 * C in all
            products = 6 * 2.0 * sh["batch"] * sh["seq"] ** 2 * sh["hidden"] / (peak * 1e9)
            text += (f" In this run the six products alone would take {_fmt_s(products)} at the "
                     f"matmul peak ({peak:.0f} GFLOP/s), while 3x needs the whole kernel within "
                     f"{_fmt_s(k['numpy']['median_s'] / 3)}; the Numba kernel takes {_fmt_s(k['numba']['median_s'])}.")
        probes = [p for p in (k or {}).get("two_core_probe") or [] if p is not None]
        if probes and min(probes) < 1.5:
            text += (f" The two-core probe before the Numba turns gave {_probes(k)} (2 = two free cores): "
                     "in the turns near 1 something else held the second core, which slows the "
                     "two-thread kernel far more than its mostly single-threaded twin.")
        if k is not None and k["speedup"] < 1.0:
            text += (" Here the Numba version was even slower than its twin: it alternates Numba's "
                     "thread pool (the fused loops) with BLAS's (the products), two pools on two cores.")
        return text
    if key == "cold_compile_s":
        cold = (r.get("subprocess") or {}).get("cold") or {}
        per = cold.get("kernels_compile_s") or {}
        worst = sorted(per.items(), key=lambda kv: -kv[1])[:3]
        return ("Compile is serial LLVM work per kernel and dtype; the slowest: "
                + ", ".join(f"{k} {_fmt_s(v)}" for k, v in worst) + ".")
    if key == "warm_import_to_first_step_s":
        w = (r.get("subprocess") or {}).get("warm_first_step") or {}
        text = (f"Import and model construction take {_fmt_s(w.get('build_s'))}, the first step "
                f"{_fmt_s((w.get('import_to_first_step_s') or 0) - (w.get('build_s') or 0))} "
                f"(a later step {_fmt_s(w.get('second_step_s'))}), so the step's own speed decides this target.")
        st1 = ((r.get("single_thread") or {}).get("minidistil") or {}).get("distill_step")
        if st1:
            text += f" With one thread a step took {_fmt_s(st1['median_s'])}."
        return text
    if key == "distill_peak_memory_mb":
        s = r["shapes"]
        mb = s["batch"] * s["seq"] * s["vocab"] * 4 / 1e6
        return (f"Each (N, V) float32 array of logits, probabilities or their gradients is {mb:.0f} MB; "
                f"the teacher's and the student's logits and the loss's intermediates hold several at once.")
    return ""


FLOP_MODEL = """\
Only matrix products are counted (2 FLOP per multiply-add); softmax, LayerNorm, GELU, AdamW and the
losses are memory-bound and left out, so "GFLOP/s" is a lower bound on how busy the step keeps the
matmul units. With N = B*T tokens, hidden C, feed-forward F, heads of size HS, vocabulary V:

- one block, forward: q, k, v and output projections `4 * 2*N*C*C`, the FFN `2 * 2*N*C*F`,
  attention scores and `probs @ v` `2 * 2*B*T*T*C` (summed over heads); at the demo shapes
  8*4096*128^2 + 4*4096*128*512 + 4*32*128^2*128 = 1.88 GFLOP;
- MLM head at P positions, forward: transform `2*P*C*C`, tied decoder `2*P*C*V`;
- a backward costs twice its forward (one matmul for the input gradient, one for the weight);
- teacher MLM step = `3 * (L_t * block + head(P = masked tokens))`;
- distillation step = `(L_t * block + head(P = N))` for the teacher (forward only)
  `+ 3 * (L_s * block + head(P = N))` for the student (Lce covers every real token).

Achieved GFLOP/s = counted FLOP / median step time; the fraction is taken against the NumPy
float32 matmul peak (square products of 512, 1024 and 2048, the best median of two measurements
in the same run, one before and one after the steps)."""

METHOD = """\
- Timings are wall-clock medians of `--repeats` runs after `--warmup` untimed runs (the first
  call of a Numba kernel compiles, so at least one warm-up is always made). "CPU/wall" is process
  CPU time over wall time: about the thread count on an idle machine, lower when other processes
  take the cores. "best" figures use the fastest run instead of the median.
- Kernels: the public function (argument checks included) under `use_backend("numba")` and
  `use_backend("numpy")`, forward then backward, float32, at the shapes they have in the
  distillation step. The two are timed in three alternating turns of `--repeats` runs each
  (at least one warm-up, and at least 0.2 s of them, before each turn: after a pause the cores
  take about 50 ms to come back to speed) and the medians taken over all turns. Before each Numba turn a
  two-core probe times a compute-bound Numba loop on one and on two threads: about 2 when two
  cores are free, about 1 when something else holds the second one (then every two-thread kernel
  loses against its mostly single-threaded twin). Where the attention kernel uses OpenBLAS's
  AVX-512 kernels, the same kernel
  with `MINIDISTIL_GEMM=cblas` and its twin are timed again in a fresh process, as information.
  On the development machine the same code also moves between speed levels for seconds to
  minutes (the attention twin, for one, runs at 11.5-12.6 ms or at 17.5-18.4 ms), so figures
  differ from run to run; the "each turn" column shows the spread within this run.
- Steps: `minidistil.bench.make_teacher_step` / `make_distill_step`, the same calls as
  `train/pretrain.py` and `train/distill.py` plus gradient clipping at 5.0 and AdamW
  (lr 5e-4, betas (0.9, 0.98), eps 1e-6). Batches are `[CLS] random ids [SEP]` without padding;
  masking is drawn afresh each step.
- Start-up and memory run in fresh interpreters: "cold" with an empty `NUMBA_CACHE_DIR` compiles
  every kernel (float32) at tiny shapes, then tiny teacher and distillation steps; "warm" reuses
  that cache, builds the demo models and runs two distillation steps; peak memory is that
  process's `VmHWM` (the high-water mark of its own address space), so it includes the
  interpreter, NumPy, Numba and both models. `ru_maxrss` is recorded too, but Linux carries the
  parent's peak over a fork + exec into it, so it can read higher than the child ever used.
  MB = 10^6 bytes.
- PyTorch (`minidistil/bench_torch.py`, only when `torch` is installed) runs in its own process:
  plain-torch twins of `BertForMaskedLM` and `DistilBertForMaskedLM` (no dropout, eager attention),
  the Hugging Face `Distiller.step` loss (KLDiv batchmean * T^2 on every real token, MLM
  cross-entropy, cosine loss on the last hidden states), clipping and `torch.optim.AdamW`,
  `torch.set_num_threads(threads)`. As in Hugging Face, its MLM head computes logits at every
  position; minidistil's teacher step computes them only at the masked positions.
- Threads: `--threads` sizes minidistil's two pools, Numba's (the fused kernels) and the matmul
  pool of `minidistil/kernels/blas.py`; inside the steps OpenBLAS is held to one thread and each
  product is cut over the matmul pool, so one pool computes at a time. The NumPy twins in the
  kernel table run plain `@` with BLAS's own threads (its default: one per core), as a user's
  NumPy code would. The fresh processes get `OPENBLAS_NUM_THREADS` and `NUMBA_NUM_THREADS`.
  The kernels set `OMP_WAIT_POLICY=PASSIVE` so that idle Numba workers sleep
  (`minidistil/kernels/backend.py`), and glibc's malloc keeps freed activations for the next
  step (`minidistil/kernels/malloc.py`).
- Ratios to PyTorch: minidistil's steps are timed twice, before and after PyTorch's process,
  and the ratio divides the median of both rounds by PyTorch's median: a shared machine's speed
  drifts over minutes, and bracketing keeps that drift from favouring either side."""


def _threads_paragraph(r: dict) -> list:
    """What the one-thread run says about the two-thread figures."""
    one, st = r.get("single_thread"), r.get("steps")
    if not one or not st:
        return []
    out = ["", "## One thread against two", ""]
    slower = []
    for name in ("teacher_mlm_step", "distill_step"):
        m1, m2 = one["minidistil"][name]["median_s"], st[name]["median_s"]
        ph1 = one["minidistil"][name]["phases_s"]
        out += [f"- {name}: {_fmt_s(m1)} with one thread, {_fmt_s(m2)} with {r['conditions']['threads']} "
                f"(CPU/wall {_fmt(st[name]['cpu_over_wall'], '.2f')}); phases with one thread: "
                + ", ".join(f"{k} {_fmt_s(v)}" for k, v in ph1.items()) + "."]
        if m1 < m2:
            slower.append(name)
    out.append("")
    if slower:
        out.append(f"**More threads made {' and '.join(slower)} slower in this run.** A multi-threaded BLAS "
                   "call hands each product to a pool of worker threads that spin while they wait; the "
                   "steps make hundreds of small products (the attention's stacked matmuls are one BLAS "
                   "call per batch x head), and on a shared machine every hand-off can wait for a "
                   "descheduled thread, while the spinning burns the CPU other processes need. With one "
                   "thread there is nothing to hand off. The effect comes and goes with the load, so "
                   "two steps measured minutes apart can differ by an order of magnitude. ")
    out[-1] += (f"One thread's matmul peak was {one['minidistil']['matmul_peak_gflops']:.0f} GFLOP/s, and the "
                f"one-thread distillation step ran its matmuls at {one['distill_fraction_of_peak']:.0%} of it.")
    return out


LEVERS = """What was done, with what it measured on this shared 2-core machine, and what is left.

Done:

1. **One threading owner per phase** (`minidistil/kernels/blas.py`): OpenBLAS's two threads ran
   the attention's small batched products at 0.8-3.2 ms each against 0.7-0.8 ms cut over two
   Python threads with BLAS single-threaded, and its workers spin between calls. Teacher step
   241-245 -> 221-228 ms, distillation step 326-331 -> 286-299 ms (malloc tuned in both, the
   same minute); backward products run in pairs, one whole product per thread (1-8% faster).
2. **Freed memory kept for reuse** (`minidistil/kernels/malloc.py`): about 25,000 page faults per
   teacher step went away: 264-268 -> 221-228 ms (pool in both, the same minute); serving no
   block by `mmap` took the distillation step from 577 faults to none.
3. **Stacked q/k/v projection, heads as views** (`minidistil/layers/attention.py`): one
   (N, C) x (C, 3C) product; no head-split copies; one input-gradient product instead of three
   products and two additions (teacher step 243-250 -> 235-242 ms, the same minute).
4. **Fused soft-target loss** (`minidistil/kernels/kl.py`): one row kernel returns each row's KL
   and its gradient from two reads of the logits (distillation step 0.41 -> 0.36 of PyTorch).
5. **Attention one head at a time, its products called from Numba** (`kernels/attention.py`,
   `kernels/gemm.py`): one `prange` over B x NH calls OpenBLAS's `cblas_sgemm` by address for
   the head's six products and runs the softmax on the head's (T, T) tile while it is in cache,
   kept transposed so every softmax pass is a vectorised loop over queries; keys after a
   sequence's last real key are not computed. Attention forward+backward 6.8 ms -> 4.5-5.0 ms
   (twin 12.4-13.7 ms), and no (B, NH, T, T) temporaries beyond the probabilities.
6. **AVX-512 products where OpenBLAS does not pick them** (`kernels/gemm.py`): NumPy's OpenBLAS
   does not know the development machine's CPU (AMD Zen 5, family 0x1A) and runs its AVX2
   "Haswell" kernels there, although the same library ships AVX-512 kernels. The attention
   kernel calls OpenBLAS's exported AVX-512 small-matrix kernels directly where the CPU has
   AVX-512 (self-tested at start-up; `MINIDISTIL_GEMM=cblas` turns it off): 4.1-4.4 us per
   128 x 128 x 32 product against 9.4-9.8 us; attention forward+backward 4.3-4.9 ms ->
   2.3-2.9 ms.
7. **Fused passes** in LayerNorm, GELU (vectorisable `fast_erf`/`fast_exp`), the softmax-with-
   temperature kernels, and the bias added inside each matmul piece; `fast_exp_nonpositive`
   (one power of two, flush below 2^-126) halves the cost of the attention softmax's exp.

Left:

1. **No (N, V) arrays in distillation**: the logits of teacher and student and their gradient
   are (4096, 4096) float32 = 64 MB each, so every pass over them goes through DRAM. Computing
   decoder, loss and decoder gradient in blocks of rows would keep them in cache (the loss phase
   is 8% of the step, the decoder products about a third).
2. **Cold caches in the backward**: each layer keeps ~30 MB of activations, so every backward
   product reads its operands from DRAM (the step's products run 15-20% slower than the same
   products timed alone)."""


def _kernel_rows(k: dict) -> list:
    """The kernel table's row(s) for one kernel: a second one for the cblas route when timed."""
    rows = [[k["kernel"], k["shape"], _fmt_s(k["numba"]["median_s"]), _fmt_s(k["numpy"]["median_s"]),
             f"{k['speedup']:.1f}x", _turns(k), _probes(k), "yes" if k["has_numba"] else "no (falls back to the twin)"]]
    cb = k.get("cblas_route")
    if cb:
        rows.append([k["kernel"] + ", cblas route (separate process)", k["shape"],
                     _fmt_s(cb["numba"]["median_s"]), _fmt_s(cb["numpy"]["median_s"]),
                     f"{cb['speedup']:.1f}x", _turns(cb), _probes(cb), "yes (information)"])
    return rows


def _probes(k: dict) -> str:
    """:func:`two_core_probe` before each Numba turn, e.g. "2.0 / 1.1 / 1.9" (1 = second core taken)."""
    return " / ".join("-" if p is None else f"{p:.1f}" for p in k.get("two_core_probe") or []) or "-"


def _turns(k: dict) -> str:
    """The speed-up of each alternating turn, e.g. "2.9 / 3.1 / 3.0" (how much it moved)."""
    a, b = k["numba"].get("turn_medians_s") or [], k["numpy"].get("turn_medians_s") or []
    return " / ".join(f"{y / x:.1f}" for x, y in zip(a, b) if x > 0)


def render_doc(r: dict) -> str:
    """docs/performance.md from one run's results."""
    c = r["conditions"]
    lines = summary_lines(r, targets=False)
    out = ["# Performance", "",
           "<!-- Generated by `minidistil bench --write-doc`; edit minidistil/bench.py, not this file. -->", "",
           "How fast minidistil's kernels and training steps run on a 2-core CPU, against the NumPy "
           "twins, NumPy's own matmul peak and PyTorch eager, and which of the targets of issue 5 "
           "are met. Regenerate with:", "",
           "```bash", "minidistil bench --write-doc          # or: python -m minidistil.bench --write-doc",
           "minidistil bench --quick --skip torch  # a smoke run in seconds", "```", "",
           "## Targets", ""]
    rows = []
    for t in r["targets"]:
        limit = "" if t["met"] else _limit_text(t, r)
        rows.append([t["label"], f"{t['op']} {t['bound']:g}", _fmt(t["value"], ".3g"), _met(t["met"]),
                     limit.replace("|", "\\|")])
    out += _table(["target", "bound", "figure", "status", "what limits it"], rows)
    load = c["loadavg_start"][0]
    out += ["", "## Conditions of this run", "",
            f"{c['date_utc']}, {c['cpu']}, {c['cpu_count']} cores, Python {c['python']}, NumPy "
            f"{c['numpy']}, Numba {c['numba']}"
            + (f", PyTorch {r['torch']['torch_version']}" if r.get("torch") else ", PyTorch not measured")
            + f"; {c['threads']} threads, float32, median of {c['repeats']} runs after {c['warmup']} warm-up"
            + (" (**quick shapes: the figures say nothing about the targets**)" if c["quick"] else "") + ".",
            "", f"The attention kernel's products: {c.get('attention_gemm', 'not recorded')}.", ""]
    if load > 0.5 * (c["cpu_count"] or 1):
        out += [f"**The machine was shared while this ran** (1-minute load average {load:.1f} at the "
                f"start and {c.get('loadavg_end', [float('nan')])[0]:.1f} at the end on "
                f"{c['cpu_count']} cores; see the CPU/wall column): absolute times are inflated and "
                "noisy, multi-threaded BLAS suffers most when a core is taken away mid-product. "
                "Ratios measured in the same run (minidistil vs PyTorch, Numba vs NumPy, fraction of "
                "peak) are more meaningful than the seconds, but still carry that noise. "
                "/work/shared/reference.md gives PyTorch eager 0.67 s (teacher step) and 1.0 s "
                "(distillation step) and a 190 GFLOP/s float32 peak on an idle machine of this kind.", ""]
    out += ["## Results"] + lines
    if r.get("ratios"):
        ra = r["ratios"]
        out += ["", f"Ratios from the fastest runs instead of medians: teacher step "
                    f"{ra['teacher_vs_torch_best']:.2f}, distillation step {ra['distill_vs_torch_best']:.2f}."]
    if r.get("flops") and r["flops"].get("distill_fraction_of_best_peak") is not None:
        out += [f"Distillation step at its fastest run against the fastest matmul run: "
                f"{r['flops']['distill_fraction_of_best_peak']:.0%} of peak."]
    out += _threads_paragraph(r)
    if r.get("profile"):
        out += ["", "## Where the distillation step spends its time (cProfile, own time)", "",
                "Matrix products written with `@` are counted in the Python function that contains them.", ""]
        out += _table(["function", "where", "calls", "own time", "cumulative"],
                      [[f"`{p['function']}`", p["where"], p["calls"], _fmt_s(p["tottime_s"]),
                        _fmt_s(p["cumtime_s"])] for p in r["profile"][:15]])
    out += ["", "## Open levers", "", LEVERS, "", "## FLOP model", "", FLOP_MODEL, "", "## Method", "", METHOD, ""]
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="minidistil bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny shapes (seconds; for tests), not the demo shapes")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (default 5, quick 2)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 2, quick 1)")
    p.add_argument("--threads", type=int, default=2,
                   help="minidistil's threads: Numba kernels and the matmul pool; BLAS runs single-threaded (default 2)")
    p.add_argument("--json", default=DEFAULT_JSON, metavar="PATH", help=f"results file (default {DEFAULT_JSON})")
    p.add_argument("--write-doc", nargs="?", const=str(DEFAULT_DOC), default=None, metavar="PATH",
                   help="regenerate docs/performance.md (or PATH) from this run")
    p.add_argument("--skip", default="", help="comma list of parts to skip: kernels,matmul,steps,numerics,"
                                               "profile,subprocess,torch,single_thread")
    p.add_argument("--profile", type=int, default=25, metavar="N",
                   help="cProfile the distillation step, keep the top N functions (0: off)")
    a = p.parse_args(argv)
    repeats = a.repeats if a.repeats is not None else (2 if a.quick else 5)
    warmup = a.warmup if a.warmup is not None else (1 if a.quick else 2)
    if repeats < 1 or warmup < 0 or a.threads < 1:
        p.error("--repeats and --threads must be >= 1, --warmup >= 0")
    skip = tuple(x.strip() for x in a.skip.split(",") if x.strip())
    parts = {"kernels", "matmul", "steps", "numerics", "profile", "subprocess", "torch", "single_thread"}
    if set(skip) - parts:
        p.error(f"--skip: unknown parts {sorted(set(skip) - parts)}; choose from {sorted(parts)}")
    s = BenchShapes.quick() if a.quick else BenchShapes()
    r = run(s, repeats, warmup, a.threads, a.quick, skip, a.profile, log=lambda m: print(m, file=sys.stderr))
    print("\n".join(summary_lines(r)))
    _atomic_write(a.json, json.dumps(r, indent=1, default=float) + "\n")
    print(f"\nresults written to {a.json}")
    if a.write_doc:
        _atomic_write(a.write_doc, render_doc(r))
        print(f"doc written to {a.write_doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
