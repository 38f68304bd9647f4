"""The fast layer's route for small inputs (fast/small.py): the forward kernels on one thread and
their products on BLAS's own threads, both with the bits of the routes they replace."""
import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

from minidistil import fast
from minidistil.fast import calibrate, small, threads as blas
from minidistil.kernels import attention, backend, gelu, layernorm
from minidistil.kernels.backend import use_backend
from minidistil.models import Bert, BertConfig

two_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="Numba has one thread here")
needs_blas = pytest.mark.skipif(not blas.blas_controller().lib_controllers, reason="threadpoolctl finds no BLAS")


def test_rows_count_every_axis_but_the_last():
    assert small.rows_of(np.ones((2, 3, 5))) == 6
    assert small.rows_of(np.ones(7)) == 1
    assert small.attention_rows(np.ones((2, 4, 9, 8))) == 18  # (B, NH, T, HS): B * T, not the heads


@two_threads
def test_small_inputs_run_on_one_thread_and_large_ones_on_all(monkeypatch):
    monkeypatch.setattr(small, "SERIAL_ROWS", 16)
    route = small.serial_when_small(lambda x: numba.get_num_threads())
    backend.set_num_threads(2)
    try:
        assert route(np.ones((15, 4))) == 1
        assert route(np.ones((16, 4))) == 2
        assert numba.get_num_threads() == 2  # given back after the small call
    finally:
        backend.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def test_the_thread_count_comes_back_when_the_kernel_raises():
    def boom(x):
        raise ValueError("from the kernel")
    n = numba.get_num_threads()
    with pytest.raises(ValueError, match="from the kernel"):
        small.serial_when_small(boom)(np.ones((2, 2)))
    assert numba.get_num_threads() == n


@two_threads
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_thread_gives_the_threaded_kernels_bits(dtype):
    # what lets the route be on without a measurement per shape: each row (each head) is the same code
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 100, 48)).astype(dtype)  # (B, T, C)
    g, b = (1 + rng.standard_normal(48)).astype(dtype), rng.standard_normal(48).astype(dtype)
    q, k, v = (rng.standard_normal((1, 4, 100, 12)).astype(dtype) for _ in range(3))  # (B, NH, T, HS)
    mask = np.ones((1, 100), dtype=np.int64)
    mask[0, 90:] = 0
    backend.set_num_threads(2)
    try:
        for fn, args in [(layernorm.layernorm_forward_numba, (x, g, b)), (gelu.gelu_forward_numba, (x,)),
                         (attention.attention_forward_numba, (q, k, v, mask))]:
            rows = small.attention_rows if fn is attention.attention_forward_numba else small.rows_of
            threaded, _ = fn(*args)
            serial, _ = small.serial_when_small(fn, rows)(*args)
            assert calibrate.same_bits(serial, threaded), fn.__name__
    finally:
        backend.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def test_the_kernels_take_their_fast_route_only_under_numba(monkeypatch):
    seen = []
    monkeypatch.setattr(backend, "_FAST_ROUTES", {})
    backend.set_fast_routes({"layernorm_forward": lambda *a: seen.append("ln") or layernorm.layernorm_forward_numba(*a),
                             "gelu_forward": lambda *a: seen.append("gelu") or gelu.gelu_forward_numba(*a)})
    x = np.ones((2, 8))
    with use_backend("numpy"):
        layernorm.layernorm_forward(x, np.ones(8), np.zeros(8))
        gelu.gelu_forward(x)
    assert seen == []
    with use_backend("numba"):
        layernorm.layernorm_forward(x, np.ones(8), np.zeros(8))
        gelu.gelu_forward(x)
    assert seen == ["ln", "gelu"]


def test_enable_wraps_the_forward_kernels_and_the_attention_route_it_has():
    routes, on = {"attention_forward": lambda q, k, v, mask: "tiles"}, {}
    fast._small_input_routes(routes, on)
    assert set(routes) == {"attention_forward", "layernorm_forward", "gelu_forward"}
    assert routes["attention_forward"](np.ones((1, 2, 3, 4)), None, None, None) == "tiles"
    assert routes["layernorm_forward"].__wrapped__ is layernorm.layernorm_forward_numba
    assert f"fewer than {small.SERIAL_ROWS} positions" in on["small_inputs"] and "BLAS" not in on["small_inputs"]
    routes, on = {"matmul": None}, {}
    fast._small_input_routes(routes, on)
    assert routes["attention_forward"].__wrapped__ is attention.attention_forward_numba
    assert "BLAS's own threads" in on["small_inputs"]


def test_a_shape_whose_blas_threads_change_the_bits_stays_on_one_plain_call(monkeypatch):
    monkeypatch.setattr(calibrate, "_choices", {})
    monkeypatch.setattr(small, "_same_bits", {})
    monkeypatch.setattr(blas, "blas_loose", lambda fn: fn() + 1e-3)  # as if BLAS's threads summed otherwise
    a, w = np.ones((8, 4)), np.ones((4, 3))
    for _ in range(2):
        np.testing.assert_array_equal(small.matmul_small(a, w, None, lambda: a @ w), a @ w)
    assert list(small._same_bits.values()) == [False]
    assert [d["route"] for d in calibrate.decisions().values()] == ["plain"]


def test_matmul_sends_only_small_inputs_to_the_small_route(monkeypatch):
    seen = []
    monkeypatch.setattr(small, "matmul_small", lambda a, b, bias, plain, pool=None: seen.append(a.shape) or plain())
    monkeypatch.setattr(backend, "num_threads", lambda: 2)
    w = np.ones((16, 16), np.float32)
    for rows in (1, small.SERIAL_ROWS - 1, small.SERIAL_ROWS):
        np.testing.assert_array_equal(blas.matmul_calibrated(np.ones((rows, 16), np.float32), w),
                                      np.full((rows, 16), 16, np.float32))
    assert seen == [(1, 16), (small.SERIAL_ROWS - 1, 16)]
    monkeypatch.setattr(backend, "num_threads", lambda: 1)  # the user asked for one thread: no BLAS threads
    blas.matmul_calibrated(np.ones((3, 16), np.float32), w)
    assert len(seen) == 2


_PROBE = """
import json
import numpy as np
from threadpoolctl import threadpool_info
import minidistil.fast as fast
from minidistil.fast import calibrate, small, threads
from minidistil.kernels.backend import set_num_threads
def blas():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
fast.enable()
set_num_threads(2)
res = {"held": blas()}
threads.blas_loose(lambda: None)
res["loose"] = blas()
threads.blas_loose(lambda: None)
res["still_loose"] = blas()
a, w = np.ones((2048, 256), np.float32), np.ones((256, 256), np.float32)
threads.matmul_calibrated(a, w)  # a large product takes BLAS back to one thread
res["after_large"] = blas()
threads.blas_loose(lambda: None)
threads.matmul_pair_calibrated(a, w, a.T, a)  # so does a backward's pair
res["after_pair"] = blas()
threads.blas_loose(lambda: None)
fast.disable()
res["restored"] = blas()
print(json.dumps(res))
"""


@needs_blas
def test_blas_threads_stay_loose_for_small_products_until_a_large_one():
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2", NUMBA_NUM_THREADS="2")
    p = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert set(res["held"]) == {1}
    assert set(res["loose"]) == {2} and set(res["still_loose"]) == {2}
    assert set(res["after_large"]) == {1} and set(res["after_pair"]) == {1}
    assert set(res["restored"]) == {2}


def _tiny_bert():
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=24)
    return Bert(cfg, seed=0, dtype=np.float64)


@two_threads
def test_a_batch_one_forward_and_backward_give_the_same_bits_with_the_route_on_and_off(monkeypatch):
    ids = np.random.default_rng(1).integers(5, 50, size=(1, 24))  # (1, T): a batch of one
    mask = np.ones_like(ids)
    mlm = np.zeros(ids.shape, dtype=bool)
    mlm[0, [3, 7, 11]] = True

    def run():
        m = _tiny_bert()
        out = m.forward(ids, mask, mlm_positions=mlm)
        dlogits = np.random.default_rng(2).standard_normal(out.logits.shape)
        return out.logits, m.backward(dlogits, out.cache)

    fast.enable()
    backend.set_num_threads(2)
    try:
        with use_backend("numba"):
            on_logits, on_grads = run()
            monkeypatch.setattr(small, "SERIAL_ROWS", 0)  # every input "large": the route steps aside
            off_logits, off_grads = run()
    finally:
        fast.disable()
        backend.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert calibrate.same_bits(on_logits, off_logits)
    assert on_grads.keys() == off_grads.keys()
    assert all(calibrate.same_bits(on_grads[k], off_grads[k]) for k in on_grads)


@pytest.mark.parametrize("args, named", [(["--batches", "1,x"], "--batches"), (["--batches", "0"], "--batches"),
                                         (["--shapes", "nosuch"], "--shapes")])
def test_the_small_rows_bench_names_a_bad_argument(args, named, capsys):
    from minidistil.bench import small_rows
    with pytest.raises(SystemExit) as e:
        small_rows.main(args)
    assert e.value.code == 2 and named in capsys.readouterr().err
