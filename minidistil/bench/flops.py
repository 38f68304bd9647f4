"""The FLOP model of the two training steps: only the matrix products each step needs.

Legend: B batch, T sequence, N = B*T tokens, C hidden, NH heads, F feed-forward, V vocabulary,
L_t / L_s teacher / student layers, P positions that get logits.

A product of an (m, k) and a (k, n) matrix costs 2*m*k*n FLOP (one multiply and one add per
multiply-add). Elementwise work (softmax, LayerNorm, GELU, the losses, AdamW) is not counted: it
is bound by memory traffic, not by the matmul units, so "achieved GFLOP/s" below is the rate at
which the step does the products it cannot avoid. docs/flops.md writes the model out.

What each step needs, and nothing more:

* a post-LN block, forward on N tokens: the stacked q/k/v projection ``2*N*C*3C``, the output
  projection ``2*N*C*C``, FFN up and down ``2 * 2*N*C*F``, the scores ``q k^T`` and ``probs @ v``,
  ``2 * 2*B*T*T*C`` summed over heads (no padding in the benchmark batches, so every key counts);
* the MLM head at P positions, forward: the transform ``2*P*C*C`` and the tied decoder ``2*P*C*V``;
* a backward costs twice its forward: each product Y = X W needs dX = dY W^T and dW = X^T dY,
  each the size of the forward product. Every input gradient is needed down to the embeddings,
  whose LayerNorm and tables are trained, so nothing is dropped from the first block;
* the teacher of a distillation step runs forward only, and its pooler (B rows, its output
  unused by the losses) is not a product the step needs;
* the teacher MLM step computes logits only at the masked positions (P = 15% of the
  non-special tokens, the expected count); the distillation step has Lce over every real
  token, so P = N for both models.
"""
from __future__ import annotations

from typing import NamedTuple

from .shapes import BenchShapes


class Term(NamedTuple):
    model: str  # "teacher" or "student"
    product: str  # what it computes
    forward_flop: float  # one forward pass of all layers that have it
    passes: int  # 1 forward only, 3 forward + backward (dX and dW)

    @property
    def flop(self) -> float:
        return self.forward_flop * self.passes


def block_products(s: BenchShapes) -> dict:
    """Forward FLOP of one block's products on the bench batch, by name."""
    N, C, F, B, T = s.tokens, s.hidden, s.ff, s.batch, s.seq
    return {"qkv projection": 2.0 * N * C * 3 * C,
            "output projection": 2.0 * N * C * C,
            "ffn up": 2.0 * N * C * F,
            "ffn down": 2.0 * N * F * C,
            "attention scores q k^T": 2.0 * B * T * T * C,
            "attention probs @ v": 2.0 * B * T * T * C}


def head_products(s: BenchShapes, P: float) -> dict:
    """Forward FLOP of the MLM head at P positions: the transform and the tied decoder."""
    return {"head transform": 2.0 * P * s.hidden * s.hidden,
            "head decoder (vocabulary)": 2.0 * P * s.hidden * s.vocab}


def expected_masked(s: BenchShapes, mlm_prob: float = 0.15) -> float:
    """Positions the teacher step's head runs at: ``mlm_prob`` of the T - 2 non-special tokens."""
    return mlm_prob * s.batch * (s.seq - 2)


def _model_terms(model: str, s: BenchShapes, layers: int, P: float, passes: int) -> list:
    rows = [Term(model, name, layers * f, passes) for name, f in block_products(s).items()]
    rows += [Term(model, name, f, passes) for name, f in head_products(s, P).items()]
    return rows


def distill_terms(s: BenchShapes, P: float | None = None) -> list:
    """The distillation step: teacher forward at P positions, student forward + backward."""
    P = float(s.tokens if P is None else P)
    return _model_terms("teacher", s, s.teacher_layers, P, 1) + _model_terms("student", s, s.student_layers, P, 3)


def teacher_terms(s: BenchShapes, P: float | None = None) -> list:
    """The teacher MLM step: forward + backward, the head at the masked positions only."""
    P = expected_masked(s) if P is None else float(P)
    return _model_terms("teacher", s, s.teacher_layers, P, 3)


def total(terms: list) -> float:
    return float(sum(t.flop for t in terms))


def step_flop_model(s: BenchShapes) -> dict:
    """Both steps' FLOP, and the vocabulary head's share of the distillation step."""
    d, t = distill_terms(s), teacher_terms(s)
    head = sum(x.flop for x in d if x.product.startswith("head decoder"))
    return {"distill_step": total(d), "teacher_mlm_step": total(t), "distill_vocab_head_share": head / total(d),
            "P_distill": float(s.tokens), "P_teacher_step": expected_masked(s)}


def achieved(flop: float, seconds: float, peak_gflops: float | None) -> dict:
    """GFLOP/s of a step that took ``seconds``, and its fraction of ``peak_gflops``."""
    g = flop / seconds / 1e9 if seconds > 0 else float("nan")
    return {"gflops": g, "fraction_of_peak": g / peak_gflops if peak_gflops else None}
