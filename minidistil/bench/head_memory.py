"""Peak memory of the vocabulary head alone: the reference (decoder logits, losses.py, decoder
backward) against the fused chunked head (kernels/fused_head.py), at a bench shape's width.

Legend: P positions with logits (N = B*T: Lce on every token), C hidden, V vocabulary.

Measured with tracemalloc, which NumPy reports every array allocation to, under the NumPy twins
(``use_backend("numpy")``: the Numba kernels allocate outside NumPy's allocator, so tracemalloc
would not see them). The figure is the traced peak during the head's forward and backward
beyond the inputs: the same number on a loaded machine as on an idle one.
``python -m minidistil.bench.head_memory minilm base``.
"""
from __future__ import annotations

import sys
import tracemalloc

import numpy as np

from ..kernels.backend import IGNORE_INDEX
from ..losses import DistillLossConfig
from .shapes import preset

LOSS = DistillLossConfig()  # the head's weights (alpha_ce, alpha_mlm) and temperature: training's defaults


def _inputs(P: int, C: int, V: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    f = np.float32
    h = rng.standard_normal((P, C), dtype=f)  # (P, C)
    th = rng.standard_normal((P, C), dtype=f)  # (P, C)
    W = (rng.standard_normal((V, C), dtype=f) * 0.05).astype(f)  # (V, C)
    Wt = (rng.standard_normal((V, C), dtype=f) * 0.05).astype(f)  # (V, C)
    b, bt = np.zeros(V, f), np.zeros(V, f)  # (V,) each
    labels = np.full(P, IGNORE_INDEX, dtype=np.int64)  # (P,)
    lab = rng.random(P) < 0.15
    labels[lab] = rng.integers(0, V, size=int(lab.sum()))
    return h, W, b, th, Wt, bt, labels


def _reference(h, W, b, th, Wt, bt, labels, loss: DistillLossConfig = LOSS):
    from ..layers import linear_backward, linear_forward
    from ..losses import mlm_backward, mlm_forward, soft_target_backward, soft_target_forward
    tau, a_ce, a_mlm = loss.temperature, loss.alpha_ce, loss.alpha_mlm
    s, cache = linear_forward(h, W, b)  # (P, V)
    t, _ = linear_forward(th, Wt, bt)  # (P, V)
    _, ccache = soft_target_forward(s, t, tau)
    del t
    _, mcache = mlm_forward(s, labels)
    ds = soft_target_backward(a_ce, ccache)  # (P, V)
    ds[mcache.rows] += mlm_backward(a_mlm, mcache)[mcache.rows]
    del ccache, mcache
    dh, g = linear_backward(ds, cache)
    return dh, g


def _fused(h, W, b, th, Wt, bt, labels, chunk, loss: DistillLossConfig = LOSS):
    from ..kernels.fused_head import fused_head_backward, fused_head_forward
    _, _, cache = fused_head_forward(h, W, b, labels, th, Wt, bt, None, loss.temperature, loss.alpha_ce,
                                     loss.alpha_mlm, chunk)
    return fused_head_backward(1.0, cache)


def traced_peak_mb(fn) -> float:
    """Peak of tracemalloc's traced memory during ``fn()`` above what was traced before (MB)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        out = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
        del out
    finally:
        tracemalloc.stop()
    return peak / 1e6


def head_memory(name, chunks=(256, 64)) -> dict:
    """The head's traced peak (MB) at the width of bench shape ``name`` (a preset's name or a
    ``BenchShapes``), P = its token count."""
    from ..kernels import use_backend
    s = preset(name) if isinstance(name, str) else name
    P, C, V = s.tokens, s.hidden, s.vocab
    args = _inputs(P, C, V)
    out = {"shape": name if isinstance(name, str) else repr(s), "P": P, "C": C, "V": V, "one_PxV_array_mb": P * V * 4 / 1e6,
           "gradients_mb": (P * C + V * C + V) * 4 / 1e6}
    with use_backend("numpy"):
        out["reference_mb"] = traced_peak_mb(lambda: _reference(*args))
        for k in chunks:
            out[f"fused_{k}_mb"] = traced_peak_mb(lambda: _fused(*args, k))
    return out


def main(argv=None) -> int:
    names = (sys.argv[1:] if argv is None else argv) or ["minilm", "base"]
    for n in names:
        r = head_memory(n)
        print(", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
