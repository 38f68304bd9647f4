"""Parameter names, shapes, initialisation and counting for the teacher and the student.

Legend: V vocabulary, C hidden, F feed-forward size, P max positions, TT token types, L layers.

Parameter dicts use the Hugging Face state-dict names (docs: /work/shared/reference.md); the
layers use short LOCAL names (``q.weight``, ``ln1.bias`` ...). :class:`Naming` holds one model
family's mapping between the two, so the teacher and the student share all other code.
The tied decoder matrix (``cls.predictions.decoder.weight`` / ``vocab_projector.weight``) is the
word-embedding matrix itself and never has a key of its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from ..layers.block import BLOCK_KEYS
from .config import BertConfig


@dataclass(frozen=True)
class Naming:
    """Where each piece lives in a model family's state dict."""
    word: str
    position: str
    token_type: Optional[str]  # None: the family has no token-type embeddings (DistilBERT)
    emb_ln: str  # prefix of the embedding LayerNorm: + ".weight" / ".bias"
    layer: str  # format string of one block's prefix, e.g. "bert.encoder.layer.{i}."
    block: Dict[str, str]  # local block name -> name under the layer prefix
    head_dense: str  # MLM head transform Linear(C, C)
    head_ln: str  # MLM head LayerNorm
    head_bias: str  # the decoder's own bias (V,)
    pooler: Optional[str]  # None: no pooler

    def block_names(self, i: int) -> Dict[str, str]:
        """local name -> full state-dict name, for block ``i``."""
        prefix = self.layer.format(i=i)
        return {local: prefix + hf for local, hf in self.block.items()}


def _block_map(mapping: Dict[str, str]) -> Dict[str, str]:
    out = {}
    for local in BLOCK_KEYS:
        module, kind = local.split(".")  # "q", "weight"
        out[local] = f"{mapping[module]}.{kind}"
    return out


BERT_NAMING = Naming(
    word="bert.embeddings.word_embeddings.weight",
    position="bert.embeddings.position_embeddings.weight",
    token_type="bert.embeddings.token_type_embeddings.weight",
    emb_ln="bert.embeddings.LayerNorm",
    layer="bert.encoder.layer.{i}.",
    block=_block_map({
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "o": "attention.output.dense", "ln1": "attention.output.LayerNorm",
        "ff1": "intermediate.dense", "ff2": "output.dense", "ln2": "output.LayerNorm",
    }),
    head_dense="cls.predictions.transform.dense",
    head_ln="cls.predictions.transform.LayerNorm",
    head_bias="cls.predictions.bias",
    pooler="bert.pooler.dense",
)

DISTILBERT_NAMING = Naming(
    word="distilbert.embeddings.word_embeddings.weight",
    position="distilbert.embeddings.position_embeddings.weight",
    token_type=None,
    emb_ln="distilbert.embeddings.LayerNorm",
    layer="distilbert.transformer.layer.{i}.",
    block=_block_map({
        "q": "attention.q_lin", "k": "attention.k_lin", "v": "attention.v_lin", "o": "attention.out_lin",
        "ln1": "sa_layer_norm", "ff1": "ffn.lin1", "ff2": "ffn.lin2", "ln2": "output_layer_norm",
    }),
    head_dense="vocab_transform",
    head_ln="vocab_layer_norm",
    head_bias="vocab_projector.bias",
    pooler=None,
)


def _block_shapes(config: BertConfig) -> Dict[str, Tuple[int, ...]]:
    C, F = config.hidden_size, config.intermediate_size
    shapes = {}
    for n in "qkvo":
        shapes[f"{n}.weight"], shapes[f"{n}.bias"] = (C, C), (C,)
    shapes["ff1.weight"], shapes["ff1.bias"] = (F, C), (F,)  # Linear(C -> F), stored (out, in)
    shapes["ff2.weight"], shapes["ff2.bias"] = (C, F), (C,)
    for n in ("ln1", "ln2"):
        shapes[f"{n}.weight"], shapes[f"{n}.bias"] = (C,), (C,)
    return shapes


def param_shapes(config: BertConfig, naming: Naming, pooler: bool = True, mlm_head: bool = True
                 ) -> Dict[str, Tuple[int, ...]]:
    """Ordered ``name -> shape`` of every parameter (no arrays are allocated)."""
    V, C, P = config.vocab_size, config.hidden_size, config.max_position_embeddings
    shapes = {naming.word: (V, C), naming.position: (P, C)}
    if naming.token_type is not None:
        shapes[naming.token_type] = (config.type_vocab_size, C)
    shapes[naming.emb_ln + ".weight"], shapes[naming.emb_ln + ".bias"] = (C,), (C,)
    local = _block_shapes(config)
    for i in range(config.num_hidden_layers):
        for loc, full in naming.block_names(i).items():
            shapes[full] = local[loc]
    if pooler and naming.pooler is not None:
        shapes[naming.pooler + ".weight"], shapes[naming.pooler + ".bias"] = (C, C), (C,)
    if mlm_head:
        shapes[naming.head_bias] = (V,)
        shapes[naming.head_dense + ".weight"], shapes[naming.head_dense + ".bias"] = (C, C), (C,)
        shapes[naming.head_ln + ".weight"], shapes[naming.head_ln + ".bias"] = (C,), (C,)
    return shapes


# kind -> (naming, with pooler, with MLM head). "bert" is everything minidistil's Bert holds.
PARAMETER_KINDS = {
    "bert_model": (BERT_NAMING, True, False),        # Hugging Face BertModel
    "bert_mlm": (BERT_NAMING, False, True),          # BertForMaskedLM (no pooler)
    "bert": (BERT_NAMING, True, True),               # minidistil.models.Bert (pooler + MLM head)
    "distilbert_model": (DISTILBERT_NAMING, False, False),  # DistilBertModel
    "distilbert_mlm": (DISTILBERT_NAMING, False, True),     # DistilBertForMaskedLM = minidistil DistilBert
}


def count_parameters(config: BertConfig, kind: str = "bert_mlm") -> int:
    """Number of parameters of a model of ``kind`` built from ``config``, without allocating it.

    Tied weights count once. bert-base-uncased gives 109,482,240 ("bert_model"), 109,514,298
    ("bert_mlm"); with 6 layers 66,362,880 ("distilbert_model") and 66,985,530 ("distilbert_mlm").
    """
    if kind not in PARAMETER_KINDS:
        raise ValueError(f"kind must be one of {sorted(PARAMETER_KINDS)}, got {kind!r}")
    naming, pooler, head = PARAMETER_KINDS[kind]
    return int(sum(int(np.prod(s)) for s in param_shapes(config, naming, pooler, head).values()))


def init_params(shapes: Mapping[str, Tuple[int, ...]], dtype, std: float, seed: int) -> Dict[str, np.ndarray]:
    """BERT's initialisation: weight matrices and embeddings ~ N(0, std), biases 0,
    LayerNorm weight 1 (a 1-D ``weight`` can only be a LayerNorm gain here)."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in shapes.items():
        if name.endswith(".weight") and len(shape) == 2:
            params[name] = (rng.standard_normal(shape, dtype=dtype) * dtype.type(std))  # shape
        elif name.endswith(".weight"):
            params[name] = np.ones(shape, dtype=dtype)  # (C,) LayerNorm gain
        else:
            params[name] = np.zeros(shape, dtype=dtype)  # biases
    return params


def state_dict_problems(state: Mapping, expected: Mapping[str, Tuple[int, ...]], unexpected=(),
                        found: str = "got", more_bad=()) -> list:
    """Every missing, unexpected, mis-shaped or non-float entry of ``state`` against ``expected``
    (name -> shape), as the parts of one error message (empty when all is well).

    ``unexpected`` lists keys the caller already judged unexpected; ``found`` names where the
    arrays came from ("got", "file has"); ``more_bad`` adds the caller's own findings.
    Used by :func:`check_state_dict` and by ``io.pretrained.map_state_dict``.
    """
    missing = [k for k in expected if k not in state]
    bad = []
    for k, shape in expected.items():
        if k not in state:
            continue
        a = state[k]
        if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.floating):
            bad.append(f"{k}: {type(a).__name__} {getattr(a, 'dtype', '')} is not a float array")
        elif a.shape != tuple(shape):
            bad.append(f"{k}: expected {tuple(shape)}, {found} {a.shape}")
    bad += list(more_bad)
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {sorted(unexpected)}")
    if bad:
        problems.append(f"wrong shapes or types [{'; '.join(bad)}]")
    return problems


def check_state_dict(state: Mapping, expected: Mapping[str, Tuple[int, ...]], who: str) -> None:
    """One ``ValueError`` listing every missing, unexpected, mis-shaped or non-float entry."""
    if not isinstance(state, Mapping):
        raise TypeError(f"{who}.load_state_dict needs a dict of arrays, got {type(state).__name__}")
    problems = state_dict_problems(state, expected, unexpected=[k for k in state if k not in expected])
    if problems:
        raise ValueError(f"{who}.load_state_dict: " + ", ".join(problems))
