"""Where the small-input route pays (fast/small.py): inference forwards with it and without it.

    python -m minidistil.bench.small_rows                 # demo and base widths, a Markdown table
    python -m minidistil.bench.small_rows --shapes demo --batches 1,2

For each shape's width and each batch of B sequences of T = 128 tokens, the teacher's forward
(encoder and pooler, no vocabulary head, as bench/inference.py times it) with the fast layer on,
the route taken and stepped aside (``SERIAL_ROWS = 0``: the kernels' threads, and the products'
one plain call or pool). Each setting runs in fresh processes, the two alternating so that a slow
spell of a shared machine hits both (in one process, BLAS's workers spinning after one setting's
products would slow the other's first kernels). Each figure is the best of the processes' median
forwards.
"small / without" below 1 means the route pays; fast/small.py's ``SERIAL_ROWS`` is chosen from
this table (docs/performance.md keeps it).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from . import measure as measure_mod
from .format import table
from .inference import SEQ, _ids
from .measure import cpu_model
from .shapes import preset, preset_list

BATCHES = (1, 2, 4, 8, 16)
ROUNDS = 3  # fresh processes per figure, the two settings alternating
REPEATS = 20  # timed forwards per process, after WARMUP
WARMUP = 3

_CHILD = """
import json, sys
from minidistil.bench.small_rows import child
child(json.loads(sys.argv[1]), sys.argv[2])
"""


def child(payload: dict, out_path: str) -> None:
    """One setting at one batch, in a fresh interpreter: the median forward (bench/measure.py)."""
    from .. import fast
    from ..fast import small
    from ..kernels.backend import set_num_threads
    from .measure import atomic_write, measure as time_it
    from .steps import build_models
    fast.enable()
    set_num_threads(payload["threads"])
    s = preset(payload["shape"]).replace(batch=payload["batch"], seq=payload["seq"])
    if not payload["route"]:
        small.SERIAL_ROWS = 0  # every input counts as large: the route steps aside
    teacher, _ = build_models(s)
    ids = _ids(s)  # (B, T)
    attn = np.ones_like(ids)  # (B, T)
    no_mlm = np.zeros(ids.shape, dtype=bool)  # (B, T): no vocabulary logits
    res = time_it(lambda: teacher.forward(ids, attn, mlm_positions=no_mlm, keep_cache=False),
                  payload["repeats"], payload["warmup"])
    atomic_write(out_path, json.dumps(res))


def measure(shape: str = "demo", batches=BATCHES, seq: int = SEQ, rounds: int = ROUNDS,
            repeats: int = REPEATS, threads: int = 2, timeout: float = 600) -> list:
    """One dict per batch size: rows, milliseconds with and without the route (the best of
    ``rounds`` fresh processes' medians each), their ratio."""
    out = []
    for B in batches:
        best = {True: float("inf"), False: float("inf")}
        for _ in range(rounds):
            for route in (True, False):
                payload = {"shape": shape, "batch": B, "seq": seq, "route": route, "threads": threads,
                           "repeats": repeats, "warmup": WARMUP}
                res = measure_mod.run_script(_CHILD, [json.dumps(payload)], threads, timeout)
                best[route] = min(best[route], res["median_s"])
        out.append({"shape": shape, "batch": B, "rows": B * seq, "with_ms": best[True] * 1e3,
                    "without_ms": best[False] * 1e3, "ratio": best[True] / best[False]})
    return out


def lines(rows: list) -> list:
    return table(["width", "batch x T", "rows", "with the route", "without", "with / without"],
                 [[r["shape"], f"{r['batch']} x {r['rows'] // r['batch']}", str(r["rows"]),
                   f"{r['with_ms']:.2f} ms", f"{r['without_ms']:.2f} ms", f"{r['ratio']:.2f}"] for r in rows])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m minidistil.bench.small_rows", description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", default="demo,base", help="bench shapes whose widths to use (default demo,base)")
    p.add_argument("--batches", default=",".join(map(str, BATCHES)),
                   help="batch sizes of 128-token sequences (default %(default)s)")
    a = p.parse_args(argv)
    try:
        batches = [int(b) for b in a.batches.split(",")]
        if any(b < 1 for b in batches):
            raise ValueError
    except ValueError:
        p.error(f"--batches takes positive integers separated by commas, got {a.batches!r}")
    try:
        shapes = preset_list(a.shapes)
    except ValueError as e:
        p.error(f"--shapes: {e}")
    rows = [r for shape in shapes for r in measure(shape, batches)]
    print(f"Teacher forward, fast layer on, 2 threads, {cpu_model()}:\n")
    print("\n".join(lines(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
