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
# # Gradient exercises: write the backward pass, let the checker grade it
#
# **Learning goals.** After these exercises you can derive and implement, by hand, the backward
# pass of every operation in DistilBERT: a linear layer, GELU, LayerNorm, softmax with a
# temperature, the attention core (with padding), an embedding whose matrix is tied to the
# output layer, the KL soft-target loss with its τ², the cosine loss, log-softmax, the MLM
# cross-entropy with its -100 label, the weighted triple loss, TinyBERT's hidden-state loss,
# and (bonus) a whole post-LN encoder block.
#
# **How it works.** Each exercise gives you the forward pass (in
# `minidistil.exercises.forwards`) and a function to complete. `check("<name>", fn)` runs your
# function on several random float64 shapes (with padding where it matters), compares every
# gradient with central finite differences and with a reference solution, prints the table and
# a PASS/FAIL verdict, and names the classic mistake when it recognises one. Your inputs are
# read-only: writing into `dy` is reported.
#
# The derivations are in `docs/math.md`. This notebook is generated from
# `tutorials/exercises/exercises.py` by `tutorials/exercises/make_notebooks.py`: the exercise
# version has the code between the `BEGIN SOLUTION`/`END SOLUTION` markers removed.

# %%
import math

import numpy as np

from minidistil.exercises import check, list_exercises
from minidistil.exercises import forwards as F

print(list_exercises())

# %% [markdown]
# ## 1. Linear: `y = x @ W.T + b`
# The weight is stored `(out_features, in_features)` as in Hugging Face. Return
# `(dx, dweight, dbias)`; `dweight` must have the layout of `weight`.

# %%
def linear_backward(dy, x, weight):
    ### BEGIN SOLUTION
    dx = dy @ weight  # (N, IN)
    dweight = dy.T @ x  # (OUT, IN)
    dbias = dy.sum(axis=0)  # (OUT,)
    return dx, dweight, dbias
    ### END SOLUTION


result = check("linear", linear_backward)

# %% [markdown]
# ## 2. GELU (exact): `y = x * Phi(x)`
# `Phi` is the standard normal CDF, `phi` its density. Return `dx`.

# %%
def gelu_backward(dy, x):
    ### BEGIN SOLUTION
    cdf = 0.5 * (1.0 + F._erf(x / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return dy * (cdf + x * pdf)
    ### END SOLUTION


result = check("gelu", gelu_backward)

# %% [markdown]
# ## 3. LayerNorm over the last axis
# `y = (x - mean) * rstd * gamma + beta` with `rstd = 1 / sqrt(var + eps)`. Return
# `(dx, dgamma, dbeta)`. Hint: the mean and the variance both depend on every `x_j`.

# %%
def layernorm_backward(dy, x, gamma, eps=1e-12):
    ### BEGIN SOLUTION
    mean = x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + eps)
    xhat = (x - mean) * rstd
    lead = tuple(range(x.ndim - 1))
    g = dy * gamma
    dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).sum(axis=lead), dy.sum(axis=lead)
    ### END SOLUTION


result = check("layernorm", layernorm_backward)

# %% [markdown]
# ## 4. Softmax with temperature: `p = softmax(x / τ)`
# Return `dx` given the upstream `dp`.

# %%
def softmax_t_backward(dp, x, tau):
    ### BEGIN SOLUTION
    p = F.softmax_t(x, tau)
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True)) / tau
    ### END SOLUTION


result = check("softmax_t", softmax_t_backward)

# %% [markdown]
# ## 5. The attention core, with padded keys
# `probs = softmax(q k^T / sqrt(HS) + pad_bias)`, `out = probs @ v`; `probs` is given.
# Return `(dq, dk, dv)`.

# %%
def attention_backward(dout, q, k, v, probs):
    ### BEGIN SOLUTION
    scale = 1.0 / math.sqrt(q.shape[-1])
    dv = probs.swapaxes(-1, -2) @ dout
    dprobs = dout @ v.swapaxes(-1, -2)
    dscores = probs * (dprobs - (dprobs * probs).sum(-1, keepdims=True))
    return dscores @ k * scale, dscores.swapaxes(-1, -2) @ q * scale, dv
    ### END SOLUTION


result = check("attention", attention_backward)

# %% [markdown]
# ## 6. Embedding with a tied output matrix
# `h = W[ids]`, `logits = h @ W.T + b`: one matrix, two uses. Return `(dweight, dbias)`.
# Careful: an id may appear several times in `ids`.

# %%
def embedding_tied_backward(dlogits, ids, weight):
    ### BEGIN SOLUTION
    V, C = weight.shape
    d2 = dlogits.reshape(-1, V)
    dweight = d2.T @ weight[ids].reshape(-1, C)
    np.add.at(dweight, ids.reshape(-1), (dlogits @ weight).reshape(-1, C))
    return dweight, d2.sum(axis=0)
    ### END SOLUTION


result = check("embedding_tied", embedding_tied_backward)

# %% [markdown]
# ## 7. The KL soft-target loss with τ²
# `loss = τ**2 * mean over the P rows of KL(q || p)`, teacher `q = softmax(t/τ)`, student
# `p = softmax(s/τ)` (the notation of docs/math.md). Return
# `ds_logits`, times the upstream scalar `dloss`.

# %%
def kl_soft_target_backward(dloss, s_logits, t_logits, tau):
    ### BEGIN SOLUTION
    P = s_logits.shape[0]
    return dloss * tau * (F.softmax_t(s_logits, tau) - F.softmax_t(t_logits, tau)) / P
    ### END SOLUTION


result = check("kl_soft_target", kl_soft_target_backward)

# %% [markdown]
# ## 8. The cosine loss, averaged over real (non-padding) positions
# `loss = mean_{real} (1 - cos(s_h, t_h))`. Return `ds_h`.

# %%
def cosine_backward(dloss, s_h, t_h, mask):
    ### BEGIN SOLUTION
    m = np.asarray(mask, bool)[..., None]
    ns = np.linalg.norm(s_h, axis=-1, keepdims=True)
    nt = np.linalg.norm(t_h, axis=-1, keepdims=True)
    cos = (s_h * t_h).sum(-1, keepdims=True) / (ns * nt)
    return -dloss * (t_h / (ns * nt) - cos * s_h / ns ** 2) * m / m.sum()
    ### END SOLUTION


result = check("cosine", cosine_backward)

# %% [markdown]
# ## 9. Log-softmax with temperature: `y = log softmax(x / τ)`
# Return `dx` given the upstream `dy`. Careful: `sum(dy)` over a row is not 1.

# %%
def log_softmax_t_backward(dy, x, tau):
    ### BEGIN SOLUTION
    p = F.softmax_t(x, tau)
    return (dy - p * dy.sum(axis=-1, keepdims=True)) / tau
    ### END SOLUTION


result = check("log_softmax_t", log_softmax_t_backward)

# %% [markdown]
# ## 10. Cross-entropy with the -100 ignore label (the MLM loss)
# `loss = mean over rows with label != -100 of -log softmax(logits)[label]`; logits (B, T, V),
# labels (B, T). The label -100 (`F.IGNORE_INDEX`) marks a position that is not scored (what
# Hugging Face puts at every unmasked position). Return `dlogits`, times `dloss`.

# %%
def cross_entropy_backward(dloss, logits, labels):
    ### BEGIN SOLUTION
    keep = labels != F.IGNORE_INDEX
    g = F.softmax_t(logits)
    rows = np.nonzero(keep)
    g[rows + (labels[keep],)] -= 1.0
    return dloss * g * keep[..., None] / keep.sum()
    ### END SOLUTION


result = check("cross_entropy", cross_entropy_backward)

# %% [markdown]
# ## 11. The weighted triple loss: three gradients meet at one tensor
# `logits = h @ W.T`, then `a_ce * Lce(logits, t_logits, T) + a_mlm * Lmlm(logits, labels)
# + a_cos * Lcos(h, t_h)` with `alphas = (a_ce, a_mlm, a_cos)` (DistilBERT uses 5, 2, 1).
# Return `dh`. Reuse your functions from 7, 8 and 10.

# %%
def triple_loss_backward(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    ### BEGIN SOLUTION
    a_ce, a_mlm, a_cos = alphas
    logits = h @ weight.T
    dlogits = (a_ce * kl_soft_target_backward(1.0, logits, t_logits, tau)
               + a_mlm * cross_entropy_backward(1.0, logits, labels))
    every = np.ones((1, h.shape[0]), dtype=np.int64)
    dh = dlogits @ weight + a_cos * cosine_backward(1.0, h[None], t_h[None], every)[0]
    return dloss * dh
    ### END SOLUTION


result = check("triple_loss", triple_loss_backward)

# %% [markdown]
# ## 12. An intermediate-layer loss: TinyBERT's hidden-state MSE
# `loss = mean((s_h @ W.T - t_h) ** 2)` over every element; `W` (CT, CS) is a learned
# projection from the student's width to the teacher's. Return `(ds_h, dweight)`.

# %%
def hidden_mse_backward(dloss, s_h, t_h, weight):
    ### BEGIN SOLUTION
    e = s_h @ weight.T - t_h
    de = dloss * 2.0 * e / e.size
    return de @ weight, de.reshape(-1, e.shape[-1]).T @ s_h.reshape(-1, s_h.shape[-1])
    ### END SOLUTION


result = check("hidden_mse", hidden_mse_backward)

# %% [markdown]
# ## 13. Bonus: one post-LN encoder block
# `h = LN1(x + Attn(x)); y = LN2(h + FFN(h))` (see `forwards.encoder_block`). Return
# `(dx, grads)` with `grads` keyed like `p`. Reuse your functions above.

# %%
def encoder_block_backward(dy, x, mask, p, num_heads, eps=1e-12):
    ### BEGIN SOLUTION
    def lin(dy, x, w):  # linear backward over any leading shape
        dx, dw, db = linear_backward(dy.reshape(-1, dy.shape[-1]), x.reshape(-1, x.shape[-1]), w)
        return dx.reshape(x.shape), dw, db

    g = {}
    q = F.split_heads(F.linear(x, p["q.weight"], p["q.bias"]), num_heads)
    k = F.split_heads(F.linear(x, p["k.weight"], p["k.bias"]), num_heads)
    v = F.split_heads(F.linear(x, p["v.weight"], p["v.bias"]), num_heads)
    ctx, probs = F.attention(q, k, v, mask)
    ctx2 = F.merge_heads(ctx)
    r1 = x + F.linear(ctx2, p["o.weight"], p["o.bias"])
    h = F.layernorm(r1, p["ln1.weight"], p["ln1.bias"], eps)
    u = F.linear(h, p["ff1.weight"], p["ff1.bias"])
    r2 = h + F.linear(F.gelu(u), p["ff2.weight"], p["ff2.bias"])
    dr2, g["ln2.weight"], g["ln2.bias"] = layernorm_backward(dy, r2, p["ln2.weight"], eps)
    dgu, g["ff2.weight"], g["ff2.bias"] = lin(dr2, F.gelu(u), p["ff2.weight"])
    dh, g["ff1.weight"], g["ff1.bias"] = lin(gelu_backward(dgu, u), h, p["ff1.weight"])
    dr1, g["ln1.weight"], g["ln1.bias"] = layernorm_backward(dr2 + dh, r1, p["ln1.weight"], eps)
    dctx2, g["o.weight"], g["o.bias"] = lin(dr1, ctx2, p["o.weight"])
    dq, dk, dv = attention_backward(F.split_heads(dctx2, num_heads), q, k, v, probs)
    dx = dr1
    for name, d in (("q", dq), ("k", dk), ("v", dv)):
        dxp, g[name + ".weight"], g[name + ".bias"] = lin(F.merge_heads(d), x, p[name + ".weight"])
        dx = dx + dxp
    return dx, g
    ### END SOLUTION


result = check("encoder_block", encoder_block_backward)

# %% [markdown]
# ## Summary
# * Every backward pass is a handful of matrix products and reductions; finite differences in
#   float64 with a random upstream gradient tell you, to 1e-6 or better, whether it is right.
# * The classic traps: a transposed weight gradient, the LayerNorm mean term, the 1/τ of a
#   temperature and the τ² of the distillation loss, a tied matrix that collects two
#   gradients, repeated ids that need `np.add.at`, padding that must get exactly zero, and
#   writing into `dy`.
#
# **Going further.** Compare your functions with the package's production versions
# (`minidistil.kernels`, `minidistil.layers`, `minidistil.losses`) and run the checker with
# another `seed`.
