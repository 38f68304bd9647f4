"""The fast layer's matmul pool and BLAS ownership (fast/threads.py), its calibration
(fast/calibrate.py), enable/disable/info (fast/__init__.py) and the malloc tuning (fast/malloc.py);
and the plain matmul entry point every layer calls (kernels/matmul.py)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from minidistil import fast
from minidistil.fast import calibrate, malloc, threads as blas
from minidistil.kernels import backend, matmul as M
from minidistil.kernels.backend import use_backend

needs_blas = pytest.mark.skipif(not blas.blas_controller().lib_controllers, reason="threadpoolctl finds no BLAS")


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.fixture
def split_small(monkeypatch):
    """Cut products of any size, so that small test operands exercise the pool's pieces."""
    monkeypatch.setattr(blas, "MIN_SPLIT_MACS", 0)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("case", ["2d", "2d_transposed_a", "2d_transposed_b", "batched", "batched_transposed",
                                  "batched_times_2d", "2d_times_batched", "odd_sizes"])
def test_threaded_matmul_equals_numpy(case, dtype, tol, split_small):
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
def test_bias_is_added_to_every_row(shape_a, shape_b, split_small):
    rng = np.random.default_rng(2)
    a, b, bias = _rand(rng, shape_a, np.float64), _rand(rng, shape_b, np.float64), _rand(rng, (96,), np.float64)
    want = a @ b + bias
    for threads in (1, 2):
        np.testing.assert_allclose(blas.matmul_threaded(a, b, threads=threads, bias=bias), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(M.matmul_numpy(a, b, bias), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(M.matmul(a, b, bias), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_pair_equals_two_products(threads, split_small):
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
        M.matmul_pair(np.ones((2, 2)), np.ones((2, 2)), np.ones((2, 3)), np.ones((2, 2)))


def test_threaded_matmul_really_splits(monkeypatch):
    # the product must be cut into one piece per thread, each written into its own rows
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
        M.matmul(np.ones((2, 3)), np.ones((4, 5)))
    with pytest.raises(TypeError, match="NumPy arrays"):
        M.matmul([[1.0]], np.ones((1, 1)))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        M.matmul(np.ones(()), np.ones((1, 1)))


def test_matmul_takes_the_fast_route_only_with_numba_and_when_installed(monkeypatch):
    seen = []
    a = np.ones((4, 4))
    monkeypatch.setattr(backend, "_FAST_ROUTES", {})
    with use_backend("numba"):
        M.matmul(a, a)  # nothing installed: plain
    backend.set_fast_routes({"matmul": lambda a, b, bias=None: seen.append("fast") or a @ b})
    with use_backend("numpy"):
        M.matmul(a, a)  # the twins' backend never takes a fast route
    with use_backend("numba"):
        np.testing.assert_array_equal(M.matmul(a, a), a @ a)
    assert seen == ["fast"]


def test_without_timing_every_shape_takes_its_default_route(monkeypatch):
    monkeypatch.setattr(calibrate, "_choices", {})
    monkeypatch.setattr(calibrate, "_timing", {"on": False})
    calls = []
    assert calibrate.choose(("k0",), {"a": lambda: calls.append("a") or 1, "b": lambda: calls.append("b") or 2},
                            default="a") == 1
    assert calls == ["a"] and calibrate.route_for(("k0",)) == "a"   # nothing else ran, nothing timed


def test_calibration_keeps_the_default_unless_another_route_wins_every_turn(monkeypatch):
    monkeypatch.setattr(calibrate, "_choices", {})
    monkeypatch.setattr(calibrate, "_timing", {"on": True})
    slow_then_fast = iter([0.0, 1.0, 1.0, 1.0, 1.0] * 10)
    clock = {"t": 0.0}

    def timer():
        return clock["t"]
    monkeypatch.setattr(calibrate.time, "perf_counter", timer)

    def route(cost):
        def run():
            clock["t"] += cost
            return cost
        return run
    # "b" is 10x faster every turn: chosen, and its own result returned
    assert calibrate.choose(("k1",), {"a": route(1.0), "b": route(0.1)}, default="a") == 0.1
    assert calibrate.route_for(("k1",)) == "b"
    # "b" only 5% faster: inside the margin, the default stays
    assert calibrate.choose(("k2",), {"a": route(1.0), "b": route(0.95)}, default="a") == 1.0
    assert calibrate.route_for(("k2",)) == "a"
    # "b" faster in all turns but one: the default stays
    costs = iter([1.0, 0.1, 1.0, 0.1, 1.0, 5.0, 1.0, 0.1, 1.0, 0.1])

    def noisy():
        c = next(costs)
        clock["t"] += c
        return c
    assert calibrate.choose(("k3",), {"a": noisy, "b": noisy}, default="a") == 1.0
    del slow_then_fast
    # a decided key runs its route only, once
    calls = []
    calibrate.choose(("k1",), {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, default="a")
    assert calls == ["b"]
    assert set(calibrate.decisions()) == {str(("k1",)), str(("k2",)), str(("k3",))}


@pytest.fixture
def fake_clock(monkeypatch):
    """A clock that only the routes move: ``route(cost, value)`` advances it by ``cost``."""
    monkeypatch.setattr(calibrate, "_choices", {})
    clock = {"t": 0.0}
    monkeypatch.setattr(calibrate.time, "perf_counter", lambda: clock["t"])

    def route(cost, value, calls=None, name=None):
        def run():
            clock["t"] += cost
            if calls is not None:
                calls.append(name)
            return value
        return run
    return route


def test_exact_routes_are_timed_even_with_calibration_off(monkeypatch, fake_clock):
    monkeypatch.setattr(calibrate, "_timing", {"on": False})
    same = np.arange(6.0).reshape(2, 3)
    calls = []
    routes = {"pool": fake_clock(1.0, same.copy(), calls, "pool"),
              "plain": fake_clock(0.5, same.copy(), calls, "plain"),
              "blas": fake_clock(0.1, same.copy(), calls, "blas")}
    got = calibrate.choose(("e1",), routes, default="pool", exact=("plain",))
    np.testing.assert_array_equal(got, same)
    assert calibrate.route_for(("e1",)) == "plain"  # twice as fast in every turn
    assert "blas" not in calls  # not exact, calibration off: never run
    assert calls.count("plain") == calibrate.ROUNDS == calls.count("pool")


def test_an_exact_route_that_changes_the_bits_is_never_chosen(monkeypatch, fake_clock):
    monkeypatch.setattr(calibrate, "_timing", {"on": False})
    a = np.ones((3, 3), dtype=np.float32)
    b = a.copy()
    b[1, 2] = np.nextafter(np.float32(1), np.float32(2))  # one unit in the last place
    got = calibrate.choose(("e2",), {"pool": fake_clock(1.0, a), "plain": fake_clock(0.1, b)},
                           default="pool", exact=("plain",))
    assert got is a and calibrate.route_for(("e2",)) == "pool"
    assert calibrate.decisions()[str(("e2",))]["differs"] == ["plain"]


def test_a_shape_sharing_a_key_without_the_chosen_route_takes_the_default(monkeypatch, fake_clock):
    # rows round up to a power of two in the key: 1,100 rows chose "plain", and 2,048 rows of the
    # same key are above the one-call size, so their routes hold no "plain" (this once raised
    # KeyError in the middle of a distillation run)
    monkeypatch.setattr(calibrate, "_timing", {"on": False})
    v = np.zeros(2)
    calibrate.choose(("k",), {"pool": fake_clock(1.0, v), "plain": fake_clock(0.1, v)},
                     default="pool", exact=("plain",))
    assert calibrate.route_for(("k",)) == "plain"
    big = np.ones(2)
    assert calibrate.choose(("k",), {"pool": fake_clock(1.0, big)}, default="pool", exact=("plain",)) is big


def test_matmul_across_the_one_call_size_within_one_key(monkeypatch):
    monkeypatch.setattr(calibrate, "_choices", {})
    monkeypatch.setattr(calibrate, "_timing", {"on": False})
    monkeypatch.setattr(backend, "num_threads", lambda: 2)
    w = np.ones((128, 512), np.float32)
    rows = blas.ALWAYS_SPLIT_MACS // (128 * 512)  # the first row count above the one-call size
    calibrate._choices.clear()
    key = ("matmul", True) + calibrate.shape_key(np.ones((rows - 1, 128), np.float32), w)
    calibrate._choices[key] = {"route": "plain", "times_ms": {}}  # as if "plain" had won below it
    for r in (rows - 1, rows):
        a = np.ones((r, 128), np.float32)
        np.testing.assert_array_equal(blas.matmul_calibrated(a, w), np.full((r, 512), 128, np.float32))


def test_same_bits_compares_values_shapes_dtypes_and_tuples():
    x = np.array([1.0, np.nan])
    assert calibrate.same_bits(x, x.copy())
    assert not calibrate.same_bits(x, x.astype(np.float32))
    assert not calibrate.same_bits(x, x[:1])
    assert calibrate.same_bits((x, x), (x.copy(), x.copy()))
    assert not calibrate.same_bits((x, x), (x, x + 1))


@needs_blas
def test_the_pool_and_one_plain_call_give_the_same_bits():
    # what lets fast/threads.py time the two with calibration off: row pieces are the same BLAS work
    rng = np.random.default_rng(3)
    with use_backend("numba"):
        blas.hold_blas()
        try:
            for (m, k, n) in [(1024, 128, 128), (333, 256, 96), (4096, 128, 384)]:
                a, b = _rand(rng, (m, k), np.float32), _rand(rng, (k, n), np.float32)
                bias = _rand(rng, (n,), np.float32)
                assert calibrate.same_bits(blas.matmul_threaded(a, b, threads=2, bias=bias),
                                           M.matmul_numpy(a, b, bias))
        finally:
            blas.release_blas()


def test_which_products_are_timed(monkeypatch):
    monkeypatch.setattr(calibrate, "_choices", {})
    monkeypatch.setattr(calibrate, "_timing", {"on": False})
    monkeypatch.setattr(backend, "num_threads", lambda: 2)
    seen = {}
    real = calibrate.choose

    def spy(key, routes, default, exact=()):
        seen[key[0], sum(np.prod(s[0]) for s in key[1:] if isinstance(s, tuple))] = sorted(routes)
        return real(key, routes, default, exact)
    monkeypatch.setattr(blas, "choose", spy)
    small, mid, big = np.ones((64, 64), np.float32), np.ones((1024, 128), np.float32), np.ones((4096, 256), np.float32)
    blas.matmul_calibrated(small, small)                     # 0.3M: one call, nothing to choose
    blas.matmul_calibrated(mid, np.ones((128, 128), np.float32))      # 16.8M: the pool against plain
    blas.matmul_calibrated(big, np.ones((256, 256), np.float32))      # 268M: the pool, untimed
    assert sorted(seen.values()) == [["plain", "pool"], ["pool"]]
    big_key = [k for k, v in calibrate.decisions().items() if "256)" in k]
    assert big_key and calibrate.decisions()[big_key[0]] == {"route": "pool", "times_ms": {}}


def _run(code, **env):
    full = dict(os.environ, **env)
    for k in [k for k, v in env.items() if v is None]:
        full.pop(k)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


_PROBE = """
import json, os
import numpy as np
from threadpoolctl import threadpool_info
env0, blas0 = dict(os.environ), [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
import minidistil.cli, minidistil.models, minidistil.train.distill, minidistil.train.pretrain, minidistil.losses
import minidistil.masking, minidistil.gradcheck, minidistil.fast, minidistil.bench
from minidistil.models import Bert, BertConfig
m = Bert(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=16))
out = m.forward(np.full((2, 16), 7), np.ones((2, 16), dtype=np.int64))
m.backward(np.ones_like(out.logits), out.cache)
blas1 = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
res = {"env_same": dict(os.environ) == env0, "blas_same": blas0 == blas1}
if os.environ.get("PROBE_ENABLE"):
    info = minidistil.fast.enable()
    res["held"] = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    res["policy"] = os.environ.get("OMP_WAIT_POLICY")
    res["on"] = sorted(info["on"])
    minidistil.fast.disable()
    res["restored"] = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == blas0
print(json.dumps(res))
"""


def test_importing_and_running_minidistil_changes_nothing_process_wide():
    import json
    res = json.loads(_run(_PROBE, OMP_WAIT_POLICY=None, OPENBLAS_NUM_THREADS="2").splitlines()[-1])
    assert res == {"env_same": True, "blas_same": True}


@needs_blas
def test_enable_holds_blas_and_disable_gives_it_back():
    import json
    res = json.loads(_run(_PROBE, OMP_WAIT_POLICY=None, OPENBLAS_NUM_THREADS="2", PROBE_ENABLE="1").splitlines()[-1])
    assert res["held"] and set(res["held"]) == {1}
    assert res["restored"] is True
    assert "threads" in res["on"]
    # Numba's pool had started (the probe ran a model first): the wait policy is left alone, and said so
    assert res["policy"] is None and "idle_threads_sleep" not in res["on"]


@needs_blas
def test_under_the_numpy_backend_enable_leaves_blas_its_threads():
    code = ("import minidistil.fast as f; from threadpoolctl import threadpool_info; i = f.enable(); "
            "print([t['num_threads'] for t in threadpool_info() if t['user_api'] == 'blas'], "
            "sorted(i['on']), 'numpy backend' in i['off']['threads'])")
    out = _run(code, MINIDISTIL_BACKEND="numpy", OPENBLAS_NUM_THREADS="2")
    assert "[1]" not in out and "'threads'" not in out.split("]")[1] and out.endswith("True"), out


def test_enable_sets_the_wait_policy_only_before_numbas_pool_starts_and_never_over_the_users():
    code = "import os, minidistil.fast as f; i = f.enable(); print(os.environ.get('OMP_WAIT_POLICY'), 'idle_threads_sleep' in i['on'])"
    assert _run(code, OMP_WAIT_POLICY=None) == "PASSIVE True"
    assert _run(code, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE False"


def test_info_explains_what_is_off():
    i = fast.info()
    assert set(i) == {"enabled", "on", "off", "blas", "decisions", "warnings"}
    assert all(isinstance(v, str) and v for v in i["off"].values())
    assert "fast layer" in fast.describe()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the malloc tuning is glibc-only")
def test_malloc_tuning_is_opt_in_and_can_be_turned_off():
    code = "import minidistil.models; from minidistil.fast import malloc; a = malloc.malloc_tuned(); " \
           "import minidistil.fast as f; f.enable(); print(a, malloc.malloc_tuned())"
    import platform
    if platform.libc_ver()[0] == "glibc":
        assert _run(code, MINIDISTIL_MALLOC="") == "False True"  # nothing at import; on with enable()
    assert _run(code, MINIDISTIL_MALLOC="system") == "False False"
