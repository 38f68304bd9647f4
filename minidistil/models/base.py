"""What the BERT teacher and the DistilBERT student share: embeddings -> post-LN blocks -> MLM head.

Legend: B batch, T sequence, C hidden, V vocabulary, L layers, P selected (masked) positions.

    e      = word_emb[ids] + pos_emb[0..T-1] (+ token_type_emb[tt], teacher only)     (B, T, C)
    h_0    = LayerNorm(e);   h_i = block_i(h_{i-1}, mask)   for i = 1..L               (B, T, C)
    logits = (LN(gelu(h_L W_t^T + b_t))) W_word^T + b_dec     at all or only P positions
    pooled = tanh(h_L[:, 0] W_p^T + b_p)                      (teacher only)          (B, C)

The decoder of the MLM head reuses the word-embedding matrix (weight tying), so the gradient of
``W_word`` is the sum of the embedding lookup's scatter-add and the decoder's ``dlogits^T @ n``.
Subclasses only choose a :class:`~minidistil.models.params.Naming` (Hugging Face state-dict names).
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional

import numpy as np

from ..kernels import GeluCache, gelu_backward, gelu_forward
from ..kernels.backend import FLOAT_DTYPES, check_float_array, check_mask, check_same_dtype, check_shape
from ..layers import (BlockCache, EmbeddingCache, LayerNormCache, LinearCache, block_backward, block_forward,
                      check_ids, embedding_backward, embedding_forward, gelu_approximation,
                      layernorm_layer_backward, layernorm_layer_forward, linear_backward, linear_forward)
from .config import BertConfig
from .params import Naming, check_state_dict, init_params, param_shapes


class HeadCache(NamedTuple):
    dense_cache: LinearCache
    gelu_cache: GeluCache  # the GELU input (..., C)
    ln_cache: LayerNormCache
    decoder_cache: LinearCache


class ModelCache(NamedTuple):
    family: str  # class name of the model that made it
    input_shape: tuple  # (B, T)
    word_cache: EmbeddingCache
    token_type_cache: Optional[EmbeddingCache]
    emb_ln_cache: LayerNormCache
    blocks: List[BlockCache]
    mlm_positions: Optional[np.ndarray]  # (B, T) bool or None
    head_cache: HeadCache
    logits_shape: tuple  # (B, T, V) or (P, V)
    pooler_cache: Optional[LinearCache]
    pooled: Optional[np.ndarray]  # (B, C)


class ModelOutput(NamedTuple):
    """What ``forward`` returns. Besides the fields, transformers' names: ``last_hidden_state``
    (``hidden_states[-1]``) and ``pooler_output``; and key access, ``out["logits"]``, as
    transformers' ``ModelOutput`` has. Integer indexing and unpacking stay a tuple's."""
    hidden_states: List[np.ndarray]  # L + 1 arrays (B, T, C), the embedding output first
    logits: np.ndarray  # (B, T, V), or (P, V) when mlm_positions is given
    pooled: Optional[np.ndarray]  # (B, C) teacher only, else None
    cache: Optional[ModelCache]  # None when keep_cache=False

    @property
    def last_hidden_state(self) -> np.ndarray:
        return self.hidden_states[-1]  # (B, T, C)

    @property
    def pooler_output(self) -> Optional[np.ndarray]:
        return self.pooled  # (B, C) or None

    def keys(self) -> List[str]:
        """The names with a value (as transformers' ``ModelOutput.keys()``: None fields left out)."""
        return [k for k in ("last_hidden_state", "hidden_states", "logits", "pooler_output", "pooled",
                            "cache") if getattr(self, k) is not None]

    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in _OUTPUT_KEYS:
                raise KeyError(f"{key!r}: a ModelOutput has {', '.join(_OUTPUT_KEYS)}")
            return getattr(self, key)
        return tuple.__getitem__(self, key)


_OUTPUT_KEYS = ("last_hidden_state", "hidden_states", "logits", "pooler_output", "pooled", "cache")


class EncoderMLM:
    """Base class; use :class:`~minidistil.models.Bert` or :class:`~minidistil.models.DistilBert`."""

    naming: Naming  # set by the subclass
    has_pooler: bool = False

    def __init__(self, config: BertConfig, dtype=np.float32, seed: int = 0):
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a BertConfig, got {type(config).__name__}")
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
        if dt not in FLOAT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {dt}")
        config.validate()
        self.config = config.replace()  # a private copy: editing the caller's config changes nothing here
        self.dtype = dt
        self._shapes = param_shapes(self.config, self.naming, pooler=self.has_pooler, mlm_head=True)
        self._block_names = [self.naming.block_names(i) for i in range(self.config.num_hidden_layers)]
        self._approximate = gelu_approximation(self.config.hidden_act)
        self.params: Dict[str, np.ndarray] = init_params(self._shapes, dt, self.config.initializer_range, seed)

    # ------------------------------------------------------------------ parameters
    def num_parameters(self) -> int:
        """Number of scalars in ``.params`` (the tied decoder matrix counted once)."""
        return int(sum(a.size for a in self.params.values()))

    def state_dict(self) -> Dict[str, np.ndarray]:
        """A snapshot: copies of every parameter, keyed by the Hugging Face names."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state: Dict[str, np.ndarray]) -> None:
        """Copy ``state`` into the parameters, in place (so optimisers holding the arrays keep
        working). Keys and shapes must match exactly; every problem is listed in one ValueError.
        Values are converted to the model's dtype: the model's dtype itself never changes."""
        check_state_dict(state, self._shapes, type(self).__name__)
        for k in self._shapes:
            self.params[k][...] = state[k]

    def block_params(self, i: int) -> Dict[str, np.ndarray]:
        """Block ``i``'s parameters under the layers' local names (the arrays, not copies)."""
        return {local: self.params[full] for local, full in self._block_names[i].items()}

    def __repr__(self) -> str:
        c = self.config
        return (f"{type(self).__name__}(layers={c.num_hidden_layers}, hidden={c.hidden_size}, "
                f"heads={c.num_attention_heads}, vocab={c.vocab_size}, dtype={self.dtype}, "
                f"params={self.num_parameters():,})")

    # ------------------------------------------------------------------ Hugging Face habits
    training: bool = False  # these models have no dropout: the mode changes no computation
    fresh_parts: tuple = ()  # set by load_pretrained: parts the file lacked, made up ("MLM head", "pooler")

    def eval(self):
        """``training = False``; returns the model (as torch's ``.eval()``). There is no dropout
        here, so both modes compute the same thing: the flag exists for code written for torch."""
        self.training = False
        return self

    def train(self, mode: bool = True):
        """``training = mode``; returns the model. See :meth:`eval`."""
        self.training = bool(mode)
        return self

    @classmethod
    def from_pretrained(cls, folder, dtype=np.float32, seed: int = 0):
        """Load a Hugging Face folder (``config.json`` + ``model.safetensors``) as this class.

        ``Bert`` reads ``BertForMaskedLM`` / ``BertModel`` folders, ``DistilBert`` reads
        ``DistilBertForMaskedLM`` / ``DistilBertModel`` ones; the other family is a
        ``PretrainedError``. Parts a file lacks are freshly made with ``seed`` (a warning says so).
        The tokenizer: ``WordPieceTokenizer.from_pretrained(folder)``.
        """
        from ..io.pretrained import PretrainedError, load_pretrained
        model, _ = load_pretrained(folder, dtype=dtype, seed=seed, with_tokenizer=False)
        if not isinstance(model, cls):
            raise PretrainedError(f"{folder} holds a {type(model).__name__} checkpoint, not a {cls.__name__}; "
                                  f"use {type(model).__name__}.from_pretrained or minidistil.load_pretrained")
        return model

    def save_pretrained(self, folder, tokenizer=None, dtype=np.float32, pooler: bool = False):
        """Write this model as a Hugging Face folder (and ``tokenizer``'s files when given);
        returns the folder. See :func:`minidistil.io.pretrained.save_pretrained`."""
        from ..io.pretrained import save_pretrained
        return save_pretrained(self, tokenizer, folder, dtype=dtype, pooler=pooler)

    # ------------------------------------------------------------------ input checks
    def _check_inputs(self, input_ids, attention_mask, token_type_ids, mlm_positions):
        cfg = self.config
        if not isinstance(input_ids, np.ndarray):
            raise TypeError(f"input_ids must be a numpy.ndarray of integers, got {type(input_ids).__name__}")
        if input_ids.ndim != 2 or input_ids.size == 0:
            raise ValueError(f"input_ids must have shape (B, T) with B, T >= 1, got {input_ids.shape}")
        B, T = input_ids.shape
        if T > cfg.max_position_embeddings:
            raise ValueError(f"input_ids has {T} positions but max_position_embeddings is "
                             f"{cfg.max_position_embeddings}")
        check_ids("input_ids", input_ids, cfg.vocab_size)
        mask = None if attention_mask is None else check_mask("attention_mask", attention_mask, (B, T))
        if token_type_ids is not None:
            if self.naming.token_type is None:
                raise ValueError(f"{type(self).__name__} has no token-type embeddings: token_type_ids must be None")
            if not isinstance(token_type_ids, np.ndarray):
                raise TypeError(f"token_type_ids must be a numpy.ndarray, got {type(token_type_ids).__name__}")
            check_shape("token_type_ids", token_type_ids, (B, T))
            check_ids("token_type_ids", token_type_ids, cfg.type_vocab_size)
        if mlm_positions is not None:
            if not isinstance(mlm_positions, np.ndarray) or mlm_positions.dtype != np.bool_:
                raise TypeError("mlm_positions must be a boolean numpy.ndarray (B, T), got "
                                f"{getattr(mlm_positions, 'dtype', type(mlm_positions).__name__)}")
            check_shape("mlm_positions", mlm_positions, (B, T))
        return B, T, mask

    # ------------------------------------------------------------------ forward
    def forward(self, input_ids, attention_mask=None, token_type_ids=None, mlm_positions=None,
                keep_cache: bool = True) -> ModelOutput:
        """Run the model; see the module docstring. ``attention_mask`` (B, T): 1 real, 0 padding.

        ``mlm_positions`` (B, T) bool: the head runs only at those positions and ``logits`` is
        (P, V) in ``np.nonzero`` order (the V-wide decoder is most of the head's cost).
        ``keep_cache=False`` stores no caches (teacher inference); ``backward`` then can't run.
        """
        B, T, mask = self._check_inputs(input_ids, attention_mask, token_type_ids, mlm_positions)
        cfg, p, n = self.config, self.params, self.naming
        we, word_cache = embedding_forward(input_ids, p[n.word])  # (B, T, C)
        e = we + p[n.position][:T]  # (B, T, C): positions 0..T-1 (a slice: its gradient is a plain sum)
        tt_cache = None
        if n.token_type is not None:
            tt = token_type_ids if token_type_ids is not None else np.zeros((B, T), dtype=np.int64)  # (B, T)
            te, tt_cache = embedding_forward(tt, p[n.token_type])  # (B, T, C)
            e += te  # (B, T, C), e is our own fresh array
        h, emb_ln_cache = layernorm_layer_forward(e, p[n.emb_ln + ".weight"], p[n.emb_ln + ".bias"],
                                                  cfg.layer_norm_eps)  # (B, T, C)
        hidden_states, blocks = [h], []
        for i in range(cfg.num_hidden_layers):
            h, bc = block_forward(h, mask, self.block_params(i), cfg.num_attention_heads,
                                  cfg.layer_norm_eps, cfg.hidden_act)  # (B, T, C)
            hidden_states.append(h)
            if keep_cache:
                blocks.append(bc)
        pooled = pooler_cache = None
        if self.has_pooler:
            first = np.ascontiguousarray(h[:, 0])  # (B, C) the [CLS] token
            z, pooler_cache = linear_forward(first, p[n.pooler + ".weight"], p[n.pooler + ".bias"])  # (B, C)
            pooled = np.tanh(z)  # (B, C)
        sel = h if mlm_positions is None else h[mlm_positions]  # (B, T, C) or (P, C)
        logits, head_cache = self._head_forward(sel)  # (B, T, V) or (P, V)
        cache = None
        if keep_cache:
            cache = ModelCache(type(self).__name__, (B, T), word_cache, tt_cache, emb_ln_cache, blocks,
                               mlm_positions, head_cache, logits.shape, pooler_cache, pooled)
        return ModelOutput(hidden_states, logits, pooled, cache)

    __call__ = forward

    def _head_forward(self, x):
        p, n = self.params, self.naming
        u, dense_cache = linear_forward(x, p[n.head_dense + ".weight"], p[n.head_dense + ".bias"])  # (..., C)
        g, gelu_cache = gelu_forward(u, self._approximate)  # (..., C)
        t, ln_cache = layernorm_layer_forward(g, p[n.head_ln + ".weight"], p[n.head_ln + ".bias"],
                                              self.config.layer_norm_eps)  # (..., C)
        logits, decoder_cache = linear_forward(t, p[n.word], p[n.head_bias])  # (..., V) tied decoder
        return logits, HeadCache(dense_cache, gelu_cache, ln_cache, decoder_cache)

    # ------------------------------------------------------------------ backward
    def backward(self, dlogits, cache: ModelCache, dhidden: Optional[Dict[int, np.ndarray]] = None,
                 dpooled: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
        """Gradients of every parameter (dict keyed like ``.params``) given the upstream gradients.

        ``dlogits`` shaped like ``logits`` (or None); ``dhidden`` ``{i: (B, T, C)}`` extra gradients
        on ``hidden_states[i]`` (i = L is the last); ``dpooled`` (B, C), teacher only. A part with
        no upstream gradient gets zeros (e.g. the pooler when ``dpooled`` is None).
        """
        if not isinstance(cache, ModelCache):
            raise ValueError("cache must be the ModelCache of forward(..., keep_cache=True), got "
                             f"{type(cache).__name__}")
        if cache.family != type(self).__name__:
            raise ValueError(f"cache comes from a {cache.family}, not a {type(self).__name__}")
        cfg, p, n = self.config, self.params, self.naming
        L = cfg.num_hidden_layers
        B, T = cache.input_shape
        C = cfg.hidden_size
        dhidden = self._check_dhidden(dhidden, B, T)
        grads: Dict[str, np.ndarray] = {}

        dh = np.zeros((B, T, C), dtype=self.dtype)  # (B, T, C) gradient of h_L
        ddecoder = None
        if dlogits is not None:
            check_float_array("dlogits", dlogits)
            check_shape("dlogits", dlogits, cache.logits_shape)
            check_same_dtype(self.dtype, dlogits=dlogits)
            dsel, head_grads, ddecoder = self._head_backward(dlogits, cache.head_cache)  # (B, T, C) or (P, C)
            if cache.mlm_positions is None:
                dh += dsel
            else:
                dh[cache.mlm_positions] = dsel  # positions are distinct: plain assignment is a scatter
            grads.update(head_grads)
        else:
            for k in (n.head_dense + ".weight", n.head_dense + ".bias", n.head_ln + ".weight",
                      n.head_ln + ".bias", n.head_bias):
                grads[k] = np.zeros_like(p[k])  # (C, C), (C,) or (V,): no logits, no head gradient
        if L in dhidden:
            dh = dh + dhidden[L]  # (B, T, C)

        if self.has_pooler:
            if dpooled is not None:
                check_float_array("dpooled", dpooled)
                check_shape("dpooled", dpooled, (B, C))
                check_same_dtype(self.dtype, dpooled=dpooled)
                dz = dpooled * (1 - cache.pooled * cache.pooled)  # (B, C) tanh' = 1 - tanh^2
                dfirst, g = linear_backward(dz, cache.pooler_cache)  # (B, C)
                dh[:, 0] += dfirst
                grads[n.pooler + ".weight"], grads[n.pooler + ".bias"] = g["weight"], g["bias"]
            else:
                grads[n.pooler + ".weight"] = np.zeros_like(p[n.pooler + ".weight"])  # (C, C)
                grads[n.pooler + ".bias"] = np.zeros_like(p[n.pooler + ".bias"])  # (C,)
        elif dpooled is not None:
            raise ValueError(f"{type(self).__name__} has no pooler: dpooled must be None")

        for i in reversed(range(L)):
            dh, g = block_backward(dh, cache.blocks[i])  # (B, T, C) gradient of h_i
            for local, full in self._block_names[i].items():
                grads[full] = g[local]
            if i in dhidden:
                dh = dh + dhidden[i]  # (B, T, C)

        de, g_ln = layernorm_layer_backward(dh, cache.emb_ln_cache)  # (B, T, C)
        grads[n.emb_ln + ".weight"], grads[n.emb_ln + ".bias"] = g_ln["weight"], g_ln["bias"]
        dword = embedding_backward(de, cache.word_cache)  # (V, C)
        if ddecoder is not None:
            dword += ddecoder  # (V, C) tied weights: lookup + decoder
        grads[n.word] = dword
        dpos = np.zeros_like(p[n.position])  # (max_positions, C)
        dpos[:T] = de.sum(axis=0)  # (T, C) every sequence uses positions 0..T-1
        grads[n.position] = dpos
        if n.token_type is not None:
            grads[n.token_type] = embedding_backward(de, cache.token_type_cache)  # (type_vocab, C)
        return {k: grads[k] for k in p}  # the order of .params

    def _head_backward(self, dlogits, hc: HeadCache):
        n = self.naming
        dt, g_dec = linear_backward(dlogits, hc.decoder_cache)  # (..., C)
        dg, g_ln = layernorm_layer_backward(dt, hc.ln_cache)  # (..., C)
        du = gelu_backward(dg, hc.gelu_cache)  # (..., C)
        dx, g_dense = linear_backward(du, hc.dense_cache)  # (..., C)
        grads = {n.head_dense + ".weight": g_dense["weight"], n.head_dense + ".bias": g_dense["bias"],
                 n.head_ln + ".weight": g_ln["weight"], n.head_ln + ".bias": g_ln["bias"],
                 n.head_bias: g_dec["bias"]}
        return dx, grads, g_dec["weight"]

    def _check_dhidden(self, dhidden, B, T):
        if dhidden is None:
            return {}
        if not isinstance(dhidden, dict):
            raise TypeError(f"dhidden must be a dict {{layer_index: (B, T, C) array}}, got {type(dhidden).__name__}")
        L, C = self.config.num_hidden_layers, self.config.hidden_size
        out = {}
        for i, d in dhidden.items():
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i <= L:
                raise ValueError(f"dhidden keys must be layer indices 0..{L}, got {i!r}")
            check_float_array(f"dhidden[{i}]", d)
            check_shape(f"dhidden[{i}]", d, (B, T, C))
            check_same_dtype(self.dtype, **{f"dhidden[{i}]": d})
            out[int(i)] = d
        return out
