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
# # 1. Tokenisation and dynamic masking
#
# **Learning goals**
# * train a WordPiece vocabulary on the embedded corpus and see how it splits words;
# * turn documents into `[CLS] text [SEP]` sequences and length-grouped, padded batches;
# * draw BERT's masks: 15% of the real tokens, of which 80% → `[MASK]`, 10% → a random token,
#   10% unchanged — and verify those numbers;
# * understand why DistilBERT draws a *fresh* mask for every batch (dynamic masking).

# %%
import collections

import matplotlib.pyplot as plt
import numpy as np

from minidistil.data.batches import batch_iterator, make_sequences, pad_batch, token_counts
from minidistil.data.corpus import corpus_stats, load_default_corpus, split_documents
from minidistil.data.tokenizer import train_wordpiece
from minidistil.masking import IGNORE_INDEX, mask_tokens, smoothing_weights

plt.rcParams.update({"figure.figsize": (6.4, 3.4), "figure.dpi": 110, "savefig.dpi": 110})
rng = np.random.default_rng(0)

# %% [markdown]
# ## The corpus
# minidistil ships with no data files: its default corpus is English prose harvested from the
# Python standard library on this machine (docstrings, topic help, comments), a few MB.

# %%
docs = load_default_corpus()
print(corpus_stats(docs))
train_docs, val_docs = split_documents(docs, val_fraction=0.05, seed=0)
print(f"{len(train_docs)} training and {len(val_docs)} validation documents")
print("example:", train_docs[7][:300].replace("\n", " "), "...")
assert len(val_docs) > 0 and not set(train_docs) & set(val_docs)

# %% [markdown]
# ## WordPiece
# Start from characters, repeatedly merge the pair whose merge is most "surprising"
# (frequent together, rare apart), until the vocabulary is full. A word is then split greedily,
# longest piece first; continuation pieces carry `##`. Here a 1,000-piece vocabulary trained
# on 1,500 documents, to stay fast (the demo uses 4,096 pieces and the whole corpus).

# %%
tok = train_wordpiece(train_docs[:1500], vocab_size=1000)
print(tok, "| special ids:", tok.special_ids, [tok.vocab[i] for i in tok.special_ids])
for text in ["The tokenizer splits unbelievable words into pieces.",
             "Return a new dictionary initialized from an optional iterable."]:
    print(tok.tokenize(text))
ids = tok.encode("Return a new dictionary.")  # [CLS] ... [SEP] added, as in transformers
print(ids, "->", repr(tok.decode(ids)))
text = tok.decode(ids, skip_special_tokens=True)
assert tok.encode(text) == ids  # decoding then encoding gives the same ids

# %% [markdown]
# A bigger vocabulary means fewer pieces per word (shorter sequences, a bigger embedding
# matrix). Measured on validation text:

# %%
sample = " ".join(val_docs[:60])
n_words = len(sample.split())
sizes, pieces = [200, 500, 1000, 2000], []
for V in sizes:
    t = tok if V == 1000 else train_wordpiece(train_docs[:1500], vocab_size=V)
    pieces.append(len(t.encode(sample, add_special_tokens=False)) / n_words)
fig, ax = plt.subplots(figsize=(5.5, 3.2), layout="constrained")
ax.plot(sizes, pieces, "o-")
ax.set_xscale("log")
ax.set_xticks(sizes, [str(s) for s in sizes])
ax.xaxis.set_minor_formatter(plt.NullFormatter())  # no 3x10^2-style labels between them
ax.set(xlabel="vocabulary size (WordPiece entries, log scale)", ylabel="tokens per word (mean)",
       title="a bigger vocabulary splits fewer words")
plt.show()
assert pieces[0] > pieces[-1]

# %% [markdown]
# ## Sequences and batches
# Each document becomes `[CLS] text [SEP]`, cut into chunks of at most `max_len` tokens; chunks
# of 11 tokens or fewer are dropped. Batches group sequences of similar length so that little
# compute is wasted on padding.

# %%
max_len = 64
seqs = make_sequences(train_docs[:1500], tok, max_len=max_len)
lengths = np.array([len(s) for s in seqs])
print(f"{len(seqs)} sequences, lengths {lengths.min()}..{lengths.max()}")
assert all(s[0] == tok.cls_id and s[-1] == tok.sep_id for s in seqs) and lengths.min() >= 12

def padding_fraction(batches):
    masks = [m for _, m in batches]
    return 1 - sum(m.sum() for m in masks) / sum(m.size for m in masks)

grouped = list(batch_iterator(seqs, 32, np.random.default_rng(0), tok.pad_id))
order = np.random.default_rng(0).permutation(len(seqs))
shuffled = [pad_batch([seqs[i] for i in order[k:k + 32]], tok.pad_id) for k in range(0, len(seqs), 32)]
print(f"padding: {padding_fraction(grouped):.1%} with length grouping, "
      f"{padding_fraction(shuffled):.1%} with plain shuffling")
input_ids, attention_mask = grouped[0]
print("one batch:", input_ids.shape, input_ids.dtype, "| mask sums:", attention_mask.sum(1)[:8], "...")

# %% [markdown]
# ## Drawing a mask
# `mask_tokens` chooses 15% of the real, non-special tokens. Labels keep the original id at
# chosen positions and −100 elsewhere (the loss ignores −100; the code names it `IGNORE_INDEX`,
# from `minidistil.masking`).

# %%
masked, labels = mask_tokens(input_ids, attention_mask, rng, tok.vocab_size, tok.mask_id, tok.special_ids)
row = 0
n = int(attention_mask[row].sum())
print("original:", " ".join(tok.convert_ids_to_tokens(input_ids[row, :n])))
print("masked:  ", " ".join(tok.convert_ids_to_tokens(masked[row, :n])))
print("targets: ", [(int(i), tok.vocab[labels[row, i]]) for i in np.flatnonzero(labels[row] != IGNORE_INDEX)])

chosen = labels != IGNORE_INDEX
special = np.isin(input_ids, tok.special_ids)
print(f"chosen: {chosen.sum()} of {(attention_mask.astype(bool) & ~special).sum()} eligible tokens "
      f"({chosen.sum() / (attention_mask.astype(bool) & ~special).sum():.1%})")
assert not np.any(chosen & special) and not np.any(chosen & (attention_mask == 0))
assert np.all(masked[~chosen] == input_ids[~chosen])  # only chosen positions change

# %% [markdown]
# ## Checking 80 / 10 / 10
# Over many draws, what happened to the chosen tokens?

# %%
fate = collections.Counter()
for _ in range(200):
    m, lab = mask_tokens(input_ids, attention_mask, rng, tok.vocab_size, tok.mask_id, tok.special_ids)
    c = lab != IGNORE_INDEX
    fate["[MASK]"] += int((m[c] == tok.mask_id).sum())
    fate["unchanged"] += int((m[c] == input_ids[c]).sum())
    fate["random"] += int(((m[c] != tok.mask_id) & (m[c] != input_ids[c])).sum())
total = sum(fate.values())
shares = {k: v / total for k, v in fate.items()}
print({k: f"{v:.3f}" for k, v in shares.items()})
fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
ax.bar(list(shares), [100 * v for v in shares.values()])
ax.set(xlabel="what the input shows at a chosen position", ylabel="share of chosen tokens (%)",
       title="BERT's 80 / 10 / 10 rule, measured")
plt.show()
assert abs(shares["[MASK]"] - 0.8) < 0.02 and abs(shares["unchanged"] - 0.1) < 0.02
# ("random" is a bit under 10%, and "unchanged" a bit over: a random id can equal the original)

# %% [markdown]
# Why not always `[MASK]`? At fine-tuning time there is no `[MASK]` token; the 10% random and
# 10% unchanged force the model to keep a good representation of *every* input token.
#
# ## Why a fresh mask per batch
# The original BERT masked its data once, ahead of time (with a few copies). With a static mask
# the model only ever predicts the same 15% of the tokens; a fresh mask per pass reaches almost
# all of them. (RoBERTa showed dynamic masking is at least as good; DistilBERT uses it.)

# %%
epochs = np.arange(1, 21)
seen_static = np.full(epochs.shape, 0.15)
seen_dynamic = 1 - 0.85 ** epochs
ever = np.zeros(input_ids.shape, dtype=bool)
measured = []
for e in epochs:  # measured on our batch
    _, lab = mask_tokens(input_ids, attention_mask, rng, tok.vocab_size, tok.mask_id, tok.special_ids)
    ever |= lab != IGNORE_INDEX
    measured.append(ever.sum() / (attention_mask.astype(bool) & ~special).sum())
fig, ax = plt.subplots()
ax.plot(epochs, seen_static, label="static mask")
ax.plot(epochs, seen_dynamic, label="dynamic: 1 - 0.85^epochs")
ax.plot(epochs, measured, "k.", label="dynamic, measured")
ax.set(xlabel="passes over the data (epochs)", ylabel="share of tokens ever predicted",
       title="static against dynamic masking", xticks=[1, 5, 10, 15, 20])
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Frequency smoothing (optional)
# The Hugging Face distillation script can pick tokens with probability ∝ count^−0.7, so that
# frequent tokens ("the", ".") are masked less and rare ones more.

# %%
counts = token_counts(seqs, tok.vocab_size)
weights = smoothing_weights(counts, power=0.7, special_ids=tok.special_ids)
hits_uniform, hits_smooth = np.zeros(tok.vocab_size), np.zeros(tok.vocab_size)
for _ in range(100):
    for probs, hits in ((None, hits_uniform), (weights, hits_smooth)):
        _, lab = mask_tokens(input_ids, attention_mask, rng, tok.vocab_size, tok.mask_id,
                             tok.special_ids, token_probs=probs)
        np.add.at(hits, lab[lab != IGNORE_INDEX], 1)
top = np.argsort(counts)[::-1][:5]
for i in top:
    print(f"{tok.vocab[i]!r:>8}: chosen {hits_uniform[i]:5.0f} times uniform, {hits_smooth[i]:5.0f} smoothed")
assert hits_smooth[top].sum() < hits_uniform[top].sum()

# %% [markdown]
# ## Summary
# * WordPiece: a vocabulary of whole words and `##` continuation pieces; bigger vocabularies
#   give fewer tokens per word.
# * Sequences are `[CLS] ... [SEP]`, at most `max_len`; length grouping cuts padding.
# * Masking: 15% of real, non-special tokens; 80% `[MASK]`, 10% random, 10% unchanged;
#   labels −100 elsewhere. A fresh mask each batch lets the model learn from every token.
#
# To scale up: the shipped teacher's settings (`vocab_size` and `max_position_embeddings` in
# `minidistil/assets/teacher/config.json`, what `minidistil demo` uses), or your own text with
# `minidistil.data.corpus.load_corpus(path)`.
#
# **Exercises.** (1) Tokenise a sentence from your field: which words become many pieces?
# (2) Change `mlm_prob` to 0.4: what changes in the 80/10/10 statistics? (3) Compute the
# padding fraction of length-grouped batches as a function of the batch size.
