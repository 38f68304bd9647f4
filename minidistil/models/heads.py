"""Sequence-classification heads on the teacher and the student, with manual backprop.

Legend: B batch, T sequence, C hidden, K labels (``num_labels``), L layers.

Teacher, ``BertForSequenceClassification`` (Devlin et al., 2019, section 4.1)::

    h     = Bert encoder(ids, mask, token types)                  (B, T, C)
    p     = tanh(h[:, 0] W_pool^T + b_pool)       the pooler      (B, C)   bert.pooler.dense
    logits = dropout(p) W_cls^T + b_cls                           (B, K)   classifier

Student, ``DistilBertForSequenceClassification``: DistilBERT drops the pooler (Sanh et al.,
2019, section 3 removes it with the token-type embeddings), so the head brings its own layer::

    u      = relu(h[:, 0] W_pre^T + b_pre)                        (B, C)   pre_classifier
    logits = dropout(u) W_cls^T + b_cls                           (B, K)   classifier

The [CLS] position (index 0) is the only one the head reads: after fine-tuning its hidden state
summarises the whole input, because attention lets it look at every token. Parameters keep the
Hugging Face names; the MLM head of the pretrained model is not part of these models (a
Hugging Face ``*ForSequenceClassification`` has none). The encoder itself has no dropout here
(Hugging Face also drops hidden states at 0.1 inside the encoder): only the head's dropout.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, NamedTuple, Optional

import numpy as np

from ..kernels.backend import check_float_array, check_same_dtype, check_shape
from ..layers.dropout import DropoutCache, dropout_backward, dropout_forward
from ..layers.linear import LinearCache, linear_backward, linear_forward
from ..task_losses import problem_type_for
from .base import ModelCache
from .bert import Bert
from .config import BertConfig
from .distilbert import DistilBert


@dataclass
class HeadConfig:
    """The Hugging Face config fields of a sequence-classification head."""
    num_labels: int = 2
    problem_type: Optional[str] = None  # None: chosen from num_labels (1 -> "regression")
    classifier_dropout: Optional[float] = None  # BERT; None -> hidden_dropout_prob
    hidden_dropout_prob: float = 0.1  # BERT's default, used when classifier_dropout is None
    seq_classif_dropout: float = 0.2  # DistilBERT

    def __post_init__(self):
        if isinstance(self.num_labels, bool) or not isinstance(self.num_labels, (int, np.integer)) \
                or self.num_labels < 1:
            raise ValueError(f"num_labels must be an int >= 1, got {self.num_labels!r}")
        self.num_labels = int(self.num_labels)
        self.problem_type = problem_type_for(self.num_labels, self.problem_type)
        for name in ("classifier_dropout", "hidden_dropout_prob", "seq_classif_dropout"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1):
                raise ValueError(f"{name} must be a number in [0, 1), got {v!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class ClassifierCache(NamedTuple):
    encoder_cache: ModelCache
    cls_input: np.ndarray  # (B, C) DistilBERT: h[:, 0]; BERT: unused (the pooler lives in the encoder)
    pre_cache: Optional[LinearCache]  # DistilBERT's pre_classifier
    relu_out: Optional[np.ndarray]  # (B, C) DistilBERT: relu(pre_classifier(h[:, 0]))
    dropout_cache: DropoutCache
    classifier_cache: LinearCache


class ClassifierOutput(NamedTuple):
    logits: np.ndarray  # (B, K)
    hidden_states: list  # L + 1 arrays (B, T, C)
    cache: Optional[ClassifierCache]


class SequenceClassifier:
    """Base class: ``encoder`` (a Bert or DistilBert) + a head; ``.params`` holds both."""

    encoder_class = None  # set by the subclass
    architecture = ""

    def __init__(self, config: BertConfig, head: Optional[HeadConfig] = None, dtype=np.float32,
                 seed: int = 0, **head_fields):
        if head is None:
            head = HeadConfig(**head_fields)
        elif head_fields:
            raise TypeError("pass either head=HeadConfig(...) or its fields, not both")
        if not isinstance(head, HeadConfig):
            raise TypeError(f"head must be a HeadConfig, got {type(head).__name__}")
        self.encoder = self.encoder_class(config, dtype=dtype, seed=seed)
        self.head = head
        self.config = self.encoder.config
        self.dtype = self.encoder.dtype
        rng = np.random.default_rng(seed + 7919)  # the head's own stream: same head whatever the encoder
        C, K, std = self.config.hidden_size, head.num_labels, self.config.initializer_range
        self.head_params: Dict[str, np.ndarray] = {}
        if self.encoder_class is DistilBert:
            self.head_params["pre_classifier.weight"] = (rng.standard_normal((C, C)) * std).astype(self.dtype)  # (C, C)
            self.head_params["pre_classifier.bias"] = np.zeros(C, self.dtype)  # (C,)
        self.head_params["classifier.weight"] = (rng.standard_normal((K, C)) * std).astype(self.dtype)  # (K, C)
        self.head_params["classifier.bias"] = np.zeros(K, self.dtype)  # (K,)
        self._link()

    def _link(self):
        n = self.encoder.naming
        mlm = {n.head_dense + ".weight", n.head_dense + ".bias", n.head_ln + ".weight",
               n.head_ln + ".bias", n.head_bias}
        self._encoder_keys = [k for k in self.encoder.params if k not in mlm]
        self.params = {k: self.encoder.params[k] for k in self._encoder_keys}  # the same arrays
        self.params.update(self.head_params)

    @classmethod
    def from_encoder(cls, encoder, head: Optional[HeadConfig] = None, seed: int = 0, **head_fields):
        """A classifier whose encoder starts as a copy of ``encoder`` (a pretrained Bert or
        DistilBert; its MLM head is left behind) and whose head is fresh (seed ``seed``)."""
        if not isinstance(encoder, cls.encoder_class):
            raise TypeError(f"{cls.__name__}.from_encoder needs a {cls.encoder_class.__name__}, "
                            f"got {type(encoder).__name__}")
        model = cls(encoder.config, head, dtype=encoder.dtype, seed=seed, **head_fields)
        model.encoder.load_state_dict(encoder.state_dict())
        return model

    @property
    def num_labels(self) -> int:
        return self.head.num_labels

    def num_parameters(self) -> int:
        return int(sum(a.size for a in self.params.values()))

    def state_dict(self) -> Dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state: Dict[str, np.ndarray]) -> None:
        """Copy ``state`` in place; keys and shapes must match exactly (one ValueError lists all)."""
        missing = sorted(set(self.params) - set(state))
        unexpected = sorted(set(state) - set(self.params))
        shapes = [f"{k} {tuple(state[k].shape)} != {self.params[k].shape}" for k in self.params
                  if k in state and tuple(state[k].shape) != self.params[k].shape]
        if missing or unexpected or shapes:
            hint = ""
            if any(s.startswith("classifier.weight") for s in shapes):
                hint = (f" (the checkpoint's classifier has {state['classifier.weight'].shape[0]} "
                        f"labels, this model num_labels={self.num_labels})")
            raise ValueError(f"{type(self).__name__}.load_state_dict: missing {missing}, unexpected "
                             f"{unexpected}, mis-shaped {shapes}{hint}")
        for k, v in self.params.items():
            v[...] = state[k]

    def __repr__(self) -> str:
        c = self.config
        return (f"{type(self).__name__}(layers={c.num_hidden_layers}, hidden={c.hidden_size}, "
                f"num_labels={self.num_labels}, problem_type={self.head.problem_type!r}, "
                f"dtype={self.dtype}, params={self.num_parameters():,})")

    # ------------------------------------------------------------------ forward / backward
    @property
    def dropout_p(self) -> float:
        raise NotImplementedError

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, training: bool = False,
                rng=None, keep_cache: bool = True) -> ClassifierOutput:
        """``logits`` (B, K). ``training=True`` applies the head's dropout with ``rng`` (a
        Generator or int seed); ``training=False`` (evaluation) is deterministic."""
        B, T = np.shape(input_ids)[:2] if np.ndim(input_ids) == 2 else (0, 0)
        no_mlm = np.zeros((B, T), dtype=bool) if B else None  # (B, T): skip the V-wide MLM head
        kw = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        out = self.encoder.forward(input_ids, attention_mask, mlm_positions=no_mlm, keep_cache=keep_cache, **kw)
        h = out.hidden_states[-1]  # (B, T, C)
        p = self.params
        pre_cache = relu_out = None
        cls_input = np.ascontiguousarray(h[:, 0])  # (B, C) the [CLS] token
        if self.encoder.has_pooler:
            features = out.pooled  # (B, C) tanh(dense(h[:, 0])), computed by the encoder
        else:
            z, pre_cache = linear_forward(cls_input, p["pre_classifier.weight"], p["pre_classifier.bias"])  # (B, C)
            relu_out = np.maximum(z, 0)  # (B, C)
            features = relu_out
        dropped, dcache = dropout_forward(features, self.dropout_p, rng, training)  # (B, C)
        logits, ccache = linear_forward(dropped, p["classifier.weight"], p["classifier.bias"])  # (B, K)
        cache = None
        if keep_cache:
            cache = ClassifierCache(out.cache, cls_input, pre_cache, relu_out, dcache, ccache)
        return ClassifierOutput(logits, out.hidden_states, cache)

    __call__ = forward

    def backward(self, dlogits: np.ndarray, cache: ClassifierCache,
                 dhidden: Optional[dict] = None) -> Dict[str, np.ndarray]:
        """Gradients of every parameter (keyed like ``.params``) given ``dlogits`` (B, K)."""
        if not isinstance(cache, ClassifierCache):
            raise ValueError("cache must be the ClassifierCache of forward(..., keep_cache=True), got "
                             f"{type(cache).__name__}")
        check_float_array("dlogits", dlogits, 2)
        B = cache.cls_input.shape[0]
        check_shape("dlogits", dlogits, (B, self.num_labels))
        check_same_dtype(self.dtype, dlogits=dlogits)
        grads = {}
        dfeat, g = linear_backward(dlogits, cache.classifier_cache)  # (B, C)
        grads["classifier.weight"], grads["classifier.bias"] = g["weight"], g["bias"]
        dfeat = dropout_backward(dfeat, cache.dropout_cache)  # (B, C)
        L = self.config.num_hidden_layers
        dhidden = dict(dhidden or {})
        if self.encoder.has_pooler:
            enc = self.encoder.backward(None, cache.encoder_cache, dhidden=dhidden or None, dpooled=dfeat)
        else:
            dz = dfeat * (cache.relu_out > 0)  # (B, C) relu' = 1 where the input was positive
            dcls, g = linear_backward(dz, cache.pre_cache)  # (B, C)
            grads["pre_classifier.weight"], grads["pre_classifier.bias"] = g["weight"], g["bias"]
            T = cache.encoder_cache.input_shape[1]
            dh = np.zeros((B, T, self.config.hidden_size), dtype=self.dtype)  # (B, T, C)
            dh[:, 0] = dcls
            dhidden[L] = dh + dhidden[L] if L in dhidden else dh
            enc = self.encoder.backward(None, cache.encoder_cache, dhidden=dhidden)
        grads.update({k: enc[k] for k in self._encoder_keys})
        return {k: grads[k] for k in self.params}


class BertForSequenceClassification(SequenceClassifier):
    """The teacher with the pooler and ``classifier``: ``BertForSequenceClassification(config,
    num_labels=2, dtype=np.float32, seed=0)``; ``from_encoder(bert, num_labels=...)``."""

    encoder_class = Bert
    architecture = "BertForSequenceClassification"

    @property
    def dropout_p(self) -> float:
        h = self.head
        return h.hidden_dropout_prob if h.classifier_dropout is None else h.classifier_dropout


class DistilBertForSequenceClassification(SequenceClassifier):
    """The student with ``pre_classifier`` -> ReLU -> dropout -> ``classifier`` (no pooler)."""

    encoder_class = DistilBert
    architecture = "DistilBertForSequenceClassification"

    @property
    def dropout_p(self) -> float:
        return self.head.seq_classif_dropout


def classifier_for(encoder, head: Optional[HeadConfig] = None, seed: int = 0, **head_fields) -> SequenceClassifier:
    """The matching head for a pretrained ``Bert`` or ``DistilBert`` (its weights copied)."""
    if isinstance(encoder, Bert):
        return BertForSequenceClassification.from_encoder(encoder, head, seed, **head_fields)
    if isinstance(encoder, DistilBert):
        return DistilBertForSequenceClassification.from_encoder(encoder, head, seed, **head_fields)
    raise TypeError(f"encoder must be a Bert or DistilBert, got {type(encoder).__name__}")
