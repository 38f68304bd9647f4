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


# ----------------------------------------------------------------- the misses of sets 11 and 12
def _rows(a):
    return a.reshape(-1, a.shape[-1])


def _linear_l2(dy, x, weight):
    dW = _rows(dy).T @ _rows(x)
    dW = dW + 5e-4 * 2 * weight  # d/dW of lam * |W|^2
    return dy @ weight, dW, _rows(dy).sum(0)


def _ln_dvar_no_half(dy, x, gamma, eps=1e-12):
    C = x.shape[-1]
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    std_inv = 1.0 / np.sqrt(var + eps)
    dxhat = dy * gamma
    dvar = np.sum(dxhat * (x - mu), axis=-1, keepdims=True) * std_inv ** 3  # the -0.5 dropped
    dmu = np.sum(-dxhat * std_inv, axis=-1, keepdims=True)
    dx = dxhat * std_inv + dvar * 2 * (x - mu) / C + dmu / C
    xhat = (x - mu) * std_inv
    return dx, _rows(dy * xhat).sum(0), _rows(dy).sum(0)


def _sm_no_p(dp, x, tau):
    p = _safe_softmax(x / tau)
    dot = np.sum(dp * p, axis=-1)[..., None]
    return (dp - dot) / tau  # p * (...) forgotten


def _emb_pieces(dlogits, ids, weight):
    V, C = weight.shape
    flat = ids.ravel()
    dl = dlogits.reshape(-1, V)
    dec = dl.T @ weight[flat]
    dh = dl @ weight
    look = np.zeros_like(weight)
    np.add.at(look, flat, dh)
    return dec, look, dh, dl


def _emb_mean_of_uses(dlogits, ids, weight):
    dec, look, _, dl = _emb_pieces(dlogits, ids, weight)
    return 0.5 * (dec + look), dl.sum(0)


def _emb_lookup_doubled(dlogits, ids, weight):
    dec, look, _, dl = _emb_pieces(dlogits, ids, weight)
    return dec + 2 * look, dl.sum(0)


def _emb_dh_everywhere(dlogits, ids, weight):
    dec, _, dh, dl = _emb_pieces(dlogits, ids, weight)
    return dec + dh.sum(axis=0, keepdims=True), dl.sum(0)


def _cos_grad(s, t, ax=-1):
    ns = np.linalg.norm(s, axis=ax, keepdims=True)
    nt = np.linalg.norm(t, axis=ax, keepdims=True)
    cos = (s * t).sum(-1, keepdims=True) / (ns * nt)
    return t / (ns * nt) - cos * s / ns ** 2


def _cos_per_seq_n(dloss, s_h, t_h, mask):
    w = mask[..., None].astype(float)
    counts = mask.sum(-1)[:, None, None]
    return -dloss * _cos_grad(s_h, t_h) * w / counts


def _cos_norm_seq(dloss, s_h, t_h, mask):
    w = mask[..., None].astype(float)
    return -dloss * _cos_grad(s_h, t_h, ax=1) * w / mask.sum()


def _triple_pieces(h, weight, t_logits, labels, tau):
    z = h @ weight.T
    P = len(z)
    kl = tau * (_safe_softmax(z / tau) - _safe_softmax(t_logits / tau))
    scored = labels != -100
    mlm = _safe_softmax(z)
    mlm[np.where(scored)[0], labels[scored]] -= 1.0
    mlm[~scored] = 0.0
    return kl, mlm / scored.sum(), P, scored.sum()


def _triple_cos_const_norm(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    kl, mlm, P, _ = _triple_pieces(h, weight, t_logits, labels, tau)
    d_cos = -t_h / (np.linalg.norm(h, axis=1, keepdims=True) * np.linalg.norm(t_h, axis=1, keepdims=True))
    return dloss * ((alphas[0] * kl / P + alphas[1] * mlm) @ weight + alphas[2] * d_cos / P)


def _triple_kl_over_scored(dloss, h, weight, t_logits, t_h, labels, tau, alphas):
    kl, mlm, P, n = _triple_pieces(h, weight, t_logits, labels, tau)
    d_cos = -_cos_grad(h, t_h) / P
    return dloss * ((alphas[0] * kl / n + alphas[1] * mlm) @ weight + alphas[2] * d_cos)


def _mse_sum(dloss, s_h, t_h, weight):
    r = np.einsum("btj,kj->btk", s_h, weight) - t_h
    g = 2 * dloss * r  # the sum of squares: no / r.size
    return g @ weight, _rows(g).T @ _rows(s_h)


def _mse_dw_mean_again(dloss, s_h, t_h, weight):
    r = s_h @ weight.T - t_h
    g = 2 * dloss * r / r.size
    return g @ weight, np.mean(_rows(g)[:, :, None] * _rows(s_h)[:, None, :], axis=0) * len(_rows(g)) / r.size


SET11_KEY_CASES = {
    "softmax_unstable": ("cross_entropy", UNSTABLE["cross_entropy"]),
    "linear_weight_decay": ("linear", _linear_l2),
    "softmax_missing_p": ("softmax_t", _sm_no_p),
    "tied_parts_scaled": ("embedding_tied", _emb_mean_of_uses),
    "embedding_lookup_broadcast": ("embedding_tied", _emb_dh_everywhere),
    "cosine_row_count": ("cosine", _cos_per_seq_n),
    "cosine_norm_axis": ("cosine", _cos_norm_seq),
    "triple_kl_count": ("triple_loss", _triple_kl_over_scored),
    "mse_mean_missing": ("hidden_mse", _mse_sum),
}
SET11_SECOND_EXERCISE_CASES = [("softmax_unstable", name, fn) for name, fn in UNSTABLE.items()
                               if name != "cross_entropy"] + [
    ("tied_parts_scaled", "embedding_tied", _emb_lookup_doubled),
    ("layernorm_variance_stage", "layernorm", _ln_dvar_no_half),
    ("cosine_norm_term", "triple_loss", _triple_cos_const_norm),
    ("mse_dweight_mean_twice", "hidden_mse", _mse_dw_mean_again),
]
