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
# # 12. Data parallelism: many ranks, one gradient
#
# **Learning goals**
# * see why the gradients of the shards of a batch, summed, are the gradient of the whole batch,
#   and check it to float64 round-off;
# * get the normalisation right: every loss here is a MEAN over masked (or real) tokens, and the
#   ranks hold different numbers of them;
# * count the global batch: `batch_size x accum_steps`, whatever the number of ranks;
# * see where a data-parallel step spends its time: compute that shrinks as 1/N, an Allreduce
#   that does not.
#
# The ranks are simulated in this one process: rank r runs the same `step_fn` as
# `mpiexec -n N minidistil pretrain` would, with `shard=Shard(r, N)` (docs/distributed.md).

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from minidistil import Bert, BertConfig
from minidistil.data.batches import pad_batch
from minidistil.masking import IGNORE_INDEX, mask_tokens
from minidistil.parallel import Shard, share
from minidistil.train.optim import accumulate_grads
from minidistil.train.pretrain import make_mlm_step
from minidistil.train.runs import StageConfig

plt.rcParams.update({"figure.figsize": (6.4, 3.4), "figure.dpi": 110, "savefig.dpi": 110})
V = 40


class Tok:  # the ids the masking needs: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4
    vocab_size, mask_id, special_ids = V, 4, [0, 1, 2, 3, 4]


rng = np.random.default_rng(0)
teacher = Bert(BertConfig.tiny(vocab_size=V), dtype=np.float64, seed=0)
for a in teacher.params.values():  # non-trivial parameters
    a += 0.2 * rng.standard_normal(a.shape)
seqs = [np.array([2] + list(rng.integers(5, V, size=int(rng.integers(10, 18)))) + [3]) for _ in range(7)]
ids, attn = pad_batch(seqs, 0)  # (B, T) = (7, T)
print("batch", ids.shape, "real tokens per row", attn.sum(1))

# %% [markdown]
# ## Why the shard gradients add up
# The batch loss is a mean over the n masked tokens of the batch: `L = (1/n) sum_i l_i`. Its
# gradient is linear in the per-token terms: `dL = (1/n) sum_i dl_i`. Cut the tokens into the
# shards of the ranks: `dL = sum_r (1/n) sum_{i in r} dl_i`. So each rank must compute
# `(1/n) sum_{i in r} dl_i` — its own sum divided by the GLOBAL count n — and the sum over ranks
# is exact. A rank that computes its own mean `(1/n_r) sum_{i in r} l_i` has to be weighted by
# `n_r / n` to get there.
#
# Every rank draws the mask of the whole batch (same generator state everywhere), so it knows n
# without any message. Below: 1, 2, 3 and 8 ranks (8 ranks on 7 rows: one rank has no row).

# %%
step_one = make_mlm_step(teacher, Tok, StageConfig())
loss_full, g = step_one(ids, attn, np.random.default_rng(5))
grad_full = {k: v.copy() for k, v in g.items()}


def on_ranks(n_ranks, seed=5):
    loss, grads = 0.0, None
    for r in range(n_ranks):
        step_r = make_mlm_step(teacher, Tok, StageConfig(), shard=Shard(r, n_ranks))
        part, g_r = step_r(ids, attn, np.random.default_rng(seed))  # same mask on every rank
        loss += part["loss"]
        grads = accumulate_grads(grads, g_r)  # the "Allreduce": a sum
    return loss, grads


def rel_error(a, b):
    num = np.sqrt(sum(float(((a[k] - b[k]) ** 2).sum()) for k in b))
    return num / np.sqrt(sum(float((b[k] ** 2).sum()) for k in b))


print(f"{'ranks':>5} {'loss':>20} {'loss rel. error':>16} {'gradient rel. error':>20}")
for n_ranks in (1, 2, 3, 8):
    loss, grads = on_ranks(n_ranks)
    err_l, err_g = abs(loss - loss_full["loss"]) / loss_full["loss"], rel_error(grads, grad_full)
    print(f"{n_ranks:>5} {loss:>20.15f} {err_l:>16.1e} {err_g:>20.1e}")
    assert err_l < 1e-12 and err_g < 1e-12

# %% [markdown]
# ## The trap: averaging the ranks' means
# `torch.distributed`'s DDP averages the ranks' gradients: with a loss that is a mean over each
# rank's own tokens, that is `mean_r L_r`, a slightly different objective whenever the ranks hold
# different numbers of masked tokens. Here the two halves of the batch:

# %%
for seed in range(20):  # a mask that gives the two halves different numbers of targets
    _, labels = mask_tokens(ids, attn, np.random.default_rng(seed), V, 4, Tok.special_ids)
    counts = [int((labels[Shard(r, 2).rows(len(ids))] != IGNORE_INDEX).sum()) for r in range(2)]
    if counts[0] != counts[1]:
        break
whole, _ = step_one(ids, attn, np.random.default_rng(seed))
own_means = []
for r in range(2):
    part, _ = make_mlm_step(teacher, Tok, StageConfig(), shard=Shard(r, 2))(ids, attn, np.random.default_rng(seed))
    own_means.append(part["loss"] / share(counts[r], sum(counts)))  # undo the weight: rank r's own mean
naive = np.mean(own_means)
print(f"mask seed {seed}: masked tokens per rank {counts}")
print(f"rank means {own_means[0]:.6f}, {own_means[1]:.6f}")
print(f"weighted by n_r / n: {sum(c / sum(counts) * m for c, m in zip(counts, own_means)):.12f}")
print(f"plain average:       {naive:.12f}")
print(f"one process:         {whole['loss']:.12f}")
assert abs(naive - whole["loss"]) > 1e-6  # the plain average is not the batch's loss

# %% [markdown]
# ## One flat buffer
# MPI pays a fixed latency per call; ~100 tensors would pay it ~100 times a step. minidistil keeps
# all gradients in ONE contiguous buffer, each tensor's gradient a view into it, and sums that
# buffer with one `Allreduce`. The views mean no copy in or out:

# %%
total = sum(p.size for p in teacher.params.values())
flat = np.zeros(total)  # (P,) the buffer MPI reduces
views, off = {}, 0
for name, p in teacher.params.items():
    views[name] = flat[off:off + p.size].reshape(p.shape)  # a view, shaped like the parameter
    off += p.size
accumulate_grads(views, grad_full)  # accumulate in place, as the loop does
name0 = next(iter(views))
print(f"{len(views)} tensors, {total} numbers, {flat.nbytes / 1e3:.1f} kB in one buffer;",
      "views share its memory:", np.shares_memory(views[name0], flat))
assert np.array_equal(views[name0], grad_full[name0])

# %% [markdown]
# ## The global batch
# One optimizer step sees `batch_size x accum_steps` sequences; the ranks only split each
# micro-batch. The paper's 4K sequences on 8 GPUs, for instance:

# %%
print(f"{'batch_size':>10} {'accum':>6} {'ranks':>6} {'rows/rank':>10} {'global batch':>13} {'Allreduces/step':>16}")
for bs, acc, n in ((32, 1, 1), (32, 1, 2), (64, 64, 8), (512, 8, 8), (16, 256, 1)):
    print(f"{bs:>10} {acc:>6} {n:>6} {bs / n:>10.0f} {bs * acc:>13} {1:>16}")

# %% [markdown]
# ## Where the time goes
# A step on N ranks costs about `compute(B / N) + Allreduce(4P bytes)`. Compute shrinks as 1/N;
# the Allreduce sends `2 (N - 1) / N x 4P` bytes per rank, nearly constant in N. Below, the
# compute of this tiny model measured on 7, 4 and 2 rows, then the same model for a
# DistilBERT-sized network on 10 Gbit/s. Compute shrinks as 1/N only when each rank's share of
# the batch is large enough to keep the cores busy: the tiny model below shows the opposite end.

# %%
def timed(rows, repeats=5):
    sub_ids, sub_attn = ids[:rows], attn[:rows]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        step_one(sub_ids, sub_attn, np.random.default_rng(5))
        best = min(best, time.perf_counter() - t0)
    return best


timed(7, 1)  # warm-up (JIT, caches)
measured = {rows: timed(rows) for rows in (7, 4, 2)}
for rows, t in measured.items():
    print(f"{rows} rows: {1e3 * t:.2f} ms (best of 5; a shared machine: read as ratios)")
print(f"7 rows / 2 rows: {measured[7] / measured[2]:.2f}x the time for 3.5x the rows: at this size a"
      " step's fixed costs (Python, many small kernels) dominate, and splitting the batch saves little")

P_models = {"this tiny teacher": total, "DistilBERT (66 M)": 66_362_880}
bandwidth = 1.25e9  # bytes/s, 10 Gbit/s
ranks = np.array([1, 2, 4, 8, 16, 32, 64])
fig, ax = plt.subplots(layout="constrained")
compute_distil = 2.0  # seconds for one micro-batch of DistilBERT on one worker: an assumed figure
allreduce = 2 * (ranks - 1) / ranks * 4 * P_models["DistilBERT (66 M)"] / bandwidth  # (len(ranks),)
ax.plot(ranks, compute_distil / ranks, "o-", label="compute: 2 s / N (assumed)")
ax.plot(ranks[1:], allreduce[1:], "s-", label="Allreduce of 266 MB at 10 Gbit/s")
ax.plot(ranks, compute_distil / ranks + allreduce, "k--", label="step")
ax.set_xscale("log", base=2), ax.set_yscale("log")
ax.set_xlabel("ranks N"), ax.set_ylabel("time per micro-batch step (s)"), ax.legend(fontsize=8)
ax.set_title("DistilBERT-sized model, no accumulation")
plt.show()
cross = ranks[np.argmax(compute_distil / ranks < allreduce)]
print(f"from about {cross} ranks on, the Allreduce costs more than the compute;"
      " accumulating k micro-batches per step divides its share by k")

# %% [markdown]
# ## Summary
# * Gradients are linear in the per-token terms, so the shards' gradients add up to the batch's —
#   provided each rank divides by the batch's token count, not its own (checked above to 1e-15).
# * Drawing the mask of the whole batch on every rank makes that count free and the run
#   independent of the number of ranks (so `--resume` may change it).
# * The global batch is `batch_size x accum_steps`; ranks make a step faster, not bigger.
# * One Allreduce on one flat buffer per optimizer step; its cost grows with the model, not with
#   the number of ranks, and gradient accumulation divides it by `accum_steps`.
