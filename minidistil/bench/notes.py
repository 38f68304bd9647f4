"""The prose of docs/performance.md: method, FLOP model, the levers, what limits a missed target.

Kept apart from report.py (the tables) so that each file stays short.
"""
from __future__ import annotations

from .format import fmt_s as _fmt_s, probes as _probes

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
in the same run, one before and one after the steps). [flops.md](flops.md) writes the model out
product by product with its figures at the demo, small, minilm and base widths; `minidistil
bench --shapes demo,small,minilm,base` measures each width against the peak, PyTorch eager and
`torch.compile`, and inference at batch 1 x T = 128 (bench/sweep.py, bench/inference.py)."""

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
- Steps: the training step functions themselves, `train.pretrain.make_mlm_step` and
  `train.distill.make_distill_step` (minidistil/bench/steps.py only wraps them), then gradient
  clipping at 5.0 and AdamW (lr 5e-4) as the training loop applies them. Batches are
  `[CLS] random ids [SEP]` without padding; masking is drawn afresh each step. The phases are
  the time inside each model's `forward` and `backward` and the optimizer; "other" is the rest
  (masking and the losses).
- Start-up and memory run in fresh interpreters: "cold" with an empty `NUMBA_CACHE_DIR` compiles
  every kernel (float32) at tiny shapes, then tiny teacher and distillation steps; "warm" reuses
  that cache, builds the demo models and runs two distillation steps; peak memory is that
  process's `VmHWM` (the high-water mark of its own address space), so it includes the
  interpreter, NumPy, Numba and both models. `ru_maxrss` is recorded too, but Linux carries the
  parent's peak over a fork + exec into it, so it can read higher than the child ever used.
  MB = 10^6 bytes.
- PyTorch (`minidistil/bench/torch_peer.py`, only when `torch` is installed) runs in its own process:
  plain-torch twins of `BertForMaskedLM` and `DistilBertForMaskedLM` (no dropout, eager attention),
  the Hugging Face `Distiller.step` loss (KLDiv batchmean * tau^2 on every real token, tau the temperature, MLM
  cross-entropy, cosine loss on the last hidden states), clipping and `torch.optim.AdamW`,
  `torch.set_num_threads(threads)`. As in Hugging Face, its MLM head computes logits at every
  position; minidistil's teacher step computes them only at the masked positions.
- Threads: `--threads` sizes Numba's pool (the fused kernels) and, with the fast layer on
  (the default; `--no-fast` measures the plain code), its matmul pool (`minidistil/fast/threads.py`):
  OpenBLAS is held to one thread; large products are cut over the pool, small ones are one
  call, and each mid-sized shape's first product times the two and keeps the faster (they give
  the same bits). The NumPy twins in the kernel table run plain
  `@`, with BLAS's own threads when the fast layer is off. The fresh processes get
  `OPENBLAS_NUM_THREADS` and `NUMBA_NUM_THREADS`. The fast layer also sets
  `OMP_WAIT_POLICY=PASSIVE` (after a 0.1 ms spin, `GOMP_SPINCOUNT`) before Numba's pool
  starts, and glibc's malloc keeps freed activations for the next step (`minidistil/fast/malloc.py`); `minidistil.fast.info()` says
  what was on.
- Ratios to PyTorch: minidistil's steps are timed twice, before and after PyTorch's process,
  and the ratio divides the median of both rounds by PyTorch's median: a shared machine's speed
  drifts over minutes, and bracketing keeps that drift from favouring either side."""


# Why a kernel may stay under 3x; used only for kernels that miss the target.
KERNEL_LIMITS = {
    "softmax_t": "NumPy's float32 `exp` is SIMD-vectorised while a Numba loop calls scalar libm "
                 "`expf` (no SVML since numba 0.62), so per element the twin is already fast; the "
                 "kernel wins only by fusing the passes (max, exp, sum, scale, backward) and by "
                 "threads, on a (N, V) array that does not fit in cache (memory-bound).",
    "attention": "most of its time is six small products per batch x head (q k^T and probs v "
                 "forward; probs^T dout, dout v^T, dscores k and dscores^T q backward). The Numba "
                 "kernel hands them to BLAS one head at a time from its prange (fast/gemm.py) and "
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


def limit_text(t: dict, r: dict) -> str:
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
                     "thread pool (the fused loops) with BLAS's (the products): two pools on the same cores.")
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

