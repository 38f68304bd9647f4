"""Idle Numba threads that sleep, also when PyTorch (or another OpenMP user) came first.

The plain code this replaces: Numba's default threading layer, OpenMP (GNU libgomp here), whose
idle workers spin for a while after every parallel kernel, on the cores the next BLAS product
needs. :func:`minidistil.fast.enable` stops that with ``OMP_WAIT_POLICY=PASSIVE``, which works
only because libgomp reads the variable once, when it is loaded, and Numba loads it at its first
parallel kernel, after ``enable()``.

``import torch`` loads PyTorch's own libgomp first, and Numba's parallel regions then run on a
runtime that has read the environment already, so the variable comes too late and the workers
spin again: with torch imported first they burn as much CPU as with no policy at all
(docs/performance.md, "PyTorch in the same process", has the measurement). Numba's
``workqueue`` layer does not spin: its idle workers wait on a condition variable.

Not spinning at all has a price on a virtual machine: a worker that sleeps after every kernel
leaves its core idle, and the hypervisor halts an idle vCPU, so waking it for the next kernel
costs tens of microseconds. At batch 1, where a forward is a hundred small kernels, that adds
up. So ``enable()`` also sets libgomp's ``GOMP_SPINCOUNT`` to ``SPINCOUNT``: about 0.1 ms of
spinning (libgomp reckons some 100,000 spins a millisecond), enough to bridge the gap between
two small kernels, and short beside libgomp's own default with no policy set (3 ms), which keeps
the core from the BLAS product that follows. A longer spin cost the teacher step time; the
A/B runs are in docs/performance.md ("Open levers"). The user's ``GOMP_SPINCOUNT`` stands
(``GOMP_SPINCOUNT=0``: sleep at once).

So when an OpenMP runtime is already loaded before Numba's pool starts, ``enable()`` selects
the workqueue layer instead (unless the user chose a layer). The layer decides only which
threads run the chunks of a ``prange``; Numba cuts the chunks the same way for every layer,
and no kernel reduces across chunks, so the results are the same to the last bit. The
workqueue layer cannot run two parallel kernels at once (from two Python threads, or nested):
minidistil never does, its matmul pool runs only BLAS.
"""
from __future__ import annotations

import os

SPINCOUNT = "10000"  # libgomp's spins before an idle worker sleeps (see above)


def numba_pool_started() -> bool:
    """Whether Numba's threading layer is loaded already (then nothing here can change it)."""
    try:
        from numba.np.ufunc import parallel
        return bool(parallel._is_initialized)
    except Exception:  # numba internals moved: assume the worst, change nothing
        return True


def openmp_runtimes() -> list:
    """File names of the OpenMP runtimes loaded in this process (threadpoolctl finds libgomp,
    Intel's libiomp and LLVM's libomp), e.g. PyTorch's ``torch/lib/libgomp.so.1``."""
    from threadpoolctl import ThreadpoolController
    return [os.path.basename(c.filepath) + f" ({os.path.dirname(c.filepath)})"
            for c in ThreadpoolController().select(user_api="openmp").lib_controllers]


def quiet_idle_threads() -> tuple:
    """Make Numba's idle workers sleep; returns ``(how, None)`` when done, ``(None, why_not)``
    otherwise. Process-wide and not undoable: called by ``enable()`` only."""
    if "OMP_WAIT_POLICY" in os.environ:
        return None, f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} was set by the user"
    if numba_pool_started():
        return None, ("Numba's thread pool started before enable(); call minidistil.fast.enable() "
                      "before any kernel runs")
    import numba
    loaded = openmp_runtimes()
    if not loaded:
        users = os.environ.get("GOMP_SPINCOUNT")  # the user's spin count stands
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        os.environ.setdefault("GOMP_SPINCOUNT", SPINCOUNT)
        spin = (f"GOMP_SPINCOUNT={users}, the user's" if users is not None else
                f"GOMP_SPINCOUNT={SPINCOUNT} (idle workers spin about 0.1 ms, then sleep)")
        return f"OMP_WAIT_POLICY=PASSIVE for Numba's OpenMP pool, {spin}", None
    if str(numba.config.THREADING_LAYER) != "default":
        return None, (f"an OpenMP runtime was loaded before enable() ({loaded[0]}) and the user chose "
                      f"Numba's threading layer ({numba.config.THREADING_LAYER}): idle workers may spin")
    numba.config.THREADING_LAYER = "workqueue"
    return (f"Numba's workqueue threads: an OpenMP runtime loaded before enable() ({loaded[0]}, "
            "e.g. by import torch) has read OMP_WAIT_POLICY already"), None
