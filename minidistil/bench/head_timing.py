"""Time of the vocabulary head alone: fused chunked head / reference, paired runs in one process.

Legend: P positions (N = B*T), C hidden, V vocabulary.

The two are run alternately (reference then fused, then the other order, ...), and each pair's
ratio is kept: on a shared machine whose speed drifts over seconds, neighbouring runs see nearly
the same conditions, so the ratios are steadier than either time. Reported: the geometric mean of
the ratios with a 95% interval (t over the pairs' log ratios), and each time's median.
``python -m minidistil.bench.head_timing minilm 256 9``.
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np

from .head_memory import _fused, _inputs, _reference
from .shapes import preset

T95 = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26, 11: 2.23,
       12: 2.20, 13: 2.18, 14: 2.16, 15: 2.14, 16: 2.13}  # two-sided t quantiles, n - 1 d.o.f.


def head_timing(name: str, chunk: int = 256, pairs: int = 7, backend: str = "numba") -> dict:
    """Paired times of the reference head and the fused head at the width of shape ``name``."""
    from ..kernels import use_backend
    if pairs < 2:
        raise ValueError(f"pairs must be >= 2 for an interval, got {pairs}")
    s = preset(name)
    args = _inputs(s.tokens, s.hidden, s.vocab)
    runs = {"reference": lambda: _reference(*args), "fused": lambda: _fused(*args, chunk)}
    times = {"reference": [], "fused": []}
    with use_backend(backend):
        for fn in runs.values():  # warm-up: compiles, first-touch of the pages
            fn()
        for i in range(pairs):
            order = ("reference", "fused") if i % 2 == 0 else ("fused", "reference")
            for k in order:
                t0 = time.perf_counter()
                runs[k]()
                times[k].append(time.perf_counter() - t0)
    logs = np.log(np.array(times["fused"]) / np.array(times["reference"]))  # (pairs,)
    se = float(logs.std(ddof=1) / math.sqrt(pairs))
    t = T95.get(pairs, 1.96)
    m = float(logs.mean())
    return {"shape": name, "P": s.tokens, "C": s.hidden, "V": s.vocab, "chunk": chunk, "backend": backend,
            "pairs": pairs, "reference_median_s": float(np.median(times["reference"])),
            "fused_median_s": float(np.median(times["fused"])), "ratio_fused_over_reference": math.exp(m),
            "ratio_95ci": (math.exp(m - t * se), math.exp(m + t * se)), "times_s": times}


def main(argv=None) -> int:
    a = sys.argv[1:] if argv is None else argv
    name = a[0] if a else "minilm"
    chunk = int(a[1]) if len(a) > 1 else 256
    pairs = int(a[2]) if len(a) > 2 else 7
    r = head_timing(name, chunk, pairs)
    lo, hi = r["ratio_95ci"]
    print(f"{name} P={r['P']} C={r['C']} V={r['V']} chunk={chunk}: reference {r['reference_median_s']:.3f} s, "
          f"fused {r['fused_median_s']:.3f} s (medians of {pairs}); fused/reference "
          f"{r['ratio_fused_over_reference']:.3f} [95% {lo:.3f}, {hi:.3f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
