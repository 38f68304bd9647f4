"""Stubs of the gradient exercises: replace each ``raise`` with your backward pass.

Legend: N rows (any leading shape), B batch, T sequence, C hidden, NH heads, HS head size,
F feed-forward, V vocabulary, P selected positions, IN/OUT linear fan-in/fan-out.

Each exercise gives you a forward pass (in :mod:`minidistil.exercises.forwards`) and asks for
its backward. Check your answer with::

    from minidistil.exercises import check
    check("layernorm", my_layernorm_backward)

Rules of the game (the checker enforces them): return new arrays, never write into ``dy`` or
any other argument (they are passed read-only); gradients have the shape of what they
differentiate (``dweight`` is (OUT, IN) like ``weight``). Derivations: docs/math.md.
"""
from __future__ import annotations


def _todo(name: str):
    raise NotImplementedError(f"exercise {name!r} is not implemented yet: write its backward pass")


def linear_backward(dy, x, weight):
    """Exercise "linear". Forward ``y = x @ weight.T + bias``; x (N, IN), weight (OUT, IN).

    Return ``(dx (N, IN), dweight (OUT, IN), dbias (OUT,))``.
    """
    _todo("linear")


def gelu_backward(dy, x):
    """Exercise "gelu". Forward ``y = 0.5 * x * (1 + erf(x / sqrt(2)))`` (exact GELU).

    Return ``dx`` (same shape as x).
    """
    _todo("gelu")


def layernorm_backward(dy, x, gamma, eps=1e-12):
    """Exercise "layernorm". Forward ``y = (x - mean) / sqrt(var + eps) * gamma + beta``, last axis.

    Return ``(dx (N, C), dgamma (C,), dbeta (C,))``. Recompute mean and rstd from ``x``.
    """
    _todo("layernorm")


def softmax_t_backward(dp, x, tau):
    """Exercise "softmax_t". Forward ``p = softmax(x / tau)`` over the last axis.

    Return ``dx`` (same shape as x).
    """
    _todo("softmax_t")


def attention_backward(dout, q, k, v, probs):
    """Exercise "attention". Forward ``probs = softmax(q k^T / sqrt(HS) + pad_bias)``, ``out = probs @ v``.

    q, k, v (B, NH, T, HS); ``probs`` (B, NH, T, T) from the forward (padded keys have prob 0).
    Return ``(dq, dk, dv)``.
    """
    _todo("attention")


def embedding_tied_backward(dlogits, ids, weight):
    """Exercise "embedding_tied". Forward ``h = weight[ids]; logits = h @ weight.T + bias``.

    ids (B, T) int, weight (V, C), dlogits (B, T, V). Return ``(dweight (V, C), dbias (V,))``.
    """
    _todo("embedding_tied")


def kl_soft_target_backward(dloss, s_logits, t_logits, tau):
    """Exercise "kl_soft_target". Forward ``tau**2 * mean over the P rows of KL(q || p)``,
    teacher ``q = softmax(t/tau)``, student ``p = softmax(s/tau)``.

    s_logits, t_logits (P, V); ``dloss`` a float (the upstream gradient). Return ``ds_logits``.
    """
    _todo("kl_soft_target")


def log_softmax_t_backward(dy, x, tau):
    """Exercise "log_softmax_t". Forward ``y = log softmax(x / tau)`` over the last axis.

    Return ``dx`` (same shape as x).
    """
    _todo("log_softmax_t")


def cross_entropy_backward(dloss, logits, labels):
    """Exercise "cross_entropy". Forward: mean over rows with ``label != -100`` of
    ``-log softmax(logits)[label]``; logits (B, T, V), labels (B, T) int, -100 = not scored.

    ``dloss`` a float. Return ``dlogits`` (B, T, V).
    """
    _todo("cross_entropy")


def cosine_backward(dloss, s_h, t_h, mask):
    """Exercise "cosine". Forward ``mean over real positions of 1 - cos(s_h, t_h)``.

    s_h, t_h (B, T, C); mask (B, T) 1 real, 0 pad; ``dloss`` a float. Return ``ds_h`` (B, T, C).
    """
    _todo("cosine")


def triple_loss_backward(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    """Exercise "triple_loss". Forward ``forwards.triple_loss``: logits = h @ weight.T, then
    ``a_ce * Lce(logits, t_logits, tau) + a_mlm * Lmlm(logits, labels) + a_cos * Lcos(h, t_h)``.

    h, t_h (P, C); weight (V, C); t_logits (P, V); labels (P,) with -100; alphas a 3-tuple.
    Return ``dh`` (P, C): the sum of the three losses' gradients.
    """
    _todo("triple_loss")


def hidden_mse_backward(dloss, s_h, t_h, weight):
    """Exercise "hidden_mse". Forward ``mean((s_h @ weight.T - t_h) ** 2)`` (TinyBERT).

    s_h (B, T, CS), t_h (B, T, CT), weight (CT, CS). Return ``(ds_h (B, T, CS), dweight (CT, CS))``.
    """
    _todo("hidden_mse")


def encoder_block_backward(dy, x, mask, p, num_heads, eps=1e-12):
    """Bonus exercise "encoder_block". Forward: ``forwards.encoder_block`` (post-LN BERT block).

    Return ``(dx (B, T, C), grads)`` with ``grads`` keyed like ``p``.
    """
    _todo("encoder_block")
