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

plt.rcParams.update({"figure.figsize": (6.0, 3.0), "figure.dpi": 72})
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
            y, mean, rstd = layernorm_forward(x, g, b)
            outs[name] = (y, *layernorm_backward(dy, x, g, mean, rstd), gelu_forward(x), softmax_forward(x, 2.0))
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
y, mean, rstd = layernorm_forward(x, g, b)
p = softmax_forward(logits, 2.0)
dp = rng.standard_normal(p.shape).astype(np.float32)

cases = {
    "LayerNorm fwd": lambda: layernorm_forward(x, g, b),
    "LayerNorm bwd": lambda: layernorm_backward(dy, x, g, mean, rstd),
    "GELU fwd (F)": lambda: gelu_forward(h),
    "GELU bwd (F)": lambda: gelu_backward(h, h),
    "softmax-T fwd (V)": lambda: softmax_forward(logits, 2.0),
    "softmax-T bwd (V)": lambda: softmax_backward(dp, p, 2.0),
}
results = {}
for label, fn in cases.items():
    row = {}
    for name in ("numpy", "numba"):
        with use_backend(name):
            row[name] = best_time(fn, repeat=2 if JIT_OFF else 5)
    results[label] = row
    print(f"{label:<18} numpy {row['numpy'] * 1e3:8.2f} ms   numba {row['numba'] * 1e3:8.2f} ms   "
          f"x{row['numpy'] / row['numba']:.1f}")

# %%
labels = list(results)
speedup = [results[k]["numpy"] / results[k]["numba"] for k in labels]
fig, ax = plt.subplots()
ax.barh(labels, speedup)
ax.axvline(1, color="k", lw=0.8)
ax.set_xlabel("speed-up of the Numba kernel over its NumPy twin (x)")
ax.set_title("float32, this machine, this run", fontsize=9)
plt.tight_layout()
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
# GELU is different: NumPy has no `erf` ufunc, so the twin calls `math.erf` once per element
# through `np.vectorize` — a Python-level loop. The Numba kernel runs a polynomial `fast_erf`
# (kernels/vecmath.py, within 4e-7 of `math.erf` in float32) that LLVM can vectorise, inside a
# machine-code loop, hence the largest speed-up. Softmax gains least: NumPy's own float32 `exp`
# is already vectorised (SIMD); Numba wins by fusing the max, exp, sum and scale passes, by a
# vectorisable `fast_exp` (Numba's own `exp` is one scalar libm call per element), and threads.
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
    out, probs = attention_forward(qa, ka, va, None)  # (B, NH, T, HS), (B, NH, T, T)
    attention_backward(da, qa, ka, va, probs)

if not JIT_OFF:
    with use_backend("numba"):
        t_plain = best_time(attention_fwd_bwd, repeat=3)
        probs_plain = attention_forward(qa, ka, va, None)[1]
    print(fast.describe())
    fast.enable()
    print(fast.describe())
    with use_backend("numba"):
        t_fast = best_time(attention_fwd_bwd, repeat=3)  # the first call calibrates this shape
        probs_fast = attention_forward(qa, ka, va, None)[1]
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
# * The biggest win is where NumPy has no vectorised primitive (GELU's `erf`); the smallest where
#   NumPy is already SIMD (softmax's `exp`).
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
