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

from dataclasses import asdict

from minidistil import bench
from minidistil.bench import fast_parity as FP, measure as M, report as REP, run as R, steps as S
from minidistil.bench.shapes import PRESETS, preset

PARITY_MARK = "| teacher | 44.72% | 44.72% | identical |"
KERNELS = {"softmax_t", "layernorm", "gelu", "attention", "embedding_backward"}
TIMING = {"median_s", "min_s", "times_s", "cpu_over_wall"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    out, doc = d / "bench.json", d / "performance.md"
    # a section that another script measured (fast_parity.py): the run must keep it
    kept = "".join(f"{REP.kept_begin(n)}\n## {n} by hand\n{n} text\n{REP.kept_end(n)}\n" for n in REP.KEPT)
    full_begin, full_end = FP.MARKERS[True]
    doc.write_text(f"# old\n\n{FP.BEGIN}\n{PARITY_MARK}\n{FP.END}\n\n{full_begin}\nfull {PARITY_MARK}\n{full_end}\n\n"
                   f"## Results\nstale\n{kept}")
    rc = bench.main(["--quick", "--repeats", "1", "--warmup", "1", "--skip", "torch,coexist", "--profile", "5",
                     "--json", str(out), "--write-doc", str(doc)])
    assert rc == 0
    return json.loads(out.read_text()), doc.read_text()


def _positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_json_has_every_top_level_field(quick_run):
    r, _ = quick_run
    assert set(r) == set(R.RESULT_KEYS)
    assert r["schema"] == R.SCHEMA
    assert r["shapes"] == asdict(PRESETS["quick"])
    c = r["conditions"]
    assert c["quick"] is True and c["threads"] == 2 and c["shapes_name"] == "quick"
    assert c["cpu"] == M.cpu_model() and c["cpu"] and c["fast"]["enabled"] is True
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
    assert r["conditions"]["attention_gemm"]


def test_two_core_probe_measures_something():
    p = M.two_core_probe(rounds=50)
    if numba.config.DISABLE_JIT:
        assert p is None
    else:  # one thread's time over two threads': finite and positive, and at most "two full cores"
        # with room for noise. No lower bound: on a shared VM a busy or halted second vCPU can make
        # two threads several times slower than one (0.12 in one CI run), which is what it reports.
        assert math.isfinite(p) and 0 < p < 3.0


def test_steps_flops_and_matmul(quick_run):
    r, _ = quick_run
    s = PRESETS["quick"]
    for name, phases in (("teacher_mlm_step", {"forward", "backward", "optimizer", "other"}),
                         ("distill_step", {"teacher_forward", "student_forward", "student_backward",
                                           "optimizer", "other"})):
        st = r["steps"][name]
        assert TIMING <= set(st)
        assert set(st["phases_s"]) == phases
        assert st["tokens_per_s"] == pytest.approx(s.tokens / st["median_s"])
        assert math.isfinite(st["loss"])
    f = r["flops"]
    for key in ("teacher_gflops", "distill_gflops", "peak_gflops", "teacher_fraction_of_peak",
                "distill_fraction_of_peak", "distill_fraction_of_best_peak"):
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
    assert targets == set(R.TARGETS)
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
    assert M.cpu_model() in doc  # the machine it ran on
    assert "/work" not in doc and "../" not in doc and "shared/" not in doc


def test_flop_model_by_hand():
    s = PRESETS["demo"]  # the demo shapes: N = 4096, C = 128, F = 512, V = 4096
    assert S.layer_flops(s) == 8 * 4096 * 128 ** 2 + 4 * 4096 * 128 * 512 + 4 * 32 * 128 ** 2 * 128
    f = S.step_flops(s, P_teacher_step=600, P_distill=4096)
    head_all = 2 * 4096 * 128 * 128 + 2 * 4096 * 128 * 4096
    assert f["distill_step"] == (6 * f["layer_forward"] + head_all) + 3 * (3 * f["layer_forward"] + head_all)
    head_600 = 2 * 600 * 128 * 128 + 2 * 600 * 128 * 4096
    assert f["teacher_mlm_step"] == 3 * (6 * f["layer_forward"] + head_600)


def test_bad_options_and_shapes(capsys):
    for argv, what in ((["--skip", "nonsense"], "--skip: unknown parts"), (["--repeats", "0"], "--repeats"),
                       (["--shapes", "huge"], "--shapes: unknown shapes 'huge'"), (["--threads", "x"], "--threads")):
        assert bench.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("minidistil bench: error:") and what in err and len(err.splitlines()) == 1
    with pytest.raises(ValueError, match="unknown shapes"):
        preset("huge")
    assert PRESETS["wide"].hidden > PRESETS["demo"].hidden and 2 * PRESETS["wide"].tokens == PRESETS["demo"].tokens
    with pytest.raises(ValueError, match="hidden"):
        bench.BenchShapes(hidden=10, heads=4)
    with pytest.raises(ValueError, match="batch"):
        bench.BenchShapes(batch=0)


def test_module_entry_point_help():
    p = subprocess.run([sys.executable, "-m", "minidistil.bench", "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "--write-doc" in p.stdout and "--shapes" in p.stdout and "--no-fast" in p.stdout


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is optional")
def test_torch_reference_runs_in_a_child():
    payload = {"shapes": asdict(PRESETS["quick"]), "repeats": 1, "warmup": 1, "threads": 1,
               "recipe": S.peer_recipe()}
    res = R.run_child("torch", payload, {}, 1)
    for name in ("teacher_mlm_step", "distill_step"):
        assert _positive(res[name]["median_s"]) and len(res[name]["times_s"]) == 1
    assert res["threads"] == 1 and _positive(res["memory"]["ru_maxrss_mb"])


def test_the_peer_recipe_is_the_config():
    """The PyTorch peers get their loss settings and clipping from the config tree, not their own."""
    from minidistil.losses import DistillLossConfig
    from minidistil.masking import IGNORE_INDEX
    from minidistil.train.optim import BETAS, EPS
    from minidistil.train.runs import DistillStageConfig, StageConfig
    r, loss = S.peer_recipe(), DistillLossConfig()
    assert {k: r[k] for k in loss.to_dict()} == loss.to_dict() == DistillStageConfig().loss.to_dict()
    assert (r["teacher_clip_norm"], r["distill_clip_norm"]) == (StageConfig().clip_norm, DistillStageConfig().clip_norm)
    assert (r["teacher_weight_decay"], r["distill_weight_decay"]) == (StageConfig().weight_decay,
                                                                      DistillStageConfig().weight_decay)
    assert (r["lr"], tuple(r["betas"]), r["adam_eps"]) == (S.LR, BETAS, EPS)  # the optimizer the steps use
    assert r["ignore_index"] == IGNORE_INDEX and json.loads(json.dumps(r)) == r  # it travels as JSON


def test_measure_and_phases():
    calls = []
    t = M.measure(lambda: calls.append(1), repeats=3, warmup=2, min_warmup_s=0)
    assert len(calls) == 5 and len(t["times_s"]) == 3
    # by default the warm-up also lasts WARMUP_MIN_S: many more calls of a function this quick
    calls.clear()
    t0 = time.perf_counter()
    M.measure(lambda: calls.append(1), repeats=3, warmup=2)
    assert time.perf_counter() - t0 >= M.WARMUP_MIN_S and len(calls) > 5
    calls.clear()
    M.measure(lambda: calls.append(1), repeats=3, warmup=0)  # no warm-up asked: none made
    assert len(calls) == 3
    assert t["min_s"] <= t["median_s"] == pytest.approx(float(np.median(t["times_s"])))
    ph = M.Phases()
    f = ph.timed("a", lambda x: x + 1)
    assert f(1) == 2 and f(2) == 3 and len(ph.laps["a"]) == 2
    ph.add("b", 0.5)
    assert ph.medians()["b"] == 0.5 and set(ph.medians()) == {"a", "b"}


def test_steps_are_the_training_code():
    # the bench wraps train.pretrain / train.distill's own step functions: swapping them out changes
    # what the bench runs (no private copy of a step exists)
    import minidistil.train.distill as D
    import minidistil.train.pretrain as P
    assert S.make_mlm_step is P.make_mlm_step and S.train_distill_step is D.make_distill_step
    s = PRESETS["quick"]
    step = S.make_distill_step(s)
    assert math.isfinite(step()["loss"])
    t, st = S.build_models(s)
    from minidistil.models import student_layers
    assert st.teacher_layers == student_layers(s.teacher_layers, s.student_layers)


def test_no_import_cycle_in_the_bench_package():
    # every `from .x import` / `from . import x` inside minidistil/bench, as a graph: it must be acyclic
    import ast
    from pathlib import Path
    folder = Path(bench.__file__).parent
    graph = {}
    for path in folder.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                deps |= {node.module} if node.module else {a.name for a in node.names}
        graph[path.stem] = {d.split(".")[0] for d in deps} - {"__init__"}
    assert {"shapes", "measure", "steps", "report", "torch_peer", "run"} <= set(graph)
    done, stack = set(), []

    def visit(n):
        assert n not in stack, f"import cycle: {' -> '.join(stack + [n])}"
        if n in done:
            return
        stack.append(n)
        for d in graph.get(n, ()):
            visit(d)
        stack.pop()
        done.add(n)
    for n in graph:
        if n != "__init__":
            visit(n)
    assert all(len(p.read_text().splitlines()) <= 400 for p in folder.glob("*.py"))


def test_doc_keeps_the_sections_this_run_does_not_measure(quick_run):
    _, doc = quick_run
    assert doc.count(FP.BEGIN) == 1 and PARITY_MARK in doc and "stale" not in doc
    assert doc.index(FP.END) < doc.index("\n## Results")
    full_begin, full_end = FP.MARKERS[True]  # the whole demo's parity, likewise
    assert doc.count(full_begin) == 1 and f"full {PARITY_MARK}" in doc and doc.index(full_end) < doc.index("\n## Results")
    for n in REP.KEPT:  # the hand-kept sections (one-off A/B runs, the levers), as they were
        assert doc.count(REP.kept_begin(n)) == 1 and f"## {n} by hand\n{n} text\n" in doc
    assert doc.index(REP.kept_end(REP.KEPT[-1])) < doc.index("## FLOP model")


def test_matmul_peak_gives_blas_its_own_threads(monkeypatch):
    """With the fast layer on, BLAS is held to one thread between products; the peak that every
    fraction divides by must be measured with BLAS's own threads (a one-thread peak halved the
    denominator on 2 cores and showed the step at 88% of a peak it was at 50% of)."""
    from minidistil.fast import threads
    seen = []

    def with_threads(fn):
        seen.append(True)
        return fn()
    monkeypatch.setattr(threads, "_with_blas_threads", with_threads)
    out = M.matmul_peak(True, 1)
    assert seen == [True] and out["peak_gflops"] > 0


def test_pool_split_table_times_both_routes():
    from minidistil.bench import pool_split
    rows = pool_split.measure_shapes(((64, 32, 48),))
    assert [r["shape"] for r in rows] == [(64, 32, 48)] and rows[0]["macs"] == 64 * 32 * 48
    assert rows[0]["plain_us"] > 0 and rows[0]["pool_us"] > 0
    assert abs(rows[0]["ratio"] - rows[0]["pool_us"] / rows[0]["plain_us"]) < 1e-12
    md = pool_split.markdown(rows)
    assert md[2].startswith("| M x K x N |") and "| 64 x 32 x 48 | 0.1M |" in md[4]


def test_the_cpu_is_named_with_its_family_and_model():
    # a virtual machine reports "AMD EPYC" for every generation: family and model tell them apart
    two = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
           "model name\t: AMD EPYC\nflags\t\t: fpu avx2\n\nprocessor\t: 1\ncpu family\t: 99\n"
           "model\t\t: 1\nmodel name\t: other\n")
    assert M.cpuinfo_name(two) == "AMD EPYC (family 25, model 17)"
    assert M.cpuinfo_name("processor\t: 0\nmodel name\t: Some CPU\n") == "Some CPU"
    assert M.cpuinfo_name("processor\t: 0\nCPU implementer\t: 0x41\n") is None  # then the fallbacks


def test_a_target_figure_never_prints_as_its_bound_unless_it_is_it():
    from minidistil.bench.format import figure
    assert figure(2.998, 3) == "2.998" and figure(3.0004, 3) == "3.0004"  # not "3": met or not?
    assert figure(3.0, 3) == "3" and figure(4.712, 3) == "4.71" and figure(0.5931, 0.4) == "0.593"
    assert figure(None, 3) == "-"
