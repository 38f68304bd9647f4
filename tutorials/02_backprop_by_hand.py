# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. Backprop by hand: linear, GELU, LayerNorm, softmax with temperature
#
# **Learning goals**
# * derive the backward pass of the four building blocks of a transformer layer yourself,
#   LayerNorm one intermediate at a time (dx̂, dvar, dμ, dx);
# * check each stage the way every test in minidistil does: central finite differences in
#   float64, a *random* upstream gradient, non-trivial parameters;
# * see why an all-ones upstream gradient or default parameters can hide a wrong formula.
#
# **How to use this notebook.** Each cell marked `# YOUR CODE HERE` raises
# `NotImplementedError` until you fill it in; the cell right after it checks your stage
# (`stage ...: PASS` or `FAIL`, with the reason). The completed version is
# `02_backprop_by_hand_solutions.ipynb`, generated from the same source: try first.
# Stuck? `docs/math.md` derives every formula.
#
# Every layer in minidistil follows one contract: `y, cache = f_forward(x, ...)` and
# `dx, grads = f_backward(dy, cache)`.

# %%
import matplotlib.pyplot as plt
import numpy as np

from minidistil import gradcheck
from minidistil.exercises.stages import check_stage
from minidistil.kernels import (gelu_backward, gelu_forward, layernorm_backward, layernorm_forward,
                                softmax_backward, softmax_forward, use_backend)
from minidistil.layers import linear_backward, linear_forward

plt.rcParams.update({"figure.figsize": (6.4, 3.4), "figure.dpi": 110, "savefig.dpi": 110})
rng = np.random.default_rng(0)

# %% [markdown]
# ## The harness
# To check `dx` for a function `y = f(x)` we pick a random `dy` and differentiate the scalar
# `L(x) = sum(f(x) * dy)`, whose exact gradient is what backward must return. Central
# differences `(L(x + h e_i) - L(x - h e_i)) / 2h` have error O(h²): with h = 1e-5 in float64
# we expect about 1e-9 relative agreement; the stage checks use a bound of 1e-6.

# %%
def numeric(L, x):
    """Central differences of the scalar L() with respect to the array x (changed, restored)."""
    return gradcheck.numerical_grad(L, x)


x = rng.standard_normal((3, 4))
dy = rng.standard_normal((3, 4))
np.testing.assert_allclose(numeric(lambda: float(np.sum(np.sin(x) * dy)), x), np.cos(x) * dy, rtol=1e-8)
print("finite differences agree with d sin = cos to 1e-8")

# %% [markdown]
# ## 1. Linear: `y = x Wᵀ + b`
# `W` is stored `(out, in)` as in Hugging Face: `y_nk = Σ_i x_ni W_ki + b_k`. Write the three
# gradients. Each must have the shape of what it differentiates (`W` is not square here, so a
# transpose in the wrong place shows up as a shape error).

# %%
def lin_dx(dy, W):
    ### BEGIN SOLUTION
    return dy @ W  # (N, IN)
    ### END SOLUTION


def lin_dW(dy, x):
    ### BEGIN SOLUTION
    return dy.T @ x  # (OUT, IN), the layout of W
    ### END SOLUTION


def lin_db(dy):
    ### BEGIN SOLUTION
    return dy.sum(axis=0)  # (OUT,)
    ### END SOLUTION


# %%
x = rng.standard_normal((5, 4))  # (N, IN)
W = rng.standard_normal((3, 4))  # (OUT, IN)
b = rng.standard_normal(3)  # (OUT,)
y, cache = linear_forward(x, W, b)
dy = rng.standard_normal(y.shape)  # (N, OUT)
L = lambda: float(np.sum(linear_forward(x, W, b)[0] * dy))
check_stage("linear dx", lin_dx, (dy, W), numeric(L, x))
check_stage("linear dW", lin_dW, (dy, x), numeric(L, W))
check_stage("linear db", lin_db, (dy,), numeric(L, b))
dx_lib, g_lib = linear_backward(dy, cache)
check_stage("linear dW ~ layers.linear_backward", lin_dW, (dy, x), g_lib["weight"])

# %% [markdown]
# ## 2. GELU
# BERT's activation is the exact `gelu(x) = x Φ(x)`, Φ the standard normal CDF and φ its
# density `exp(-x²/2)/√(2π)`. It is a product. (`math.erf` gives Φ: `Φ(x) = ½(1 + erf(x/√2))`.)
# The plot shows the function, its derivative, and how far the tanh approximation is from it
# (on its own axis: the difference stays below 5·10⁻⁴, invisible on the function's scale).

# %%
import math

erf = np.vectorize(math.erf)


def gelu_dx(dy, x):
    ### BEGIN SOLUTION
    cdf = 0.5 * (1 + erf(x / math.sqrt(2)))  # (...)
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)  # (...)
    return dy * (cdf + x * pdf)  # (...)
    ### END SOLUTION


x = rng.standard_normal((4, 6)) * 2
dy = rng.standard_normal(x.shape)
check_stage("gelu dx", gelu_dx, (dy, x), numeric(lambda: float(np.sum(gelu_forward(x)[0] * dy)), x))

# %%
xs = np.linspace(-4, 4, 401)
fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
gelu_xs, gelu_cache = gelu_forward(xs)  # the kernel returns (y, cache), as every layer does
a1.plot(xs, gelu_xs, label="gelu(x) (erf)")
a1.plot(xs, gelu_backward(np.ones_like(xs), gelu_cache), "--", label="gelu'(x)")
a1.axhline(0, color="k", lw=0.5)
a1.set(xlabel="x (pre-activation, unitless)", ylabel="value", title="GELU and its derivative")
a1.legend(fontsize=8)
a2.plot(xs, gelu_forward(xs, approximate="tanh")[0] - gelu_xs, color="C2")
a2.axhline(0, color="k", lw=0.5)
a2.set(xlabel="x (pre-activation, unitless)", ylabel="tanh form − erf form",
       title="the tanh approximation's error")
a2.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
plt.show()
print("max |tanh - erf| on [-4, 4]:", float(np.max(np.abs(gelu_forward(xs, approximate="tanh")[0] - gelu_xs))))

# %% [markdown]
# ## 3. LayerNorm, one stage at a time
# The forward, per row of C features, written as a chain of small steps:
#
# ```
# mu   = x.mean(-1, keepdims=True)            # (N, 1)
# xc   = x - mu                               # (N, C)
# var  = (xc ** 2).mean(-1, keepdims=True)    # (N, 1)   biased: divide by C
# r    = 1 / sqrt(var + eps)                  # (N, 1)
# xhat = xc * r                               # (N, C)
# y    = gamma * xhat + beta                  # (N, C)
# ```
#
# Go backwards through it. Each stage's reference is the finite-difference derivative of the
# loss with respect to that intermediate alone, holding the ones before it fixed; each stage's
# inputs are the *reference* values of the stages before, so one mistake does not spread.

# %%
N, C, eps = 4, 8, 1e-12
x = rng.standard_normal((N, C)) * 2 + 1
gamma = 1 + 0.5 * rng.standard_normal(C)  # not all ones
beta = 0.3 * rng.standard_normal(C)  # not all zeros
dy = rng.standard_normal((N, C))  # random, not all ones
mu = x.mean(-1, keepdims=True)  # (N, 1)
xc = x - mu  # (N, C)
var = (xc ** 2).mean(-1, keepdims=True)  # (N, 1)
r = 1 / np.sqrt(var + eps)  # (N, 1)
xhat = xc * r  # (N, C)


def L_from_xhat(xhat_):
    return float(np.sum((gamma * xhat_ + beta) * dy))


# the loss as a function of one intermediate at a time (the later steps recomputed from it)
def L_var(var_):
    return L_from_xhat(xc / np.sqrt(var_ + eps))  # xc held fixed


def L_mu(mu_):
    xc_ = x - mu_  # x held fixed; var follows from xc_
    return L_from_xhat(xc_ / np.sqrt((xc_ ** 2).mean(-1, keepdims=True) + eps))

# %% [markdown]
# **Stage 0: the parameters.** `y = γ x̂ + β`; γ and β are shared by all N rows.

# %%
def ln_dgamma(dy, xhat):
    ### BEGIN SOLUTION
    return (dy * xhat).sum(axis=0)  # (C,)
    ### END SOLUTION


def ln_dbeta(dy):
    ### BEGIN SOLUTION
    return dy.sum(axis=0)  # (C,)
    ### END SOLUTION


check_stage("dgamma", ln_dgamma, (dy, xhat), numeric(lambda: L_from_xhat(xhat), gamma))
check_stage("dbeta", ln_dbeta, (dy,), numeric(lambda: L_from_xhat(xhat), beta))

# %% [markdown]
# **Stage 1: dx̂.** The gradient reaching the normalised input.

# %%
def ln_dxhat(dy, gamma):
    ### BEGIN SOLUTION
    return dy * gamma  # (N, C)
    ### END SOLUTION


dxhat_ref = numeric(lambda: L_from_xhat(xhat), xhat)
check_stage("dxhat", ln_dxhat, (dy, gamma), dxhat_ref)

# %% [markdown]
# **Stage 2: dvar.** `x̂ = xc · (var + ε)^(-1/2)`: only the factor r depends on var, and one
# var serves the whole row, so its gradient sums over the row (shape `(N, 1)`).

# %%
def ln_dvar(dxhat, xc, var, eps):
    ### BEGIN SOLUTION
    return (dxhat * xc).sum(-1, keepdims=True) * -0.5 * (var + eps) ** -1.5  # (N, 1)
    ### END SOLUTION


dvar_ref = numeric(lambda: L_var(var), var)
check_stage("dvar", ln_dvar, (dxhat_ref, xc, var, eps), dvar_ref)

# %% [markdown]
# **Stage 3: dμ.** μ reaches the loss two ways: through `xc = x - μ` directly, and through
# var (which is built from xc). Add both paths; one of them turns out to be exactly zero
# (why? `Σ_j xc_j = 0`).

# %%
def ln_dmu(dxhat, dvar, xc, r):
    ### BEGIN SOLUTION
    C = xc.shape[-1]
    direct = -(dxhat * r).sum(-1, keepdims=True)  # (N, 1)
    via_var = dvar * (-2.0 / C) * xc.sum(-1, keepdims=True)  # (N, 1), zero up to round-off
    return direct + via_var  # (N, 1)
    ### END SOLUTION


dmu_ref = numeric(lambda: L_mu(mu), mu)
check_stage("dmu", ln_dmu, (dxhat_ref, dvar_ref, xc, r), dmu_ref)

# %% [markdown]
# **Stage 4: dx.** x reaches the loss three ways: through `xc` (times r), through var
# (`∂var/∂x_j = 2 xc_j / C`), and through μ (`∂μ/∂x_j = 1/C`).

# %%
def ln_dx_stages(dxhat, dvar, dmu, xc, r):
    ### BEGIN SOLUTION
    C = xc.shape[-1]
    return dxhat * r + dvar * 2.0 * xc / C + dmu / C  # (N, C)
    ### END SOLUTION


dx_ref = numeric(lambda: float(np.sum(layernorm_forward(x, gamma, beta)[0] * dy)), x)
check_stage("dx", ln_dx_stages, (dxhat_ref, dvar_ref, dmu_ref, xc, r), dx_ref)

# %% [markdown]
# **Stage 5: one line.** Substitute the stages into each other and simplify with `g = dy γ`:
# write dx from `dy, x̂, r, γ` alone, with no intermediate except row means. (This is what the
# package's kernel computes, fused.)

# %%
def ln_dx(dy, xhat, r, gamma):
    ### BEGIN SOLUTION
    g = dy * gamma  # (N, C)
    return r * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))  # (N, C)
    ### END SOLUTION


y, ln_cache = layernorm_forward(x, gamma, beta)  # the cache: x, gamma, mean, rstd
check_stage("dx (one line)", ln_dx, (dy, xhat, r, gamma), dx_ref)
check_stage("dx (one line) ~ kernel", ln_dx, (dy, xhat, r, gamma),
            layernorm_backward(dy, ln_cache)[0])

# %% [markdown]
# **Why a random `dy` and γ ≠ 1.** With `dy = 1` and `γ = 1`, `g` is constant, the true `dx`
# is exactly zero, and a formula that forgets the variance path, `r (g − mean(g))`, *also*
# gives zero. A check with those inputs passes for the wrong reason. A random `dy` exposes it:

# %%
def forgot_variance(dy, gamma):
    g = dy * gamma
    return r * (g - g.mean(-1, keepdims=True))  # (N, C) the variance path is missing


ones, g1 = np.ones_like(x), np.ones(C)
true1 = numeric(lambda: float(np.sum(layernorm_forward(x, g1, beta)[0] * ones)), x)
bug1 = forgot_variance(ones, g1)
hidden = np.allclose(bug1, true1, atol=1e-8)
print(f"all-ones dy, gamma = 1: max|buggy dx| = {np.abs(bug1).max():.1e}, "
      f"max|true dx| = {np.abs(true1).max():.1e}, allclose: {hidden}  (the bug hides)")
assert hidden
print("random dy, gamma != 1 (the bug shows):")
v = gradcheck.compare({"no variance path": (forgot_variance(dy, gamma), dx_ref)})
assert not v

# %% [markdown]
# ## 4. Softmax with temperature
# `p = softmax(x / τ)`. Higher τ flattens the distribution: that is what lets a student see the
# teacher's "dark knowledge" about which wrong answers are almost right.

# %%
logits = np.array([4.0, 2.5, 1.0, 0.5, -1.0, -2.0])
fig, ax = plt.subplots()
for i, tau in enumerate([0.5, 1, 2, 5]):
    ax.bar(np.arange(6) + 0.2 * i - 0.3, softmax_forward(logits, tau)[0], width=0.2, label=f"τ={tau}")
ax.set(xlabel="class index", ylabel="probability", title="softmax(x / τ) of the logits 4, 2.5, ..., -2")
ax.set_xticks(np.arange(6))
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Write `dx` for `p = softmax(z)`, `z = x / τ`. Two things to get right: every `p_i` depends
# on every `z_j` (the Jacobian is not diagonal), and the chain rule through `x / τ`.

# %%
def softmax_dx(dp, p, tau):
    ### BEGIN SOLUTION
    return p * (dp - (dp * p).sum(-1, keepdims=True)) / tau  # (N, V)
    ### END SOLUTION


x = rng.standard_normal((3, 7)) * 2
dp = rng.standard_normal(x.shape)
for tau in (0.5, 2.0):
    p, _ = softmax_forward(x, tau)
    want = numeric(lambda: float(np.sum(softmax_forward(x, tau)[0] * dp)), x)
    check_stage(f"softmax dx, τ={tau}", softmax_dx, (dp, p, tau), want)

# %% [markdown]
# ## Both backends agree
# Each kernel has a readable NumPy twin and a fused Numba version; `use_backend` switches.

# %%
p, sm_cache = softmax_forward(x, 2.0)  # the cache holds p and tau: all the backward needs
with use_backend("numpy"):
    twin = softmax_backward(dp, sm_cache)
with use_backend("numba"):
    fused = softmax_backward(dp, sm_cache)
print("softmax_backward, NumPy twin vs Numba: max |diff| =", float(np.max(np.abs(twin - fused))))

# %% [markdown]
# ## Summary
# * Linear: the three gradients each have the shape of what they differentiate; a non-square
#   weight turns a misplaced transpose into a shape error.
# * GELU: a product, so two terms.
# * LayerNorm: μ and var see every input of the row, so dx collects three paths (through xc,
#   var, μ); one stage at a time, each with its own check, then simplified to one line.
# * Softmax-τ: a non-diagonal Jacobian, and the chain-rule factor 1/τ.
# * Check with finite differences, a random `dy`, non-trivial parameters, in float64.
#
# **Exercises.** `from minidistil.exercises import check; check("layernorm", fn)` (also
# `linear`, `gelu`, `softmax_t`, `log_softmax_t`); the checker names the classic mistakes. Then:
# (1) derive the tanh-GELU derivative and check it against
# `gelu_backward(dy, gelu_forward(x, approximate="tanh")[1])`; (2) show numerically that the softmax gradient
# sums to zero along each row, and explain why.
