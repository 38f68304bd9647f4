"""The sizes a benchmark run uses: ``--shapes demo`` (the demo model), ``small``, ``minilm``,
``base`` (BERT-base widths), ``quick``; ``wide`` is another name of ``small`` (its earlier name,
kept so that ``--shapes wide`` still works: :data:`ALIASES`). A comma list
(``--shapes demo,small,minilm,base``) runs the roofline sweep of bench/sweep.py.

Legend: B batch, T sequence, C hidden, NH heads, F feed-forward, V vocabulary, L layers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class BenchShapes:
    """One run's sizes; the default is the demo model (``minidistil demo``) at T = 128."""
    batch: int = 32
    seq: int = 128
    hidden: int = 128
    heads: int = 4
    ff: int = 512
    vocab: int = 4096
    teacher_layers: int = 6
    student_layers: int = 3

    @classmethod
    def quick(cls) -> "BenchShapes":
        return PRESETS["quick"]

    @property
    def tokens(self) -> int:
        return self.batch * self.seq

    def replace(self, **changes) -> "BenchShapes":
        return replace(self, **changes)

    def __post_init__(self):
        for name, v in asdict(self).items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"BenchShapes.{name} must be a positive int, got {v!r}")
        if self.hidden % self.heads:
            raise ValueError(f"BenchShapes.hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.student_layers > self.teacher_layers:
            raise ValueError("BenchShapes.student_layers must not exceed teacher_layers")


PRESETS = {
    "demo": BenchShapes(),
    # the widths people distil at T = 128: BERT-mini-like (twice the demo's width, half its batch:
    # the activations stay the demo's size), all-MiniLM-L6 (12 heads of 32, the BERT WordPiece
    # vocabulary) and BERT-base (2 -> 1 layers, so that a step fits in seconds)
    "small": BenchShapes(batch=16, hidden=256, heads=4, ff=1024, vocab=8192),
    "minilm": BenchShapes(batch=16, hidden=384, heads=12, ff=1536, vocab=30522),
    "base": BenchShapes(batch=8, hidden=768, heads=12, ff=3072, vocab=30522, teacher_layers=2,
                        student_layers=1),
    "quick": BenchShapes(batch=2, seq=16, hidden=16, heads=2, ff=32, vocab=64, teacher_layers=2,
                         student_layers=1),
}
# other names of a preset: the same BenchShapes object, listed and accepted like the others
ALIASES = {"wide": "small"}  # "wide" was the name of these shapes before the sweep's "small"
PRESETS.update({alias: PRESETS[name] for alias, name in ALIASES.items()})


def preset(name: str) -> BenchShapes:
    """The shapes called ``name``; a ValueError lists the names otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown shapes {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]


def preset_list(text: str) -> list:
    """``"demo,small"`` -> ``["demo", "small"]`` (each checked by :func:`preset`; no repeats)."""
    names = [x.strip() for x in str(text).split(",") if x.strip()]
    if not names:
        raise ValueError(f"no shapes named in {text!r}; choose from {', '.join(PRESETS)}")
    for n in names:
        preset(n)
    if len({ALIASES.get(n, n) for n in names}) != len(names):  # "small,wide" is the same run twice
        aka = "".join(f" ({a} is another name of {ALIASES[a]})" for a in names if a in ALIASES)
        raise ValueError(f"shapes named twice in {text!r}{aka}")
    return names
