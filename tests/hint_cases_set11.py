"""Wrong backward passes for the hint keys added after outside sets 11 and 12.

Each function shows one mistake the way a learner writes it (not with the recogniser's code, nor
with the sets' code); ``test_exercise_hints.py`` checks that it fires its key and no other. The
stability probe (``exercises/stability.py``) has a stable and an unstable learner per exercise.
"""
import numpy as np

from minidistil.exercises import solutions as S


# ----------------------------------------------------------------- the stability probe
def _naive_softmax(z):
    e = np.exp(z)  # no max subtracted: overflows for large z
    return e / e.sum(axis=-1, keepdims=True)


def _safe_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _softmax_t(soft):
    def fn(dp, x, tau):
        p = soft(x / tau)
        return p * (dp - (dp * p).sum(-1, keepdims=True)) / tau
    return fn


def _log_softmax_t(soft):
    def fn(dy, x, tau):
        return (dy - soft(x / tau) * dy.sum(-1, keepdims=True)) / tau
    return fn


def _ce(soft):
    def fn(dloss, logits, labels):
        V = logits.shape[-1]
        p = soft(logits.reshape(-1, V))
        y = labels.reshape(-1)
        keep = y != -100
        p[np.flatnonzero(keep), y[keep]] -= 1.0
        p[~keep] = 0.0
        return (dloss * p / keep.sum()).reshape(logits.shape)
    return fn


def _kl(soft):
    def fn(dloss, s_logits, t_logits, tau):
        return dloss * tau * (soft(s_logits / tau) - soft(t_logits / tau)) / s_logits.shape[0]
    return fn


def _triple(soft):
    def fn(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
        a_ce, a_mlm, a_cos = alphas
        z = h @ weight.T
        P = z.shape[0]
        d_kl = tau * (soft(z / tau) - soft(t_logits / tau)) / P
        keep = labels != -100
        d_mlm = soft(z) * keep[:, None]
        d_mlm[np.flatnonzero(keep), labels[keep]] -= 1.0
        d_mlm /= keep.sum()
        d_cos = S.cosine_backward(1.0, h[None], t_h[None], np.ones((1, P)))[0]
        return dloss * ((a_ce * d_kl + a_mlm * d_mlm) @ weight + a_cos * d_cos)
    return fn


_MAKERS = {"softmax_t": _softmax_t, "log_softmax_t": _log_softmax_t, "cross_entropy": _ce,
           "kl_soft_target": _kl, "triple_loss": _triple}
STABLE = {name: make(_safe_softmax) for name, make in _MAKERS.items()}  # each must PASS
UNSTABLE = {name: make(_naive_softmax) for name, make in _MAKERS.items()}  # softmax_unstable

SET11_KEY_CASES = {
    "softmax_unstable": ("cross_entropy", UNSTABLE["cross_entropy"]),
}
SET11_SECOND_EXERCISE_CASES = [("softmax_unstable", name, fn) for name, fn in UNSTABLE.items()
                               if name != "cross_entropy"]
