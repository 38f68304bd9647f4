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
# * fine-tune a teacher and a student on a task of the miniature GLUE, compute the student's
#   **retention**, and add the second distillation step of the paper's Table 2, "DistilBERT (D)".
#
# The paper's headline figure (Sanh et al. 2019, Table 1) is a downstream result: DistilBERT's
# GLUE macro-score is 77.0 against BERT-base's 79.5, 97% of it. `minidistil glue --out RUN`
# reproduces that protocol on four tasks built from the embedded corpus (docs/glue.md). This
# notebook shows the mechanics on small models so it runs in about a minute.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from minidistil import Bert, BertConfig, DistilBert
from minidistil.data.tasks import load_task
from minidistil.data.tokenizer import train_wordpiece
from minidistil.gradcheck import compare, numerical_grad, sample_indices
from minidistil.models.heads import BertForSequenceClassification, DistilBertForSequenceClassification, classifier_for
from minidistil.task_losses import task_loss_backward, task_loss_forward
from minidistil.train.baselines import bow_baseline, majority_baseline
from minidistil.train.finetune import FinetuneConfig, encode_examples, finetune, predict_logits

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
# ## 3. Fine-tuning a teacher and a student, and retention
#
# The miniature GLUE's `area` task: which part of the standard library a sentence comes from
# (5 classes, train and dev split by document). We take a small slice so that this runs in
# seconds, train a WordPiece vocabulary on its training sentences, and compare three rows:
# a teacher (`Bert`, 4 layers), a student made from it by taking one layer out of two, and the
# two baselines every score must stand on. Here the encoders are *not* pretrained (that is what
# `minidistil demo` does, in minutes): the point is the protocol, not the figures.

# %%
task = load_task("area")
task.train, task.dev = task.train[:600], task.dev[:200]
tok = train_wordpiece([ex.a for ex in task.train], 600)
enc_tr = encode_examples(task.train, tok, 40, regression=False)
enc_dv = encode_examples(task.dev, tok, 40, regression=False)
small = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                   intermediate_size=64, max_position_embeddings=40)
teacher_enc = Bert(small, seed=0)
student_enc = DistilBert.from_teacher(teacher_enc)
ft = FinetuneConfig(epochs=3, lr=2e-3, batch_size=32, patience=1)
scores, preds = {}, {}
for name, enc in (("teacher", teacher_enc), ("student", student_enc)):
    model = classifier_for(enc, num_labels=task.num_labels, seed=0)
    res = finetune(model, enc_tr, enc_dv, task.metric, tok.pad_id, ft, seed=0)
    scores[name] = res.best_score
    print(f"{name}: dev accuracy {res.best_score:.1f} (best epoch {res.best_epoch}, {res.seconds:.1f} s)")
    if name == "teacher":
        soft = predict_logits(model, enc_tr, tok.pad_id)  # (N, K) the fine-tuned teacher's logits
floors = {"majority": majority_baseline(task)["score"], "bag-of-words": bow_baseline(task)["score"]}
print(f"majority {floors['majority']:.1f}, bag-of-words {floors['bag-of-words']:.1f}")
print(f"retention: {100 * scores['student'] / scores['teacher']:.1f}% (paper: 97%)")
if max(scores.values()) <= floors["majority"] + 1:
    print("both models sit at the majority-class floor: encoders that were never pretrained learn "
          "nothing from 600 sentences in 3 epochs, so this retention is meaningless; it is why the "
          "paper (and `minidistil glue`) fine-tunes *pretrained* encoders")

# %% [markdown]
# ## 4. The two-step distillation, "DistilBERT (D)"
#
# In the paper's Table 2, DistilBERT (D) is fine-tuned on SQuAD with a *second* distillation:
# besides the task loss, a soft-target loss against a BERT that was itself fine-tuned on the
# task. We do the same on `area`: `L = (1 - a) L_task + a τ² KL(softmax(t/τ) || softmax(s/τ))`
# with the fine-tuned teacher's logits `t` computed above (a = 0.5, temperature τ = 2).

# %%
d_model = classifier_for(student_enc, num_labels=task.num_labels, seed=0)
res_d = finetune(d_model, enc_tr, enc_dv, task.metric, tok.pad_id,
                 FinetuneConfig(epochs=3, lr=2e-3, patience=1, alpha_soft=0.5, temperature=2.0), seed=0,
                 soft_targets=soft)
scores["student (D)"] = res_d.best_score
fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
names = list(scores)
ax.bar(names, [scores[n] for n in names], color=["tab:blue", "tab:orange", "tab:green"])
ax.axhline(floors["bag-of-words"], color="k", ls="--", label="bag-of-words baseline")
ax.axhline(floors["majority"], color="k", ls=":", label="majority baseline")
ax.set(xlabel="model", ylabel="dev accuracy (%)")
ax.set_title("area task, 600 training sentences, encoders not pretrained")
ax.legend()
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
# * With encoders that were never pretrained, as here, the scores say little: run
#   `minidistil demo` then `minidistil glue --out runs/demo` for the real comparison.
