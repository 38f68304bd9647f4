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
# # 7. Distillation end to end
#
# **Learning goals**
# * follow one distillation step: teacher forward (no caches), student forward, the triple loss,
#   student backward with an extra gradient on its last hidden state;
# * check that whole step's gradient by finite differences;
# * run the pipeline — pretrain a teacher, distil a student, evaluate both — and hold the result
#   against the paper's claims: 40% smaller, 60% faster, 97% of the performance retained.

# %%
import dataclasses
import os
import shutil
import tempfile

import matplotlib.pyplot as plt
import numpy as np

from minidistil import gradcheck
from minidistil.losses import DistillLossConfig, distill_loss_backward, distill_loss_forward
from minidistil.masking import mask_tokens
from minidistil.models import Bert, BertConfig, DistilBert
from minidistil.train.distill import distill
from minidistil.train.evaluate import PAPER, evaluate_models, format_table
from minidistil.train.loop import METRICS_FILE, read_metrics
from minidistil.train.pretrain import pretrain
from minidistil.train.runs import prepare_data, quick_config

plt.rcParams.update({"figure.figsize": (5.5, 3.0), "figure.dpi": 72})
workdir = tempfile.mkdtemp(prefix="minidistil_nb07_")

# %% [markdown]
# ## One step, by hand, checked
# A tiny float64 teacher and its student. The teacher is a constant: its forward keeps no
# caches. The student's logits get `ds_logits` (from Lce and Lmlm), its last hidden state gets
# `ds_hidden` (from Lcos), and one backward pass combines them.

# %%
rng = np.random.default_rng(0)
t_model = Bert(BertConfig.tiny(vocab_size=40), dtype=np.float64, seed=0)
for a in t_model.params.values():  # non-trivial parameters
    a += 0.3 * rng.standard_normal(a.shape)
s_model = DistilBert.from_teacher(t_model)
for a in s_model.params.values():  # make the student differ from its initialisation
    a += 0.1 * rng.standard_normal(a.shape)
ids = rng.integers(5, 40, size=(2, 7))
attn = np.array([[1] * 7, [1] * 5 + [0] * 2])
masked, labels = mask_tokens(ids, attn, rng, 40, 4, (0, 1, 2, 3, 4), mlm_prob=0.3)
positions = attn.astype(bool)  # Lce over every real token (the HF default)
lcfg = DistillLossConfig()  # 5 Lce + 2 Lmlm + 1 Lcos, T = 2
L = s_model.config.num_hidden_layers


def step_loss():
    t_out = t_model.forward(masked, attn, mlm_positions=positions, keep_cache=False)
    s_out = s_model.forward(masked, attn, mlm_positions=positions, keep_cache=False)
    return distill_loss_forward(s_out.logits, t_out.logits, labels, s_out.hidden_states[-1],
                                t_out.hidden_states[-1], attn, lcfg, positions)[0]


t_out = t_model.forward(masked, attn, mlm_positions=positions, keep_cache=False)
s_out = s_model.forward(masked, attn, mlm_positions=positions)
total, parts, cache = distill_loss_forward(s_out.logits, t_out.logits, labels, s_out.hidden_states[-1],
                                           t_out.hidden_states[-1], attn, lcfg, positions)
print({k: round(v, 4) for k, v in parts.items()})
ds_logits, ds_hidden = distill_loss_backward(1.0, cache)
grads = s_model.backward(ds_logits, s_out.cache, dhidden={L: ds_hidden})
pairs, masks = {}, {}
for name in ["distilbert.embeddings.word_embeddings.weight", "distilbert.transformer.layer.0.attention.q_lin.weight",
             "distilbert.transformer.layer.0.output_layer_norm.weight", "vocab_projector.bias"]:
    idx = gradcheck.sample_indices(s_model.params[name].shape, 8, rng)
    pairs[name[-28:]] = (grads[name], gradcheck.numerical_grad(step_loss, s_model.params[name], indices=idx))
    masks[name[-28:]] = idx
# bound 1e-6: the loss sums three terms (weights 5, 2, 1), so its central differences carry a
# little more round-off than a single layer's (the test suite uses Richardson extrapolation)
assert gradcheck.compare(pairs, tol=1e-6, mask=masks)

# %% [markdown]
# ## The pipeline at a tiny budget
# The `--quick` preset of the command line (`minidistil demo --quick`): 300 documents, vocabulary
# 400, sequences of 32 tokens; teacher hidden 32 with 2 layers (200 steps of 64 sequences), a
# 1-layer student distilled for 40 steps. A shallow teacher is chosen on purpose: a BERT trained
# from scratch first learns only token frequencies, and a deeper one needs longer to get past
# that stage. `minidistil demo` runs the same code at hidden 128, 6 → 3 layers.

# %%
cfg = quick_config(seed=0)
cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, timing_repeats=3))
print(cfg.model, "\n", cfg.pretrain, "\n", cfg.distill)
data = prepare_data(cfg.data)
teacher, _ = pretrain(cfg, workdir, data, progress=False)
student, _ = distill(cfg, workdir, data, teacher, progress=False)
print(teacher, "\n", student)

# %% [markdown]
# The three losses during distillation (weighted sum = what is minimised):

# %%
rows = read_metrics(os.path.join(workdir, "distill", METRICS_FILE))
steps = [r["step"] for r in rows]
fig, ax = plt.subplots()
for key, w in (("loss_ce", 5), ("loss_mlm", 2), ("loss_cos", 1)):
    ax.plot(steps, [w * r[key] for r in rows], label=f"{w} x {key}")
ax.plot(steps, [r["loss"] for r in rows], "k", lw=1, label="total")
ax.set_xlabel("distillation step"), ax.set_ylabel("loss"), ax.legend(fontsize=8)
plt.show()
first, last = np.mean([r["loss"] for r in rows[:5]]), np.mean([r["loss"] for r in rows[-5:]])
print(f"total loss {first:.2f} -> {last:.2f}")
assert last < first

# %% [markdown]
# ## Student against teacher, and against the paper
# Same validation text, same fixed mask for both models; inference timed in the same process,
# interleaved, best of three (the machine may be shared: read the speed-up as a ratio).

# %%
report = evaluate_models(teacher, student, data, cfg.eval)
print(format_table(report))

# %%
ours = [report["student"]["parameters"] / report["teacher"]["parameters"],
        report["teacher"]["time_per_batch_s"] / report["student"]["time_per_batch_s"],
        report["retention"]]
paper = [PAPER["student_params"] / PAPER["teacher_params"], PAPER["teacher_time_s"] / PAPER["student_time_s"],
         PAPER["student_glue"] / PAPER["teacher_glue"]]
labels_ = ["size (student / teacher)", "speed-up (teacher / student time)", "performance retained"]
fig, ax = plt.subplots(figsize=(6, 2.8))
xs = np.arange(3)
ax.bar(xs - 0.2, paper, 0.4, label="paper (bert-base, GLUE)")
ax.bar(xs + 0.2, ours, 0.4, label="ours (tiny, masked-token acc.)")
ax.set_xticks(xs), ax.set_xticklabels(labels_, fontsize=8), ax.axhline(1, color="k", lw=0.5)
ax.legend(fontsize=8)
plt.show()
print(f"agreement of student and teacher predictions at masked tokens: {report['agreement']:.1%}")
assert report["student"]["parameters"] < report["teacher"]["parameters"]

# %%
shutil.rmtree(workdir, ignore_errors=True)  # the run folders were only needed for this notebook

# %% [markdown]
# **Reading the numbers.** The size ratio is larger than the paper's 60%: at this scale the
# embeddings and the head are a bigger share of the model, and they are not halved. The
# speed-up depends on the share of time spent in the blocks (embedding lookup, MLM head and
# Python overhead do not shrink with depth), and on a shared machine it varies from run to run.
# The teacher is past the unigram baseline (last row: always predict the most frequent token),
# so it has learned to use context; but only a few hundred masked tokens are scored, one token is
# about a quarter of a point, and a retention above 100% is within that noise (the student also
# kept training on the MLM labels for 40 steps). Perplexity and teacher-student agreement are the
# finer signals at this size; `minidistil demo` (minutes instead of seconds) scores thousands of
# tokens (docs/reproduction.md).
#
# ## Summary
# * One distillation step = teacher forward (constant) + student forward + triple loss +
#   one student backward that receives gradients on both its logits and its last hidden state.
# * The step's gradient agrees with finite differences.
# * Even at this scale the student is smaller and faster, matches the teacher's perplexity and
#   agrees with most of its predictions; a precise retention figure needs a longer run.
#
# To scale up: `minidistil demo` (about 10 minutes), or `minidistil pretrain` / `distill` /
# `evaluate` with bigger `--steps`; the paper's recipe adds very large batches
# (gradient accumulation: `StageConfig.accum_steps`).
#
# **Exercises.** (1) Distil for 3x more steps: does retention improve? (2) Set
# `ce_positions="masked"`: what changes in `loss_ce`, and in accuracy? (3) Try temperature 1 and
# 4 (`DistillStageConfig.loss.temperature`).
