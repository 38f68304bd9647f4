"""Does the speed layer change what the demo learns? ``demo --quick`` (or, with ``--full``, the
whole ``demo``) with ``--no-fast`` and with the fast layer on, their validation accuracies side by
side with standard errors.

    python -m minidistil.bench.fast_parity [--full] [--write-doc]              # runs both demos
    python -m minidistil.bench.fast_parity [--full] --runs NOFAST_DIR FAST_DIR  # compares finished runs

Why a script and not a test: one ``demo --quick`` takes minutes on two cores (about 35 minutes
on a heavily shared machine), several times the test suite's whole budget. The plain code
(``--no-fast``) is the reference and must repeat itself to the last digit from one commit to the
next (run this script on both commits and compare the ``--no-fast`` columns); the fast layer sums
its products in other orders, so its accuracies may move and must stay within the noise: here,
within 1.96 standard errors
of the difference (the two runs' standard errors combined as independent, which overstates the
error of a paired difference and so errs towards "within noise").
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MARKERS = {False: ("<!-- fast-parity: begin (minidistil/bench/fast_parity.py) -->", "<!-- fast-parity: end -->"),
           True: ("<!-- fast-parity-full: begin (minidistil/bench/fast_parity.py --full) -->",
                  "<!-- fast-parity-full: end -->")}
BEGIN, END = MARKERS[False]
DEFAULT_DOC = Path(__file__).resolve().parents[2] / "docs" / "performance.md"
MODELS = ("teacher", "student", "control-mlm-teacher-init", "control-mlm-random-init", "control-triple-random-init")


def run_demo(out: str, fast: bool, full: bool = False) -> None:
    cmd = [sys.executable, "-m", "minidistil", "demo", "--out", out, "--no-progress"]
    cmd += [] if full else ["--quick"]
    subprocess.run(cmd + ([] if fast else ["--no-fast"]), check=True)


def accuracies(run_dir: str) -> dict:
    """``{model: (accuracy, se)}`` from a demo run's eval.json."""
    with open(os.path.join(run_dir, "eval.json"), encoding="utf-8") as f:
        ev = json.load(f)
    out = {"teacher": ev["teacher"], "student": ev["student"], **ev.get("controls", {})}
    return {m: (float(out[m]["accuracy"]), float(out[m]["se"])) for m in MODELS if m in out}


def compare(plain: dict, fast: dict) -> list:
    """One row per model: both figures, the difference, its standard error and the verdict."""
    rows = []
    for m in plain:
        (a, sa), (b, sb) = plain[m], fast[m]
        se = math.hypot(sa, sb)
        verdict = ("identical" if a == b else
                   "within noise" if abs(b - a) <= 1.96 * se else "differs beyond noise")
        rows.append({"model": m, "no_fast": a, "no_fast_se": sa, "fast": b, "fast_se": sb,
                     "diff": b - a, "diff_se": se, "verdict": verdict})
    return rows


def lines(rows: list, conditions: str, full: bool = False) -> list:
    begin, end = MARKERS[full]
    demo, flag = ("`minidistil demo`", " --full") if full else ("`minidistil demo --quick`", "")
    title = "The whole demo" if full else "The demo"
    out = [begin, f"### {title} with and without the fast layer", "",
           f"{demo} run twice, `--no-fast` and fast on ({conditions}); validation "
           "masked-token accuracy, standard errors clustered by validation sequence as the demo "
           f"reports them (`python -m minidistil.bench.fast_parity{flag}` reruns it).", "",
           "| model | --no-fast | fast on | fast - no-fast | verdict |", "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['model']} | {100 * r['no_fast']:.2f}% +/- {100 * r['no_fast_se']:.2f} | "
                   f"{100 * r['fast']:.2f}% +/- {100 * r['fast_se']:.2f} | "
                   f"{100 * r['diff']:+.2f} +/- {100 * r['diff_se']:.2f} points | {r['verdict']} |")
    return out + [end]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m minidistil.bench.fast_parity", description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--full", action="store_true", help="the whole demo, not --quick (about 10 minutes each)")
    p.add_argument("--runs", nargs=2, metavar=("NOFAST_DIR", "FAST_DIR"), help="compare two finished demo runs")
    p.add_argument("--conditions", default=None, help="the text that says where and when they ran")
    p.add_argument("--write-doc", nargs="?", const=str(DEFAULT_DOC), default=None, metavar="PATH")
    a = p.parse_args(argv)
    if a.runs:
        plain_dir, fast_dir = a.runs
        missing = [d for d in a.runs if not os.path.isfile(os.path.join(d, "eval.json"))]
        if missing:
            sys.stderr.write(f"fast_parity: error: no eval.json in {missing[0]} (a finished demo run)\n")
            return 2
    else:
        tmp = tempfile.mkdtemp(prefix="minidistil-parity-")
        plain_dir, fast_dir = os.path.join(tmp, "no-fast"), os.path.join(tmp, "fast")
        run_demo(plain_dir, fast=False, full=a.full)
        run_demo(fast_dir, fast=True, full=a.full)
    from .measure import machine
    c = machine()
    conditions = a.conditions or (f"{c['date_utc']}, {c['cpu']}, {c['cpu_count']} cores, "
                                  f"1-minute load average {os.getloadavg()[0]:.1f} at the end")
    text = lines(compare(accuracies(plain_dir), accuracies(fast_dir)), conditions, full=a.full)
    print("\n".join(text))
    if a.write_doc:
        from .coexist import update_doc
        update_doc(a.write_doc, text, *MARKERS[a.full])
        print(f"doc section written to {a.write_doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
