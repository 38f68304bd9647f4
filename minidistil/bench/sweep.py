"""``minidistil bench --shapes demo,small,minilm,base``: the roofline sweep over model widths.

For each shape, each step runs in its own fresh interpreter (so that its peak memory is its own
and nothing one shape left behind slows the next): the teacher MLM step, the distillation step
on the reference head, and the distillation step on the fused chunked head (``--head-chunk``,
0 = not measured). Each child measures, in the same process and thread count as the step:

* the float32 matmul peak: NumPy ``@`` on two n x n matrices (``--peak-n``, default 2048), BLAS
  given the run's threads, the best of the runs before and after the step's timing (the
  fastest run is what the machine can do; a loaded machine makes every run slower, never faster);
* the step: median and fastest of ``--repeats`` after ``--warmup``, its FLOP from bench/flops.py,
  achieved GFLOP/s and fraction of the peak (median step against the peak);
* its peak resident memory (``VmHWM``) and the resident memory just before the first step.

PyTorch eager (bench/torch_peer.py, both steps in one process) joins when torch is installed
and ``torch`` is not in ``--skip``; ``torch.compile`` (bench/torch_compile_peer.py, inductor, both
steps in one more fresh process, the compile in the warm-up and reported apart as
``torch_compile_warmup_s``) too, unless ``compile`` is in ``--skip`` (it takes minutes per shape).
Each row gets ``vs_torch_eager`` and ``vs_torch_compile``: minidistil's median / the peer's.
A peer that fails leaves its figures ``None`` and says why in ``torch_compile_error``.

Then, unless ``inference`` is in ``--skip``, inference at batch 1 x T = 128 (bench/inference.py):
teacher and student forward in minidistil and in PyTorch eager, each in its own process, in
``"inference"`` of the JSON and a table of its own.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from . import measure as measure_mod
from .flops import achieved, distill_terms, teacher_terms, total
from .format import table
from .measure import atomic_write, machine, measure, rss_mb
from .shapes import preset

DEFAULT_PEAK_N = 2048
STEPS = ("teacher_mlm_step", "distill_step")
SKIPS = ("torch", "compile", "inference")  # what ``--skip`` can leave out of the sweep

_CHILD = """
import json, sys
from minidistil.bench.sweep import child
child(json.loads(sys.argv[1]), sys.argv[2])
"""


def matmul_roofline(n: int = DEFAULT_PEAK_N, repeats: int = 5, threads: int | None = None) -> dict:
    """Best-of-``repeats`` GFLOP/s of a float32 (n, n) @ (n, n) in NumPy, BLAS with ``threads``
    threads (threadpoolctl; None: as it is). 2 n^3 FLOP per product."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n)).astype(np.float32)  # (n, n)
    b = rng.standard_normal((n, n)).astype(np.float32)  # (n, n)
    c = np.empty((n, n), dtype=np.float32)  # (n, n)

    def timed():
        return measure(lambda: np.matmul(a, b, out=c), max(1, repeats), 1)
    if threads is None:
        t = timed()
    else:
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=threads, user_api="blas"):
            t = timed()
    flop = 2.0 * n ** 3
    return {"n": n, "threads": threads, "best_gflops": flop / t["min_s"] / 1e9,
            "median_gflops": flop / t["median_s"] / 1e9, "times_s": t["times_s"]}


def child(payload: dict, out_path: str) -> None:
    """One step at one shape, in a fresh interpreter (see ``_CHILD``); ``step == "torch"``: both
    steps in PyTorch eager (bench/torch_peer.py), no minidistil speed layer; ``"torch_compile"``:
    both steps compiled (bench/torch_compile_peer.py)."""
    if payload["step"] == "torch_compile":
        from .torch_compile_peer import time_steps as compiled_steps
        res = compiled_steps(preset(payload["shape"]), payload["repeats"], payload["warmup"], payload["threads"],
                             recipe=payload["recipe"])
        res["memory"] = rss_mb()
        atomic_write(out_path, json.dumps(res))
        return
    if payload["step"] == "torch":
        from .torch_peer import time_steps
        res = time_steps(preset(payload["shape"]), payload["repeats"], max(1, payload["warmup"]), payload["threads"],
                         recipe=payload["recipe"])
        res["memory"] = rss_mb()
        atomic_write(out_path, json.dumps(res))
        return
    from .. import fast
    from ..kernels.backend import set_num_threads
    from .steps import make_distill_step, make_teacher_step
    if payload["fast"]:
        fast.enable()
    set_num_threads(payload["threads"])
    s = preset(payload["shape"])
    peak_args = (payload["peak_n"], payload["peak_repeats"], payload["threads"])
    peaks = [matmul_roofline(*peak_args)]
    if payload["step"] == "teacher_mlm_step":
        step = make_teacher_step(s)
    else:
        step = make_distill_step(s, head_chunk=payload["head_chunk"])
    rss_before = rss_mb()
    t = measure(step, payload["repeats"], max(1, payload["warmup"]))
    peaks.append(matmul_roofline(*peak_args))
    res = {"step": t, "memory": rss_mb(), "rss_before_step": rss_before, "peaks": peaks,
           "peak_gflops": max(p["best_gflops"] for p in peaks)}
    atomic_write(out_path, json.dumps(res))


def _peer(tor: dict | None, step: str) -> tuple:
    """(median seconds or None, the peer's result for ``step`` or {})."""
    got = (tor or {}).get(step) or {}
    return got.get("median_s"), got


def assemble_row(name: str, step: str, chunk: int, flop: float, res: dict, tor: dict | None,
                 comp: dict | None, process_s: float) -> dict:
    """One row of the sweep from its child's result ``res`` and the two peers' results (``None``:
    not measured; ``comp`` may be ``{"error": why}`` for the whole process or per step)."""
    st = res["step"]
    row = {"shape": name, "step": step, "head": f"fused {chunk}" if chunk else "reference",
           "flop": flop, "median_s": st["median_s"], "min_s": st["min_s"], "times_s": st["times_s"],
           "cpu_over_wall": st["cpu_over_wall"], "peak_gflops": res["peak_gflops"],
           **achieved(flop, st["median_s"], res["peak_gflops"]),
           "best_fraction_of_peak": achieved(flop, st["min_s"], res["peak_gflops"])["fraction_of_peak"],
           "vmhwm_mb": res["memory"].get("VmHWM_mb"), "rss_before_step_mb": res["rss_before_step"].get("VmRSS_mb"),
           "torch_eager_s": _peer(tor, step)[0],
           "torch_vmhwm_mb": ((tor or {}).get("memory") or {}).get("VmHWM_mb"),
           "process_s": process_s}
    row["vs_torch_eager"] = row["median_s"] / row["torch_eager_s"] if row["torch_eager_s"] else None
    c_med, c = _peer(comp, step)
    row["torch_compile_s"] = c_med
    row["vs_torch_compile"] = row["median_s"] / c_med if c_med else None
    row["torch_compile_times_s"] = c.get("times_s")
    row["torch_compile_warmup_s"] = c.get("compile_s")
    row["torch_compile_error"] = c.get("error") or (comp or {}).get("error")
    return row


def _compile_peer(name: str, repeats: int, warmup: int, threads: int, timeout: float, recipe: dict) -> dict:
    """The torch.compile child's result, or ``{"error": why}`` when the process fails."""
    payload = {"shape": name, "step": "torch_compile", "repeats": repeats, "warmup": max(2, warmup),
               "threads": threads, "recipe": recipe}
    try:
        return measure_mod.run_script(_CHILD, [json.dumps(payload)], threads, timeout)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        return {"error": measure_mod.script_failure(e, "torch.compile child", timeout)}


def run_sweep(names: list, repeats: int = 3, warmup: int = 1, threads: int = 2, head_chunk: int = 256,
              peak_n: int = DEFAULT_PEAK_N, use_fast: bool = True, skip: tuple = (), log=print,
              timeout: float = 3600, infer_repeats: int | None = None) -> dict:
    """Every shape's rows (a JSON-ready dict); see the module docstring."""
    import importlib.util
    from .inference import REPEATS as INFER_REPEATS, WARMUP as INFER_WARMUP, run_inference
    from .steps import peer_recipe
    recipe = peer_recipe()  # the peers' loss settings and clipping, from our config
    torch_installed = importlib.util.find_spec("torch") is not None
    has_torch = torch_installed and "torch" not in skip
    has_compile = has_torch and "compile" not in skip
    infer_repeats = infer_repeats or INFER_REPEATS
    out = {"conditions": {**machine(), "threads": threads, "repeats": repeats, "warmup": warmup,
                          "peak_n": peak_n, "fast": use_fast, "head_chunk": head_chunk, "dtype": "float32",
                          "inference_repeats": infer_repeats, "inference_warmup": INFER_WARMUP},
           "shapes": {}, "rows": [], "inference": [], "skipped": {}}
    why_not = "torch is not installed (optional: pip install torch==2.13.0)"
    if not has_torch:
        out["skipped"]["torch"] = "skipped by --skip" if torch_installed else why_not
    if not has_compile:
        out["skipped"]["torch_compile"] = ("skipped by --skip" if "compile" in skip or "torch" in skip else why_not)
    if "inference" in skip:
        out["skipped"]["inference"] = "skipped by --skip"
    for name in names:
        s = preset(name)
        out["shapes"][name] = s.__dict__.copy()
        flop = {"teacher_mlm_step": total(teacher_terms(s)), "distill_step": total(distill_terms(s))}
        variants = [("teacher_mlm_step", 0), ("distill_step", 0)] + ([("distill_step", head_chunk)] if head_chunk else [])
        tor = comp = None
        if has_torch:
            log(f"[sweep] {name}: PyTorch eager ...")
            tor = measure_mod.run_script(_CHILD, [json.dumps({"shape": name, "step": "torch", "repeats": repeats,
                                                              "warmup": warmup, "threads": threads,
                                                              "recipe": recipe})], threads, timeout)
        if has_compile:
            log(f"[sweep] {name}: torch.compile (inductor; the first compile takes minutes) ...")
            comp = _compile_peer(name, repeats, warmup, threads, timeout, recipe)
        for step, chunk in variants:
            log(f"[sweep] {name}: {step}{f' (fused head, chunk {chunk})' if chunk else ''} ...")
            t0 = time.perf_counter()
            payload = {"shape": name, "step": step, "head_chunk": chunk, "repeats": repeats, "warmup": warmup,
                       "threads": threads, "peak_n": peak_n, "peak_repeats": max(3, repeats), "fast": use_fast}
            res = measure_mod.run_script(_CHILD, [json.dumps(payload)], threads, timeout)
            out["rows"].append(assemble_row(name, step, chunk, flop[step], res, tor, comp, time.perf_counter() - t0))
        if "inference" not in skip:
            out["inference"] += run_inference([name], infer_repeats, INFER_WARMUP, threads, use_fast,
                                              with_torch=has_torch, timeout=timeout, log=log)
    out["conditions"]["loadavg_end"] = list(os.getloadavg())
    return out


def _f(x, spec):
    return "-" if x is None else format(x, spec)


def sweep_lines(r: dict) -> list:
    c = r["conditions"]
    L = [f"Roofline sweep {c['date_utc']} on {c['cpu']}, {c['cpu_count']} cores, {c['threads']} threads, "
         f"float32, median of {c['repeats']} after {c['warmup']} warm-up, matmul peak: best of NumPy "
         f"{c['peak_n']}^3 products in each step's process; load average {c['loadavg_start'][0]:.1f} at "
         f"start, {c['loadavg_end'][0]:.1f} at end.", ""]
    L += table(["shape", "step", "head", "median", "fastest", "GFLOP", "GFLOP/s", "peak GFLOP/s", "of peak",
                "fastest of peak", "peak RSS MB", "RSS before MB", "PyTorch eager", "ratio", "torch.compile",
                "ratio c", "compile s", "CPU/wall"],
               [[x["shape"], x["step"], x["head"], f"{x['median_s']:.3f} s", f"{x['min_s']:.3f} s",
                 f"{x['flop'] / 1e9:.1f}", _f(x["gflops"], ".1f"), _f(x["peak_gflops"], ".1f"),
                 _f(x["fraction_of_peak"], ".0%"), _f(x["best_fraction_of_peak"], ".0%"), _f(x["vmhwm_mb"], ".0f"),
                 _f(x["rss_before_step_mb"], ".0f"),
                 "-" if x["torch_eager_s"] is None else f"{x['torch_eager_s']:.3f} s", _f(x["vs_torch_eager"], ".2f"),
                 _compiled(x), _f(x.get("vs_torch_compile"), ".2f"), _f(x.get("torch_compile_warmup_s"), ".0f"),
                 _f(x["cpu_over_wall"], ".2f")] for x in r["rows"]])
    L += ["", "ratio: minidistil median / PyTorch eager median; ratio c: / torch.compile (inductor) median; "
          "compile s: torch.compile's warm-up steps (the compile), not timed as steps."]
    failed = {(x["shape"], x["step"]): x["torch_compile_error"] for x in r["rows"] if x.get("torch_compile_error")}
    L += [f"torch.compile failed at {shape} {step}: {why}" for (shape, step), why in failed.items()]
    L += [f"not measured: {k} ({why})" for k, why in (r.get("skipped") or {}).items()]
    if r.get("inference"):
        from .inference import inference_lines
        L += [""] + inference_lines(r["inference"], c.get("inference_repeats"))
    return L


def _compiled(x: dict) -> str:
    if x.get("torch_compile_s") is not None:
        return f"{x['torch_compile_s']:.3f} s"
    return "failed" if x.get("torch_compile_error") else "-"


def main_sweep(names: list, repeats: int, warmup: int, threads: int, head_chunk: int, peak_n: int,
               use_fast: bool, skip: tuple, json_path: str) -> int:
    r = run_sweep(names, repeats, warmup, threads, head_chunk, peak_n, use_fast, skip,
                  log=lambda m: print(m, file=sys.stderr))
    print("\n".join(sweep_lines(r)))
    atomic_write(json_path, json.dumps(r, indent=1, default=float) + "\n")
    print(f"\nresults written to {json_path}")
    return 0
