"""PyTorch in the same process: the distillation step with and without ``import torch`` first.

Each variant runs in a fresh interpreter (a process cannot un-import torch), the fast layer on,
in alternating rounds so that a slow spell of a shared machine hits every variant:

* ``without_torch``: the plain case;
* ``with_torch``: ``import torch`` before ``minidistil.fast.enable()``, as a notebook that also
  uses PyTorch does; enable() sees the OpenMP runtime torch loaded and gives Numba its workqueue
  threads (fast/omp.py);
* ``with_torch_unfixed``: the same with ``NUMBA_THREADING_LAYER=omp``, so that enable() must
  leave Numba on that runtime, whose idle workers spin: the problem the fix removes.

The ratios divide each variant's median step time by ``without_torch``'s; the CPU seconds per
step show the spinning even on a loaded machine, where wall times are noisy.

    python -m minidistil.bench.coexist [--shapes demo] [--write-doc]

writes only its own section of docs/performance.md (between the markers below); a full
``minidistil bench --write-doc`` writes the same section from its ``coexist`` part.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .report import COEXIST_BEGIN as BEGIN, COEXIST_END as END, coexist_lines
from .shapes import PRESETS, BenchShapes, preset

VARIANTS = {  # name -> (child payload, extra environment)
    "without_torch": ({"torch": False}, {}),
    "with_torch": ({"torch": True}, {}),
    "with_torch_unfixed": ({"torch": True}, {"NUMBA_THREADING_LAYER": "omp"}),
}
DEFAULT_DOC = Path(__file__).resolve().parents[2] / "docs" / "performance.md"


def measure_coexist(s: BenchShapes, repeats: int, warmup: int, threads: int, rounds: int = 2, log=print) -> dict:
    """``{"runs": {variant: [child result per round]}, "ratios": {...}, "rounds": rounds}``."""
    from .measure import machine
    from .measure import run_child
    m = machine()
    when = f"{m['date_utc']}, {m['cpu']}, {m['cpu_count']} cores"
    base = {"shapes": asdict(s), "repeats": repeats, "warmup": max(1, warmup), "fast": True}
    runs: dict = {name: [] for name in VARIANTS}
    for i in range(rounds):
        for name, (payload, env) in VARIANTS.items():
            log(f"[bench] coexist round {i + 1}/{rounds}: {name} ...")
            runs[name].append(run_child("coexist", {**base, **payload}, env, threads))
    return {"runs": runs, "rounds": rounds, "threads": threads, "shapes": asdict(s), "when": when,
            **summarise(runs)}


def summarise(runs: dict) -> dict:
    """Medians over every timed step of every round, the ratios to ``without_torch``, and the
    per-round ratios (their spread says how far one round's figure can be trusted)."""
    def wall(rs):
        return [t for r in rs for t in r["times_s"]]

    def cpu(rs):
        return [t for r in rs for t in r.get("cpu_s", [])]

    med = {n: float(np.median(wall(rs))) for n, rs in runs.items()}
    cpu_med = {n: float(np.median(cpu(rs))) if cpu(rs) else None for n, rs in runs.items()}
    base = runs["without_torch"]
    ratios, per_round = {}, {}
    for n, rs in runs.items():
        if n == "without_torch":
            continue
        ratios[n] = med[n] / med["without_torch"]
        per_round[n] = [r["median_s"] / b["median_s"] for r, b in zip(rs, base)]
    layers = {n: sorted({r.get("threading_layer") for r in rs}) for n, rs in runs.items()}
    return {"median_s": med, "cpu_median_s": cpu_med, "ratios": ratios,
            "ratios_per_round": per_round, "threading_layers": layers}


def update_doc(path: str, lines: list, begin: str = BEGIN, end: str = END) -> None:
    """Replace the section between ``begin`` and ``end`` in ``path`` (or insert it before
    "## Results"), atomically: the rest of the generated file stays as the last full run wrote it."""
    from .measure import atomic_write
    atomic_write(path, splice(Path(path).read_text(encoding="utf-8"), "\n".join(lines), begin, end))


def splice(text: str, block: str, begin: str, end: str) -> str:
    """``text`` with ``block`` in place of the section between ``begin`` and ``end``, or inserted
    before "## Results" when there is none."""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + block + rest.split(end, 1)[1]
    if "\n## Results" in text:
        head, rest = text.split("\n## Results", 1)
        return head + "\n" + block + "\n\n## Results" + rest
    return text.rstrip("\n") + "\n\n" + block + "\n"


def carried_section(path: str, begin: str, end: str) -> str | None:
    """The section between the markers in the file at ``path`` as it is now, if any: a part of
    docs/performance.md that another script measures (the demo with and without the fast layer)
    and that a benchmark run must not drop."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return None
    if begin not in text or end not in text:
        return None
    return begin + text.split(begin, 1)[1].split(end, 1)[0] + end


def main(argv=None) -> int:
    import os
    p = argparse.ArgumentParser(prog="python -m minidistil.bench.coexist", description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="demo", choices=sorted(PRESETS))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--write-doc", nargs="?", const=str(DEFAULT_DOC), default=None, metavar="PATH")
    a = p.parse_args(argv)
    if min(a.repeats, a.rounds, a.threads) < 1 or a.warmup < 0:
        sys.stderr.write("minidistil bench coexist: error: --repeats, --rounds, --threads >= 1, --warmup >= 0\n")
        return 2
    load = os.getloadavg()
    co = measure_coexist(preset(a.shapes), a.repeats, a.warmup, a.threads, a.rounds,
                         log=lambda m: print(m, file=sys.stderr))
    lines = coexist_lines(co, load)
    print("\n".join(lines))
    if a.write_doc:
        update_doc(a.write_doc, lines)
        print(f"doc section written to {a.write_doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
