"""The fused chunked vocabulary head (kernels/fused_head.py): central differences in float64,
parity with the unfused path (decoder + losses.py) in float64 (1e-12) and float32 (1e-5), and a
peak-memory bound measured with tracemalloc."""
import tracemalloc

import numpy as np
import pytest

from minidistil import losses as L
from minidistil.gradcheck import numerical_grad, rel_error
from minidistil.kernels import use_backend
from minidistil.kernels.fused_head import fused_head_backward, fused_head_forward
from minidistil.layers import linear_backward, linear_forward

TOL_FD = 1e-7  # float64 central differences, h = 1e-5 (smooth ops)
TOL64, TOL32 = 1e-12, 1e-5  # the parity bounds, relative to each tensor's largest entry


def _case(P=11, C=6, V=13, dtype=np.float64, seed=0, ce_all=False):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((P, C))  # (P, C)
    W = rng.standard_normal((V, C)) * 0.7  # (V, C)
    b = rng.standard_normal(V) * 0.3  # (V,) a bias that is not zero
    th = rng.standard_normal((P, C))  # (P, C)
    Wt = rng.standard_normal((V, C)) * 0.9  # (V, C)
    bt = rng.standard_normal(V) * 0.2  # (V,)
    labels = np.full(P, L.IGNORE_INDEX, dtype=np.int64)  # (P,)
    lab = rng.random(P) < 0.4
    lab[0] = True  # at least one labelled row
    labels[lab] = rng.integers(0, V, size=int(lab.sum()))
    ce = np.ones(P, dtype=bool) if ce_all else rng.random(P) < 0.7  # (P,)
    ce[1] = True
    cast = lambda a: a.astype(dtype)  # noqa: E731
    return tuple(map(cast, (h, W, b, th, Wt, bt))) + (labels, ce)


def _max_rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _unfused(h, W, b, th, Wt, bt, labels, ce, tau, a_ce, a_mlm, dloss):
    """The reference: full (P, V) logits, losses.py's Lce and Lmlm, the decoder's backward."""
    s, cache = linear_forward(h, W, b)  # (P, V)
    t, _ = linear_forward(th, Wt, bt)  # (P, V)
    rows = np.flatnonzero(ce)
    lce, ccache = L.soft_target_forward(s[rows], t[rows], tau)
    lmlm, mcache = L.mlm_forward(s, labels)
    ds = np.zeros_like(s)  # (P, V)
    ds[rows] = L.soft_target_backward(dloss * a_ce, ccache)
    ds += L.mlm_backward(dloss * a_mlm, mcache)
    dh, g = linear_backward(ds, cache)
    return a_ce * lce + a_mlm * lmlm, {"loss_ce": lce, "loss_mlm": lmlm}, dh, g["weight"], g["bias"]


@pytest.mark.parametrize("chunk", [2, 64])
def test_central_differences_float64(chunk):
    h, W, b, th, Wt, bt, labels, ce = _case(P=7, C=4, V=9)
    tau, dloss = 1.7, 0.63  # a non-unit upstream gradient
    with use_backend("numpy"):  # the twins: no JIT dispatch per call (hundreds of calls)
        _check_fd(h, W, b, th, Wt, bt, labels, ce, tau, dloss, chunk)


def _check_fd(h, W, b, th, Wt, bt, labels, ce, tau, dloss, chunk):
    _, _, cache = fused_head_forward(h, W, b, labels, th, Wt, bt, ce, tau, 5.0, 2.0, chunk)
    dh, g = fused_head_backward(dloss, cache)

    def f():
        return dloss * fused_head_forward(h, W, b, labels, th, Wt, bt, ce, tau, 5.0, 2.0, chunk)[0]
    for name, x, ana in (("h", h, dh), ("weight", W, g["weight"]), ("bias", b, g["bias"])):
        num = numerical_grad(f, x, h=1e-5)
        assert rel_error(ana, num) < TOL_FD, name


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("dtype,tol", [(np.float64, TOL64), (np.float32, TOL32)])
@pytest.mark.parametrize("chunk,ce_all", [(1, False), (3, False), (5, True), (100, False)])
def test_equals_the_unfused_path(backend, dtype, tol, chunk, ce_all):
    h, W, b, th, Wt, bt, labels, ce = _case(P=23, C=8, V=37, dtype=dtype, seed=3, ce_all=ce_all)
    tau, a_ce, a_mlm, dloss = 2.0, 5.0, 2.0, 1.0
    with use_backend(backend):
        ref = _unfused(h, W, b, th, Wt, bt, labels, ce, tau, a_ce, a_mlm, dloss)
        loss, parts, cache = fused_head_forward(h, W, b, labels, th, Wt, bt, ce, tau, a_ce, a_mlm, chunk)
        dh, g = fused_head_backward(dloss, cache)
    assert abs(loss - ref[0]) <= tol * abs(ref[0])
    for k in ("loss_ce", "loss_mlm"):
        assert abs(parts[k] - ref[1][k]) <= tol * abs(ref[1][k]), k
    for name, got, want in (("dh", dh, ref[2]), ("dW", g["weight"], ref[3]), ("db", g["bias"], ref[4])):
        assert got.dtype == dtype and got.shape == want.shape
        assert _max_rel(got, want) <= tol, (name, _max_rel(got, want))


def test_one_term_alone_and_scaling():
    h, W, b, th, Wt, bt, labels, ce = _case(seed=5)
    # Lmlm alone needs no teacher; its gradient is the unfused one
    loss, parts, cache = fused_head_forward(h, W, b, labels, None, None, None, None, 2.0, 0.0, 2.0, chunk=3)
    ref = _unfused(h, W, b, th, Wt, bt, labels, ce, 2.0, 0.0, 2.0, 1.0)
    assert parts["loss_ce"] == 0.0 and abs(loss - ref[0]) < 1e-12 * ref[0]
    assert _max_rel(fused_head_backward(1.0, cache)[0], ref[2]) < 1e-12
    # dloss scales every gradient; at dloss = 1 the cache's arrays come back uncopied
    dh1, g1 = fused_head_backward(1.0, cache)
    dh2, g2 = fused_head_backward(-0.25, cache)
    assert dh1 is cache.dh and np.allclose(dh2, -0.25 * dh1, rtol=0, atol=1e-15)
    assert np.allclose(g2["weight"], -0.25 * g1["weight"], rtol=0, atol=1e-15)


def test_the_loss_settings_are_the_callers():
    """No copy of DistillLossConfig's defaults in the kernel: tau and the alphas must be passed."""
    h, W, b, th, Wt, bt, labels, ce = _case()
    with pytest.raises(TypeError, match="tau"):
        fused_head_forward(h, W, b, labels, th, Wt, bt, ce)
    cfg = L.DistillLossConfig()
    got = fused_head_forward(h, W, b, labels, th, Wt, bt, ce, cfg.temperature, cfg.alpha_ce, cfg.alpha_mlm)[0]
    ref = _unfused(h, W, b, th, Wt, bt, labels, ce, cfg.temperature, cfg.alpha_ce, cfg.alpha_mlm, 1.0)[0]
    assert abs(got - ref) <= TOL64 * abs(ref)


def test_bad_input():
    h, W, b, th, Wt, bt, labels, ce = _case()
    loss = (2.0, 5.0, 2.0)  # tau, alpha_ce, alpha_mlm
    with pytest.raises(ValueError, match="t_h, t_weight and t_bias are required"):
        fused_head_forward(h, W, b, labels, None, None, None, None, *loss)
    with pytest.raises(ValueError, match="chunk must be an int >= 1"):
        fused_head_forward(h, W, b, labels, th, Wt, bt, None, *loss, chunk=0)
    with pytest.raises(ValueError, match="labels must lie in"):
        fused_head_forward(h, W, b, np.full(len(labels), W.shape[0]), th, Wt, bt, None, *loss)
    with pytest.raises(ValueError, match="last dimension"):
        fused_head_forward(h[:, :3], W, b, labels, th, Wt, bt, None, *loss)
    with pytest.raises(TypeError, match="same dtype|dtype"):
        fused_head_forward(h.astype(np.float32), W, b, labels, th, Wt, bt, None, *loss)
    with pytest.raises(ValueError, match="ce_mask"):
        fused_head_forward(h, W, b, labels, th, Wt, bt, ce[:-1], *loss)
    with pytest.raises(TypeError, match="FusedHeadCache"):
        fused_head_backward(1.0, (h, W, b))


def _peak_bytes(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    out = fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak, out


def test_peak_memory_is_bounded_by_the_chunk():
    """NumPy reports its allocations to tracemalloc; the NumPy twins allocate every temporary
    through NumPy, so the traced peak is the head's real peak beyond its inputs."""
    P, C, V, K = 768, 8, 4096, 32
    h, W, b, th, Wt, bt, labels, ce = _case(P=P, C=C, V=V, seed=7, ce_all=True)
    item = h.dtype.itemsize
    with use_backend("numpy"):
        fused, _ = _peak_bytes(lambda: fused_head_forward(h, W, b, labels, th, Wt, bt, ce, 2.0, 5.0, 2.0, K))
        unfused, _ = _peak_bytes(lambda: _unfused(h, W, b, th, Wt, bt, labels, ce, 2.0, 5.0, 2.0, 1.0))
    outputs = (P * C + V * C + V) * item  # dh, dW, db: what the head returns
    chunk_arrays = K * V * item  # one (K, V) array
    # the gradients, dW's per-chunk product and at most 12 (K, V) temporaries at once (the twin's
    # soft-target rows make about 8: shifted logits, exps, probabilities)
    assert fused <= outputs + V * C * item + 12 * chunk_arrays, (fused, outputs, chunk_arrays)
    assert unfused >= 4 * P * V * item  # the reference holds several (P, V) arrays
    assert fused < unfused / 5


@pytest.mark.parametrize("dtype,tol", [(np.float64, TOL64), (np.float32, TOL32)])
def test_dW_accumulated_in_vocabulary_blocks(monkeypatch, dtype, tol):
    """dW is summed a block of vocabulary rows at a time; blocks that do not divide V."""
    import minidistil.kernels.fused_head as FH
    monkeypatch.setattr(FH, "VOCAB_BLOCK", 8)
    h, W, b, th, Wt, bt, labels, ce = _case(P=19, C=5, V=37, dtype=dtype, seed=9)
    ref = _unfused(h, W, b, th, Wt, bt, labels, ce, 2.0, 5.0, 2.0, 1.0)
    _, _, cache = FH.fused_head_forward(h, W, b, labels, th, Wt, bt, ce, 2.0, 5.0, 2.0, 4)
    dh, g = FH.fused_head_backward(1.0, cache)
    assert _max_rel(g["weight"], ref[3]) <= tol and _max_rel(dh, ref[2]) <= tol
