"""How the benchmark measures: medians of wall times, lap timers, a two-core probe, the machine.

Nothing here knows about minidistil's models; steps.py and kernels.py time them with these.
"""
from __future__ import annotations

import contextlib
import json
import datetime as _dt
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import numba
import numpy as np

from ..atomic import atomic_write_text

# The untimed warm-up lasts at least this long: after even a short pause (the 0.3 s in which
# OpenBLAS's workers go to sleep, see let_blas_workers_sleep) the cores take tens of milliseconds
# to come back to speed, and a turn of a few short calls right after a pause would time that.
WARMUP_MIN_S = 0.2


def measure(fn: Callable[[], object], repeats: int, warmup: int, min_warmup_s: float = WARMUP_MIN_S) -> dict:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed runs (and at
    least ``min_warmup_s`` seconds of them when ``warmup`` > 0).

    ``cpu_over_wall`` (process CPU time / wall time) shows how many cores the run really got:
    near the thread count on an idle machine, lower when other processes take the cores.
    """
    t_warm = time.perf_counter()
    done = 0
    while done < warmup or (warmup > 0 and time.perf_counter() - t_warm < min_warmup_s):
        fn()
        done += 1
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    med = float(np.median(wall))
    return {"median_s": med, "min_s": float(min(wall)), "times_s": [float(t) for t in wall],
            "cpu_s": [float(c) for c in cpu],
            "cpu_over_wall": float(np.median(cpu)) / med if med > 0 else None}


class Phases:
    """Accumulates the time spent in named phases of a step (``add(name, seconds)``)."""

    def __init__(self):
        self.laps: dict[str, list[float]] = {}

    def add(self, name: str, seconds: float) -> None:
        self.laps.setdefault(name, []).append(seconds)

    def timed(self, name: str, fn: Callable) -> Callable:
        """``fn`` wrapped so that each call's duration is added to phase ``name``."""
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - t0)
        return wrapper

    def medians(self) -> dict:
        return {k: float(np.median(v)) for k, v in self.laps.items()}


def atomic_write(path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def gflops(flop: float, seconds: float) -> float:
    return flop / seconds / 1e9 if seconds > 0 else float("nan")


def let_blas_workers_sleep(seconds: float = 0.3) -> None:
    """After a multi-threaded BLAS call OpenBLAS's idle workers busy-wait for about 0.1 s before
    they sleep; anything timed in that window shares the cores with them. Wait it out."""
    time.sleep(seconds)


def _probe_loop(a, rounds):
    """``rounds`` passes of a multiply-add over each row of ``a`` (P, n): compute-bound in L1."""
    P, n = a.shape
    mul, add = a.dtype.type(0.9999), a.dtype.type(0.0001)
    for p in numba.prange(P):
        row = a[p]
        for _ in range(rounds):
            for j in range(n):
                row[j] = row[j] * mul + add


_probe_kernel = None


def two_core_probe(rounds: int = 4000) -> Optional[float]:
    """How much a second thread speeds up a compute-bound Numba loop: about 2 when the run has
    two free cores, about 1 when something else holds the second one. None without the JIT."""
    global _probe_kernel
    if numba.config.DISABLE_JIT:
        return None
    if _probe_kernel is None:
        from ..kernels.backend import jit
        _probe_kernel = jit(parallel=True)(_probe_loop)
    a = np.ones((8, 2048), dtype=np.float32)  # (P, n), 64 KB
    _probe_kernel(a, 1)  # compiled (or loaded) outside the timing
    threads = numba.get_num_threads()
    times = {}
    try:
        for n in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(n)
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                _probe_kernel(a, rounds)
                best = min(best, time.perf_counter() - t)
            times[n] = best
    finally:
        numba.set_num_threads(threads)
    return times[1] / times[max(times)]


def matmul_peak(quick: bool, repeats: int) -> dict:
    """NumPy float32 square matmuls; the peak is the best median GFLOP/s over the sizes
    (``best_gflops``, from the fastest single run, shows what an idle machine gives).

    Measured with BLAS's own thread count: with the fast layer on, BLAS is held to one thread
    between products, and a one-thread peak would make every fraction of it look twice as good."""
    from ..fast import threads
    return threads._with_blas_threads(lambda: _matmul_peak(quick, repeats))


def _matmul_peak(quick: bool, repeats: int) -> dict:
    rng = np.random.default_rng(1)
    sizes = (128, 256) if quick else (512, 1024, 2048)
    rows = []
    for n in sizes:
        a = rng.standard_normal((n, n)).astype(np.float32)  # (n, n)
        b = rng.standard_normal((n, n)).astype(np.float32)  # (n, n)
        c = np.empty((n, n), dtype=np.float32)  # (n, n)
        t = measure(lambda: np.matmul(a, b, out=c), max(3, repeats), 1)
        rows.append({"n": n, "median_s": t["median_s"], "gflops": gflops(2.0 * n ** 3, t["median_s"]),
                     "best_gflops": gflops(2.0 * n ** 3, t["min_s"])})
    return {"sizes": rows, "peak_gflops": max(r["gflops"] for r in rows),
            "best_gflops": max(r["best_gflops"] for r in rows)}


def rss_mb() -> dict:
    """This process's peak resident memory, two ways (MB = 10**6 bytes)."""
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KB on Linux
    out = {"ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6}
    with contextlib.suppress(OSError):
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    key, val = line.split(":", 1)
                    out[key.strip() + "_mb"] = int(val.split()[0]) * 1024 / 1e6
    return out


def cpu_model() -> str:
    """The CPU's model name as the system reports it (``/proc/cpuinfo``, ``sysctl``), or the
    platform's processor string. On Linux the CPU family and model follow the name: a virtual
    machine often reports only "AMD EPYC", which names no generation (family 25 model 17 is a
    Zen 4, family 23 model 49 a Zen 2), and the figures here depend on it."""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            name = cpuinfo_name(f.read())
        if name:
            return name
    if sys.platform == "darwin":
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                  text=True, timeout=5).stdout.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def cpuinfo_name(text: str) -> str | None:
    """``"model name (family F, model M)"`` of the first processor in a ``/proc/cpuinfo`` text."""
    fields = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    if not fields.get("model name"):
        return None
    family, model = fields.get("cpu family"), fields.get("model")
    return fields["model name"] + (f" (family {family}, model {model})" if family and model else "")


def machine() -> dict:
    """What the run ran on: CPU model, cores, operating system, Python, NumPy, Numba, load."""
    return {"date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": cpu_model(), "cpu_count": os.cpu_count(), "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "loadavg_start": list(os.getloadavg())}


_CHILD = """
import time; t0 = time.perf_counter()
import json, sys
from minidistil.bench.run import child
child(sys.argv[1], t0, json.loads(sys.argv[2]), sys.argv[3])
"""


def run_child(mode: str, payload: dict, env_extra: dict, threads: int, timeout: float = 1800) -> dict:
    env = dict(os.environ)
    env.update({"OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
                "MKL_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads)})
    env.update(env_extra)
    with tempfile.TemporaryDirectory(prefix="minidistil-bench-") as d:
        out = os.path.join(d, "out.json")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _CHILD, mode, json.dumps(payload), out],
                              env=env, capture_output=True, text=True, timeout=timeout)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"bench child {mode!r} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        with open(out, encoding="utf-8") as f:
            res = json.load(f)
    res["process_wall_s"] = wall
    return res


def run_script(script: str, args: list, threads: int, timeout: float) -> dict:
    """Run ``script`` in a fresh interpreter with ``threads`` threads for every library; it writes
    its result as JSON to the path given as its last argument, which is returned, parsed."""
    env = dict(os.environ)
    env.update({k: str(threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                          "NUMBA_NUM_THREADS")})
    with tempfile.TemporaryDirectory(prefix="minidistil-sweep-") as d:
        out = os.path.join(d, "out.json")
        proc = subprocess.run([sys.executable, "-c", script, *args, out], env=env, capture_output=True,
                              text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"bench sweep child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        with open(out, encoding="utf-8") as f:
            return json.load(f)


def script_failure(e: BaseException, what: str, timeout: float) -> str:
    """One line saying why a :func:`run_script` child gave no result: its timeout, or the last
    non-empty line of what it wrote on stderr."""
    if isinstance(e, subprocess.TimeoutExpired):
        return f"{what} timed out after {timeout:.0f} s"
    tail = [x for x in str(e).strip().splitlines() if x.strip()]
    return f"{what} failed: {tail[-1][:300] if tail else type(e).__name__}"
