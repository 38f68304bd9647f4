"""``BertConfig``: the architecture hyper-parameters, with the Hugging Face field names.

The defaults are bert-base-uncased. The same class describes the DistilBERT student: its
``num_hidden_layers`` is the student's own depth and its ``type_vocab_size`` is simply unused
(the student has no token-type embeddings).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from ..layers.feedforward import HIDDEN_ACTS


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ presets
    @classmethod
    def tiny(cls, vocab_size: int = 64, **overrides) -> "BertConfig":
        """A few-thousand-parameter model for tests and gradient checks."""
        base = dict(vocab_size=vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=32, type_vocab_size=2)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def demo(cls, vocab_size: int = 4096, **overrides) -> "BertConfig":
        """The teacher the demo trains on a laptop: hidden 128, 4 heads, FF 512, 6 layers, 128 positions."""
        base = dict(vocab_size=vocab_size, hidden_size=128, num_hidden_layers=6, num_attention_heads=4,
                    intermediate_size=512, max_position_embeddings=128, type_vocab_size=2)
        base.update(overrides)
        return cls(**base)

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ``TypeError``/``ValueError`` naming the first field that makes no sense."""
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"BertConfig.{name} must be an int, got {type(v).__name__} {v!r}")
            if v < 1:
                raise ValueError(f"BertConfig.{name} must be >= 1, got {v}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"BertConfig.hidden_size ({self.hidden_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        for name in ("layer_norm_eps", "initializer_range"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"BertConfig.{name} must be a number > 0, got {v!r}")
        if self.hidden_act not in HIDDEN_ACTS:
            raise ValueError(f"BertConfig.hidden_act must be one of {sorted(HIDDEN_ACTS)}, got {self.hidden_act!r}")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], strict: bool = True) -> "BertConfig":
        """Build from a dict; unknown keys are an error unless ``strict=False`` (then ignored,
        which lets a Hugging Face ``config.json`` with its extra fields be read)."""
        if not isinstance(d, Mapping):
            raise TypeError(f"from_dict needs a dict, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown and strict:
            raise ValueError(f"BertConfig.from_dict: unknown fields {unknown}")
        return cls(**{k: v for k, v in d.items() if k in names})

    def replace(self, **changes) -> "BertConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
