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
# # 5. The student: half the layers, initialised from the teacher
#
# **Learning goals**
# * derive DistilBERT from BERT the way the paper does: drop the token-type embeddings and the
#   pooler, halve the number of layers;
# * initialise the student by taking one teacher layer out of two, and verify the copy;
# * measure what that initialisation is worth against a random one — before any training, and
#   after a few distillation steps.

# %%
import dataclasses
import os
import shutil
import tempfile

import matplotlib.pyplot as plt
import numpy as np

from minidistil import BertConfig, DistilBert
from minidistil.models import count_parameters
from minidistil.train import intervals
from minidistil.train.demo import load_teacher_folder, shipped_teacher_folder, teacher_run_config
from minidistil.train.distill import distill
from minidistil.train.evaluate import cluster_masked, compare, make_eval_set, predict
from minidistil.train.loop import METRICS_FILE, read_metrics
from minidistil.train.runs import prepare_data

plt.rcParams.update({"figure.figsize": (6.4, 3.4), "figure.dpi": 110, "savefig.dpi": 110})
workdir = tempfile.mkdtemp(prefix="minidistil_nb05_")

# %% [markdown]
# ## At bert-base scale
# The paper's student keeps the hidden size (768) and the vocabulary, and halves the depth:
# 12 → 6 layers. Token-type embeddings and the pooler go (the student is trained without the
# next-sentence task).

# %%
base = BertConfig()
n_teacher = count_parameters(base, "bert")
n_student = count_parameters(base.replace(num_hidden_layers=6), "distilbert_mlm")
print(f"teacher (BERT with pooler + MLM head): {n_teacher:,}")
print(f"student (DistilBertForMaskedLM):       {n_student:,}  = {n_student / n_teacher:.0%} of the teacher")
assert n_student == 66_985_530

# %% [markdown]
# ## The teacher to start from
# minidistil ships a trained BERT teacher (`minidistil/assets/teacher/`, a Hugging Face
# `BertForMaskedLM` folder; its recipe and training curve are beside it, and notebook 4 shows how
# such a teacher is trained). Its data settings come with it, so the validation documents below
# are ones it never trained on.

# %%
folder = shipped_teacher_folder()
teacher, tok = load_teacher_folder(folder)
cfg = teacher_run_config(folder, teacher, tok, steps=30)
cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, n_masks=2, timing_repeats=1),
                          distill=dataclasses.replace(cfg.distill, ckpt_every=30))
data = prepare_data(cfg.data, tokenizer=tok)
print(teacher, "|", len(data.val), "validation sequences")

# %% [markdown]
# ## Building the student
# `DistilBert.from_teacher(teacher)` copies the embeddings, their LayerNorm, the MLM head and
# blocks `[0, 2, 4, ...]`. Which names disappear, which are renamed?

# %%
student = DistilBert.from_teacher(teacher)
print(student, "| teacher layers used:", student.teacher_layers)
t_names, s_names = set(teacher.params), set(student.params)
dropped = sorted(n for n in t_names if "token_type" in n or "pooler" in n)
print("only in the teacher:", dropped)
print("student names, e.g.:", sorted(s_names)[:4])
assert student.teacher_layers == list(range(0, teacher.config.num_hidden_layers, 2))
assert not any("token_type" in n or "pooler" in n for n in s_names)
print(f"size: {student.num_parameters():,} / {teacher.num_parameters():,} = "
      f"{student.num_parameters() / teacher.num_parameters():.0%}")

# %% [markdown]
# Check the copy tensor by tensor: student block j is teacher block 2j, under new names.

# %%
for j, i in enumerate(student.teacher_layers):
    sb, tb = student.block_params(j), teacher.block_params(i)
    assert sb.keys() == tb.keys()
    assert all(np.array_equal(sb[k], tb[k]) and sb[k] is not tb[k] for k in sb)  # equal copies
pairs = [("distilbert.embeddings.word_embeddings.weight", "bert.embeddings.word_embeddings.weight"),
         ("vocab_transform.weight", "cls.predictions.transform.dense.weight"),
         ("vocab_projector.bias", "cls.predictions.bias")]
for s_name, t_name in pairs:
    assert np.array_equal(student.params[s_name], teacher.params[t_name]), s_name
print(f"student blocks {list(range(len(student.teacher_layers)))} = teacher blocks "
      f"{student.teacher_layers}; embeddings and MLM head copied")

# %% [markdown]
# ## What the initialisation is worth, before any training
# Masked-token accuracy on fixed validation masks (every sequence masked twice, the same tokens
# for every model), with one standard error, for the teacher, the student taken from it, and a
# randomly initialised student of the same shape. The standard error treats a validation
# sequence as the sampling unit (`minidistil.train.intervals`).

# %%
evalset = make_eval_set(data.val, data.tokenizer, cfg.eval)
masked = cluster_masked(evalset)
random_student = DistilBert.random_init(student.config, dtype=np.float32, seed=0)
scores = {name: predict(m, evalset) for name, m in
          [(f"teacher ({teacher.config.num_hidden_layers} layers)", teacher),
           ("student from teacher", student), ("random student", random_student)]}
for name, s in scores.items():
    print(f"{name:<22} accuracy {intervals.fmt_pm(s['accuracy'], s['se'])}%   MLM loss {s['mlm_loss']:.3f}")
gap = compare(scores["student from teacher"], scores["random student"], masked)
print(f"teacher init minus random init: {100 * gap['diff']:+.2f} points, 95% CI {intervals.fmt_ci(gap['ci95'])} "
      f"({evalset.n_masks} masks, {scores['random student']['n_masked']} tokens)")
assert gap["ci95"][0] > 0  # resolved: the interval lies above zero

# %% [markdown]
# The student from the teacher starts far from random: it already knows the embeddings and the
# head, and its two blocks compute something close to what the teacher's first layers compute.
# How close are the last hidden states? (cosine similarity per token, what Lcos will push up)

# %%
b = evalset[0]
t_h = teacher.forward(b.input_ids, b.attention_mask, keep_cache=False).hidden_states[-1]
real = b.attention_mask.astype(bool)
for name, m in [("student from teacher", student), ("random student", random_student)]:
    s_h = m.forward(b.input_ids, b.attention_mask, keep_cache=False).hidden_states[-1]
    cos = (s_h * t_h).sum(-1) / (np.linalg.norm(s_h, axis=-1) * np.linalg.norm(t_h, axis=-1))
    print(f"{name:<22} mean cos(student, teacher) over real tokens: {cos[real].mean():.3f}")

# %% [markdown]
# ## And after a few distillation steps
# Distil both students for 30 steps with the triple loss, on the same batches and masks
# (notebook 7 runs it properly, with the controls).

# %%
curves, after = {}, {}
for init in ("teacher", "random"):
    run_cfg = dataclasses.replace(cfg, distill=dataclasses.replace(cfg.distill, student_init=init))
    folder = os.path.join(workdir, f"distill_{init}")
    s, _ = distill(run_cfg, workdir, data, teacher, progress=False, folder=folder)
    curves[init] = [r["loss"] for r in read_metrics(os.path.join(folder, METRICS_FILE))]
    after[init] = predict(s, evalset)
    print(f"init={init:<8} validation MLM loss {after[init]['mlm_loss']:.3f}, accuracy "
          f"{intervals.fmt_pm(after[init]['accuracy'], after[init]['se'])}% | last training loss "
          f"{np.mean(curves[init][-5:]):.3f}")
gap = compare(after["teacher"], after["random"], masked)
print(f"after 30 steps, teacher init minus random init: {100 * gap['diff']:+.2f} points, "
      f"95% CI {intervals.fmt_ci(gap['ci95'])}")

fig, ax = plt.subplots(layout="constrained")
for init, ys in curves.items():
    ax.plot(range(1, len(ys) + 1), ys, label=f"student init: {init}")
w = cfg.distill.loss
ax.set(xlabel="distillation step (optimizer step)",
       ylabel=f"triple loss {w.alpha_ce:g} Lce + {w.alpha_mlm:g} Lmlm + {w.alpha_cos:g} Lcos",
       title="the same batches and masks, two starting points")
ax.legend(fontsize=8)
plt.show()
assert np.mean(curves["teacher"][-5:]) < np.mean(curves["random"][-5:])
assert after["teacher"]["mlm_loss"] < after["random"]["mlm_loss"]
assert gap["ci95"][0] > 0  # the head start survives 30 steps of training

# %%
shutil.rmtree(workdir, ignore_errors=True)  # the run folders were only needed for this notebook

# %% [markdown]
# ## Summary
# * Student = teacher − token types − pooler, with half the layers: 61% of bert-base's size.
# * "One layer out of two" gives the student the teacher's embeddings, head and every other
#   block; it starts with a useful model instead of noise, and the gap over a random start is
#   measured with its 95% interval on the same validation tokens.
# * The paper's ablation (Table 4) puts the cost of a random initialisation at −3.69 GLUE points,
#   the largest of all; notebook 9 repeats that ablation in miniature.
#
# To scale up: a 12-layer teacher gives `[0, 2, 4, 6, 8, 10]` by default; the released DistilBERT
# used `DistilBert.from_teacher(teacher, layers=[0, 2, 4, 7, 9, 11])`.
#
# **Exercises.** (1) Initialise from layers `[1, 3]` or `[2, 3]` instead: which is best before
# training? (2) Make a 1-layer student: how much accuracy does the initialisation still give?
# (3) Why can the student keep the teacher's MLM head unchanged?
