"""The attention core (scaled dot-product with key-padding mask) on both backends.

Bounds: finite differences (float64, random dout): 1e-7 relative (gradcheck.rel_error); twin parity,
normwise max|a - b| / max|b|: 1e-12 (float64), 1e-5 (float32).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidistil import gradcheck
from minidistil.kernels import AttentionCache, attention_backward, attention_forward, use_backend
from minidistil.kernels import attention
from minidistil.kernels import backend as kb
from minidistil.fast import attention as fast_attention
from minidistil.fast.gemm import cblas_route, gemm_functions

BACKENDS = ["numpy", "numba"]
PATHS = ["plain", "tiles", "tiles-cblas"]  # the kernel's Numba version; the fast layer's, two gemm routes


@pytest.fixture(params=PATHS)
def numba_path(request, monkeypatch):
    """Runs a test on every Numba version: "plain" is kernels/attention.py's own, "tiles" the fast
    layer's per-head kernel with its fastest gemm route (fast/gemm.py), "tiles-cblas" the same
    through cblas_?gemm. BLAS is held to one thread for the tiles, as the fast layer does."""
    monkeypatch.setattr(kb, "_FAST_ROUTES", {})
    if request.param == "plain":
        yield request.param
        return
    from threadpoolctl import threadpool_limits
    g = gemm_functions()
    if g is None:
        pytest.skip("BLAS's gemm cannot be called from Numba here")
    if request.param == "tiles-cblas" and g.route == "cblas":
        pytest.skip("the fastest route is cblas already (tested as 'tiles')")
    kb.set_fast_routes({"attention_forward": fast_attention.attention_forward_tiles,
                        "attention_backward": fast_attention.attention_backward_tiles})
    with threadpool_limits(1, user_api="blas"):
        if request.param == "tiles-cblas":
            with cblas_route():
                yield request.param
        else:
            yield request.param


def fwd(q, k, v, mask):
    """``(out, probs)`` from the Numba backend's forward, through whatever route the numba_path
    fixture installed; its cache must hold the very q, k, v it was given."""
    with use_backend("numba"):
        out, cache = attention_forward(q, k, v, mask)
    assert type(cache) is AttentionCache and cache.q is q and cache.k is k and cache.v is v
    return out, cache.probs


def bwd(dout, q, k, v, probs, out=None):
    with use_backend("numba"):
        return attention_backward(dout, AttentionCache(q, k, v, probs), out)


def twin_fwd(q, k, v, mask):
    """``(out, probs)`` from the NumPy twin."""
    out, cache = attention.attention_forward_numpy(q, k, v, mask)
    assert type(cache) is AttentionCache and cache.q is q and cache.k is k and cache.v is v
    return out, cache.probs


def twin_bwd(dout, q, k, v, probs):
    return attention.attention_backward_numpy(dout, AttentionCache(q, k, v, probs))


FD_TOL = 1e-7
PARITY_TOL = {np.float64: 1e-12, np.float32: 1e-5}


def nrel(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / max(float(np.max(np.abs(b))), 1e-300))


def qkv(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    return tuple((rng.standard_normal(shape) * 1.5).astype(dtype) for _ in range(3))


def padding_mask():
    # sequence 0: no padding; 1: two padded keys; 2: mostly padding (only its first key is real)
    return np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])  # (B=3, T=5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("masked", [False, True])
def test_backward_matches_finite_differences(backend, masked):
    rng = np.random.default_rng(0)
    q, k, v = qkv((3, 2, 5, 4), np.float64, 1)  # (B, NH, T, HS)
    mask = padding_mask() if masked else None

    def forward(q, k, v):
        return attention_forward(q, k, v, mask)  # (out, AttentionCache)

    def backward(dout, cache):
        dq, dk, dv = attention_backward(dout, cache)
        return {"q": dq, "k": dk, "v": dv}

    # h = 3e-5, not the default 1e-5: sum(out * dout) is of order 10 here, so the rounding error of
    # a central difference at h = 1e-5 (~eps * 10 / h = 2e-10) sits above the harness's 1e-10
    # absolute floor, and the NumPy twin's k gradient failed on it by 5e-11 (NumPy 2.4.6, AMD EPYC)
    # while its relative error was 6e-8. At 3e-5 rounding and truncation (~h^2) balance.
    with use_backend(backend):
        verdict = gradcheck.check_layer(forward, backward, {"q": q, "k": k, "v": v}, rng, tol=FD_TOL, h=3e-5)
    assert verdict, verdict.table()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("masked", [False, True])
def test_numba_matches_numpy_twin(numba_path, dtype, masked):
    q, k, v = qkv((3, 2, 5, 8), dtype, 2)
    dout = qkv((3, 2, 5, 8), dtype, 3)[0]
    mask = padding_mask().astype(bool) if masked else None
    out_ref, probs_ref = twin_fwd(q, k, v, mask)
    out, probs = fwd(q, k, v, mask)
    tol = PARITY_TOL[dtype]
    assert out.dtype == dtype and probs.dtype == dtype
    assert nrel(out, out_ref) <= tol and nrel(probs, probs_ref) <= tol
    for a, b in zip(bwd(dout, q, k, v, probs_ref),
                    twin_bwd(dout, q, k, v, probs_ref)):
        assert a.shape == q.shape and a.dtype == dtype
        assert nrel(a, b) <= tol


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("T", [8, 21, 64])
def test_numba_matches_numpy_twin_on_longer_rows(numba_path, dtype, T):
    # T >= 8 runs the softmax's eight-lane loop (T = 5, 6 above only its tail); 21 has a tail too
    rng = np.random.default_rng(T)
    q, k, v, dout = ((rng.standard_normal((2, 3, T, 4)) * 2.0).astype(dtype) for _ in range(4))
    mask = np.ones((2, T), dtype=bool)
    mask[0, T // 2:] = False  # padded keys in the lanes and in the tail
    mask[1, ::3] = False
    out_ref, probs_ref = twin_fwd(q, k, v, mask)
    out, probs = fwd(q, k, v, mask)
    tol = PARITY_TOL[dtype]
    assert nrel(out, out_ref) <= tol and nrel(probs, probs_ref) <= tol
    assert np.all(probs[0, :, :, T // 2:] == 0) and np.all(probs[1, :, :, ::3] == 0)
    for a, b in zip(bwd(dout, q, k, v, probs_ref),
                    twin_bwd(dout, q, k, v, probs_ref)):
        assert nrel(a, b) <= tol
    # the backward on the forward's own probs (the tile version's transposed view)
    for a, b in zip(bwd(dout, q, k, v, probs),
                    twin_bwd(dout, q, k, v, probs_ref)):
        assert nrel(a, b) <= tol


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tiles_skip_trailing_padding_exactly(numba_path, dtype):
    # padding at the end (keys never computed), in the middle (computed, masked), none, and all
    rng = np.random.default_rng(7)
    B, NH, T, HS = 4, 2, 19, 5
    q, k, v, dout = ((rng.standard_normal((B, NH, T, HS)) * 2.0).astype(dtype) for _ in range(4))
    mask = np.ones((B, T), dtype=bool)
    mask[0, 11:] = False
    mask[1, 3:9] = False
    mask[3] = False
    out, probs = fwd(q, k, v, mask)
    out_ref, probs_ref = twin_fwd(q, k, v, mask)
    tol = PARITY_TOL[dtype]
    assert probs.shape == (B, NH, T, T) and out.shape == (B, NH, T, HS)
    assert nrel(out, out_ref) <= tol and nrel(probs, probs_ref) <= tol
    assert np.all(probs[0, ..., 11:] == 0) and np.all(probs[1, ..., 3:9] == 0)
    np.testing.assert_allclose(probs[3], 1.0 / T, rtol=1e-6)
    grads = bwd(dout, q, k, v, probs)
    for a, b in zip(grads, twin_bwd(dout, q, k, v, probs_ref)):
        assert nrel(a, b) <= tol
    assert np.all(grads[1][0, :, 11:] == 0) and np.all(grads[2][0, :, 11:] == 0)  # dk, dv of skipped keys


def test_tile_outputs_merge_heads_without_a_copy():
    if gemm_functions() is None:
        pytest.skip("BLAS's gemm cannot be called from Numba here")
    from minidistil.layers.attention import merge_heads
    q, k, v = qkv((2, 3, 4, 5), np.float32, 8)
    out, _ = fast_attention.attention_forward_tiles(q, k, v, None)
    merged = merge_heads(out)  # (B, T, C)
    assert np.shares_memory(merged, out)
    np.testing.assert_array_equal(merged, out.transpose(0, 2, 1, 3).reshape(2, 4, 15))


def test_numba_accepts_head_split_views(numba_path):
    # layers build q as x.reshape(B, T, NH, HS).transpose(0, 2, 1, 3): a strided view
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 3, 5, 2, 4))  # (3 for q/k/v, B, T, NH, HS)
    q, k, v = (x[i].transpose(0, 2, 1, 3) for i in range(3))  # (B, NH, T, HS) views
    mask = padding_mask()[:, :5]
    out, probs = fwd(q, k, v, mask.astype(bool))
    out_ref, probs_ref = twin_fwd(q, k, v, mask.astype(bool))
    assert nrel(out, out_ref) <= 1e-12 and nrel(probs, probs_ref) <= 1e-12
    dout = x[0].transpose(0, 2, 1, 3)[..., ::-1]  # a view with a reversed last axis: copied first
    for a, b in zip(bwd(dout, q, k, v, probs),
                    twin_bwd(dout, q, k, v, probs_ref)):
        assert nrel(a, b) <= 1e-12


masks = st.lists(st.lists(st.booleans(), min_size=6, max_size=6), min_size=1, max_size=3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@settings(max_examples=25, deadline=None)
@given(mask_rows=masks, seed=st.integers(0, 2**16), scale=st.sampled_from([0.1, 1.0, 30.0]))
def test_padded_keys_get_exactly_zero_and_nothing_is_nan(backend, dtype, mask_rows, seed, scale):
    mask = np.array(mask_rows)  # (B, T=6); a row may be entirely padding
    B, T = mask.shape
    q, k, v = qkv((B, 2, T, 3), np.float64, seed)
    q, k, v = (q * scale).astype(dtype), k.astype(dtype), v.astype(dtype)
    with use_backend(backend):
        out, cache = attention_forward(q, k, v, mask)
        dq, dk, dv = attention_backward(out, cache)
    probs = cache.probs  # (B, NH, T, T)
    for a in (out, probs, dq, dk, dv):
        assert np.all(np.isfinite(a))
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=0, atol=1e-5 if dtype == np.float32 else 1e-12)
    for b in range(B):
        if mask[b].any():
            assert np.all(probs[b][..., ~mask[b]] == 0.0)  # exactly zero, not just small
        else:  # a fully padded sequence attends uniformly (BERT adds finfo.min to every key)
            np.testing.assert_allclose(probs[b], 1.0 / T, rtol=1e-6)


@pytest.fixture
def numba_must_not_run(monkeypatch):
    def boom(*args):
        raise AssertionError("a Numba kernel ran on invalid input")
    for name in ("_masked_softmax_inplace", "_softmax_backward_inplace"):
        monkeypatch.setattr(attention, name, boom)
    for name in ("_forward_tiles", "_backward_tiles"):
        monkeypatch.setattr(fast_attention, name, boom)
    with use_backend("numba"):
        yield


def test_bad_inputs_are_rejected(numba_must_not_run):
    q, k, v = qkv((2, 2, 3, 4), np.float64, 5)
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3\), got \(3, 2\)"):
        attention_forward(q, k, v, np.ones((3, 2)))
    with pytest.raises(ValueError, match="mask must hold only 0 and 1"):
        attention_forward(q, k, v, np.full((2, 3), 2))
    with pytest.raises(TypeError, match="mask must be bool, integer or float 0/1, got dtype <U1"):
        attention_forward(q, k, v, np.full((2, 3), "1"))
    with pytest.raises(ValueError, match=r"k must have shape \(2, 2, 3, 4\), got \(2, 2, 4, 4\)"):
        attention_forward(q, np.zeros((2, 2, 4, 4)), v)
    with pytest.raises(ValueError, match=r"q must have 4 dimensions, got shape \(2, 3, 4\)"):
        attention_forward(q[0], k[0], v[0])
    with pytest.raises(TypeError, match="v must have dtype float64 like the other inputs, got float32"):
        attention_forward(q, k, v.astype(np.float32))
    with pytest.raises(TypeError, match="q must have dtype float32 or float64, got int64"):
        attention_forward(q.astype(np.int64), k, v)
    with pytest.raises(ValueError, match=r"cache.probs must have shape \(2, 2, 3, 3\), got \(2, 2, 3, 4\)"):
        attention_backward(q, AttentionCache(q, k, v, np.zeros((2, 2, 3, 4))))
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 2, 3, 4\), got \(2, 2, 4, 3\)"):
        attention_backward(np.zeros((2, 2, 4, 3)), AttentionCache(q, k, v, np.zeros((2, 2, 3, 3))))
    with pytest.raises(TypeError, match="cache must be the AttentionCache that attention_forward returned, got tuple"):
        attention_backward(q, (q, k, v, np.zeros((2, 2, 3, 3))))


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_writes_into_out_views(numba_path, backend):
    # the layer passes the head views of one (B, T, 3C) buffer: filled in place, nothing left over
    from minidistil.layers.attention import head_views
    B, NH, T, HS = 2, 3, 6, 4
    q, k, v = qkv((B, NH, T, HS), np.float64, 9)
    dout = qkv((B, NH, T, HS), np.float64, 10)[0]
    mask = np.ones((B, T), dtype=bool)
    mask[0, 4:] = False
    with use_backend(backend):
        _, cache = attention_forward(q, k, v, mask)
        ref = attention_backward(dout, cache)
        buf = np.full((B, T, 3 * NH * HS), np.nan)
        views = head_views(buf, NH)
        got = attention_backward(dout, cache, out=views)
    assert all(g is o for g, o in zip(got, views))
    for g, r in zip(got, ref):
        assert nrel(g, r) <= 1e-12
    assert not np.isnan(buf).any()  # every entry written
    odd = tuple(np.empty((B, NH, HS, T)).swapaxes(-1, -2) for _ in range(3))  # not BLAS-ready: copied into
    with use_backend(backend):
        got = attention_backward(dout, cache, out=odd)
    assert all(g is o for g, o in zip(got, odd))
    for g, r in zip(got, ref):
        assert nrel(g, r) <= 1e-12


def test_backward_rejects_bad_out(numba_must_not_run):
    q, k, v = qkv((2, 2, 3, 4), np.float64, 5)
    cache = AttentionCache(q, k, v, np.full((2, 2, 3, 3), 1 / 3))
    good = tuple(np.empty_like(q) for _ in range(3))
    with pytest.raises(TypeError, match="out must be a tuple of three arrays"):
        attention_backward(q, cache, out=good[:2])
    with pytest.raises(ValueError, match=r"out\[1\] \(dk\) must have shape \(2, 2, 3, 4\)"):
        attention_backward(q, cache, out=(good[0], np.empty((2, 2, 4, 3)), good[2]))
    with pytest.raises(TypeError, match=r"out\[2\] \(dv\) must have dtype float64"):
        attention_backward(q, cache, out=(good[0], good[1], good[2].astype(np.float32)))
    frozen = np.empty_like(q)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=r"out\[0\] \(dq\) must be writable"):
        attention_backward(q, cache, out=(frozen, good[1], good[2]))


@settings(max_examples=40, deadline=None)
@given(B=st.integers(1, 3), NH=st.integers(1, 3), T=st.integers(1, 10), HS=st.integers(1, 5),
       seed=st.integers(0, 2**16), dtype=st.sampled_from([np.float64, np.float32]))
def test_numba_matches_twin_on_any_shape_and_mask(B, NH, T, HS, seed, dtype):
    # odd sizes (T = 1, HS = 1), any mask (all padding, padding first, in the middle, at the end)
    from threadpoolctl import threadpool_limits
    versions = [(attention.attention_forward_numba, attention.attention_backward_numba)]
    if gemm_functions() is not None:
        versions.append((fast_attention.attention_forward_tiles, fast_attention.attention_backward_tiles))
    with threadpool_limits(1, user_api="blas"):
        for forward, backward in versions:
            _check_against_twin(forward, backward, B, NH, T, HS, seed, dtype)


def _check_against_twin(forward, backward, B, NH, T, HS, seed, dtype):
    rng = np.random.default_rng(seed)
    q, k, v, dout = ((rng.standard_normal((B, NH, T, HS)) * 2.0).astype(dtype) for _ in range(4))
    mask = rng.random((B, T)) < 0.7  # (B, T)
    out, cache = forward(q, k, v, mask)
    probs = cache.probs  # (B, NH, T, T)
    out_ref, probs_ref = twin_fwd(q, k, v, mask)
    tol = PARITY_TOL[dtype]
    assert nrel(out, out_ref) <= tol and nrel(probs, probs_ref) <= tol
    grads = backward(dout, cache)
    twins = twin_bwd(dout, q, k, v, probs_ref)
    if dtype == np.float64:
        for a, b in zip(grads, twins):
            assert a.shape == q.shape and nrel(a, b) <= tol
        return
    # float32: dscores = probs * (dprobs - inner) cancels, so on some inputs both versions are
    # ~1e-5 from the exact gradient (found with NUMBA_DISABLE_JIT). Each is held to the exact
    # (float64) answer instead: within the bound, or no worse than twice the twin's own error.
    q64, k64, v64, d64 = (x.astype(np.float64) for x in (q, k, v, dout))
    exact = twin_bwd(d64, q64, k64, v64, twin_fwd(q64, k64, v64, mask)[1])
    for a, b, e in zip(grads, twins, exact):
        assert a.shape == q.shape and nrel(a, e) <= max(tol, 2.0 * nrel(b, e))


def test_tiles_compile_once_per_dtype_whatever_the_layout():
    # contiguous q, k, v (a test's) and head-split views (a layer's) share one compiled kernel
    if gemm_functions() is None or not hasattr(fast_attention._forward_tiles, "signatures"):
        pytest.skip("needs BLAS's gemm from Numba and the JIT on")
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 2, 6, 3, 4)).astype(np.float32)  # (3 for q/k/v, B, T, NH, HS)
    views = [x[i].transpose(0, 2, 1, 3) for i in range(3)]  # (B, NH, T, HS), strided
    with threadpool_limits(1, user_api="blas"):
        for q, k, v in (views, [np.ascontiguousarray(a) for a in views]):
            out, cache = fast_attention.attention_forward_tiles(q, k, v, None)
            dout = np.ascontiguousarray(out) if q.flags.c_contiguous else out
            fast_attention.attention_backward_tiles(dout, cache)
    for kernel in (fast_attention._forward_tiles, fast_attention._backward_tiles):
        f32 = [s for s in kernel.signatures if str(s[1].dtype) == "float32"]
        assert len(f32) == 1, f32
