# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 8. From NumPy to Numba: the twin kernels side by side
#
# **Learning goals**
# * read a kernel twice: the readable NumPy twin and the fused Numba version;
# * check that both give the same answer (float32 and float64) before timing anything;
# * time them, and explain the speed-ups by counting passes over memory ("fusion");
# * know the knobs: `use_backend`, `set_num_threads`, `cache=True`, `NUMBA_DISABLE_JIT`.
#
# Timings here are taken on whatever machine runs the notebook (CI: 2 shared cores), so read
# them as ratios measured in one run, not as absolute numbers.

# %%
import inspect
import time

import matplotlib.pyplot as plt
import numba
import numpy as np

from minidistil import kernels
from minidistil.kernels import (gelu_backward, gelu_forward, layernorm_backward, layernorm_forward,
                                softmax_backward, softmax_forward, use_backend)
from minidistil.kernels import layernorm as ln_module

plt.rcParams.update({"figure.figsize": (6.4, 3.4), "figure.dpi": 110, "savefig.dpi": 110})
rng = np.random.default_rng(0)
JIT_OFF = bool(numba.config.DISABLE_JIT)  # NUMBA_DISABLE_JIT=1 runs the kernels as plain Python
# the demo model's activations: 32 sequences x 128 tokens, hidden 128, feed-forward 512
ROWS, C, FF = (64, 32, 64) if JIT_OFF else (32 * 128, 128, 512)
print("JIT disabled (tiny shapes):" if JIT_OFF else "JIT on:", dict(rows=ROWS, C=C, FF=FF))

# %% [markdown]
# ## Two versions of LayerNorm
# The NumPy twin is a direct transcription of the formulas: every line is a full pass over
# the `(rows, C)` array, and most allocate a temporary.

# %%
print(inspect.getsource(ln_module.layernorm_forward_numpy))

# %% [markdown]
# The Numba version walks one row at a time: the row (C floats) stays in L1 cache while it
# computes the mean, the variance and the output, and `prange` spreads rows over threads.

# %%
print(inspect.getsource(ln_module._layernorm_forward_rows.py_func if hasattr(
    ln_module._layernorm_forward_rows, "py_func") else ln_module._layernorm_forward_rows))

# %% [markdown]
# ## Same answers first
# A faster kernel is worthless if it is wrong. Both backends, both dtypes:

# %%
x64 = rng.standard_normal((ROWS, C))
g64, b64 = 1 + 0.1 * rng.standard_normal(C), 0.1 * rng.standard_normal(C)
dy64 = rng.standard_normal((ROWS, C))
for dt, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
    x, g, b, dy = (a.astype(dt) for a in (x64, g64, b64, dy64))
    outs = {}
    for name in ("numpy", "numba"):
        with use_backend(name):
            y, ln_cache = layernorm_forward(x, g, b)  # every kernel returns (output, cache)
            outs[name] = (y, *layernorm_backward(dy, ln_cache), gelu_forward(x)[0], softmax_forward(x, 2.0)[0])
    # error relative to each output's largest entry (dgamma sums thousands of rows)
    worst = max(float(np.max(np.abs(a.astype(np.float64) - c)) / np.max(np.abs(c)))
                for a, c in zip(outs["numpy"], outs["numba"]))
    print(f"{np.dtype(dt).name}: max |numpy - numba| / max |out| over LN fwd/bwd, GELU, softmax = {worst:.1e}")
    assert worst < tol, worst
    assert all(o.dtype == dt for o in outs["numba"]), "float32 must stay float32"

# %% [markdown]
# ## Timings
# Best of a few runs, float32 (what training uses). The first call of a Numba kernel compiles
# it (0.2-0.9 s) unless the on-disk cache already has it, so we warm up first.

# %%
def best_time(fn, repeat=5):
    fn()  # warm-up (and compile)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


x = rng.standard_normal((ROWS, C)).astype(np.float32)
h = rng.standard_normal((ROWS, FF)).astype(np.float32)
logits = rng.standard_normal((ROWS // 8, 4096 if not JIT_OFF else 64)).astype(np.float32)
g, b = np.ones(C, np.float32), np.zeros(C, np.float32)
dy = rng.standard_normal(x.shape).astype(np.float32)
y, ln_cache = layernorm_forward(x, g, b)
_, h_cache = gelu_forward(h)
p, p_cache = softmax_forward(logits, 2.0)
dp = rng.standard_normal(p.shape).astype(np.float32)

# %% [markdown]
# **A fair NumPy GELU.** NumPy has no `erf` ufunc. The package's twin calls `math.erf` once per
# element through `np.vectorize` (exact, readable, and a Python-level loop: hundreds of times
# slower than any vectorised code, which would flatter the kernel). For the timing we write a
# vectorised NumPy GELU instead: the *same* float32 rational approximation
# `erf(x) ≈ x·A(x²)/B(x²)` on |x| ≤ 4 that the Numba kernel's `fast_erf` uses
# (`kernels/vecmath.py`), as whole-array NumPy operations. Same formula, same accuracy: the
# remaining difference is the fused single pass and the threads.

# %%
from minidistil.kernels import vecmath as vm

INV_SQRT2, INV_SQRT2PI = np.float32(1 / np.sqrt(2)), np.float32(1 / np.sqrt(2 * np.pi))


def erf_rational_numpy(x):
    """fast_erf's float32 rational approximation, vectorised with NumPy (one pass per operation)."""
    x = np.clip(x, -vm._ERF_CLAMP, vm._ERF_CLAMP)
    z = x * x
    a = vm._A0 * z + vm._A1  # Horner's rule, highest power first
    for c in (vm._A2, vm._A3, vm._A4, vm._A5, vm._A6):
        a = a * z + c
    b = vm._B0 * z + vm._B1
    for c in (vm._B2, vm._B3, vm._B4):
        b = b * z + c
    return x * a / b


def gelu_fwd_numpy_fair(x):
    return np.float32(0.5) * x * (np.float32(1) + erf_rational_numpy(x * INV_SQRT2))


def gelu_bwd_numpy_fair(dy, x):
    cdf = np.float32(0.5) * (np.float32(1) + erf_rational_numpy(x * INV_SQRT2))
    return dy * (cdf + x * INV_SQRT2PI * np.exp(np.float32(-0.5) * x * x))


with use_backend("numba"):
    err = float(np.max(np.abs(gelu_fwd_numpy_fair(h) - gelu_forward(h)[0])))
print(f"fair NumPy GELU vs the Numba kernel: max |diff| = {err:.1e} (float32), dtype {gelu_fwd_numpy_fair(h).dtype}")
assert err < 1e-5 and gelu_fwd_numpy_fair(h).dtype == np.float32


def twin(fn):
    """fn run with the NumPy twins."""
    def run():
        with use_backend("numpy"):
            return fn()
    return run


def fused(fn):
    def run():
        with use_backend("numba"):
            return fn()
    return run


# label -> (NumPy version, Numba version)
cases = {
    "LayerNorm fwd": (twin(lambda: layernorm_forward(x, g, b)), fused(lambda: layernorm_forward(x, g, b))),
    "LayerNorm bwd": (twin(lambda: layernorm_backward(dy, ln_cache)), fused(lambda: layernorm_backward(dy, ln_cache))),
    "GELU fwd (F)": (lambda: gelu_fwd_numpy_fair(h), fused(lambda: gelu_forward(h))),
    "GELU bwd (F)": (lambda: gelu_bwd_numpy_fair(h, h), fused(lambda: gelu_backward(h, h_cache))),
    "softmax-T fwd (V)": (twin(lambda: softmax_forward(logits, 2.0)), fused(lambda: softmax_forward(logits, 2.0))),
    "softmax-T bwd (V)": (twin(lambda: softmax_backward(dp, p_cache)), fused(lambda: softmax_backward(dp, p_cache))),
}
results = {}
for label, (fn_np, fn_nb) in cases.items():
    row = {"numpy": best_time(fn_np, repeat=2 if JIT_OFF else 5),
           "numba": best_time(fn_nb, repeat=2 if JIT_OFF else 5)}
    results[label] = row
    print(f"{label:<18} numpy {row['numpy'] * 1e3:8.2f} ms   numba {row['numba'] * 1e3:8.2f} ms   "
          f"x{row['numpy'] / row['numba']:.1f}")
vec_t = best_time(twin(lambda: gelu_forward(h)), repeat=1)
print(f"(for information: the np.vectorize(math.erf) twin, GELU fwd: {vec_t * 1e3:.1f} ms, "
      f"x{vec_t / results['GELU fwd (F)']['numba']:.0f} the kernel's time)")

# %%
labels = list(results)
speedup = np.array([results[k]["numpy"] / results[k]["numba"] for k in labels])
fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
ys = np.arange(len(labels))
a1.barh(ys, [results[k]["numpy"] * 1e3 for k in labels], 0.4, label="NumPy", color="C0")
a1.barh(ys + 0.4, [results[k]["numba"] * 1e3 for k in labels], 0.4, label="Numba", color="C1")
a1.set_yticks(ys + 0.2, labels)
a1.invert_yaxis()
a1.set_xscale("log")
a1.set(xlabel="best time per call (ms, log scale)", title="time per call")
a1.legend(fontsize=8)
a2.barh(ys, speedup, color="C2")
a2.set_yticks(ys, [""] * len(labels))
a2.invert_yaxis()
a2.set_xscale("log")
a2.axvline(1, color="k", lw=0.8)
for yy, sp in zip(ys, speedup):
    a2.text(sp, yy, f" {sp:.1f}x", va="center", fontsize=8)
a2.set_xlim(min(0.5, speedup.min() / 2), speedup.max() * 3)
a2.set(xlabel="speed-up, NumPy time / Numba time (log scale)", title="float32, this machine, this run")
plt.show()

# %% [markdown]
# ## Why fusion pays
# On a CPU these kernels are limited by memory traffic, not arithmetic. Count the passes over
# the `(rows, C)` array in the NumPy LayerNorm: `mean` (read), `x - mean` (read + write),
# `xc * xc` (read + write), `.mean` (read), `xc * rstd` (read + write), `* gamma`
# (read + write), `+ beta` (read + write): about 12 array-sized transfers. The fused kernel reads
# each row once from memory (later passes hit L1 cache) and writes `y` once: 2 transfers. A
# copy of the array is a lower bound for any kernel that must read `x` and write `y`:

# %%
copy_t = best_time(lambda: x.copy(), repeat=5)
with use_backend("numpy"):
    np_t = best_time(lambda: layernorm_forward(x, g, b), repeat=5)
with use_backend("numba"):
    nb_t = best_time(lambda: layernorm_forward(x, g, b), repeat=5)
print(f"x.copy(): {copy_t * 1e3:.3f} ms | NumPy LN: {np_t / copy_t:.1f} copies | Numba LN: {nb_t / copy_t:.1f} copies")

# %% [markdown]
# GELU compares like with like here: both columns evaluate the same rational erf, so the kernel
# wins only by fusing the passes (the NumPy version makes about twenty, one per operation) and
# by its threads; against the `np.vectorize(math.erf)` twin it would look hundreds of times
# faster, which says more about the twin than the kernel. Softmax gains least: NumPy's own
# float32 `exp` is already vectorised (SIMD); Numba wins by fusing the max, exp, sum and scale
# passes, by a vectorisable `fast_exp` (Numba's own `exp` is one scalar libm call per element),
# and threads.
#
# ## Threads
# `kernels.set_num_threads(n)` sets how many threads Numba's parallel kernels use. With two
# cores shared by other processes, the gain from a second thread varies from run to run.

# %%
if not JIT_OFF:
    before = numba.get_num_threads()
    for n in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
        kernels.set_num_threads(n)
        with use_backend("numba"):
            t = best_time(lambda: gelu_forward(h), repeat=5)
        print(f"{n} thread(s): GELU fwd {t * 1e3:.2f} ms")
    kernels.set_num_threads(before)

# %% [markdown]
# ## Speed as a layer of its own: `minidistil.fast`
# Everything above is the plain code: the kernels, and matrix products left to NumPy's `@`
# (`minidistil/kernels/matmul.py`). Importing minidistil changes nothing else in your process.
# The extra speed tricks live in one opt-in package, `minidistil.fast`, which the command line
# switches on (`--no-fast` leaves it off). `fast.enable()` holds OpenBLAS to one thread (through
# threadpoolctl) and cuts products over a small pool of threads instead, so that Numba's and
# BLAS's workers never compete; it runs the attention one head at a time with BLAS called from
# inside the Numba kernel (`minidistil/fast/attention.py`, `fast/gemm.py`); and it times each
# route against the plain one on its first call, keeping it only where it is faster on this CPU.
# `fast.info()` says what it switched on, and why anything is off.

# %%
from minidistil import fast
from minidistil.kernels import attention_backward, attention_forward

qa, ka, va, da = (rng.standard_normal((32, 4, 128, 32)).astype(np.float32) for _ in range(4))


def attention_fwd_bwd():
    out, cache = attention_forward(qa, ka, va, None)  # (B, NH, T, HS); probs (B, NH, T, T) inside
    attention_backward(da, cache)

if not JIT_OFF:
    with use_backend("numba"):
        t_plain = best_time(attention_fwd_bwd, repeat=3)
        probs_plain = attention_forward(qa, ka, va, None)[1].probs
    print(fast.describe())
    fast.enable()
    print(fast.describe())
    with use_backend("numba"):
        t_fast = best_time(attention_fwd_bwd, repeat=3)  # the first call calibrates this shape
        probs_fast = attention_forward(qa, ka, va, None)[1].probs
    fast.disable()
    with use_backend("numpy"):
        t_np = best_time(attention_fwd_bwd, repeat=3)
    np.testing.assert_allclose(probs_fast, probs_plain, rtol=1e-4, atol=1e-6)
    print(f"attention fwd+bwd: NumPy twin {t_np * 1e3:.1f} ms, plain Numba {t_plain * 1e3:.1f} ms, "
          f"with the fast layer {t_fast * 1e3:.1f} ms")
    print("probs strides: plain", probs_plain.strides, "fast", probs_fast.strides)

# %% [markdown]
# The fast route keeps the probabilities transposed (key-major) and returns a transposed view:
# look at the strides. The softmax's row max is a reduction LLVM leaves scalar, while "for each
# key row, update the running max of every query" is an elementwise loop it vectorises.

# %% [markdown]
# ## Summary
# * Each kernel has a NumPy twin (the specification) and a Numba version (the speed); both
#   pass the same tests, and `use_backend("numpy")` swaps them anywhere.
# * Fusing passes keeps data in cache: LayerNorm goes from ~12 array transfers to ~2.
# * Compare with a fair twin: a Python-level loop (`np.vectorize(math.erf)`) makes any kernel
#   look hundreds of times faster; against the same formula vectorised in NumPy the gain is the
#   fusion and the threads. The smallest gain is where NumPy is already SIMD (softmax's `exp`).
# * Keep float32 float32 inside kernels (a bare `0.5` literal would promote to float64).
# * Speed tricks that touch threads, BLAS or the allocator live in `minidistil.fast`, opt-in and
#   calibrated on your CPU; the plain kernels stay the reference.
# * A layout can decide whether LLVM vectorises a loop (the fast attention's transposed probabilities).
#
# To scale up: time the full model steps with `minidistil bench` (docs/performance.md).
#
# **Exercises.** (1) Time `layernorm_forward` in float64 as well: what ratio do you expect, and
# why? (2) Write a Numba kernel for the tanh-GELU and compare it with the erf one. (3) Run this
# notebook with `NUMBA_DISABLE_JIT=1` and explain the timings.
