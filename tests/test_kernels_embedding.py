"""The embedding backward (scatter-add into the table) on both backends.

Bounds: finite differences (float64, random dy): 1e-7 relative (gradcheck.rel_error); twin parity,
normwise: 1e-12 (float64), 1e-5 (float32).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidistil import gradcheck
from minidistil.kernels import embedding_backward, use_backend
from minidistil.kernels import embedding

BACKENDS = ["numpy", "numba"]
FD_TOL = 1e-7
PARITY_TOL = {np.float64: 1e-12, np.float32: 1e-5}


def nrel(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_matches_finite_differences_with_repeated_ids(backend):
    rng = np.random.default_rng(0)
    V, C = 7, 4
    ids = np.array([[3, 1, 3, 0], [3, 6, 1, 1]])  # (B, T): ids 3 and 1 repeat, 2 4 5 unused
    weight = rng.standard_normal((V, C))  # (V, C)

    def forward(weight):
        return weight[ids]  # (B, T, C): the embedding lookup

    with use_backend(backend):
        v = gradcheck.check_layer(forward, lambda dy, _: {"weight": embedding_backward(dy, ids, V)},
                                  {"weight": weight}, rng, tol=FD_TOL)
    assert v, v.table()


def test_fancy_index_add_would_be_wrong():
    # the bug this kernel exists to avoid: dW[ids] += dy keeps one row per repeated id
    dy = np.ones((3, 2))
    ids = np.array([1, 1, 1])
    naive = np.zeros((2, 2))
    naive[ids] += dy
    assert naive[1, 0] == 1.0
    for backend in BACKENDS:
        with use_backend(backend):
            assert np.array_equal(embedding_backward(dy, ids, 2), [[0.0, 0.0], [3.0, 3.0]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [1, 2, 3, 64])
def test_numba_matches_numpy_twin(dtype, threads, monkeypatch):
    rng = np.random.default_rng(1)
    dy = rng.standard_normal((40, 5)).astype(dtype)  # (N, C)
    ids = rng.integers(0, 9, size=40).astype(np.int32)  # (N,), many repeats, int32 on purpose
    monkeypatch.setattr(embedding, "num_threads", lambda: threads)  # column chunks per thread
    got = embedding.embedding_backward_numba(dy, ids, 11)
    ref = embedding.embedding_backward_numpy(dy, ids, 11)
    assert got.shape == (11, 5) and got.dtype == dtype
    assert nrel(got, ref) <= PARITY_TOL[dtype]
    assert np.all(got[9:] == 0.0)  # rows never looked up get no gradient


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=30, deadline=None)
@given(ids=st.lists(st.integers(0, 5), min_size=1, max_size=12), C=st.integers(1, 4), seed=st.integers(0, 999))
def test_equals_dense_one_hot_matmul(backend, ids, C, seed):
    ids = np.array(ids)  # (N,)
    V = 6
    dy = np.random.default_rng(seed).standard_normal((len(ids), C))  # (N, C)
    one_hot = (ids[:, None] == np.arange(V)[None, :]).astype(np.float64)  # (N, V)
    with use_backend(backend):
        dW = embedding_backward(dy, ids, V)  # (V, C)
    np.testing.assert_allclose(dW, one_hot.T @ dy, rtol=1e-12, atol=1e-12)


@pytest.fixture
def numba_must_not_run(monkeypatch):
    def boom(*args):
        raise AssertionError("a Numba kernel ran on invalid input")
    monkeypatch.setattr(embedding, "_scatter_add_columns", boom)
    with use_backend("numba"):
        yield


def test_bad_inputs_are_rejected(numba_must_not_run):
    dy = np.zeros((4, 3))
    ids = np.array([0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 3\), found 3 \(values in \[0, 3\]\)"):
        embedding_backward(dy, ids, 3)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 9\), found -1 \(values in \[-1, 2\]\)"):
        embedding_backward(dy, np.array([0, -1, 2, 1]), 9)
    with pytest.raises(TypeError, match="ids must have an integer dtype, got float64"):
        embedding_backward(dy, ids.astype(np.float64), 9)
    with pytest.raises(ValueError, match=r"ids must have shape \(4,\) \(dy's shape without C\), got \(2, 2\)"):
        embedding_backward(dy, ids.reshape(2, 2), 9)
    with pytest.raises(TypeError, match="dy must have dtype float32 or float64, got float16"):
        embedding_backward(dy.astype(np.float16), ids, 9)
    with pytest.raises(ValueError, match="V must be a positive integer"):
        embedding_backward(dy, ids, 0)
    with pytest.raises(TypeError, match="ids must be a numpy.ndarray of integers, got list"):
        embedding_backward(dy, [0, 1, 2, 3], 9)
