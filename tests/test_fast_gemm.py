"""BLAS's gemm called from Numba (fast/gemm.py): every transpose, strided tiles, both dtypes,
both routes (cblas, and OpenBLAS's AVX-512 small-matrix kernels where the CPU has AVX-512).

Bound: the same product through NumPy's ``@`` (the same BLAS), 1e-6 (float32) / 1e-13 (float64)
normwise; the Python body (NUMBA_DISABLE_JIT) is checked against ``@`` too.
"""
import ctypes
import itertools

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from minidistil.fast import gemm as G, threads as blas

TOL = {np.float32: 1e-6, np.float64: 1e-13}

pytestmark = pytest.mark.skipif(G.gemm_functions() is None,
                                reason="BLAS's gemm cannot be called from Numba here")


@numba.njit
def _call(fns, ta, tb, alpha, a, b, c):
    G.gemm(fns, ta, tb, alpha, a, b, c)


@pytest.fixture(params=["cblas", "avx512"])
def funcs(request):
    """The gemm functions of one route (the AVX-512 one is skipped on CPUs without it)."""
    g = G.gemm_functions()
    if request.param == "cblas":
        return g.cblas_only()
    if g.route != "avx512":
        pytest.skip(f"no AVX-512 route here: {g.why_not_avx512}")
    return g


def nrel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def operands(rng, dtype, M, N, K, ta, tb):
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    return a, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("M,N,K", [(7, 5, 9), (37, 19, 33), (128, 128, 32), (1, 1, 1)])
def test_gemm_matches_numpy_for_every_transpose(funcs, dtype, ta, tb, M, N, K):
    rng = np.random.default_rng(1)
    a, b = operands(rng, dtype, M, N, K, ta, tb)
    c = np.full((M, N), np.nan, dtype=dtype)  # every entry must be written (beta = 0)
    with threadpool_limits(1, user_api="blas"):
        _call(funcs.table(dtype), ta, tb, 0.5, a, b, c)
    ref = 0.5 * ((a.T if ta else a) @ (b.T if tb else b))
    assert nrel(c, ref) <= TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_on_strided_tiles_writes_only_its_tile(funcs, dtype):
    # what the attention kernel passes: rows of a 4-D array, key slices, a merged-heads output
    rng = np.random.default_rng(2)
    qkv = rng.standard_normal((2, 6, 3, 2, 4)).astype(dtype)  # (B, T, 3, NH, HS)
    q = qkv[:, :, 0].transpose(0, 2, 1, 3)  # (B, NH, T, HS), rows 3*NH*HS apart
    k = qkv[:, :, 1].transpose(0, 2, 1, 3)
    out = np.zeros((2, 6, 2, 6), dtype=dtype).transpose(0, 2, 1, 3)  # (B, NH, T, T) merged layout
    with threadpool_limits(1, user_api="blas"):
        _call(funcs.table(dtype), False, True, 1.0, q[1, 0], k[1, 0, :4], out[1, 0, :, :4])
    ref = q[1, 0] @ k[1, 0, :4].T
    assert nrel(out[1, 0, :, :4], ref) <= TOL[dtype]
    rest = out.copy()
    rest[1, 0, :, :4] = 0
    assert np.all(rest == 0)  # nothing outside the tile was touched


def test_gemm_empty_sizes(funcs):
    fns = funcs.table(np.float64)
    a, b = np.ones((3, 0)), np.ones((0, 4))
    c = np.full((3, 4), 7.0)
    _call(fns, False, False, 1.0, a, b, c)  # K = 0: the product is 0
    assert np.all(c == 0)
    c0 = np.empty((0, 4))
    _call(fns, False, False, 1.0, np.ones((0, 2)), np.ones((2, 4)), c0)  # nothing to do


def test_gemm_python_body_is_the_reference():
    rng = np.random.default_rng(3)
    a, b = operands(rng, np.float64, 4, 3, 5, True, False)
    c = np.empty((4, 3))
    G.gemm(np.zeros(5, np.int64), True, False, 2.0, a, b, c)  # plain Python: NumPy's @
    np.testing.assert_allclose(c, 2.0 * a.T @ b, rtol=1e-14)


def test_blas_ready():
    x = np.zeros((2, 3, 4), dtype=np.float32)
    assert G.blas_ready(x) and G.blas_ready(x[:, :2]) and G.blas_ready(x[..., :2])
    assert not G.blas_ready(x.swapaxes(-1, -2))  # last axis strided
    assert not G.blas_ready(x[..., ::-1])  # reversed
    assert not G.blas_ready(np.broadcast_to(np.zeros(4, np.float32), (3, 4)))  # rows overlap
    assert not G.blas_ready(np.zeros(4))  # 1-D


def test_addresses_are_found_in_numpys_openblas():
    g = G.gemm_functions()
    assert g.sgemm and g.dgemm and g.sgemm != g.dgemm
    assert g.address(np.float32) == g.sgemm and g.address(np.float64) == g.dgemm
    cb = g.cblas_only()
    assert cb.route == "cblas" and cb.why_not_avx512
    assert list(cb.table(np.float32)) == [G.ROUTE_CBLAS64 if g.ilp64 else G.ROUTE_CBLAS32, g.sgemm, 0, 0, 0]
    if g.route == "avx512":
        assert list(g.table(np.float32)) == [G.ROUTE_AVX512, *g.small_s]
        assert list(g.table(np.float64)) == [G.ROUTE_AVX512, *g.small_d]
        assert len(set(g.small_s + g.small_d)) == 8 and g.why_not_avx512 == ""
    else:
        assert g.why_not_avx512  # says why


def _library():
    return ctypes.CDLL(blas.openblas().filepath)


def test_avx512_route_is_off_when_asked_or_when_the_cpu_lacks_it(monkeypatch):
    monkeypatch.setenv("MINIDISTIL_GEMM", "cblas")
    assert G._avx512_kernels(_library()) == (((), ()), "MINIDISTIL_GEMM=cblas")
    monkeypatch.delenv("MINIDISTIL_GEMM")
    import llvmlite.binding as llvm
    monkeypatch.setattr(llvm, "get_host_cpu_features", lambda: {"avx512f": True})
    kernels, why = G._avx512_kernels(_library())
    assert kernels == ((), ()) and why.startswith("the CPU lacks avx512cd")
    # OpenBLAS picked AVX-512 kernels itself: the route has nothing to add
    monkeypatch.setattr(llvm, "get_host_cpu_features", lambda: dict.fromkeys(G._AVX512, True))
    kernels, why = G._avx512_kernels(_library(), "SkylakeX")
    assert kernels == ((), ()) and "already runs its AVX-512 kernels" in why


def test_avx512_self_test_catches_a_wrong_kernel():
    g = G.gemm_functions()
    if g.route != "avx512":
        pytest.skip(f"no AVX-512 route here: {g.why_not_avx512}")
    lib = _library()
    right = [getattr(lib, f"sgemm_small_kernel_b0_{fl}_SKYLAKEX") for fl in G._FLAGS]
    assert G._self_test(right, np.float32)
    swapped = [right[1], right[0], right[2], right[3]]  # nn and nt exchanged: wrong products
    assert not G._self_test(swapped, np.float32)


def test_cblas_route_switches_the_kernels_to_cblas_and_back():
    g = G.gemm_functions()
    with G.cblas_route():
        inside = G.gemm_functions()
        assert inside.route == "cblas" and inside.sgemm == g.sgemm
        assert int(inside.table(np.float32)[0]) in (G.ROUTE_CBLAS32, G.ROUTE_CBLAS64)
    assert G.gemm_functions() == g
