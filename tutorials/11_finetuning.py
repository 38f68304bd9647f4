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
# # 11. Fine-tuning: the [CLS] token, two heads, and "97% of BERT's performance"
#
# **Learning goals**
# * see what the hidden state of `[CLS]` carries: after attention it depends on *every* token;
# * understand why BERT's classifier reads a **pooler** and DistilBERT's reads a `pre_classifier`
#   instead (DistilBERT dropped next-sentence prediction, which trained the pooler);
# * check the head's backward by finite differences, dropout included;
# * fine-tune the shipped (pretrained) teacher and a student made from it on a task of the
#   miniature GLUE, compute the student's **retention** with its interval, and add the second
#   distillation step of the paper's Table 2, "DistilBERT (D)".
#
# The paper's headline figure (Sanh et al. 2019, Table 1) is a downstream result: DistilBERT's
# GLUE macro-score is 77.0 against BERT-base's 79.5, 97% of it. `minidistil glue --out RUN`
# reproduces that protocol on four tasks built from the embedded corpus (docs/glue.md). This
# notebook shows the mechanics, then runs the protocol once, on one task and a slice of it, so
# that it finishes in about a minute.

# %%
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np

from minidistil import Bert, BertConfig, DistilBert, fast, load_pretrained
from minidistil.assets import teacher_folder
from minidistil.data.tasks import load_task
from minidistil.gradcheck import compare, numerical_grad, sample_indices
from minidistil.models.heads import BertForSequenceClassification, DistilBertForSequenceClassification, classifier_for
from minidistil.task_losses import task_loss_backward, task_loss_forward
from minidistil.train.baselines import bow_baseline, majority_baseline
from minidistil.train.finetune import FinetuneConfig, encode_examples, finetune, predict_logits
from minidistil.train.glue import bootstrap_scores

plt.rcParams.update({"figure.figsize": (6.4, 3.4), "figure.dpi": 110, "savefig.dpi": 110})
T0 = time.perf_counter()
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. What [CLS] carries
#
# `[CLS]` is an ordinary token at position 0. Its embedding means nothing by itself, but after
# one self-attention layer its hidden state is a weighted mix of every position. We measure that
# directly: the gradient of `h_L[:, 0]` (through a random direction) with respect to each
# input position's embedding is non-zero for every real token, and exactly zero for padding.

# %%
cfg = BertConfig.tiny(vocab_size=50)
bert = Bert(cfg, dtype=np.float64, seed=0)
ids = rng.integers(5, 50, size=(1, 8))  # (B, T)
ids[0, 0] = 2  # [CLS]
mask = np.ones((1, 8), dtype=np.int64)  # (B, T)
mask[0, 6:] = 0  # two padding positions
out = bert.forward(ids, mask)
L = cfg.num_hidden_layers
dh = np.zeros_like(out.hidden_states[L])  # (B, T, C)
dh[0, 0] = rng.standard_normal(cfg.hidden_size)  # only [CLS]'s output is differentiated
grads = bert.backward(None, out.cache, dhidden={L: dh})
# the position-embedding gradient row t says how much position t moved [CLS]'s output
influence = np.linalg.norm(grads["bert.embeddings.position_embeddings.weight"][:8], axis=1)  # (T,)
for t, v in enumerate(influence):
    print(f"position {t} ({'pad' if not mask[0, t] else 'real'}): |d h_cls / d e_t| = {v:.3e}")
assert np.all(influence[:6] > 0) and np.all(influence[6:] == 0)

# %% [markdown]
# **Why a pooler, and why DistilBERT has none.** BERT was pretrained with next-sentence
# prediction (NSP), a classifier on `tanh(W h_cls + b)`: that dense layer, the *pooler*, was
# trained, so `BertForSequenceClassification` reuses it. DistilBERT removed NSP (RoBERTa had
# shown it does not help) together with the token-type embeddings and the pooler (paper,
# section 3). Hugging Face's `DistilBertForSequenceClassification` therefore brings a freshly
# initialised `pre_classifier` (dense + ReLU) in its place. Both heads then apply dropout and a
# `classifier` to `num_labels` outputs:

# %%
teacher_head = BertForSequenceClassification(cfg, num_labels=3)
student_head = DistilBertForSequenceClassification(cfg.replace(num_hidden_layers=1), num_labels=3)
for m in (teacher_head, student_head):
    own = [k for k in m.params if "classifier" in k or "pooler" in k]
    print(f"{type(m).__name__:<38} head parameters: {own}")

# %% [markdown]
# ## 2. The head's backward, checked by finite differences
#
# Forward: `u = relu(h_cls W_pre^T + b_pre)`, `z = dropout(u)`, `logits = z W^T + b`, and
# cross-entropy `L = -log softmax(logits)[y]`. Backward, in reverse: `dlogits = softmax - onehot(y)`
# (over the batch mean), `dW = dlogits^T z`, `dz = dlogits W`, dropout multiplies by the *same*
# mask (scaled by 1/(1-p)), ReLU passes the gradient where `u > 0`, and the pre-classifier is one
# more linear layer into `h_cls`. In float64, with dropout on and a fixed seed (the same mask in
# every evaluation), central differences must agree to about 1e-7:

# %%
clf = DistilBertForSequenceClassification(cfg, num_labels=3, dtype=np.float64, seed=1, seq_classif_dropout=0.3)
for a in clf.params.values():
    a += rng.normal(0, 0.1, a.shape)  # non-trivial parameters (biases away from 0)
x_ids = rng.integers(5, 50, size=(4, 6))  # (B, T)
x_mask = np.ones((4, 6), dtype=np.int64)  # (B, T)
y = np.array([0, 2, 1, 2])


def loss_fn():
    o = clf.forward(x_ids, x_mask, training=True, rng=7, keep_cache=False)
    return task_loss_forward(o.logits, y, clf.head.problem_type)[0]


o = clf.forward(x_ids, x_mask, training=True, rng=7)
loss, lc = task_loss_forward(o.logits, y, clf.head.problem_type)
g = clf.backward(task_loss_backward(1.0, lc), o.cache)
pairs, masks = {}, {}
for name in ["classifier.weight", "classifier.bias", "pre_classifier.weight", "pre_classifier.bias",
             "distilbert.transformer.layer.1.ffn.lin2.weight", "distilbert.embeddings.word_embeddings.weight"]:
    idx = sample_indices(clf.params[name].shape, 8, rng)
    pairs[name] = (g[name], numerical_grad(loss_fn, clf.params[name], indices=idx))
    masks[name] = idx
verdict = compare(pairs, tol=1e-6, mask=masks)
assert verdict

# %% [markdown]
# ## 3. Fine-tuning the teacher and a student, and retention
#
# The miniature GLUE's `area` task: which part of the standard library a sentence comes from
# (5 classes, train and dev split by document). Fine-tuning starts from **pretrained** encoders,
# as in the paper: the teacher is the 6-layer BERT that ships with minidistil (trained by
# `minidistil pretrain --preset teacher`), and the student is made from it by taking one layer out
# of two (`DistilBert.from_teacher`, the paper's initialisation). This student has *not* been
# distilled, to keep the notebook short: `minidistil demo` distils it, and `minidistil glue --out
# runs/demo` fine-tunes that distilled student. A slice of the task (800 training sentences, 300
# dev sentences) and 2 epochs keep this to about a minute. The speed layer is switched on, as the
# command line does (`minidistil.fast`, docs/performance.md): the same models, faster steps.
#
# The shipped folder is a `BertForMaskedLM` checkpoint, which has no pooler; the classifier gets
# a freshly initialised one (the warning says so, and Hugging Face does the same).

# %%
fast.enable()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # "no pooler (a BertForMaskedLM checkpoint)": expected here
    teacher_enc, tok = load_pretrained(teacher_folder())
student_enc = DistilBert.from_teacher(teacher_enc)
print(f"teacher: {teacher_enc.config.num_hidden_layers} layers, student: "
      f"{student_enc.config.num_hidden_layers} layers")
task = load_task("area")
task.train, task.dev = task.train[:800], task.dev[:300]
enc_tr = encode_examples(task.train, tok, 64, regression=False)
enc_dv = encode_examples(task.dev, tok, 64, regression=False)
ft = FinetuneConfig(epochs=2, lr=1e-3, batch_size=32, patience=1)
scores, preds = {}, {}
for name, enc in (("teacher", teacher_enc), ("student", student_enc)):
    model = classifier_for(enc, num_labels=task.num_labels, seed=0)
    res = finetune(model, enc_tr, enc_dv, task.metric, tok.pad_id, ft, seed=0)
    scores[name], preds[name] = res.best_score, res.dev_pred
    print(f"{name}: dev accuracy {res.best_score:.1f} (best epoch {res.best_epoch}, {res.seconds:.1f} s)")
    if name == "teacher":
        soft = predict_logits(model, enc_tr, tok.pad_id)  # (N, K) the fine-tuned teacher's logits
floors = {"majority": majority_baseline(task)["score"], "bag-of-words": bow_baseline(task)["score"]}
print(f"majority {floors['majority']:.1f}, bag-of-words {floors['bag-of-words']:.1f}")

# %% [markdown]
# **Retention, with its interval.** 300 dev sentences give each accuracy a standard error of
# about 2.5 points, so a ratio of two accuracies needs an interval before it means anything. We
# resample the dev sentences with replacement (a paired bootstrap: every resample scores both
# models on the same sentences, as `minidistil glue` does) and read the 2.5th and 97.5th
# percentiles of the ratio.

# %%
boot = bootstrap_scores([task], {k: {task.name: p} for k, p in preds.items()}, n=1000)  # (1000, 1) each
ratio = 100 * boot["student"][:, 0] / boot["teacher"][:, 0]
lo, hi = np.percentile(ratio, [2.5, 97.5])
print(f"retention: {100 * scores['student'] / scores['teacher']:.1f}% [{lo:.1f}, {hi:.1f}] (paper: 97%, "
      "on GLUE, after distillation)")

# %% [markdown]
# ## 4. The two-step distillation, "DistilBERT (D)"
#
# In the paper's Table 2, DistilBERT (D) is fine-tuned on SQuAD with a *second* distillation:
# besides the task loss, a soft-target loss against a BERT that was itself fine-tuned on the
# task. We do the same on `area`: `L = (1 - a) L_task + a τ² KL(softmax(t/τ) || softmax(s/τ))`
# with the fine-tuned teacher's logits `t` computed above (a = 0.5, temperature τ = 2), from the
# same student start, and compare it with plain fine-tuning on the same dev sentences.

# %%
d_model = classifier_for(student_enc, num_labels=task.num_labels, seed=0)
res_d = finetune(d_model, enc_tr, enc_dv, task.metric, tok.pad_id,
                 FinetuneConfig(epochs=2, lr=1e-3, patience=1, alpha_soft=0.5, temperature=2.0), seed=0,
                 soft_targets=soft)
scores["student (D)"], preds["student (D)"] = res_d.best_score, res_d.dev_pred
boot = bootstrap_scores([task], {k: {task.name: p} for k, p in preds.items()}, n=1000)
gain = boot["student (D)"][:, 0] - boot["student"][:, 0]
g_lo, g_hi = np.percentile(gain, [2.5, 97.5])
print(f"(D) minus plain fine-tuning: {scores['student (D)'] - scores['student']:+.1f} points "
      f"[{g_lo:+.1f}, {g_hi:+.1f}] (paper, SQuAD: +1.4 EM)")
print(f"resolved: (D) is {'better' if g_lo > 0 else 'worse'} on this slice" if g_lo > 0 or g_hi < 0 else
      "not resolved: the interval holds 0, so on this slice the second distillation step cannot be told "
      "apart from plain fine-tuning")
fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
names = list(scores)
se = [boot[n][:, 0].std() for n in names]  # each score's bootstrap standard error
ax.bar(names, [scores[n] for n in names], yerr=se, capsize=5, color=["tab:blue", "tab:orange", "tab:green"])
ax.axhline(floors["bag-of-words"], color="k", ls="--", label="bag-of-words baseline")
ax.axhline(floors["majority"], color="k", ls=":", label="majority baseline")
ax.set(xlabel="model", ylabel="dev accuracy (%), ±1 s.e.", ylim=(0, 100))
ax.set_title("area task: 800 training sentences, 2 epochs, pretrained teacher")
ax.legend(loc="upper right")
plt.show()
for n in names:
    print(f"{n:<12} {scores[n]:.1f}")
print(f"notebook time: {time.perf_counter() - T0:.0f} s")

# %% [markdown]
# ## Summary
#
# * `[CLS]`'s last hidden state depends on every real token (and on no padding): it is the
#   sequence summary a classifier reads.
# * BERT's head is pooler -> dropout -> classifier; DistilBERT, with no NSP and so no pooler,
#   uses pre_classifier -> ReLU -> dropout -> classifier. Both backward passes are checked above.
# * Retention is the student's score over the teacher's, after both are fine-tuned the same way;
#   `minidistil glue --out RUN` does it on four tasks, with three seeds and the median, beside the
#   baselines and the paper's rows, and adds Table 2's DistilBERT (D).
# * Fine-tuning starts from pretrained encoders: the shipped teacher and a student made from its
#   layers clear the bag-of-words floor. Here the student was not distilled and the task is a
#   slice; `minidistil demo` then `minidistil glue --out runs/demo` gives the full comparison
#   (docs/reproduction.md has its figures).
