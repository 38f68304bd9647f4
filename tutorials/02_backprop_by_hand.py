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
# # 2. Backprop by hand: linear, GELU, LayerNorm, softmax with temperature
#
# **Learning goals**
# * derive the backward pass of the four building blocks of a transformer layer;
# * check a gradient the way every test in minidistil does: central finite differences in
#   float64, a *random* upstream gradient, non-trivial parameters;
# * see why an all-ones upstream gradient or default parameters can hide a wrong formula;
# * read the comparison table (`exact | allclose | max abs diff | max rel err`).
#
# Every layer follows one contract: `y, cache = f_forward(x, ...)` and
# `dx, grads = f_backward(dy, cache)`. The derivations are written out in `docs/math.md`.

# %%
import matplotlib.pyplot as plt
import numpy as np

from minidistil import gradcheck
from minidistil.kernels import (gelu_backward, gelu_forward, layernorm_backward, layernorm_forward,
                                softmax_backward, softmax_forward, use_backend)
from minidistil.layers import linear_backward, linear_forward

plt.rcParams.update({"figure.figsize": (5.5, 3.0), "figure.dpi": 72})
rng = np.random.default_rng(0)

# %% [markdown]
# ## The harness
# To check `dx` for a function `y = f(x)` we pick a random `dy` and differentiate the scalar
# `L(x) = sum(f(x) * dy)`, whose exact gradient is what backward must return. Central
# differences `(L(x + h e_i) - L(x - h e_i)) / 2h` have error O(h²): with h = 1e-5 in float64
# we expect about 1e-9 relative agreement, so the tests use a bound of 1e-7.

# %%
def numeric_dx(forward, x, dy):
    return gradcheck.numerical_grad(lambda: float(np.sum(forward(x) * dy)), x)


x = rng.standard_normal((3, 4))
dy = rng.standard_normal((3, 4))
np.testing.assert_allclose(numeric_dx(np.sin, x, dy), np.cos(x) * dy, rtol=1e-8)
print("finite differences agree with d sin = cos to 1e-8")

# %% [markdown]
# ## 1. Linear: `y = x Wᵀ + b`
# `W` is stored `(out, in)` as in Hugging Face. From `y_nk = Σ_i x_ni W_ki + b_k`:
# `dx = dy W`, `dW = dyᵀ x` (the layout of `W`), `db = Σ_n dy_n`.

# %%
def my_linear_backward(dy, x, W):
    return dy @ W, dy.T @ x, dy.sum(axis=0)


x = rng.standard_normal((5, 4))  # (N, IN)
W = rng.standard_normal((3, 4))  # (OUT, IN), not square on purpose: a transpose would not fit
b = rng.standard_normal(3)  # (OUT,)
y, cache = linear_forward(x, W, b)
dy = rng.standard_normal(y.shape)  # (N, OUT)
dx, dW, db = my_linear_backward(dy, x, W)
dx_lib, g_lib = linear_backward(dy, cache)

L = lambda: float(np.sum(linear_forward(x, W, b)[0] * dy))
v = gradcheck.compare({
    "dx ~ numeric": (dx, gradcheck.numerical_grad(L, x)),
    "dW ~ numeric": (dW, gradcheck.numerical_grad(L, W)),
    "db ~ numeric": (db, gradcheck.numerical_grad(L, b)),
    "dx ~ layers.linear_backward": (dx, dx_lib),
    "dW ~ layers.linear_backward": (dW, g_lib["weight"]),
})
assert v

# %% [markdown]
# ## 2. GELU
# BERT's activation is the exact `gelu(x) = x Φ(x)` (Φ the normal CDF). Product rule:
# `gelu'(x) = Φ(x) + x φ(x)`. The tanh formula is an approximation; the plot shows how close.

# %%
xs = np.linspace(-4, 4, 401)
fig, ax = plt.subplots()
ax.plot(xs, gelu_forward(xs), label="gelu (erf)")
ax.plot(xs, gelu_forward(xs, approximate="tanh") - gelu_forward(xs), label="tanh form - erf form")
ax.plot(xs, gelu_backward(np.ones_like(xs), xs), "--", label="gelu'")
ax.axhline(0, color="k", lw=0.5)
ax.legend(fontsize=8)
ax.set_title("GELU and its derivative")
plt.show()
print("max |tanh - erf| on [-4, 4]:", float(np.max(np.abs(gelu_forward(xs, approximate="tanh") - gelu_forward(xs)))))

# %%
x = rng.standard_normal((4, 6)) * 2
dy = rng.standard_normal(x.shape)
assert gradcheck.compare({"gelu dx ~ numeric": (gelu_backward(dy, x), numeric_dx(gelu_forward, x, dy))})

# %% [markdown]
# ## 3. LayerNorm
# `x̂ = (x - μ) r`, `r = 1/√(σ² + ε)`, `y = γ x̂ + β`. With `g = dy γ`:
#
# `dx = r (g - mean(g) - x̂ · mean(g x̂))`
#
# The second term comes from μ depending on every input, the third from σ².
# The kernel returns `(y, mean, rstd)` so the backward need not recompute them.

# %%
C = 8
x = rng.standard_normal((4, C)) * 2 + 1
gamma = 1 + 0.5 * rng.standard_normal(C)  # not all ones
beta = 0.3 * rng.standard_normal(C)  # not all zeros
y, mean, rstd = layernorm_forward(x, gamma, beta)
print("per-row mean of (y - beta) / gamma:", np.round(((y - beta) / gamma).mean(-1), 12))
print("per-row std  of (y - beta) / gamma:", np.round(((y - beta) / gamma).std(-1), 6))

# %%
def ln_dx(dy, x, gamma, drop_variance_term=False):
    mu = x.mean(-1, keepdims=True)
    r = 1 / np.sqrt(x.var(-1, keepdims=True) + 1e-12)
    xhat = (x - mu) * r
    g = dy * gamma
    third = 0 if drop_variance_term else xhat * (g * xhat).mean(-1, keepdims=True)
    return r * (g - g.mean(-1, keepdims=True) - third)


dy = rng.standard_normal(x.shape)
f = lambda xx: layernorm_forward(xx, gamma, beta)[0]
dx_kernel = layernorm_backward(dy, x, gamma, mean, rstd)[0]
assert gradcheck.compare({"layernorm dx ~ numeric": (ln_dx(dy, x, gamma), numeric_dx(f, x, dy)),
                          "layernorm dx ~ kernel": (ln_dx(dy, x, gamma), dx_kernel)})

# %% [markdown]
# **Why a random `dy` and γ ≠ 1.** With `dy = 1` and `γ = 1`, `g` is constant, the true `dx` is
# exactly zero, and a formula that forgets the variance term *also* gives zero. The check passes
# for the wrong reason. A random `dy` exposes it:

# %%
ones, g1 = np.ones_like(x), np.ones(C)
f1 = lambda xx: layernorm_forward(xx, g1, beta)[0]
bug, true = ln_dx(ones, x, g1, True), numeric_dx(f1, x, ones)
hidden = np.allclose(bug, true, atol=1e-8)
print(f"all-ones dy, gamma = 1: max|buggy dx| = {np.abs(bug).max():.1e}, "
      f"max|true dx| = {np.abs(true).max():.1e}, allclose: {hidden}  (the bug hides)")
assert hidden
print("\nrandom dy (the bug shows):")
v = gradcheck.compare({"no variance term": (ln_dx(dy, x, gamma, True), numeric_dx(f, x, dy))})
assert not v

# %% [markdown]
# ## 4. Softmax with temperature
# `p = softmax(x / T)`. Higher T flattens the distribution: that is what lets a student see the
# teacher's "dark knowledge" about which wrong answers are almost right.

# %%
logits = np.array([4.0, 2.5, 1.0, 0.5, -1.0, -2.0])
fig, ax = plt.subplots()
for i, T in enumerate([0.5, 1, 2, 5]):
    ax.bar(np.arange(6) + 0.2 * i - 0.3, softmax_forward(logits, T), width=0.2, label=f"T={T}")
ax.set_xlabel("class"), ax.set_ylabel("probability"), ax.legend(fontsize=8)
ax.set_title("softmax(x / T)")
plt.show()

# %% [markdown]
# Backward: `∂p_i/∂z_j = p_i(δ_ij - p_j)` with `z = x/T`, hence `dx = p (dp - Σ dp p) / T`.

# %%
x = rng.standard_normal((3, 7)) * 2
dp = rng.standard_normal(x.shape)
for T in (0.5, 2.0):
    p = softmax_forward(x, T)
    mine = p * (dp - (dp * p).sum(-1, keepdims=True)) / T
    assert gradcheck.compare({f"T={T} dx ~ numeric": (mine, numeric_dx(lambda z: softmax_forward(z, T), x, dp)),
                              f"T={T} dx ~ kernel": (mine, softmax_backward(dp, p, T))})

# %% [markdown]
# ## Both backends agree
# Each kernel has a readable NumPy twin and a fused Numba version; `use_backend` switches.

# %%
for name in ("numpy", "numba"):
    with use_backend(name):
        p = softmax_forward(x, 2.0)
        print(f"{name:>6}: softmax_backward max |diff| vs formula =",
              float(np.max(np.abs(softmax_backward(dp, p, 2.0) - p * (dp - (dp * p).sum(-1, keepdims=True)) / 2.0))))

# %% [markdown]
# ## Summary
# * Linear: `dx = dy W`, `dW = dyᵀ x`, `db = Σ dy`; a shape check catches transposes.
# * GELU: product rule, `Φ(x) + x φ(x)`.
# * LayerNorm: three terms; the mean and variance terms exist because μ and σ see every input.
# * Softmax-T: a non-diagonal Jacobian, and the chain-rule factor 1/T.
# * Check with finite differences, a random `dy`, non-trivial parameters, in float64.
#
# **Exercises.** In `tutorials/exercises/exercises.ipynb`, or directly:
# `from minidistil.exercises import check; check("layernorm", your_function)` (also `linear`,
# `gelu`, `softmax_t`). Then: (1) derive the tanh-GELU derivative and check it against
# `gelu_backward(dy, x, approximate="tanh")`; (2) show numerically that the softmax gradient
# sums to zero along each row, and explain why.
