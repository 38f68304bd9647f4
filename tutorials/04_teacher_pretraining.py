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
# # 4. The BERT teacher and MLM pretraining
#
# **Learning goals**
# * build BERT from `BertConfig`, and count its parameters: bert-base (110M) against ours;
# * know where the parameters live (embeddings, blocks, MLM head) and what weight tying saves;
# * check the whole model's gradient by finite differences;
# * write the masked-language-model training loop by hand — fresh mask, forward, loss, backward,
#   clip, AdamW with warm-up — and watch the loss fall;
# * meet the teacher that ships with minidistil, trained with the same loop for much longer,
#   and read its accuracy with a standard error.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from minidistil import Bert, BertConfig, gradcheck
from minidistil.data.batches import batch_iterator, make_sequences
from minidistil.data.corpus import load_default_corpus, split_documents
from minidistil.data.tokenizer import train_wordpiece
from minidistil.losses import mlm_backward, mlm_forward
from minidistil.masking import IGNORE_INDEX, mask_tokens
from minidistil.models import BERT_NAMING, count_parameters, param_shapes
from minidistil.train.evaluate import make_eval_set, predict
from minidistil.train.optim import AdamW, clip_grad_norm, linear_schedule
from minidistil.train.runs import EvalConfig

plt.rcParams.update({"figure.figsize": (6.4, 3.4), "figure.dpi": 110, "savefig.dpi": 110})

# %% [markdown]
# ## bert-base, counted
# `BertConfig()` has the bert-base-uncased defaults. Tied weights count once. The numbers must
# match the Hugging Face models exactly.

# %%
base = BertConfig()
print(base)
counts = {"bert_mlm (BertForMaskedLM)": count_parameters(base, "bert_mlm"),
          "distilbert_mlm (6 layers)": count_parameters(base.replace(num_hidden_layers=6), "distilbert_mlm"),
          "distilbert_model (6 layers)": count_parameters(base.replace(num_hidden_layers=6), "distilbert_model")}
for k, v in counts.items():
    print(f"{k:<30} {v:>13,}")
assert counts["bert_mlm (BertForMaskedLM)"] == 109_514_298
assert counts["distilbert_mlm (6 layers)"] == 66_985_530
assert counts["distilbert_model (6 layers)"] == 66_362_880

# %% [markdown]
# Where do they live? Group the state-dict names:

# %%
def breakdown(config):
    groups = {"embeddings": 0, "encoder blocks": 0, "pooler": 0, "MLM head": 0}
    for name, shape in param_shapes(config, BERT_NAMING, pooler=True, mlm_head=True).items():
        n = int(np.prod(shape))
        key = ("embeddings" if ".embeddings." in name else "encoder blocks" if ".encoder." in name
               else "pooler" if "pooler" in name else "MLM head")
        groups[key] += n
    return groups


g = breakdown(base)
print({k: f"{v / 1e6:.1f}M" for k, v in g.items()})
per_layer = g["encoder blocks"] // base.num_hidden_layers
print(f"one block: {per_layer:,} = 4C² + 2·C·F + biases and LayerNorms (C=768, F=3072)")
assert per_layer == 4 * 768 * 768 + 2 * 768 * 3072 + 4 * 768 + 3072 + 768 + 4 * 768
print(f"tying the decoder to the word embeddings saves {base.vocab_size * base.hidden_size / 1e6:.1f}M parameters")

# %% [markdown]
# Halving the layers removes `6 × 7.1M = 42.5M`: almost all of the 40% size reduction of
# DistilBERT. The embeddings (23.8M) stay.
#
# ## Our teacher
# A model that trains in a minute on two cores: vocabulary 1,000, hidden 64, 4 layers. First the
# data (notebook 1 explains each step).

# %%
docs = load_default_corpus()
train_docs, val_docs = split_documents(docs, 0.05, seed=0)
tok = train_wordpiece(train_docs[:1500], vocab_size=1000)
MAX_LEN = 32
train_seqs = make_sequences(train_docs[:1500], tok, max_len=MAX_LEN)
val_seqs = make_sequences(val_docs, tok, max_len=MAX_LEN)[:256]
print(f"{len(train_seqs)} training, {len(val_seqs)} validation sequences of <= {MAX_LEN} tokens")

config = BertConfig(vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=4, num_attention_heads=2,
                    intermediate_size=256, max_position_embeddings=MAX_LEN)
teacher = Bert(config, dtype=np.float32, seed=0)
print(teacher)
print({k: f"{v / 1e3:.0f}K" for k, v in breakdown(config).items()})
assert teacher.num_parameters() == count_parameters(config, "bert")
assert "cls.predictions.decoder.weight" not in teacher.params  # tied: the word embeddings serve

# %% [markdown]
# One forward pass: `hidden_states` has L + 1 entries (the embedding output first). With
# `mlm_positions` the head runs only at the masked positions, returning `(P, V)` logits.

# %%
rng = np.random.default_rng(0)
ids, attn = next(batch_iterator(train_seqs, 8, rng, tok.pad_id))
masked, labels = mask_tokens(ids, attn, rng, tok.vocab_size, tok.mask_id, tok.special_ids)
pos = labels != IGNORE_INDEX
out = teacher.forward(masked, attn, mlm_positions=pos)
print("input", ids.shape, "| hidden states", len(out.hidden_states), "x", out.hidden_states[0].shape,
      "| logits", out.logits.shape, "| pooled", out.pooled.shape)
assert len(out.hidden_states) == config.num_hidden_layers + 1 and out.logits.shape == (pos.sum(), tok.vocab_size)
loss0, _ = mlm_forward(out.logits, labels[pos])
print(f"initial MLM loss {loss0:.3f} vs ln(V) = {np.log(tok.vocab_size):.3f} (uniform guessing)")
assert abs(loss0 - np.log(tok.vocab_size)) < 0.3

# %% [markdown]
# ## Checking the whole model's gradient
# In float64 on a tiny config with non-trivial parameters (at initialisation LayerNorm gains are
# 1 and biases 0, which can hide a wrong formula), a few random entries of several parameter
# tensors, against central differences of the MLM loss. (The test suite checks every tensor.)

# %%
tiny = Bert(BertConfig.tiny(vocab_size=30), dtype=np.float64, seed=1)
r = np.random.default_rng(1)
for a in tiny.params.values():  # non-trivial parameters: LayerNorm gains != 1, biases != 0, larger weights
    a += 0.3 * r.standard_normal(a.shape)
t_ids = r.integers(5, 30, size=(2, 6))
t_attn = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
t_lab = np.full((2, 6), IGNORE_INDEX)
t_lab[0, 1], t_lab[1, 2], t_lab[0, 4] = 7, 9, 11
t_pos = t_lab != IGNORE_INDEX


def tiny_loss():
    o = tiny.forward(t_ids, t_attn, mlm_positions=t_pos, keep_cache=False)
    return mlm_forward(o.logits, t_lab[t_pos])[0]


o = tiny.forward(t_ids, t_attn, mlm_positions=t_pos)
grads = tiny.backward(mlm_backward(1.0, mlm_forward(o.logits, t_lab[t_pos])[1]), o.cache)
pairs, masks = {}, {}
for name in ["bert.embeddings.word_embeddings.weight", "bert.encoder.layer.0.attention.self.query.weight",
             "bert.encoder.layer.1.output.LayerNorm.weight", "cls.predictions.transform.dense.weight",
             "cls.predictions.bias"]:
    idx = gradcheck.sample_indices(tiny.params[name].shape, 8, r)
    pairs[name[-28:]] = (grads[name], gradcheck.numerical_grad(tiny_loss, tiny.params[name], indices=idx))
    masks[name[-28:]] = idx
assert gradcheck.compare(pairs, mask=masks)

# %% [markdown]
# ## The training loop
# Each step: a batch, a **fresh** mask, forward at the masked positions, the MLM loss, backward,
# gradient clipping at 5, and AdamW with a linear warm-up then linear decay. 120 steps of 32
# sequences here: about half a pass over the training sequences.

# %%
STEPS, BATCH, PEAK_LR = 120, 32, 2e-3
opt = AdamW(teacher.params, lr=PEAK_LR, betas=(0.9, 0.98), eps=1e-6)
evalset = make_eval_set(val_seqs, tok, EvalConfig(batch_size=64))
before = predict(teacher, evalset)
history, step, t0 = [], 0, time.perf_counter()
rng = np.random.default_rng(0)
while step < STEPS:
    for ids, attn in batch_iterator(train_seqs, BATCH, rng, tok.pad_id):
        masked, labels = mask_tokens(ids, attn, rng, tok.vocab_size, tok.mask_id, tok.special_ids)
        pos = labels != IGNORE_INDEX
        out = teacher.forward(masked, attn, mlm_positions=pos)
        loss, cache = mlm_forward(out.logits, labels[pos])
        grads = teacher.backward(mlm_backward(1.0, cache), out.cache)
        norm = clip_grad_norm(grads, 5.0)
        opt.step(grads, lr=linear_schedule(step, STEPS, 0.05, PEAK_LR))
        history.append((loss, norm))
        step += 1
        if step % 40 == 0:
            print(f"step {step:4d}  loss {np.mean([h[0] for h in history[-40:]]):.3f}  "
                  f"grad norm {norm:.2f}  ({time.perf_counter() - t0:.0f} s)")
        if step == STEPS:
            break
after = predict(teacher, evalset)
print(f"validation masked-token accuracy {before['accuracy']:.1%} -> {after['accuracy']:.1%}, "
      f"loss {before['mlm_loss']:.2f} -> {after['mlm_loss']:.2f}")
assert after["mlm_loss"] < before["mlm_loss"] - 0.4

# %%
losses = np.array([h[0] for h in history])
fig, ax = plt.subplots(layout="constrained")
ax.plot(np.arange(1, len(losses) + 1), losses, alpha=0.35, label="per step")
ax.plot(np.arange(10, len(losses) + 1), np.convolve(losses, np.ones(10) / 10, mode="valid"),
        label="10-step mean")
ax.axhline(np.log(tok.vocab_size), color="k", ls=":", label="ln V (uniform guess)")
ax.set(xlabel="optimizer step", ylabel="MLM loss (nats per masked token)",
       title=f"a tiny teacher, {STEPS} steps from random")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# What has it learned? Fill in a blank (with so little training, mostly frequent words):

# %%
text = "return a new [MASK] of the given object."
ids = np.array([tok.encode(text)])  # (1, T): [CLS] text [SEP]
pos = ids == tok.mask_id
logits = teacher.forward(ids, np.ones_like(ids), mlm_positions=pos, keep_cache=False).logits
top = np.argsort(logits[0])[::-1][:5]
print(text, "->", [tok.vocab[i] for i in top])

# %% [markdown]
# ## The shipped teacher: the same loop, run to a plateau
# A teacher that answers with frequent words is no teacher to distil from. minidistil ships one
# trained with this loop (`minidistil pretrain` with the recorded command below) until its
# validation loss stopped improving: a Hugging Face `BertForMaskedLM` folder in
# `minidistil/assets/teacher/`, with its recipe and training curve. Every distillation notebook
# and `minidistil demo` start from it.

# %%
import dataclasses
import json

from minidistil.train.demo import load_teacher_folder, shipped_teacher_folder, teacher_run_config
from minidistil.train.loop import read_metrics
from minidistil.train.runs import prepare_data

folder = shipped_teacher_folder()
shipped, stok = load_teacher_folder(folder)
recipe = json.loads((folder / "recipe.json").read_text())
print(shipped)
print("recorded command:", recipe.get("command"))
for text in ("return a new [MASK] of the given object.", "the [MASK] statement is used to import a module."):
    ids = np.array([[stok.cls_id] + stok.encode(text) + [stok.sep_id]])
    pos = ids == stok.mask_id
    logits = shipped.forward(ids, np.ones_like(ids), mlm_positions=pos, keep_cache=False).logits
    print(text, "->", [stok.vocab[i] for i in np.argsort(logits[0])[::-1][:5]])

# %%
rows = read_metrics(str(folder / "metrics.jsonl"))
fig, ax = plt.subplots(layout="constrained")
ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], alpha=0.6, label="training MLM loss")
val = [r for r in rows if "val_loss" in r]
if val:
    ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", ms=3, label="validation MLM loss")
ax.set(xlabel="optimizer step", ylabel="MLM loss (nats per masked token)",
       title="the shipped teacher's training curve")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Its accuracy on the fixed evaluation: the validation documents of its own split, every
# sequence masked twice with fixed seeds (`minidistil demo` masks 14 times). The standard
# error treats a validation sequence as the sampling unit, because the tokens of one sequence
# are not independent draws.

# %%
from minidistil.train import intervals
from minidistil.train.evaluate import unigram_baseline

cfg = teacher_run_config(folder, shipped, stok)
cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, n_masks=2))
data = prepare_data(cfg.data, tokenizer=stok)
ev = make_eval_set(data.val, stok, cfg.eval)
res = predict(shipped, ev)
uni = unigram_baseline(data.counts, stok.special_ids, ev)
print(f"shipped teacher: {intervals.fmt_pm(res['accuracy'], res['se'])}% masked-token accuracy on "
      f"{res['n_masked']} validation tokens (unigram baseline {100 * uni['accuracy']:.2f}%)")
assert res["accuracy"] > 2 * uni["accuracy"]

# %% [markdown]
# ## Summary
# * bert-base: 110M parameters, 7.1M per block, 23.8M in the embeddings; the tied decoder costs
#   nothing extra. Our teacher has the same structure at 1/400 of the size.
# * The model-level gradient agrees with finite differences; the loss starts at ln V.
# * The loop: fresh mask → forward at masked positions → MLM loss → backward → clip → AdamW.
# * The shipped teacher is that loop run to a plateau; its accuracy comes with a standard error.
#
# To scale up: `minidistil pretrain` (or `minidistil.train.pretrain.pretrain`) runs the same loop
# with checkpoints and resume; the shipped teacher's exact command is in its `recipe.json`.
#
# **Exercises.** (1) Double the learning rate, then halve it: how does the curve change? (2) Turn
# off the warm-up (`warmup_frac=0`) and watch the first steps' gradient norm. (3) Count the
# parameters of a BERT-large config (24 layers, hidden 1024, 16 heads, FF 4096).
