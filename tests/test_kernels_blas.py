"""The matmul thread scheme (kernels/blas.py) and the malloc tuning (kernels/malloc.py)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from minidistil.kernels import blas, malloc
from minidistil.kernels.backend import use_backend

needs_control = pytest.mark.skipif(blas.control() is None, reason="no controllable OpenBLAS in this NumPy")


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("case", ["2d", "2d_transposed_a", "2d_transposed_b", "batched", "batched_transposed",
                                  "batched_times_2d", "2d_times_batched", "odd_sizes"])
def test_threaded_matmul_equals_numpy(case, dtype, tol):
    rng = np.random.default_rng(0)
    a, b = {
        "2d": lambda: (_rand(rng, (300, 64), dtype), _rand(rng, (64, 96), dtype)),
        "2d_transposed_a": lambda: (_rand(rng, (64, 300), dtype).T, _rand(rng, (64, 96), dtype)),
        "2d_transposed_b": lambda: (_rand(rng, (300, 64), dtype), _rand(rng, (96, 64), dtype).T),
        "batched": lambda: (_rand(rng, (6, 3, 40, 16), dtype), _rand(rng, (6, 3, 16, 40), dtype)),
        "batched_transposed": lambda: (_rand(rng, (6, 3, 40, 16), dtype),
                                       _rand(rng, (6, 3, 40, 16), dtype).swapaxes(-1, -2)),
        "batched_times_2d": lambda: (_rand(rng, (5, 70, 64), dtype), _rand(rng, (64, 80), dtype)),
        "2d_times_batched": lambda: (_rand(rng, (70, 64), dtype), _rand(rng, (5, 64, 80), dtype)),
        "odd_sizes": lambda: (_rand(rng, (3, 1, 129, 33), dtype), _rand(rng, (3, 1, 33, 65), dtype)),
    }[case]()
    want = a @ b
    for threads in (1, 2, 3):
        got = blas.matmul_threaded(a, b, threads=threads)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


@pytest.mark.parametrize("shape_a, shape_b", [((300, 64), (64, 96)), ((6, 40, 16), (6, 16, 96)), ((4, 4), (4, 96))])
def test_bias_is_added_to_every_row(shape_a, shape_b):
    rng = np.random.default_rng(2)
    a, b, bias = _rand(rng, shape_a, np.float64), _rand(rng, shape_b, np.float64), _rand(rng, (96,), np.float64)
    want = a @ b + bias
    for threads in (1, 2):
        np.testing.assert_allclose(blas.matmul_threaded(a, b, threads=threads, bias=bias), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(blas.matmul_numpy(a, b, bias), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_pair_equals_two_products(threads):
    rng = np.random.default_rng(3)
    dy, w, x = _rand(rng, (512, 96), np.float64), _rand(rng, (96, 64), np.float64), _rand(rng, (512, 64), np.float64)
    dx, dw = blas.matmul_pair_threaded(dy, w, dy.T, x, threads=threads)
    np.testing.assert_allclose(dx, dy @ w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, dy.T @ x, rtol=1e-12, atol=1e-12)
    q, k = _rand(rng, (4, 2, 40, 8), np.float32), _rand(rng, (4, 2, 40, 8), np.float32)
    s, t = blas.matmul_pair_threaded(q, k.swapaxes(-1, -2), k, q.swapaxes(-1, -2), threads=threads)
    np.testing.assert_allclose(s, q @ k.swapaxes(-1, -2), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(t, k @ q.swapaxes(-1, -2), rtol=1e-5, atol=1e-5)


def test_pair_checks_both_operands():
    with pytest.raises(ValueError, match=r"last dimension \(3\) must equal b's second-to-last \(2\)"):
        blas.matmul_pair(np.ones((2, 2)), np.ones((2, 2)), np.ones((2, 3)), np.ones((2, 2)))


def test_threaded_matmul_really_splits(monkeypatch):
    # the product must be cut into one piece per thread, each written into its own rows
    if blas.control() is None:
        pytest.skip("no controllable OpenBLAS: matmul_threaded is a plain call here")
    calls = []
    real = np.matmul

    def spy(x, y, out=None):
        calls.append(x.shape)
        return real(x, y, out=out)
    monkeypatch.setattr(blas.np, "matmul", spy)
    rng = np.random.default_rng(1)
    a, b = _rand(rng, (512, 256), np.float32), _rand(rng, (256, 256), np.float32)
    got = blas.matmul_threaded(a, b, threads=2)
    assert sorted(calls) == [(256, 256), (256, 256)]
    np.testing.assert_allclose(got, a @ b, rtol=1e-5, atol=1e-4)


def test_small_products_are_one_call(monkeypatch):
    calls = []
    monkeypatch.setattr(blas.np, "matmul", lambda *a, **k: calls.append(1))
    a = np.ones((8, 8))
    np.testing.assert_array_equal(blas.matmul_threaded(a, a, threads=2), a @ a)
    assert calls == []  # below MIN_SPLIT_MACS: plain `@`, no pool


def test_matmul_rejects_bad_operands():
    with pytest.raises(ValueError, match=r"a's last dimension \(3\) must equal b's second-to-last \(4\)"):
        blas.matmul(np.ones((2, 3)), np.ones((4, 5)))
    with pytest.raises(TypeError, match="NumPy arrays"):
        blas.matmul([[1.0]], np.ones((1, 1)))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        blas.matmul(np.ones(()), np.ones((1, 1)))


def test_matmul_follows_the_backend(monkeypatch):
    seen = []
    monkeypatch.setattr(blas, "matmul_threaded", lambda a, b, bias=None: seen.append("threaded") or a @ b)
    a = np.ones((4, 4))
    with use_backend("numpy"):
        blas.matmul(a, a)
    with use_backend("numba"):
        blas.matmul(a, a)
    assert seen == ["threaded"]


@needs_control
def test_owned_cores_holds_blas_to_one_thread_and_restores():
    c = blas.control()
    before = c.get_threads()
    with blas.owned_cores():
        assert c.get_threads() == 1
        with blas.owned_cores():  # re-entrant
            assert c.get_threads() == 1
        assert c.get_threads() == 1
    assert c.get_threads() == before


@needs_control
def test_owned_cores_restores_after_an_exception():
    c = blas.control()
    before = c.get_threads()
    with pytest.raises(RuntimeError):
        with blas.owned_cores():
            raise RuntimeError("boom")
    assert c.get_threads() == before
    assert blas._depth == 0


def test_blas_info_fields():
    info = blas.blas_info()
    assert set(info) == {"library", "controlled", "blas_threads"}
    assert info["controlled"] == (blas.control() is not None)


def _run(code, **env):
    full = dict(os.environ, **env)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_native_blas_threads_opt_out():
    out = _run("from minidistil.kernels import blas; print(blas.control() is None)", MINIDISTIL_BLAS_THREADS="native")
    assert out == "True"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the malloc tuning is glibc-only")
def test_malloc_tuning_applies_and_can_be_turned_off():
    code = "import minidistil.kernels; from minidistil.kernels import malloc; print(malloc.malloc_tuned())"
    import platform
    if platform.libc_ver()[0] == "glibc":
        assert _run(code, MINIDISTIL_MALLOC="") == "True"
    assert _run(code, MINIDISTIL_MALLOC="system") == "False"
    assert malloc.tune_malloc() == malloc.malloc_tuned()  # idempotent in this process


def test_warns_when_numbas_pool_was_started_first():
    # the pool started with OpenMP's default (spinning) wait policy: minidistil can only say so
    code = ("import warnings, numba; numba.set_num_threads(1)\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import minidistil.kernels\n"
            "print(any('busy-wait' in str(x.message) for x in w), numba.threading_layer())")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    warned, layer = p.stdout.split()
    assert warned == str(layer == "omp")  # only OpenMP workers spin
    # no warning when minidistil comes first, nor when the user chose a wait policy
    code2 = "import warnings; warnings.simplefilter('error'); import minidistil.kernels, numba; numba.set_num_threads(1)"
    code3 = "import warnings, numba; numba.set_num_threads(1); warnings.simplefilter('error'); import minidistil.kernels"
    for c, e in ((code2, env), (code3, dict(env, OMP_WAIT_POLICY="ACTIVE"))):
        q = subprocess.run([sys.executable, "-c", c], capture_output=True, text=True, env=e, timeout=120)
        assert q.returncode == 0, q.stderr
