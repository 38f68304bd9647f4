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
# # 6. The three distillation losses
#
# **Learning goals**
# * see what a temperature does to the teacher's distribution, and why soft targets carry
#   more information than the single right answer;
# * understand — and measure — why the soft-target loss is multiplied by τ²;
# * compute Lce, Lmlm and Lcos with `minidistil.losses`, check each gradient by finite
#   differences, and check that padding gets exactly zero gradient;
# * combine them into DistilBERT's triple loss `5·Lce + 2·Lmlm + 1·Lcos` (τ = 2).

# %%
import matplotlib.pyplot as plt
import numpy as np

from minidistil import gradcheck
from minidistil.kernels import softmax_forward
from minidistil.losses import (DistillLossConfig, cosine_backward, cosine_forward, distill_loss_backward,
                               distill_loss_forward, mlm_backward, mlm_forward, soft_target_backward,
                               soft_target_forward)
from minidistil.masking import IGNORE_INDEX

plt.rcParams.update({"figure.figsize": (6.4, 3.4), "figure.dpi": 110, "savefig.dpi": 110})
rng = np.random.default_rng(0)

# %% [markdown]
# ## What temperature does
# A confident teacher puts almost all its mass on one token; dividing its logits by τ > 1
# reveals the ranking of the others ("dark knowledge", Hinton et al. 2015).

# %%
words = ["dog", "puppy", "cat", "wolf", "car", "the", "blue", "run"]
t_logits = np.array([8.0, 6.5, 4.0, 3.8, 0.5, 0.0, -0.5, -1.0])
fig, ax = plt.subplots()
for i, tau in enumerate([1, 2, 4]):
    ax.bar(np.arange(8) + 0.27 * (i - 1), softmax_forward(t_logits, tau)[0], width=0.27, label=f"τ={tau}")
ax.set_xticks(range(8), words, fontsize=8)
ax.set(xlabel="candidate word", ylabel="probability softmax(t / τ)",
       title="teacher distribution over a masked word")
ax.legend(fontsize=8)
plt.show()

entropy = lambda p: float(-(p * np.log(p)).sum())
for tau in (1, 2, 4, 8):
    p, _ = softmax_forward(t_logits, tau)  # (probabilities, cache for a backward we do not need)
    print(f"τ={tau}: entropy {entropy(p):.2f} nats (uniform: {np.log(8):.2f}), p(dog) = {p[0]:.2f}")

# %% [markdown]
# ## Lce: KL at temperature τ, times τ²
# `Lce = τ² · mean_rows KL(softmax(t/τ) ‖ softmax(s/τ))`; its gradient is
# `(τ / P) (softmax(s/τ) − softmax(t/τ))` (derivation in `docs/math.md`).

# %%
P, V, tau = 6, 10, 2.0
s = rng.standard_normal((P, V)) * 2
t = rng.standard_normal((P, V)) * 2
loss, cache = soft_target_forward(s, t, tau)
ds = soft_target_backward(1.0, cache)
by_hand = tau / P * (softmax_forward(s, tau)[0] - softmax_forward(t, tau)[0])
num = gradcheck.numerical_grad(lambda: soft_target_forward(s, t, tau)[0], s)
print(f"Lce = {loss:.4f}")
assert gradcheck.compare({"ds ~ numeric": (ds, num), "ds ~ formula": (ds, by_hand)})
print("student == teacher gives loss", soft_target_forward(t, t, tau)[0], "and zero gradient:",
      not np.any(soft_target_backward(1.0, soft_target_forward(t, t, tau)[1])))

# %% [markdown]
# ## Why τ²
# For large τ, `softmax(s/τ) − softmax(t/τ) ≈ (s − t)/(τ·V)` (after centring), so the
# gradient of the plain KL shrinks like `1/τ²`. Multiplying by τ² keeps the soft-target
# gradient on the same scale as the hard MLM loss whatever τ is. Measured:

# %%
taus = np.array([1, 1.5, 2, 3, 4, 6, 8, 12])
norm_with, norm_without = [], []
for tau in taus:
    g = soft_target_backward(1.0, soft_target_forward(s, t, tau)[1])
    norm_with.append(np.linalg.norm(g))
    norm_without.append(np.linalg.norm(g) / tau ** 2)
fig, ax = plt.subplots()
ax.loglog(taus, norm_with, "o-", label="τ² · KL (what DistilBERT uses)")
ax.loglog(taus, norm_without, "s-", label="KL alone")
ax.loglog(taus, norm_without[0] * taus ** -2.0, "k:", label="∝ 1/τ²")
ax.set_xticks([1, 2, 4, 8, 12], ["1", "2", "4", "8", "12"])
ax.xaxis.set_minor_formatter(plt.NullFormatter())
ax.set(xlabel="temperature τ (log scale)", ylabel="‖∂L/∂s‖, Frobenius norm (log scale)",
       title="τ² keeps the soft-target gradient's scale")
ax.legend(fontsize=8)
plt.show()
ratio = norm_with[-1] / norm_with[2]
print(f"gradient norm with τ², τ=12 vs τ=2: x{ratio:.2f};  without: x{norm_without[-1] / norm_without[2]:.3f}")
assert 0.2 < ratio < 5 and norm_without[-1] / norm_without[2] < 0.05

# %% [markdown]
# ## Lmlm: cross-entropy at the masked positions
# Labels hold the original id at masked positions and −100 (`IGNORE_INDEX`) elsewhere; only
# labelled rows count, and the gradient is `(softmax(s) − onehot(label)) / N` there, zero elsewhere.

# %%
labels = np.array([3, IGNORE_INDEX, 7, IGNORE_INDEX, IGNORE_INDEX, 1])
loss, cache = mlm_forward(s, labels)
dl = mlm_backward(1.0, cache)
num = gradcheck.numerical_grad(lambda: mlm_forward(s, labels)[0], s)
print(f"Lmlm = {loss:.4f} over {int((labels != IGNORE_INDEX).sum())} labelled rows")
assert gradcheck.compare({"dlogits ~ numeric": (dl, num)})
print("rows without a label get zero gradient:", not np.any(dl[labels == IGNORE_INDEX]))

# %% [markdown]
# ## Lcos: align the hidden states' directions
# `Lcos = mean over real positions of 1 − cos(s_h, t_h)`. It ignores the length of the vectors,
# so its gradient is orthogonal to `s_h`, and padded positions must get exactly zero.

# %%
B, T, C = 2, 5, 8
s_h, t_h = rng.standard_normal((B, T, C)), rng.standard_normal((B, T, C))
mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
loss, cache = cosine_forward(s_h, t_h, mask)
dh = cosine_backward(1.0, cache)
num = gradcheck.numerical_grad(lambda: cosine_forward(s_h, t_h, mask)[0], s_h)
print(f"Lcos = {loss:.4f}")
assert gradcheck.compare({"ds_h ~ numeric": (dh, num)})
print("zero at padding:", not np.any(dh[1, 3:]))
print("scale-invariant: loss(3 s_h) - loss(s_h) =", cosine_forward(3 * s_h, t_h, mask)[0] - loss)
print("gradient orthogonal to s_h: max |<ds_h, s_h>| =", float(np.abs((dh * s_h).sum(-1)).max()))

# %% [markdown]
# ## The triple loss
# `L = 5·Lce + 2·Lmlm + 1·Lcos` at τ = 2 (the Hugging Face recipe). Lce runs over every real
# position by default (`ce_positions="all"`), Lmlm over the masked ones, Lcos over the real ones.
# One backward gives the student's gradients on its logits and on its last hidden state.

# %%
cfg = DistillLossConfig()  # alpha_ce=5, alpha_mlm=2, alpha_cos=1, temperature=2
print(cfg)
B, T, V, C = 2, 5, 12, 8
attn = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
P = int(attn.sum())
s_logits, t_logits = rng.standard_normal((P, V)), rng.standard_normal((P, V))
labels = np.full((B, T), IGNORE_INDEX)
labels[0, 1], labels[1, 2] = 4, 9  # two masked positions
total, parts, cache = distill_loss_forward(s_logits, t_logits, labels, s_h, t_h, attn, cfg)
print({k: round(v, 4) for k, v in parts.items()})
assert abs(total - (5 * parts["loss_ce"] + 2 * parts["loss_mlm"] + parts["loss_cos"])) < 1e-12

ds_logits, ds_hidden = distill_loss_backward(1.0, cache)
f = lambda: distill_loss_forward(s_logits, t_logits, labels, s_h, t_h, attn, cfg)[0]
assert gradcheck.compare({"ds_logits ~ numeric": (ds_logits, gradcheck.numerical_grad(f, s_logits)),
                          "ds_hidden ~ numeric": (ds_hidden, gradcheck.numerical_grad(f, s_h))})

# %% [markdown]
# ## Summary
# * Temperature spreads the teacher's mass over plausible alternatives; the student learns the
#   whole ranking, not only the argmax.
# * The τ² factor cancels the `1/τ²` shrinkage of the soft-target gradient, so α_ce means the
#   same thing at any temperature.
# * Lmlm uses masked positions only; Lcos uses real positions only and is blind to vector length.
# * Every gradient above agrees with central differences to better than 1e-7.
#
# **Exercises.** (1) `check("kl_soft_target", fn)` and `check("cosine", fn)` from
# `minidistil.exercises`. (2) Repeat the τ² plot with `V = 1000`: does the scale change?
# (3) Set `ce_positions="masked"` in `DistillLossConfig` and compare `loss_ce`: which positions
# dropped out?
