"""Each kernel's forward + backward under the Numba backend and under its NumPy twin, and the
matrix products of the steps timed alone (plain ``@`` against the fast layer's pool).

Legend: B batch, T sequence, C hidden, NH heads, HS head size, F feed-forward, V vocabulary,
N = B*T tokens.
"""
from __future__ import annotations

import sys

import numpy as np

from .. import kernels as K
from ..kernels import use_backend
from .measure import gflops, let_blas_workers_sleep, measure, two_core_probe
from .shapes import BenchShapes

TEMPERATURE = 2.0
KERNEL_ROUNDS = 3  # Numba and twin timed in turns, so a slow spell of the machine hits both


def _has_numba_version(fn) -> bool:
    """True when the public kernel ``fn`` has a Numba version distinct from its NumPy twin."""
    mod = sys.modules[fn.__module__]
    nb = getattr(mod, fn.__name__ + "_numba", None)
    return nb is not None and nb is not getattr(mod, fn.__name__ + "_numpy", None)


def kernel_cases(s: BenchShapes, seed: int = 0) -> list:
    """``[(name, shape, run, public_fns)]``: each ``run()`` does one forward+backward in float32,
    at the shape the kernel has in the distillation step: softmax at TEMPERATURE over the (N, V) logits
    (the soft-target loss), LayerNorm on (B, T, C), GELU on (B, T, F), attention on
    (B, NH, T, HS) with some padded keys, the embedding scatter-add of N rows into (V, C)."""
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
    ids = rng.integers(0, V, size=N).astype(np.int64)  # (N,)
    dy_e = rng.standard_normal((N, C)).astype(f32)  # (N, C)

    def softmax():
        p, cache = K.softmax_forward(x_v, TEMPERATURE)  # (N, V)
        K.softmax_backward(dp_v, cache)

    def layernorm():
        y, cache = K.layernorm_forward(x_c, gamma, beta, 1e-12)  # (B, T, C)
        K.layernorm_backward(dy_c, cache)

    def gelu():
        y, cache = K.gelu_forward(x_f, "none")  # (B, T, F)
        K.gelu_backward(dy_f, cache)

    def attention():
        out, cache = K.attention_forward(q, k, v, mask)  # (B, NH, T, HS)
        K.attention_backward(dout, cache)

    return [
        ("softmax_t", f"({N}, {V}) tau={TEMPERATURE}", softmax, (K.softmax_forward, K.softmax_backward)),
        ("layernorm", f"({B}, {T}, {C})", layernorm, (K.layernorm_forward, K.layernorm_backward)),
        ("gelu", f"({B}, {T}, {F}) erf", gelu, (K.gelu_forward, K.gelu_backward)),
        ("attention", f"({B}, {NH}, {T}, {HS}) masked", attention, (K.attention_forward, K.attention_backward)),
        ("embedding_backward", f"({N}, {C}) -> ({V}, {C})", lambda: K.embedding_backward(dy_e, ids, V),
         (K.embedding_backward,)),
    ]


def bench_kernels(s: BenchShapes, repeats: int, warmup: int, rounds: int = KERNEL_ROUNDS) -> list:
    """Forward+backward of each kernel under both backends; ``speedup`` = NumPy / Numba time.

    Each backend is timed in ``rounds`` turns (Numba, twin, Numba, twin, ...), ``repeats`` runs
    each; the medians are over all turns, so a slow spell of a shared machine hits both sides.
    """
    rows = []
    for name, shape, run, fns in kernel_cases(s):
        row = {"kernel": name, "shape": shape, "has_numba": all(_has_numba_version(f) for f in fns)}
        turns = {"numba": [], "numpy": []}
        probes = []
        for turn in range(max(1, rounds)):
            for backend in ("numba", "numpy"):
                if backend == "numba":
                    let_blas_workers_sleep()  # the previous twin may have run BLAS's own threads
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


def step_matmul_shapes(s: BenchShapes, repeats: int) -> list:
    """The matmuls the steps are made of, timed alone: plain ``a @ b`` (BLAS's own threads) and,
    when the fast layer is on, its pool (fast/threads.py: cut over threads, BLAS single-threaded)."""
    from .. import fast
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
    if fast.enabled():
        from ..fast.threads import matmul_threaded
        let_blas_workers_sleep()
        for name, sa, sb, a, b in operands:
            pool[name] = measure(lambda: matmul_threaded(a, b), max(3, repeats), 1)
    rows = []
    for name, sa, sb, a, b in operands:
        flop = 2.0 * np.prod(sa) * sb[-1]
        plain = _plain_blas(lambda: measure(lambda: a @ b, max(3, repeats), 1))
        p = pool.get(name)
        rows.append({"name": name, "a": list(sa), "b": list(sb), "median_s": plain["median_s"],
                     "gflops": gflops(flop, plain["median_s"]),
                     "pool_median_s": p and p["median_s"], "pool_gflops": p and gflops(flop, p["median_s"])})
    return rows


def _plain_blas(fn):
    """``fn()`` with BLAS's own thread count even while the fast layer holds it to one."""
    from ..fast import threads
    return threads._with_blas_threads(fn)


def attention_route_text() -> str:
    """Which attention route the fast layer has, in words for the doc."""
    from .. import fast
    i = fast.info()
    if not i["enabled"]:
        return "plain (the fast layer is off: --no-fast)"
    if "attention" in i["on"]:
        why = i["off"].get("avx512")
        return i["on"]["attention"] + (f"; no AVX-512 route: {why}" if why else "")
    return "plain: " + i["off"].get("attention", "off")
