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
# # 3. Attention, forward and backward, with padding
#
# **Learning goals**
# * write scaled dot-product attention with a key-padding mask, as BERT does it (the most
#   negative finite number, not `-inf`);
# * derive its backward pass yourself, in stages (dV, dP, dS through the softmax, dQ, dK),
#   each checked by finite differences right after you write it, padding included;
# * see on attention maps that padded keys receive exactly zero weight, and that no gradient
#   flows into them;
# * assemble multi-head self-attention (projections, head split/merge) from the core.
#
# **How to use this notebook.** Each cell marked `# YOUR CODE HERE` raises
# `NotImplementedError` until you fill it in; the cell right after it checks your stage. The
# completed version is `03_attention_solutions.ipynb`, generated from the same source.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np

from minidistil import gradcheck
from minidistil.exercises.stages import check_stage
from minidistil.kernels import attention_backward, attention_forward
from minidistil.layers import merge_heads, self_attention_backward, self_attention_forward, split_heads

plt.rcParams.update({"figure.figsize": (6.4, 3.2), "figure.dpi": 110, "savefig.dpi": 110})
rng = np.random.default_rng(0)

# %% [markdown]
# ## The forward pass
# For one head: `S = q kᵀ / √HS + bias`, `P = softmax_rows(S)`, `O = P v`, where the bias is 0
# for a real key and `finfo.min` for a padded one. We write it in NumPy and compare with the
# package's kernel.

# %%
def my_attention(q, k, v, mask):
    HS = q.shape[-1]
    scores = q @ k.swapaxes(-1, -2) / math.sqrt(HS)  # (B, NH, T, T)
    scores = scores + np.where(mask, 0.0, np.finfo(q.dtype).min)[:, None, None, :]
    scores -= scores.max(-1, keepdims=True)
    e = np.exp(scores)
    probs = e / e.sum(-1, keepdims=True)  # (B, NH, T, T)
    return probs @ v, probs


B, NH, T, HS = 2, 2, 6, 4
q, k, v = (rng.standard_normal((B, NH, T, HS)) for _ in range(3))
mask = np.array([[1, 1, 1, 1, 1, 1],
                 [1, 1, 1, 1, 0, 0]])  # the second sequence has two padding tokens
out, attn_cache = attention_forward(q, k, v, mask)  # the cache keeps q, k, v and probs
probs = attn_cache.probs  # (B, NH, T, T) the attention weights
my_out, my_probs = my_attention(q, k, v, mask)
assert gradcheck.compare({"out ~ kernel": (my_out, out), "probs ~ kernel": (my_probs, probs)}, tol=1e-12)
print("rows of probs sum to 1:", np.allclose(probs.sum(-1), 1.0))
print("weight on padded keys:", float(probs[1, :, :, 4:].max()))

# %% [markdown]
# ## Attention maps
# Each row is a query, each column a key. In the padded sequence the last two columns are
# empty: no real token looks at padding. (Padded *queries* still produce rows; they are
# ignored later by the losses.)

# %%
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4), layout="constrained")
for ax, (b, h) in zip(axes, [(0, 0), (1, 0), (1, 1)]):
    im = ax.imshow(probs[b, h], vmin=0, vmax=1, cmap="viridis")
    ax.set_title(f"batch {b}, head {h}", fontsize=9)
    ax.set(xlabel="key position", ylabel="query position", xticks=range(T), yticks=range(T))
fig.colorbar(im, ax=axes, label="attention probability", shrink=0.9)
plt.show()

# %% [markdown]
# **Why not `-inf`?** A row whose keys are *all* padded would become `exp(-inf - (-inf))` = NaN.
# With the most negative finite value it stays a harmless uniform distribution:

# %%
all_pad = np.zeros((1, T), dtype=np.int64)
o, c = attention_forward(q[:1], k[:1], v[:1], all_pad)
print("fully padded row finite:", bool(np.all(np.isfinite(o))), "| probs row:", np.round(c.probs[0, 0, 0], 3))

# %% [markdown]
# ## The backward pass, one stage at a time
# Go down from the output `O = P v` (`docs/math.md`, "Attention", if you are stuck). Each
# stage's reference is the finite-difference derivative of `L = sum(O * dO)` with respect to
# that intermediate alone; each stage receives the *reference* values of the stages above it.

# %%
dout = rng.standard_normal(out.shape)  # (B, NH, T, HS) a random upstream gradient
scale = 1 / math.sqrt(HS)
bias = np.where(mask, 0.0, np.finfo(q.dtype).min)[:, None, None, :]  # (B, 1, 1, T)
scores = q @ k.swapaxes(-1, -2) * scale + bias  # (B, NH, T, T)


def softmax_rows(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


L_out = lambda: float(np.sum(probs @ v * dout))  # L as a function of probs and v
L_scores = lambda: float(np.sum(softmax_rows(scores) @ v * dout))  # ... of the scores
L_qk = lambda: float(np.sum(attention_forward(q, k, v, mask)[0] * dout))  # ... of q and k

# %% [markdown]
# **Stage 1: dV.** `O = P v`, a matrix product per (batch, head).

# %%
def attn_dv(dout, probs):
    ### BEGIN SOLUTION
    return probs.swapaxes(-1, -2) @ dout  # (B, NH, T, HS)
    ### END SOLUTION


dv_ref = gradcheck.numerical_grad(L_out, v)
check_stage("dV", attn_dv, (dout, probs), dv_ref)

# %% [markdown]
# **Stage 2: dP.** The same product, the other factor.

# %%
def attn_dprobs(dout, v):
    ### BEGIN SOLUTION
    return dout @ v.swapaxes(-1, -2)  # (B, NH, T, T)
    ### END SOLUTION


dprobs_ref = gradcheck.numerical_grad(L_out, probs)
check_stage("dP", attn_dprobs, (dout, v), dprobs_ref)

# %% [markdown]
# **Stage 3: dS, through the softmax.** Each row of P is a softmax of the same row of S (at
# temperature 1, as in notebook 2). The padding bias is a constant: what happens to dS at padded keys?

# %%
def attn_dscores(dprobs, probs):
    ### BEGIN SOLUTION
    return probs * (dprobs - (dprobs * probs).sum(-1, keepdims=True))  # (B, NH, T, T)
    ### END SOLUTION


dscores_ref = gradcheck.numerical_grad(L_scores, scores)
check_stage("dS", attn_dscores, (dprobs_ref, probs), dscores_ref)
print("dS at padded keys (batch 1):", float(np.abs(dscores_ref[1, :, :, 4:]).max()))

# %% [markdown]
# **Stage 4: dQ.** `S_ij = q_i · k_j / √HS`.

# %%
def attn_dq(dscores, k, HS):
    ### BEGIN SOLUTION
    return dscores @ k / math.sqrt(HS)  # (B, NH, T, HS)
    ### END SOLUTION


dq_ref = gradcheck.numerical_grad(L_qk, q)
check_stage("dQ", attn_dq, (dscores_ref, k, HS), dq_ref)

# %% [markdown]
# **Stage 5: dK.** `k_j` appears in column j of S, not row j.

# %%
def attn_dk(dscores, q, HS):
    ### BEGIN SOLUTION
    return dscores.swapaxes(-1, -2) @ q / math.sqrt(HS)  # (B, NH, T, HS)
    ### END SOLUTION


dk_ref = gradcheck.numerical_grad(L_qk, k)
check_stage("dK", attn_dk, (dscores_ref, q, HS), dk_ref)
kdq, kdk, kdv = attention_backward(dout, attn_cache)
check_stage("dK ~ kernel", attn_dk, (dscores_ref, q, HS), kdk)

# %% [markdown]
# Padded keys got zero weight, so they get zero gradient: whatever a padding token's key or
# value is, the real tokens never notice.

# %%
print("max |dk| at padded keys:", float(np.abs(kdk[1, :, 4:]).max()))
print("max |dv| at padded keys:", float(np.abs(kdv[1, :, 4:]).max()))
fig, ax = plt.subplots(figsize=(5.5, 3.2), layout="constrained")
ax.bar(np.arange(T), np.abs(kdk[1]).sum(axis=(0, 2)))
ax.set(xlabel="key position in sequence 1 (positions 4, 5 are padding)",
       ylabel="Σ |dk| over heads and features", title="gradient reaching each key", xticks=range(T))
plt.show()

# %% [markdown]
# ## Multi-head self-attention
# The layer projects `x` to q, k, v (`(B, T, C)` each), splits the hidden size into NH heads of
# HS = C / NH, runs the core, merges the heads back and projects with `o`. Its backward runs the
# same steps in reverse; `x` receives the sum of three gradients (it feeds q, k and v).

# %%
C, NH = 8, 2
x = rng.standard_normal((B, T, C))
p = {}
for name in "qkvo":
    p[f"{name}.weight"] = rng.standard_normal((C, C)) * 0.4
    p[f"{name}.bias"] = rng.standard_normal(C) * 0.1
y, cache = self_attention_forward(x, mask, p, NH)
print("split/merge round trip exact:", np.array_equal(merge_heads(split_heads(x, NH)), x))

dy = rng.standard_normal(y.shape)
dx, grads = self_attention_backward(dy, cache)
L = lambda: float(np.sum(self_attention_forward(x, mask, p, NH)[0] * dy))
pairs = {"dx ~ numeric": (dx, gradcheck.numerical_grad(L, x))}
for key in ("q.weight", "k.weight", "v.weight", "o.weight", "v.bias"):
    pairs[f"d{key} ~ numeric"] = (grads[key], gradcheck.numerical_grad(L, p[key]))
assert gradcheck.compare(pairs)
print("dk.bias is zero up to round-off: max |dk.bias| =", float(np.abs(grads["k.bias"]).max()),
      "(adding one vector to every key shifts each row of scores by a constant)")

# %% [markdown]
# ## Summary
# * Attention is two matrix products around a row softmax; its backward is the same two
#   products transposed around the softmax backward, with the `1/√HS` scale on `dq` and `dk`;
#   you derived it in five stages, each checked on its own.
# * Padding is handled by a finite, very negative bias: padded keys get probability 0 and
#   gradient 0; fully padded rows stay finite.
# * The key bias has zero gradient — a nice sanity check of any attention backward.
#
# To scale up: the same code runs at (B, NH, T, HS) = (32, 12, 128, 64); the Numba kernel fuses
# the scale, mask, softmax and its backward (notebook 8).
#
# **Exercises.** (1) `check("attention", fn)` from `minidistil.exercises`. (2) Plot how the
# entropy of each attention row changes if you multiply `q` by 3 (a lower "temperature").
# (3) Show numerically that `dq` is unchanged when you change the value vectors of padded keys.
