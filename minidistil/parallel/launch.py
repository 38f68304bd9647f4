"""What the command line needs: pick the communicator, and stop every rank on an error.

``mpiexec -n N minidistil pretrain|distill ...`` is detected from the launcher's environment
(``PMI_SIZE``, ``OMPI_COMM_WORLD_SIZE``, ...), so no flag is needed; ``--mpi`` asks for MPI
explicitly (an error, saying what to install, when mpi4py is missing). Without either the run
is the single-process one, unchanged.

Threads: each rank gets ``cores // ranks on this machine`` threads (at least 1), unless the
user set ``NUMBA_NUM_THREADS``, so that N ranks on one machine do not fight over its cores.
"""
from __future__ import annotations

import os
import sys
import traceback

from .comm import MPI_EXTRA_HINT, RanksDiverged, SingleProcess, launched_by_mpiexec

PARALLEL_COMMANDS = ("pretrain", "distill")


def communicator(command: str, want_mpi: bool = False, environ=None):
    """``SingleProcess()``, or an :class:`~minidistil.parallel.mpi.MPIComm` when ``want_mpi`` or
    when an MPI launcher started more than one process.

    Raises ``ValueError`` (one line) for a command that cannot run on several ranks and
    :class:`~minidistil.parallel.comm.MPIUnavailable` when mpi4py is missing.
    """
    n = launched_by_mpiexec(environ)
    if not want_mpi and n <= 1:
        return SingleProcess()
    if command not in PARALLEL_COMMANDS:
        raise ValueError(f"{command} runs in one process; under mpiexec run "
                         f"{' or '.join(PARALLEL_COMMANDS)} (then {command} without mpiexec)")
    from . import mpi_comm
    try:
        comm = mpi_comm()
    except RuntimeError as e:
        how = f"started by mpiexec with {n} processes" if n > 1 else "--mpi"
        raise type(e)(f"{how}: {e}") from None
    threads = None
    if "NUMBA_NUM_THREADS" not in os.environ:
        from ..kernels.backend import set_num_threads
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = max(1, cores // comm.ranks_on_this_machine())
        set_num_threads(threads)  # an explicit MPI run: the CLI, not an import, sets this
    if comm.is_root:
        each = f", {threads} thread(s) per rank" if threads else ""
        print(f"MPI: {comm.size} ranks{each}; each micro-batch of --batch-size sequences is split "
              f"across the ranks", flush=True)
    return comm


def abort_on_error(comm, command: str, exc: BaseException) -> None:
    """On several ranks: print the traceback of an unexpected error, then stop every rank.

    Returns (does nothing) in a single process, where the exception simply propagates.

    :class:`RanksDiverged` is raised by a collective check, so every rank meets it at the same
    point: rank 0 reports it in one line and every rank exits with code 1 in order (no Abort,
    whose launcher may drop the line). Any other error may be one rank's alone: MPI Abort.
    """
    if getattr(comm, "size", 1) <= 1:
        return
    if isinstance(exc, RanksDiverged):
        if comm.is_root:
            sys.stderr.write(f"minidistil {command}: {' '.join(str(exc).split())}; stopping every "
                             "rank. The last checkpoint written is intact: continue with --resume\n")
            sys.stderr.flush()
        comm.barrier()
        raise SystemExit(1)
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    comm.abort(f"minidistil {command}: {type(exc).__name__}: {' '.join(str(exc).split())}; "
               "stopping every rank (MPI Abort). "
               "The last checkpoint written is intact: continue with --resume", 1)


__all__ = ["MPI_EXTRA_HINT", "PARALLEL_COMMANDS", "abort_on_error", "communicator"]
