"""The opt-in speed layer: ``minidistil.fast.enable()``, ``disable()``, ``info()``.

Nothing in minidistil outside this package touches threads, BLAS or the allocator, and importing
this package changes nothing either. :func:`enable` (the command line calls it; ``--no-fast``
skips it) switches on, for this process:

* **threads** (fast/threads.py): BLAS held to one thread (threadpoolctl), and the layers' matrix
  products cut over a small pool of Python threads where that pays: always for large products,
  never for small ones, and for those in between where the first product of the shape ran faster
  on the pool than as one call (the two give the same bits);
* **attention** (fast/attention.py, fast/gemm.py): the per-head attention kernel that calls BLAS's
  gemm from Numba, with OpenBLAS's AVX-512 small-matrix kernels where OpenBLAS itself picked
  kernels without AVX-512 on an AVX-512 CPU;
* **idle threads sleep** (fast/omp.py): ``OMP_WAIT_POLICY=PASSIVE`` when Numba's OpenMP pool has
  not started yet and the user has not chosen a policy, so Numba's idle workers stop spinning
  while BLAS works, after a short spin (``GOMP_SPINCOUNT``) that bridges two kernels; Numba's
  workqueue layer instead when an OpenMP runtime (PyTorch's) was loaded first and has read the
  environment already;
* **small inputs** (fast/small.py): for a batch of one sequence, as inference runs it, the forward
  kernels on the calling thread alone and their products on BLAS's own threads (both give the same
  bits), since handing a few rows to a sleeping worker costs more than it saves;
* **malloc** (fast/malloc.py): glibc keeps freed memory for the next step.

Every route is checked before it is used (a self-test of the gemm kernels against NumPy) and is
off, with the reason in :func:`info`, where it cannot help. :func:`disable` removes the routes and
gives BLAS its thread counts back (the wait policy, threading layer and malloc settings stay: they
cannot be undone in a running process).
"""
from __future__ import annotations

import sys
import warnings

from ..kernels import backend
from ..kernels.attention import attention_backward_numba, attention_forward_numba
from . import calibrate
from .omp import quiet_idle_threads

_state: dict = {"enabled": False, "on": {}, "off": {}, "warnings": []}


def _attention_routes():
    from .attention import attention_backward_tiles, attention_forward_tiles

    def forward(q, k, v, mask):
        key = ("attention",) + calibrate.shape_key(q)
        return calibrate.choose(key, {"tiles": lambda: attention_forward_tiles(q, k, v, mask),
                                      "plain": lambda: attention_forward_numba(q, k, v, mask)},
                                default="tiles")

    def backward(dout, cache, out=None):
        plain = calibrate.route_for(("attention",) + calibrate.shape_key(cache.q)) == "plain"
        fn = attention_backward_numba if plain else attention_backward_tiles
        return fn(dout, cache, out)

    return forward, backward


def _small_input_routes(routes: dict, on: dict) -> None:
    """The forward kernels on one thread for inputs of few rows (fast/small.py), around whichever
    route each kernel has by now."""
    from . import small
    from ..kernels.gelu import gelu_forward_numba
    from ..kernels.layernorm import layernorm_forward_numba
    routes["layernorm_forward"] = small.serial_when_small(layernorm_forward_numba)
    routes["gelu_forward"] = small.serial_when_small(gelu_forward_numba)
    routes["attention_forward"] = small.serial_when_small(
        routes.get("attention_forward", attention_forward_numba), small.attention_rows)
    on["small_inputs"] = (f"inputs of fewer than {small.SERIAL_ROWS} positions: LayerNorm, GELU and "
                          "attention forwards on one thread"
                          + (", their products on BLAS's own threads where that is faster (the "
                             "same bits)" if "matmul" in routes else ""))


def torch_warning(idle_threads_sleep: bool = False):
    """A warning text when PyTorch shares this process and the fast layer could not keep Numba's
    idle threads from spinning (``idle_threads_sleep`` False), else None (docs/performance.md)."""
    if "torch" not in sys.modules or idle_threads_sleep:
        return None
    return ("PyTorch is imported in this process and Numba's idle threads could not be made to "
            "sleep: they compete with BLAS for the cores and a training step can take about twice "
            "as long. Call minidistil.fast.enable() before any kernel runs, or run minidistil in a "
            "process without torch.")


def enable(malloc: bool = True, calibrate_routes: bool = False) -> dict:
    """Switch the speed layer on (idempotent); returns :func:`info`.

    ``calibrate_routes=True`` also times the routes that sum in a different order (BLAS's own
    threads, the plain attention kernel) on each shape's first call and keeps the fastest
    (fast/calibrate.py). That choice can differ from one process to the next, so it gives up
    bit-exact ``--resume``; off by default, those shapes take their default route.

    Under ``MINIDISTIL_BACKEND=numpy`` (the twins) nothing touches BLAS or the matrix products:
    the routes serve the numba backend, and :func:`info` says so.
    """
    if _state["enabled"]:
        return info()
    calibrate.set_timing(calibrate_routes)
    from . import gemm, threads
    on, off, notes = {}, {}, []
    how, why_not = quiet_idle_threads()
    if how:
        on["idle_threads_sleep"] = how
    else:
        off["idle_threads_sleep"] = why_not
    if not malloc:
        off["malloc"] = "enable(malloc=False)"
    else:
        from .malloc import tune_malloc
        if tune_malloc():
            on["malloc"] = "glibc keeps freed memory (no mmap, 256 MB trim threshold)"
        else:
            off["malloc"] = "not glibc, or MINIDISTIL_MALLOC=system"
    routes = {}
    if backend.get_backend() != "numba":
        why = (f"the {backend.get_backend()} backend runs the NumPy twins as written, and BLAS keeps "
               "its own threads (the fast routes serve the numba backend)")
        off["threads"] = off["attention"] = why
    elif threads.blas_controller().lib_controllers:
        threads.hold_blas()
        routes["matmul"] = threads.matmul_calibrated
        routes["matmul_pair"] = threads.matmul_pair_calibrated
        band = (f"{threads.MIN_SPLIT_MACS / 1e6:.1f}M to {threads.ALWAYS_SPLIT_MACS / 1e6:.0f}M")
        on["threads"] = (f"BLAS held to 1 thread (had {threads._blas_threads}); products of {band} "
                         "multiply-adds timed on their first call, the pool against one plain call "
                         "(the same bits), larger ones on the pool"
                         + ("; BLAS's own threads timed too (calibrate_routes=True)"
                            if calibrate_routes else ""))
    else:
        off["threads"] = "threadpoolctl finds no BLAS library to control"
    g = gemm.gemm_functions() if threads.blas_held() else None
    if g is None:
        off.setdefault("attention", "NumPy's BLAS is not OpenBLAS: gemm cannot be called from Numba")
    else:
        routes["attention_forward"], routes["attention_backward"] = _attention_routes()
        on["attention"] = (f"per-head kernel on BLAS's gemm ({g.route} route), "
                           + ("timed per shape against the plain kernel" if calibrate_routes
                              else "on every shape (calibrate_routes=False)"))
        if g.route != "avx512":
            off["avx512"] = g.why_not_avx512
    if backend.get_backend() == "numba":
        _small_input_routes(routes, on)
    backend.set_fast_routes(routes)
    warn = torch_warning("idle_threads_sleep" in on)
    if warn:
        notes.append(warn)
        warnings.warn(warn, RuntimeWarning, stacklevel=2)
    _state.update(enabled=True, on=on, off=off, warnings=notes)
    return info()


def disable() -> None:
    """Remove the fast routes and give BLAS its thread counts back."""
    from . import small, threads
    backend.set_fast_routes({})
    threads.release_blas()
    calibrate.forget()
    small.forget()
    calibrate.set_timing(False)
    _state.update(enabled=False, on={}, off={}, warnings=[])


def enabled() -> bool:
    return bool(_state["enabled"])


def info() -> dict:
    """``{"enabled", "on": {what: how}, "off": {what: why}, "blas": [...], "decisions": {...},
    "warnings": [...]}``: what the layer switched on, why anything is off, the BLAS libraries
    threadpoolctl found and the routes each calibrated shape took."""
    from . import threads
    return {"enabled": enabled(), "on": dict(_state["on"]), "off": dict(_state["off"]),
            "blas": threads.blas_info(), "decisions": calibrate.decisions(),
            "warnings": list(_state["warnings"])}


def describe() -> str:
    """:func:`info` as a few lines of text."""
    i = info()
    if not i["enabled"]:
        return "fast layer: off (minidistil.fast.enable() switches it on)"
    lines = ["fast layer: on"]
    lines += [f"  on:  {k}: {v}" for k, v in i["on"].items()]
    lines += [f"  off: {k}: {v}" for k, v in i["off"].items()]
    for b in i["blas"]:
        lines.append(f"  BLAS: {b['library']} {b['version']} ({b['architecture'] or 'core unknown'} kernels)")
    return "\n".join(lines)
