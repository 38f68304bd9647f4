"""BLAS's gemm called from Numba (kernels/gemm.py): every transpose, strided tiles, both dtypes.

Bound: the same product through NumPy's ``@`` (the same BLAS), 1e-6 (float32) / 1e-13 (float64)
normwise; the Python body (NUMBA_DISABLE_JIT) is checked against ``@`` too.
"""
import itertools

import numba
import numpy as np
import pytest

from minidistil.kernels import blas, gemm as G

TOL = {np.float32: 1e-6, np.float64: 1e-13}

pytestmark = pytest.mark.skipif(G.gemm_functions() is None,
                                reason="BLAS's gemm cannot be called from Numba here")


@numba.njit
def _call(fn, ilp64, ta, tb, alpha, a, b, c):
    G.gemm(fn, ilp64, ta, tb, alpha, a, b, c)


def nrel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def operands(rng, dtype, M, N, K, ta, tb):
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    return a, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", list(itertools.product([False, True], repeat=2)))
def test_gemm_matches_numpy_for_every_transpose(dtype, ta, tb):
    rng = np.random.default_rng(1)
    g = G.gemm_functions()
    M, N, K = 7, 5, 9
    a, b = operands(rng, dtype, M, N, K, ta, tb)
    c = np.full((M, N), np.nan, dtype=dtype)  # every entry must be written (beta = 0)
    with blas.owned_cores():
        _call(g.address(dtype), g.ilp64, ta, tb, 0.5, a, b, c)
    ref = 0.5 * ((a.T if ta else a) @ (b.T if tb else b))
    assert nrel(c, ref) <= TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_on_strided_tiles_writes_only_its_tile(dtype):
    # what the attention kernel passes: rows of a 4-D array, key slices, a merged-heads output
    rng = np.random.default_rng(2)
    g = G.gemm_functions()
    qkv = rng.standard_normal((2, 6, 3, 2, 4)).astype(dtype)  # (B, T, 3, NH, HS)
    q = qkv[:, :, 0].transpose(0, 2, 1, 3)  # (B, NH, T, HS), rows 3*NH*HS apart
    k = qkv[:, :, 1].transpose(0, 2, 1, 3)
    out = np.zeros((2, 6, 2, 6), dtype=dtype).transpose(0, 2, 1, 3)  # (B, NH, T, T) merged layout
    with blas.owned_cores():
        _call(g.address(dtype), g.ilp64, False, True, 1.0, q[1, 0], k[1, 0, :4], out[1, 0, :, :4])
    ref = q[1, 0] @ k[1, 0, :4].T
    assert nrel(out[1, 0, :, :4], ref) <= TOL[dtype]
    rest = out.copy()
    rest[1, 0, :, :4] = 0
    assert np.all(rest == 0)  # nothing outside the tile was touched


def test_gemm_empty_sizes():
    g = G.gemm_functions()
    a, b = np.ones((3, 0)), np.ones((0, 4))
    c = np.full((3, 4), 7.0)
    _call(g.dgemm, g.ilp64, False, False, 1.0, a, b, c)  # K = 0: the product is 0
    assert np.all(c == 0)
    c0 = np.empty((0, 4))
    _call(g.dgemm, g.ilp64, False, False, 1.0, np.ones((0, 2)), np.ones((2, 4)), c0)  # nothing to do


def test_gemm_python_body_is_the_reference():
    rng = np.random.default_rng(3)
    a, b = operands(rng, np.float64, 4, 3, 5, True, False)
    c = np.empty((4, 3))
    G.gemm(0, True, True, False, 2.0, a, b, c)  # plain Python: NumPy's @
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
