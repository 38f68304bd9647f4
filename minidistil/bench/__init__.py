"""``minidistil bench``: how fast the kernels and the two training steps run, and against what.

One run measures, in float32 with a fixed thread count, medians of ``--repeats`` runs after
``--warmup`` untimed ones (docs/performance.md is regenerated from it with ``--write-doc``):

1. every kernel's forward+backward with the Numba backend and with its NumPy twin, and the
   speed-up (kernel_times.py);
2. NumPy's float32 matmul peak (the hardware yardstick of this run) and the matrix products the
   steps use, timed alone (measure.py, kernel_times.py);
3. the teacher MLM training step and the student distillation step, the training code's own step
   functions (steps.py): seconds, tokens/s, phases, matmul GFLOP/s against the peak;
4. in fresh interpreters: the cold compile of all kernels, the time from import to the end of the
   first distillation step with a warm cache, and the peak resident memory (run.py);
5. when ``torch`` is installed (never required): the same two steps in PyTorch eager
   (torch_peer.py), and our distillation step in processes with and without torch (coexist.py).

Two parts also run alone and rewrite only their own marked section of docs/performance.md:
``python -m minidistil.bench.coexist`` and ``python -m minidistil.bench.fast_parity`` (the demo's
accuracies with and without the fast layer).

The files: shapes (the presets of ``--shapes``), measure (timers, probe, machine), kernel_times,
steps, report and notes (the tables and the prose of the doc), format, torch_peer, coexist,
fast_parity, sweep (the roofline sweep, ``--shapes a,b``) with torch_compile_peer and inference
(batch 1 x T = 128), run (the
order of the parts, the children, the targets, ``main``). ``python -m minidistil.bench --help``.
"""
from .run import main
from .shapes import PRESETS, BenchShapes

__all__ = ["main", "BenchShapes", "PRESETS"]
