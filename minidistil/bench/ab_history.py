"""A/B measurements made once, with code that is not part of the library (two builds of the
kernels, two commits of the package), so a benchmark run cannot repeat them. ``report.py`` puts
them in docs/performance.md after the run's own tables, with their dates and conditions."""

ROW_SUMS_TITLE = "Row sums without `reassoc` (issue 20)"
ROW_SUMS = """\
Issue 20 dropped LLVM's `reassoc` fast-math flag from the Numba kernels and made every row sum go
through `kernels/softmax_t.row_sum`/`row_dot` (eight partial sums in an order the source fixes), so
that a process that compiles the kernels and one that loads them from the cache give the same bits
(docs/reliability.md, "Exact resume"). What that costs, as an A/B in fresh processes: the current
kernels as they are, against the same kernels with `reassoc` added back to `backend.FASTMATH`
(a scratch script, not a setting of the library; each variant with its own Numba cache, warmed by a
discarded first round). Shapes of a demo batch in float32: softmax, log-softmax and the soft-target
kernel on (2048, 4096) = (B*T, V); LayerNorm on (2048, 128); the attention softmax on
(32, 4, 64, 64); and one distillation step (teacher 6 x 128, student 3 layers, V = 4096) on a batch
of 8 x 64 tokens. Each figure is the median of 11 calls (3 for the step); the two variants ran
alternately, 3 rounds, and each round gives one ratio.

Conditions: 2 cores shared with three other engineers' tests and timed runs, the A/B run at the
lowest priority (`nice -n 19`), load average 20-29: the absolute times were 10-20 times those of
an idle machine and moved by a factor 2 between rounds. Read the ratios as bounds, not figures.

| kernel | time without / with `reassoc` (mean of 3 rounds) | sd | 95% interval (t, 2 df) |
|---|---|---|---|
| softmax | 1.19 | 0.10 | 0.95 to 1.43 |
| softmax backward | 1.20 | 0.28 | 0.50 to 1.90 |
| log softmax | 1.02 | 0.33 | 0.21 to 1.83 |
| log softmax backward | 1.16 | 0.21 | 0.64 to 1.67 |
| layernorm | 1.03 | 0.48 | -0.15 to 2.22 |
| layernorm backward | (bimodal: 0.2-0.3 ms or 60-150 ms per call, by load) | | not measurable |
| soft target | 1.20 | 0.18 | 0.76 to 1.64 |
| attention softmax | 1.28 | 0.28 | 0.59 to 1.98 |
| attention softmax backward | 1.29 | 0.48 | 0.11 to 2.47 |
| distill step | 1.02 | 0.10 | 0.77 to 1.27 |

Verdict: not resolved. Every interval holds 1. The kernels' means suggest they are at most about
20-30% slower without `reassoc`, and the training step, which these kernels do not dominate (the
matmuls do), shows no measurable change: 1.02 ± 0.10 (sd over rounds). The flag stays off: exact
resume is a promise, and this cost is not measurable here. Repeat on an idle machine before quoting
a kernel figure.
"""

SPEED_LAYER_TITLE = "Before and after the speed layer moved out of the teaching path"
SPEED_LAYER = """\
The architecture work moved every thread, BLAS and malloc policy out of `kernels/` and `layers/`
into the opt-in `minidistil.fast`, and the benchmark's own copies of the training steps gave way
to the real `train.pretrain` / `train.distill` steps. Did that cost speed? One A/B run on 2 idle
cores (2026-12-01, AMD EPYC, 2 vCPUs, OpenBLAS on its Haswell kernels), at the demo shapes
(32 x 128 tokens, hidden 128, 4 heads, FF 512, V 4096, teacher 6 layers, student 3), 2 threads,
fast on: "before" is `906fed2`, the last commit with the speed code inside `kernels/` (always on
there), "after" is `f857694`. Each side was exported with `git archive` and run by its own bench
in its own fresh process, alternating before and after, 8 rounds; each round's figure is the
median of 5 timed steps after 2 untimed ones, and each round gives one after/before ratio.

| step | before (median of rounds) | after | after / before [95% interval, t, 7 df] |
|---|---|---|---|
| teacher MLM step | 520.7 ms | 537.0 ms | 1.031 [0.972, 1.090] |
| distillation step | 676.3 ms | 695.2 ms | 1.050 [0.978, 1.122] |

Verdict: not resolved; both intervals hold 1. A slow-down, if there is one, is at most about 9%
(teacher) and 12% (distillation) on this machine. An earlier 3-round run of the same A/B gave
1.065 [0.759, 1.370] and 1.004 [0.923, 1.085].
"""

SECTIONS = ((ROW_SUMS_TITLE, ROW_SUMS), (SPEED_LAYER_TITLE, SPEED_LAYER))
