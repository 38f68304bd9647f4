"""Where the fast layer's matmul pool pays: one product, plain against cut over two threads.

    python -m minidistil.bench.pool_split            # prints a Markdown table

For each shape (M, K, N), float32: ``a @ b`` as one single-threaded BLAS call (BLAS held to one
thread, as the fast layer holds it) against ``matmul_threaded``, the rows cut into two pieces on
the pool, whatever ``MIN_SPLIT_MACS`` says. The turns alternate between the two, so a slow spell
of a shared machine hits both; each figure is the best turn's mean per call. "pool / plain" below
1 means cutting pays. The shapes are a batch-1 sequence (128 rows) at the demo's and BERT-base's
widths, and the training batches of the demo (4,096 rows) and of fine-tuning (2,048 rows).

fast/threads.py's ``MIN_SPLIT_MACS`` is chosen from these tables (docs/performance.md keeps them).
"""
from __future__ import annotations

import sys
import time

import numpy as np

from .format import table
from .measure import cpu_model

SHAPES = ((128, 128, 128), (128, 128, 384), (128, 128, 512), (128, 512, 128), (128, 256, 768),
          (128, 384, 1152), (128, 768, 768), (128, 768, 3072), (1024, 128, 128), (2048, 128, 128),
          (2048, 128, 384), (4096, 128, 384), (4096, 512, 128))


def paired(fns, calls: int, rounds: int = 7) -> list:
    """Best-turn mean seconds per call of each function, the turns alternating between them."""
    for _ in range(10):
        for f in fns:
            f()
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, f in enumerate(fns):
            t0 = time.perf_counter()
            for _ in range(calls):
                f()
            best[i] = min(best[i], (time.perf_counter() - t0) / calls)
    return best


def measure_shapes(shapes=SHAPES, seed: int = 0) -> list:
    """One dict per shape: MACs, plain and pool microseconds, their ratio."""
    from .. import fast
    from ..fast import threads
    fast.enable()
    rng = np.random.default_rng(seed)
    rows = []
    for M, K, N in shapes:
        a = rng.standard_normal((M, K)).astype(np.float32)  # (M, K)
        b = rng.standard_normal((K, N)).astype(np.float32)  # (K, N)
        pieces = [(0, M // 2), (M // 2, M)]
        pool = threads._get_pool(1)

        def cut(a=a, b=b, pieces=pieces, pool=pool):  # matmul_threaded's two pieces, with no threshold
            out = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
            f = pool.submit(np.matmul, a[pieces[1][0]:], b, out=out[pieces[1][0]:])
            np.matmul(a[:pieces[0][1]], b, out=out[:pieces[0][1]])
            f.result()
            return out
        plain, split = paired([lambda a=a, b=b: a @ b, cut], calls=max(10, int(1e8 // (M * K * N))))
        rows.append({"shape": (M, K, N), "macs": M * K * N, "plain_us": plain * 1e6, "pool_us": split * 1e6,
                     "ratio": split / plain})
    return rows


def markdown(rows: list) -> list:
    body = [[f"{M} x {K} x {N}", f"{r['macs'] / 1e6:.1f}M", f"{r['plain_us']:.0f}", f"{r['pool_us']:.0f}",
             f"{r['ratio']:.2f}"] for r in rows for M, K, N in [r["shape"]]]
    return [f"{cpu_model()}, float32, 2 threads:", ""] + table(
        ["M x K x N", "multiply-adds", "plain (us)", "pool (us)", "pool / plain"], body)


def main() -> int:
    print("\n".join(markdown(measure_shapes())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
