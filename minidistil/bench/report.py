"""The tables of a benchmark run (stdout and docs/performance.md) and the doc itself."""
from __future__ import annotations

from .format import figure as _figure, fmt as _fmt, fmt_s as _fmt_s, met as _met, probes as _probes, table as _table, turns as _turns
from .notes import FLOP_MODEL, METHOD, limit_text as _limit_text

def summary_lines(r: dict, targets: bool = True) -> list:
    """The tables shared by stdout and the doc (markdown, readable as plain text)."""
    L: list = []
    c = r["conditions"]
    if targets:
        L += [f"Run {c['date_utc']} on {c['cpu']}, {c['cpu_count']} cores, {c['threads']} threads, "
              f"float32, median of {c['repeats']} after {c['warmup']} warm-up; load average "
              f"{c['loadavg_start'][0]:.1f} at start, {c.get('loadavg_end', [float('nan')])[0]:.1f} at end.",
              "", "### Targets", ""]
        L += _table(["target", "bound", "figure", "status"],
                    [[t["label"], f"{t['op']} {t['bound']:g}", _figure(t["value"], t["bound"]), _met(t["met"])]
                     for t in r["targets"]])
    if r["kernels"]:
        L += ["", "### Kernels, forward + backward", ""]
        L += _table(["kernel", "shape", "Numba", "NumPy twin", "speed-up", "each turn", "two-core probe",
                     "Numba version?"],
                    [row for k in r["kernels"] for row in _kernel_rows(k)])
    if r["steps"]:
        L += ["", "### Training steps", ""]
        rows = []
        tor = r["torch"] or {}
        for name in ("teacher_mlm_step", "distill_step"):
            st = r["steps"][name]
            tt = (tor.get(name) or {}).get("median_s")
            f = r["flops"] or {}
            key = "teacher" if name.startswith("teacher") else "distill"
            both = st.get("median_s_both_rounds")
            rows.append([name, _fmt_s(st["median_s"]), _fmt_s(both), f"{st['tokens_per_s']:,.0f}",
                         _fmt(f.get(key + "_gflops"), ".1f"), _fmt(f.get(key + "_fraction_of_peak"), ".0%"),
                         _fmt_s(tt), _fmt(tt and both and both / tt, ".2f"), _fmt(st["cpu_over_wall"], ".2f")])
        L += _table(["step", "minidistil", "both rounds", "tokens/s", "matmul GFLOP/s", "of peak",
                     "PyTorch eager", "ratio", "CPU/wall"], rows)
        if tor:
            L += ["", "\"both rounds\": the median over minidistil's runs before and after PyTorch's; the "
                      "ratio divides it by PyTorch's median."]
        for name in ("teacher_mlm_step", "distill_step"):
            ph = r["steps"][name]["phases_s"]
            tot = sum(ph.values()) or 1.0
            L += ["", f"Phases of {name}: " + ", ".join(f"{k} {_fmt_s(v)} ({v / tot:.0%})" for k, v in ph.items())]
    if r["matmul"]:
        m = r["matmul"]
        L += ["", f"### Matmul yardstick: NumPy float32 peak {m['peak_gflops']:.1f} GFLOP/s "
                  f"(square sizes {', '.join(str(x['n']) for x in m['sizes'])})", ""]
        L += _table(["matmul in the steps", "A", "B", "plain `@`", "of peak", "minidistil's pool", "of peak"],
                    [[x["name"], tuple(x["a"]), tuple(x["b"]), _fmt_s(x["median_s"]),
                      f"{x['gflops'] / m['peak_gflops']:.0%}", _fmt_s(x.get("pool_median_s")),
                      f"{x['pool_gflops'] / m['peak_gflops']:.0%}" if x.get("pool_gflops") else "-"]
                     for x in m["step_shapes"]])
    one = r.get("single_thread")
    if one:
        L += ["", "### The same steps with one thread (fresh processes)", ""]
        rows = []
        for name in ("teacher_mlm_step", "distill_step"):
            m1 = one["minidistil"][name]
            t1 = (one.get("torch") or {}).get(name) or {}
            m2 = (r.get("steps") or {}).get(name) or {}
            rows.append([name, _fmt_s(m1["median_s"]), _fmt_s(m2.get("median_s")),
                         _fmt(m2.get("median_s") and m1["median_s"] / m2["median_s"], ".2f"),
                         _fmt_s(t1.get("median_s")), _fmt(t1.get("median_s") and m1["median_s"] / t1["median_s"], ".2f")])
        L += _table(["step", "minidistil, 1 thread", "minidistil, main run", "speed-up from threads",
                     "PyTorch eager, 1 thread", "ratio at 1 thread"], rows)
    sub = r["subprocess"]
    if sub:
        cold, warm = sub["cold"], sub["warm_first_step"]
        L += ["", "### Start-up and memory (fresh processes)", ""]
        L += _table(["what", "figure"], [
            ["cold: import minidistil.kernels", _fmt_s(cold["import_s"])],
            ["cold: compile all kernels (float32)", _fmt_s(cold["kernels_total_s"])],
            ["cold: + tiny teacher and distillation steps", _fmt_s(cold["tiny_steps_s"])],
            ["cold: total, import to end", _fmt_s(cold["total_s"])],
            ["warm: import -> models built", _fmt_s(warm["build_s"])],
            ["warm: import -> end of first distillation step", _fmt_s(warm["import_to_first_step_s"])],
            ["warm: second step", _fmt_s(warm["second_step_s"])],
            ["RSS before the first step (MB)", _fmt(warm["rss_before_step"].get("VmRSS_mb"), ".0f")],
            ["peak RSS after two steps (MB, VmHWM)", _fmt(warm["memory"].get("VmHWM_mb"), ".0f")],
            ["ru_maxrss (MB; includes the parent's peak at fork)", _fmt(warm["memory"].get("ru_maxrss_mb"), ".0f")],
        ])
    if r["numerics"]:
        n = r["numerics"]
        L += ["", f"Numerics: distillation loss float32+Numba {n['float32_numba']:.6f} vs float64+NumPy "
                  f"{n['float64_numpy']:.6f}, relative difference {n['rel_diff']:.1e} (bound {n['bound']:g})."]
    if r["skipped"]:
        L += ["", "Skipped: " + "; ".join(f"{k}: {v}" for k, v in r["skipped"].items())]
    return L


# ============================================================================ docs/performance.md

def _threads_paragraph(r: dict) -> list:
    """What the one-thread run says about the two-thread figures."""
    one, st = r.get("single_thread"), r.get("steps")
    if not one or not st:
        return []
    out = ["", "## One thread against two", ""]
    slower = []
    for name in ("teacher_mlm_step", "distill_step"):
        m1, m2 = one["minidistil"][name]["median_s"], st[name]["median_s"]
        ph1 = one["minidistil"][name]["phases_s"]
        out += [f"- {name}: {_fmt_s(m1)} with one thread, {_fmt_s(m2)} with {r['conditions']['threads']} "
                f"(CPU/wall {_fmt(st[name]['cpu_over_wall'], '.2f')}); phases with one thread: "
                + ", ".join(f"{k} {_fmt_s(v)}" for k, v in ph1.items()) + "."]
        if m1 < m2:
            slower.append(name)
    out.append("")
    if slower:
        out.append(f"**More threads made {' and '.join(slower)} slower in this run.** A multi-threaded BLAS "
                   "call hands each product to a pool of worker threads that spin while they wait; the "
                   "steps make hundreds of small products (the attention's stacked matmuls are one BLAS "
                   "call per batch x head), and on a shared machine every hand-off can wait for a "
                   "descheduled thread, while the spinning burns the CPU other processes need. With one "
                   "thread there is nothing to hand off. The effect comes and goes with the load, so "
                   "two steps measured minutes apart can differ by an order of magnitude. ")
    out[-1] += (f"One thread's matmul peak was {one['minidistil']['matmul_peak_gflops']:.0f} GFLOP/s, and the "
                f"one-thread distillation step ran its matmuls at {one['distill_fraction_of_peak']:.0%} of it.")
    return out


def _kernel_rows(k: dict) -> list:
    """The kernel table's row(s) for one kernel: a second one for the cblas route when timed."""
    rows = [[k["kernel"], k["shape"], _fmt_s(k["numba"]["median_s"]), _fmt_s(k["numpy"]["median_s"]),
             f"{k['speedup']:.1f}x", _turns(k), _probes(k), "yes" if k["has_numba"] else "no (falls back to the twin)"]]
    return rows



def fast_lines(r: dict) -> list:
    """What the opt-in fast layer switched on in this run, and the PyTorch co-existence figures."""
    f = r["conditions"].get("fast") or {}
    out = ["## The fast layer in this run", ""]
    if not f.get("enabled"):
        out += ["Off (`--no-fast`): every figure is the plain code's.", ""]
    else:
        out += [f"- on: {k}: {v}" for k, v in f["on"].items()]
        out += [f"- off: {k}: {v}" for k, v in f["off"].items()]
        for b in f.get("blas") or []:
            out.append(f"- BLAS: {b['library']} {b['version']}, {b['architecture'] or 'core unknown'} kernels")
        decided = list((f.get("decisions") or {}).values())
        timed = [v["route"] for v in decided if v.get("times_ms")]
        if decided:
            out.append(f"- route decisions: {len(decided)} shapes, {len(timed)} of them timed"
                       + (" (" + ", ".join(f"{n} {timed.count(n)}" for n in sorted(set(timed))) + ")" if timed else "")
                       + "; `minidistil.fast.info()` lists them")
        out.append("")
    out += coexist_lines(r.get("coexist"), r["conditions"].get("loadavg_start")) + [""]
    return out


# Sections of docs/performance.md kept by hand: one-off A/B measurements that need two builds
# of the code (a run cannot repeat them), and the record of what was tried. Each carries its own
# date and conditions; a benchmark run keeps them as they are.
KEPT = ("row-sums-ab", "speed-layer-ab", "levers", "pool-threshold", "width-sweep")


def kept_begin(name: str) -> str:
    return f"<!-- kept by hand: begin {name} -->"


def kept_end(name: str) -> str:
    return f"<!-- kept by hand: end {name} -->"


COEXIST_BEGIN = "<!-- coexist: begin (minidistil/bench/coexist.py) -->"
COEXIST_END = "<!-- coexist: end -->"


def coexist_lines(co: dict, load: tuple | None = None) -> list:
    """bench/coexist.py's section of docs/performance.md, markers included."""
    out = [COEXIST_BEGIN, "### PyTorch in the same process", ""]
    if not co or "ratios" not in co:
        return out + ["Not measured in this run.", COEXIST_END]
    shapes = co.get("shapes") or {}
    rows = []
    for n in co["median_s"]:  # the variants of bench/coexist.py, in its order
        r = co["ratios"].get(n)
        spread = co["ratios_per_round"].get(n, [])
        cpu = co["cpu_median_s"].get(n)
        rows.append(f"| {n} | {', '.join(co['threading_layers'][n])} | {co['median_s'][n]:.3f} s | "
                    + (f"{cpu:.3f} s" if cpu is not None else "-") + " | "
                    + ("1 (the reference)" if r is None else f"{r:.2f}x (rounds: {', '.join(f'{x:.2f}' for x in spread)})")
                    + " |")
    out += ["The distillation step, fast layer on, in fresh processes without and with `import torch` "
            f"before `minidistil.fast.enable()` ({co['rounds']} round{'s' if co['rounds'] != 1 else ''} "
            "of the three, alternating; shapes "
            f"B={shapes.get('batch')} T={shapes.get('seq')} C={shapes.get('hidden')}, {co['threads']} threads; "
            "`python -m minidistil.bench.coexist` measures it alone). `with_torch_unfixed` keeps Numba "
            "on OpenMP (`NUMBA_THREADING_LAYER=omp`), as enable() did before the fix: torch's runtime "
            "read the environment before enable() set `OMP_WAIT_POLICY`, so its idle workers spin, "
            "which the CPU seconds per step show even when the machine is shared.", "",
            "| variant | Numba threading layer | median step (wall) | CPU per step | step / without_torch |",
            "|---|---|---|---|---|"] + rows
    if co.get("when"):
        out += ["", f"Measured {co['when']}."]
    if load is not None:
        out += ["", f"1-minute load average {load[0]:.1f} at the start on this machine: wall-time ratios "
                "from a loaded machine are noisy (see the per-round ratios)."]
    return out + [COEXIST_END]


def render_doc(r: dict) -> str:
    """docs/performance.md from one run's results."""
    c = r["conditions"]
    lines = summary_lines(r, targets=False)
    out = ["# Performance", "",
           "<!-- Generated by `minidistil bench --write-doc`; edit minidistil/bench/, not this file. -->", "",
           f"How fast minidistil's kernels and training steps run on {c['cpu']}, {c['cpu_count']} cores, "
           "against the NumPy twins, NumPy's own matmul peak and PyTorch eager, and which of the speed "
           "targets are met. Regenerate with:", "",
           "```bash", "minidistil bench --write-doc          # or: python -m minidistil.bench --write-doc",
           "minidistil bench --quick --skip torch  # a smoke run in seconds", "```", "",
           "## Targets", ""]
    rows = []
    for t in r["targets"]:
        limit = "" if t["met"] else _limit_text(t, r)
        rows.append([t["label"], f"{t['op']} {t['bound']:g}", _figure(t["value"], t["bound"]), _met(t["met"]),
                     limit.replace("|", "\\|")])
    out += _table(["target", "bound", "figure", "status", "what limits it"], rows)
    load = c["loadavg_start"][0]
    out += ["", "## Conditions of this run", "",
            f"{c['date_utc']}, {c['cpu']}, {c['cpu_count']} cores, {c['system']}, Python {c['python']}, NumPy "
            f"{c['numpy']}, Numba {c['numba']}"
            + (f", PyTorch {r['torch']['torch_version']}" if r.get("torch") else ", PyTorch not measured")
            + f"; shapes `{c['shapes_name']}`, {c['threads']} threads, float32, median of {c['repeats']} runs after {c['warmup']} warm-up"
            + (" (**quick shapes: the figures say nothing about the targets**)" if c["quick"] else "") + ".",
            "", f"The attention kernel's products: {c.get('attention_gemm', 'not recorded')}.", ""]
    if load > 0.5 * (c["cpu_count"] or 1):
        out += [f"**The machine was shared while this ran** (1-minute load average {load:.1f} at the "
                f"start and {c.get('loadavg_end', [float('nan')])[0]:.1f} at the end on "
                f"{c['cpu_count']} cores; see the CPU/wall column): absolute times are inflated and "
                "noisy, multi-threaded BLAS suffers most when a core is taken away mid-product. "
                "Ratios measured in the same run (minidistil vs PyTorch, Numba vs NumPy, fraction of "
                "peak) are more meaningful than the seconds, but still carry that noise.", ""]
    out += fast_lines(r)
    out += ["## Results"] + lines
    if r.get("ratios"):
        ra = r["ratios"]
        out += ["", f"Ratios from the fastest runs instead of medians: teacher step "
                    f"{ra['teacher_vs_torch_best']:.2f}, distillation step {ra['distill_vs_torch_best']:.2f}."]
    if r.get("flops") and r["flops"].get("distill_fraction_of_best_peak") is not None:
        out += [f"Distillation step at its fastest run against the fastest matmul run: "
                f"{r['flops']['distill_fraction_of_best_peak']:.0%} of peak."]
    out += _threads_paragraph(r)
    if r.get("profile"):
        out += ["", "## Where the distillation step spends its time (cProfile, own time)", "",
                "Matrix products written with `@` are counted in the Python function that contains them.", ""]
        out += _table(["function", "where", "calls", "own time", "cumulative"],
                      [[f"`{p['function']}`", p["where"], p["calls"], _fmt_s(p["tottime_s"]),
                        _fmt_s(p["cumtime_s"])] for p in r["profile"][:15]])
    for name in KEPT:  # written by hand, with their dates; run.py carries them over from the old file
        out += ["", kept_begin(name), kept_end(name)]
    out += ["", "## FLOP model", "", FLOP_MODEL, "", "## Method", "", METHOD, ""]
    return "\n".join(out)

