"""The BERT teacher (``BertForMaskedLM`` plus the pooler of ``BertModel``).

Embeddings: word + position + token type -> LayerNorm; L post-LN blocks; pooler (dense + tanh
on the first token); MLM head dense -> GELU -> LayerNorm -> decoder tied to the word embeddings
plus its own bias ``cls.predictions.bias``. All the computation lives in
:class:`~minidistil.models.base.EncoderMLM`; this class fixes the names.

    model = Bert(BertConfig.tiny(vocab_size=100), dtype=np.float64, seed=0)
    out = model.forward(ids, attention_mask)           # out.logits (B, T, V), out.pooled (B, C)
    grads = model.backward(dlogits, out.cache)          # keyed like model.params
"""
from __future__ import annotations

import numpy as np

from .base import EncoderMLM
from .config import BertConfig
from .params import BERT_NAMING


class Bert(EncoderMLM):
    """BERT teacher: ``Bert(config, dtype=np.float32, seed=0)``; parameters N(0, initializer_range)."""

    naming = BERT_NAMING
    has_pooler = True

    def __init__(self, config: BertConfig, dtype=np.float32, seed: int = 0):
        super().__init__(config, dtype, seed)
