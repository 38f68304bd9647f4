"""One benchmark run: every part in order, the subprocess children, the targets, the command line.

The parts (``--skip`` takes their names): kernels, matmul, steps, numerics, profile, subprocess
(cold compile, warm start-up and memory, in fresh interpreters), torch (the PyTorch peer, when
torch is installed), coexist (the distillation step in processes with and without torch,
bench/coexist.py), single_thread.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .kernel_times import attention_route_text, bench_kernels, kernel_cases, step_matmul_shapes
from .measure import atomic_write, gflops, machine, matmul_peak, rss_mb, run_child
from .report import render_doc, summary_lines
from .shapes import PRESETS, BenchShapes, preset
from .steps import (bench_steps, distill_loss_agreement, make_distill_step, make_teacher_step, peer_recipe,
                    profile_distill_step, step_flops)

SCHEMA = 2
DEFAULT_JSON = "bench.json"
DEFAULT_DOC = Path(__file__).resolve().parents[2] / "docs" / "performance.md"
PARTS = ("kernels", "matmul", "steps", "numerics", "profile", "subprocess", "torch", "coexist", "single_thread")

# The speed targets; "<=" means smaller is better.
TARGETS = {
    "distill_vs_torch": ("<=", 0.4),
    "distill_matmul_fraction_of_peak": (">=", 0.5),
    "teacher_vs_torch": ("<=", 0.5),
    "kernel_speedup": (">=", 3.0),
    "cold_compile_s": ("<=", 30.0),
    "warm_import_to_first_step_s": ("<=", 3.0),
    "distill_peak_memory_mb": ("<=", 1500.0),
}

# Every top-level key of the JSON (the tests hold the output to this list).
RESULT_KEYS = ("schema", "conditions", "shapes", "kernels", "matmul", "steps", "flops", "numerics",
               "subprocess", "torch", "coexist", "ratios", "single_thread", "targets", "profile", "skipped")



def _timed_steps(maker, s: BenchShapes, repeats: int, warmup: int) -> dict:
    from .measure import measure
    step = maker(s)
    for _ in range(max(1, warmup)):
        step()
    return measure(step, repeats, 0)


def child(mode: str, t0: float, payload: dict, out_path: str) -> None:
    """Runs in a fresh interpreter (see ``_CHILD``); ``t0`` was taken before any import."""
    if mode == "coexist" and payload["torch"]:
        import torch  # noqa: F401  (before enable(), as a notebook that also uses PyTorch has it)
    from .. import fast
    if payload.get("fast", True):
        fast.enable()
    res: dict = {}
    if mode == "cold":  # compile every kernel, then the rest of both steps, from an empty cache
        from .. import kernels as K
        res["import_s"] = time.perf_counter() - t0
        first = {}
        with K.use_backend("numba"):
            for name, _, run, _ in kernel_cases(PRESETS["quick"]):
                a = time.perf_counter()
                run()  # compiles (float32) and runs
                b = time.perf_counter()
                run()  # runs only
                first[name] = (b - a) - (time.perf_counter() - b)
            res["kernels_compile_s"] = first
            res["kernels_total_s"] = float(sum(first.values()))
            a = time.perf_counter()
            make_teacher_step(PRESETS["quick"])()
            make_distill_step(PRESETS["quick"])()
            res["tiny_steps_s"] = time.perf_counter() - a
        res["total_s"] = time.perf_counter() - t0
    elif mode == "first_step":  # import -> models -> first distillation step, then a second one
        step = make_distill_step(BenchShapes(**payload["shapes"]))
        res["build_s"] = time.perf_counter() - t0
        res["rss_before_step"] = rss_mb()
        step()
        res["import_to_first_step_s"] = time.perf_counter() - t0
        a = time.perf_counter()
        step()
        res["second_step_s"] = time.perf_counter() - a
        res["memory"] = rss_mb()
    elif mode == "steps":  # both steps at this process's thread count (see bench_single_thread)
        s = BenchShapes(**payload["shapes"])
        steps = bench_steps(s, payload["repeats"], payload["warmup"])
        res = {k: {"median_s": v["median_s"], "min_s": v["min_s"], "cpu_over_wall": v["cpu_over_wall"],
                   "phases_s": v["phases_s"]} for k, v in steps.items()}
        res["matmul_peak_gflops"] = matmul_peak(s.hidden < 64, payload["repeats"])["peak_gflops"]
    elif mode == "coexist":  # the distillation step, with or without torch imported first (above)
        import numba
        res = _timed_steps(make_distill_step, BenchShapes(**payload["shapes"]), payload["repeats"], payload["warmup"])
        res["threading_layer"] = numba.threading_layer()
        res["idle_threads_sleep"] = fast.info()["on"].get("idle_threads_sleep")
    elif mode == "torch":
        from .torch_peer import time_steps
        res = time_steps(BenchShapes(**payload["shapes"]), repeats=payload["repeats"],
                         warmup=payload["warmup"], threads=payload["threads"], recipe=payload["recipe"])
        res["memory"] = rss_mb()
    else:
        raise ValueError(f"unknown child mode {mode!r}")
    atomic_write(out_path, json.dumps(res))


def evaluate_targets(r: dict) -> list:
    """One row per target: the figure, whether it is met (None when not measured)."""
    rows = []

    def add(key, label, value, name=None):
        op, bound = TARGETS[key]
        met = None if value is None else (value <= bound if op == "<=" else value >= bound)
        rows.append({"target": key, "name": name or key, "label": label, "op": op, "bound": bound,
                     "value": value, "met": met})

    ratios = r.get("ratios") or {}
    add("distill_vs_torch", "distillation step / PyTorch eager", ratios.get("distill_vs_torch"))
    add("distill_matmul_fraction_of_peak", "distillation step matmul GFLOP/s / NumPy peak",
        (r.get("flops") or {}).get("distill_fraction_of_peak"))
    add("teacher_vs_torch", "teacher MLM step / PyTorch eager", ratios.get("teacher_vs_torch"))
    for k in r.get("kernels") or []:
        add("kernel_speedup", f"{k['kernel']} fwd+bwd NumPy / Numba", k["speedup"], name=f"speedup {k['kernel']}")
    sub = r.get("subprocess") or {}
    add("cold_compile_s", "cold compile of all kernels and both steps (s)", (sub.get("cold") or {}).get("total_s"))
    warm = sub.get("warm_first_step") or {}
    add("warm_import_to_first_step_s", "warm import -> end of first distillation step (s)",
        warm.get("import_to_first_step_s"))
    mem = warm.get("memory") or {}
    add("distill_peak_memory_mb", "peak RSS of the distillation step (MB)", mem.get("VmHWM_mb", mem.get("ru_maxrss_mb")))
    return rows


def _flops(s: BenchShapes, r: dict) -> dict:
    """The steps' matmul GFLOP/s against the peak. P of the teacher step is its expected masked
    positions (15% of the non-special tokens); the distillation step has logits at every token."""
    st, m = r["steps"], r["matmul"] or {}
    f = step_flops(s, 0.15 * s.batch * (s.seq - 2), s.tokens)
    for key, name in (("teacher", "teacher_mlm_step"), ("distill", "distill_step")):
        f[key + "_gflops"] = gflops(f[name], st[name]["median_s"])
    peak, best = m.get("peak_gflops"), m.get("best_gflops")
    f["peak_gflops"] = peak
    f["teacher_fraction_of_peak"] = f["teacher_gflops"] / peak if peak else None
    f["distill_fraction_of_peak"] = f["distill_gflops"] / peak if peak else None
    f["distill_fraction_of_best_peak"] = (gflops(f["distill_step"], st["distill_step"]["min_s"]) / best
                                          if best else None)
    return f


def run(s: BenchShapes, repeats: int = 5, warmup: int = 2, threads: int = 2, quick: bool = False,
        skip: tuple = (), profile_top: int = 25, log=print, shapes_name: str = "demo",
        use_fast: bool = True) -> dict:
    """Everything, as the JSON-ready dict (every key of :data:`RESULT_KEYS` always present: a part
    that was skipped is ``None`` with the reason in ``"skipped"``)."""
    from .. import fast
    from ..kernels.backend import set_num_threads
    if use_fast:
        fast.enable()
    set_num_threads(threads)
    r: dict = {k: None for k in RESULT_KEYS}
    cond = machine()
    cond.update(threads=threads, quick=quick, repeats=repeats, warmup=warmup, shapes_name=shapes_name,
                dtype="float32", fast=fast.info(), attention_gemm=attention_route_text(),
                numba_disable_jit=os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"))
    r.update(schema=SCHEMA, skipped={}, shapes=asdict(s), conditions=cond)
    child_env = {"fast": use_fast}
    has_torch = importlib.util.find_spec("torch") is not None

    def part(key, fn, why_not=None):
        if key in skip or why_not:
            r["skipped"][key] = why_not or "skipped by --skip"
            return
        log(f"[bench] {key} ...")
        t0 = time.perf_counter()
        r[key] = fn()
        log(f"[bench] {key} done in {time.perf_counter() - t0:.1f} s")

    payload = {"shapes": asdict(s), "repeats": repeats, "warmup": max(1, warmup), **child_env}
    part("kernels", lambda: bench_kernels(s, repeats, warmup))
    part("matmul", lambda: {**matmul_peak(quick, repeats), "step_shapes": step_matmul_shapes(s, repeats)})
    part("steps", lambda: bench_steps(s, repeats, warmup))
    if r["matmul"] is not None and r["steps"] is not None:  # the peak again, after the steps
        again, m = matmul_peak(quick, repeats), r["matmul"]
        m["peak_gflops_first"], m["peak_gflops_again"] = m["peak_gflops"], again["peak_gflops"]
        m["peak_gflops"] = max(m["peak_gflops"], again["peak_gflops"])
        m["best_gflops"] = max(m["best_gflops"], again["best_gflops"])
    if r["steps"] is not None:
        r["flops"] = _flops(s, r)
    else:
        r["skipped"]["flops"] = "needs steps"
    part("numerics", lambda: distill_loss_agreement(s))
    part("profile", lambda: profile_distill_step(s, profile_top), None if profile_top > 0 else "--profile 0")

    def subprocesses():
        with tempfile.TemporaryDirectory(prefix="minidistil-numba-cache-") as cache:
            env = {"NUMBA_CACHE_DIR": cache}
            return {"cold": run_child("cold", {"shapes": asdict(s), **child_env}, env, threads),
                    "warm_first_step": run_child("first_step", {"shapes": asdict(s), **child_env}, env, threads)}
    part("subprocess", subprocesses)
    no_torch = None if has_torch else "torch is not installed (optional: pip install torch==2.13.0)"
    torch_payload = {**payload, "recipe": peer_recipe()}  # the peer's loss and clipping: our config's
    part("torch", lambda: run_child("torch", {**torch_payload, "threads": threads}, {}, threads), no_torch)
    from .coexist import measure_coexist  # only when the part runs: it starts three child processes
    part("coexist", lambda: measure_coexist(s, repeats, warmup, threads, log=log),
         no_torch or (None if use_fast else "--no-fast (the fix lives in minidistil.fast)"))
    if r["torch"] is not None and r["steps"] is not None:
        # a shared machine drifts over minutes: time our steps again after PyTorch's, so that the
        # ratios compare rounds that bracket it (median of both rounds against PyTorch's median)
        log("[bench] steps again, after PyTorch ...")
        again = bench_steps(s, repeats, warmup)
        for name, st in r["steps"].items():
            st["times_s_after_torch"] = again[name]["times_s"]
            both = st["times_s"] + again[name]["times_s"]
            st["median_s_both_rounds"], st["min_s_both_rounds"] = float(np.median(both)), float(min(both))

    def single_thread():
        out = {"minidistil": run_child("steps", payload, {}, 1),
               "torch": run_child("torch", {**torch_payload, "threads": 1}, {}, 1) if r["torch"] is not None else None}
        f = step_flops(s, 0.15 * s.batch * (s.seq - 2), s.tokens)
        m = out["minidistil"]
        out["distill_fraction_of_peak"] = f["distill_step"] / m["distill_step"]["median_s"] / 1e9 / m["matmul_peak_gflops"]
        return out
    part("single_thread", single_thread)
    if r["torch"] is not None and r["steps"] is not None:
        tt, st = r["torch"], r["steps"]
        r["ratios"] = {
            "teacher_vs_torch": st["teacher_mlm_step"]["median_s_both_rounds"] / tt["teacher_mlm_step"]["median_s"],
            "distill_vs_torch": st["distill_step"]["median_s_both_rounds"] / tt["distill_step"]["median_s"],
            "teacher_vs_torch_best": st["teacher_mlm_step"]["min_s_both_rounds"] / min(tt["teacher_mlm_step"]["times_s"]),
            "distill_vs_torch_best": st["distill_step"]["min_s_both_rounds"] / min(tt["distill_step"]["times_s"]),
        }
        one = r["single_thread"] or {}
        if one.get("torch"):
            for name, key in (("teacher_mlm_step", "teacher"), ("distill_step", "distill")):
                r["ratios"][f"{key}_vs_torch_1thread"] = one["minidistil"][name]["median_s"] / one["torch"][name]["median_s"]
    else:
        r["skipped"]["ratios"] = "needs steps and torch"
    r["targets"] = evaluate_targets(r)
    r["conditions"]["loadavg_end"] = list(os.getloadavg())
    r["conditions"]["fast"] = fast.info()  # with the calibration's decisions
    return r


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        sys.stderr.write(f"minidistil bench: error: {message}\n")
        raise SystemExit(2)


def main(argv=None) -> int:
    p = _Parser(prog="minidistil bench", description="How fast the kernels and the two training steps run.")
    p.add_argument("--shapes", default="demo", help=f"model sizes: {', '.join(PRESETS)} (default demo); a "
                   "comma list (demo,small,minilm,base) runs the roofline sweep (bench/sweep.py)")
    p.add_argument("--head-chunk", type=int, default=256, metavar="K",
                   help="sweep: also time the fused vocabulary head, K positions per chunk (0: off)")
    p.add_argument("--peak-n", type=int, default=2048, metavar="N", help="sweep: size of the matmul peak's products")
    p.add_argument("--quick", action="store_true", help="same as --shapes quick (seconds; for tests)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (default 5, quick 2)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 2, quick 1)")
    p.add_argument("--threads", type=int, default=2, help="Numba's threads and the fast layer's pool (default 2)")
    p.add_argument("--no-fast", action="store_true", help="measure the plain code (minidistil.fast off)")
    p.add_argument("--json", default=DEFAULT_JSON, metavar="PATH", help=f"results file (default {DEFAULT_JSON})")
    p.add_argument("--write-doc", nargs="?", const=str(DEFAULT_DOC), default=None, metavar="PATH",
                   help="regenerate docs/performance.md (or PATH) from this run")
    p.add_argument("--skip", default="", help="comma list of parts to skip: " + ",".join(PARTS) +
                   "; in the sweep: torch,compile,inference")
    p.add_argument("--profile", type=int, default=25, metavar="N",
                   help="cProfile the distillation step, keep the top N functions (0: off)")
    try:
        a = p.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    if "," in a.shapes and not a.quick:  # the roofline sweep over several widths
        from .shapes import preset_list
        from .sweep import SKIPS, main_sweep
        problem = None
        skip = tuple(x.strip() for x in a.skip.split(",") if x.strip())
        try:
            names = preset_list(a.shapes)
        except ValueError as e:
            problem = f"--shapes: {e}"
        if a.head_chunk < 0 or a.peak_n < 1 or (a.repeats is not None and a.repeats < 1) or a.threads < 1:
            problem = "--head-chunk must be >= 0; --peak-n, --repeats and --threads >= 1"
        if set(skip) - set(SKIPS):
            problem = f"--skip: unknown parts of the sweep {sorted(set(skip) - set(SKIPS))}; choose from {', '.join(SKIPS)}"
        if problem:
            sys.stderr.write(f"minidistil bench: error: {problem}\n")
            return 2
        return main_sweep(names, a.repeats or 3, 1 if a.warmup is None else a.warmup, a.threads, a.head_chunk,
                          a.peak_n, not a.no_fast, skip, a.json)
    name = "quick" if a.quick else a.shapes
    quick = name == "quick"
    repeats = a.repeats if a.repeats is not None else (2 if quick else 5)
    warmup = a.warmup if a.warmup is not None else (1 if quick else 2)
    skip = tuple(x.strip() for x in a.skip.split(",") if x.strip())
    problem = None
    if name not in PRESETS:
        problem = f"--shapes: unknown shapes {name!r}; choose from {', '.join(PRESETS)}"
    elif repeats < 1 or warmup < 0 or a.threads < 1:
        problem = "--repeats and --threads must be >= 1, --warmup >= 0"
    elif set(skip) - set(PARTS):
        problem = f"--skip: unknown parts {sorted(set(skip) - set(PARTS))}; choose from {', '.join(PARTS)}"
    if problem:
        sys.stderr.write(f"minidistil bench: error: {problem}\n")
        return 2
    r = run(preset(name), repeats, warmup, a.threads, quick, skip, a.profile,
            log=lambda m: print(m, file=sys.stderr), shapes_name=name, use_fast=not a.no_fast)
    print("\n".join(summary_lines(r)))
    atomic_write(a.json, json.dumps(r, indent=1, default=float) + "\n")
    print(f"\nresults written to {a.json}")
    if a.write_doc:
        text = render_doc(r)
        from .coexist import carried_section, splice
        from .fast_parity import MARKERS as FP_MARKERS
        from .report import KEPT, kept_begin, kept_end
        # measured by fast_parity.py, or written by hand: not by this run, so kept as they are
        for begin, end in list(FP_MARKERS.values()) + [(kept_begin(n), kept_end(n)) for n in KEPT]:
            kept = carried_section(a.write_doc, begin, end)
            if kept:
                text = splice(text, kept, begin, end)
        atomic_write(a.write_doc, text)
        print(f"doc written to {a.write_doc}")
    return 0
