"""``minidistil bench`` runs at tiny shapes and writes every field; no timing is asserted.

One quick run (module-scoped: it compiles every kernel once in a fresh process, the slowest part)
feeds most tests. PyTorch is optional: its test is skipped when torch is not installed.
"""
import importlib.util
import json
import math
import subprocess
import sys
import time

import numba
import numpy as np
import pytest

from minidistil import bench

KERNELS = {"softmax_T", "layernorm", "gelu", "attention"}  # embedding_backward only if it exists
TIMING = {"median_s", "min_s", "times_s", "cpu_over_wall"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    out, doc = d / "bench.json", d / "performance.md"
    rc = bench.main(["--quick", "--repeats", "1", "--warmup", "1", "--skip", "torch", "--profile", "5",
                     "--json", str(out), "--write-doc", str(doc)])
    assert rc == 0
    return json.loads(out.read_text()), doc.read_text()


def _positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_json_has_every_top_level_field(quick_run):
    r, _ = quick_run
    assert set(r) == set(bench.RESULT_KEYS)
    assert r["schema"] == bench.SCHEMA
    assert r["shapes"] == bench.asdict(bench.BenchShapes.quick())
    assert r["conditions"]["quick"] is True and r["conditions"]["threads"] == 2
    # torch was skipped on purpose, so it and the ratios are null with a reason
    assert r["torch"] is None and "torch" in r["skipped"]
    assert r["ratios"] is None and "ratios" in r["skipped"]


def test_kernels_compare_both_backends(quick_run):
    r, _ = quick_run
    names = {k["kernel"] for k in r["kernels"]}
    assert KERNELS <= names
    for k in r["kernels"]:
        assert TIMING <= set(k["numba"]) and TIMING <= set(k["numpy"])
        assert _positive(k["numba"]["median_s"]) and _positive(k["numpy"]["median_s"])
        assert k["speedup"] == pytest.approx(k["numpy"]["median_s"] / k["numba"]["median_s"])
        assert isinstance(k["has_numba"], bool)
        # one two-core probe per Numba turn: a positive ratio, or None with the JIT off
        assert len(k["two_core_probe"]) == len(k["numba"]["turn_medians_s"])
        assert all(p is None or _positive(p) for p in k["two_core_probe"])
    route = r["conditions"]["attention_gemm"]
    att = next(k for k in r["kernels"] if k["kernel"] == "attention")
    if route.startswith("avx512"):  # the cblas route timed too, in a child with MINIDISTIL_GEMM=cblas
        cb = att["cblas_route"]
        assert cb["route"].startswith("cblas (") and "MINIDISTIL_GEMM=cblas" in cb["route"]
        assert _positive(cb["numba"]["median_s"]) and _positive(cb["numpy"]["median_s"])
    else:
        assert route.startswith(("cblas (", "pool (")) and "cblas_route" not in att


def test_two_core_probe_measures_something():
    p = bench.two_core_probe(rounds=50)
    if numba.config.DISABLE_JIT:
        assert p is None
    else:  # one thread's time over two threads': between "no help" and "two full cores", roughly
        assert 0.3 < p < 3.0


def test_steps_flops_and_matmul(quick_run):
    r, _ = quick_run
    s = bench.BenchShapes.quick()
    for name, phases in (("teacher_mlm_step", {"mask", "forward", "loss", "backward", "optimizer"}),
                         ("distill_step", {"mask", "teacher_forward", "student_forward", "loss",
                                           "student_backward", "optimizer"})):
        st = r["steps"][name]
        assert TIMING <= set(st)
        assert set(st["phases_s"]) == phases
        assert st["tokens_per_s"] == pytest.approx(s.tokens / st["median_s"])
        assert math.isfinite(st["loss"])
    # every real token gets logits in distillation; about 15% of them in the teacher step
    assert r["steps"]["distill_step"]["mean_positions"] == s.tokens
    assert 0 < r["steps"]["teacher_mlm_step"]["mean_positions"] < s.tokens
    f = r["flops"]
    for key in ("teacher_gflops", "distill_gflops", "peak_gflops", "teacher_fraction_of_peak",
                "distill_fraction_of_peak", "distill_matmul_floor_s", "distill_fraction_of_best_peak"):
        assert _positive(f[key]), key
    assert _positive(r["matmul"]["peak_gflops"]) and r["matmul"]["step_shapes"]


def test_subprocess_fields(quick_run):
    r, _ = quick_run
    cold, warm = r["subprocess"]["cold"], r["subprocess"]["warm_first_step"]
    assert KERNELS <= set(cold["kernels_compile_s"])
    for key in ("import_s", "kernels_total_s", "tiny_steps_s", "total_s", "process_wall_s"):
        assert isinstance(cold[key], float), key
    assert cold["total_s"] >= cold["import_s"]
    assert warm["import_to_first_step_s"] >= warm["build_s"] > 0
    assert _positive(warm["memory"]["ru_maxrss_mb"])
    assert warm["memory"].get("VmHWM_mb", warm["memory"]["ru_maxrss_mb"]) >= \
        warm["rss_before_step"].get("VmRSS_mb", 0)


def test_single_thread_steps(quick_run):
    r, _ = quick_run
    one = r["single_thread"]
    for name in ("teacher_mlm_step", "distill_step"):
        assert _positive(one["minidistil"][name]["median_s"])
        assert set(one["minidistil"][name]["phases_s"]) == set(r["steps"][name]["phases_s"])
    assert one["torch"] is None  # torch skipped
    assert _positive(one["minidistil"]["matmul_peak_gflops"]) and _positive(one["distill_fraction_of_peak"])


def test_numerics_profile_and_targets(quick_run):
    r, _ = quick_run
    n = r["numerics"]
    assert n["rel_diff"] < n["bound"] == 1e-4  # float32 + Numba agrees with float64 + NumPy
    assert 1 <= len(r["profile"]) <= 5 and {"function", "where", "tottime_s"} <= set(r["profile"][0])
    targets = {t["target"] for t in r["targets"]}
    assert targets == set(bench.TARGETS)
    for t in r["targets"]:
        measured = t["value"] is not None
        assert (t["met"] is None) == (not measured), t
        if t["target"].endswith("vs_torch"):
            assert not measured  # torch skipped
    assert sum(t["target"] == "kernel_speedup" for t in r["targets"]) == len(r["kernels"])


def test_doc_states_every_target(quick_run):
    r, doc = quick_run
    assert doc.startswith("# Performance")
    for t in r["targets"]:
        assert t["label"] in doc
    for section in ("## Targets", "## Conditions of this run", "## FLOP model", "## Method"):
        assert section in doc
    assert "quick shapes" in doc


def test_flop_model_by_hand():
    s = bench.BenchShapes()  # the demo shapes: N = 4096, C = 128, F = 512, V = 4096
    assert bench.layer_flops(s) == 8 * 4096 * 128 ** 2 + 4 * 4096 * 128 * 512 + 4 * 32 * 128 ** 2 * 128
    f = bench.step_flops(s, P_teacher_step=600, P_distill=4096)
    head_all = 2 * 4096 * 128 * 128 + 2 * 4096 * 128 * 4096
    assert f["distill_step"] == (6 * f["layer_forward"] + head_all) + 3 * (3 * f["layer_forward"] + head_all)
    head_600 = 2 * 600 * 128 * 128 + 2 * 600 * 128 * 4096
    assert f["teacher_mlm_step"] == 3 * (6 * f["layer_forward"] + head_600)


def test_bad_options_and_shapes():
    with pytest.raises(SystemExit):
        bench.main(["--skip", "nonsense"])
    with pytest.raises(SystemExit):
        bench.main(["--repeats", "0"])
    with pytest.raises(ValueError, match="hidden"):
        bench.BenchShapes(hidden=10, heads=4)
    with pytest.raises(ValueError, match="batch"):
        bench.BenchShapes(batch=0)


def test_module_entry_point_help():
    p = subprocess.run([sys.executable, "-m", "minidistil.bench", "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "--write-doc" in p.stdout and "--quick" in p.stdout


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is optional")
def test_torch_reference_runs_in_a_child():
    res = bench.bench_torch(bench.BenchShapes.quick(), repeats=1, warmup=1, threads=1)
    for name in ("teacher_mlm_step", "distill_step"):
        assert _positive(res[name]["median_s"]) and len(res[name]["times_s"]) == 1
    assert res["threads"] == 1 and _positive(res["memory"]["ru_maxrss_mb"])


def test_measure_and_phases():
    calls = []
    t = bench.measure(lambda: calls.append(1), repeats=3, warmup=2, min_warmup_s=0)
    assert len(calls) == 5 and len(t["times_s"]) == 3
    # by default the warm-up also lasts WARMUP_MIN_S: many more calls of a function this quick
    calls.clear()
    t0 = time.perf_counter()
    bench.measure(lambda: calls.append(1), repeats=3, warmup=2)
    assert time.perf_counter() - t0 >= bench.WARMUP_MIN_S and len(calls) > 5
    calls.clear()
    bench.measure(lambda: calls.append(1), repeats=3, warmup=0)  # no warm-up asked: none made
    assert len(calls) == 3
    assert t["min_s"] <= t["median_s"] == pytest.approx(float(np.median(t["times_s"])))
    ph = bench.Phases()
    ph.start()
    ph.lap("a")
    ph.lap("b")
    assert set(ph.medians()) == {"a", "b"}
