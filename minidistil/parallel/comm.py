"""The communicator interface the training loop talks to, and its single-process default.

``train_loop(..., comm=...)`` calls only these members:

* ``rank``, ``size``, ``is_root`` (rank 0 writes the run's files), ``shard`` (the
  :class:`~minidistil.parallel.shard.Shard` a step function computes, ``None`` = all rows);
* ``grad_buffer(params)``: zeroed gradients to accumulate into, or ``None`` to let the loop
  build its own dict (the single-process path, unchanged);
* ``allreduce(grads, loss_sums)``: the gradients and loss sums added over all ranks;
* ``check_params(params, step)``: compare the parameters across ranks (every few steps);
* ``check_same(what, value)``: raise unless every rank passed the same ``value``;
* ``barrier()``.

:class:`SingleProcess` does nothing in each; :class:`~minidistil.parallel.mpi.MPIComm` does the
work. No mpi4py here: this module is imported by the training loop of every run.
"""
from __future__ import annotations

import os
import zlib
from typing import Mapping

import numpy as np

MPI_EXTRA_HINT = "pip install 'minidistil[mpi]' (mpi4py and the MPICH wheel)"

# Environment variables by which launchers announce the number of processes: MPICH's and Intel
# MPI's Hydra (and Slurm's PMI), Open MPI, MVAPICH.
_LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


class MPIUnavailable(RuntimeError):
    """An MPI run was asked for and mpi4py (or an MPI library) is not installed."""


class RanksDiverged(RuntimeError):
    """The ranks' parameters are no longer bit-identical (their hashes differ)."""


def launched_by_mpiexec(environ: Mapping[str, str] | None = None) -> int:
    """The number of processes an MPI launcher started this one among, or 0 when none did.

    Read from the launcher's environment variables, without importing MPI.
    """
    environ = os.environ if environ is None else environ
    for name in _LAUNCHER_SIZE_VARS:
        value = environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return 0


def params_hash(params: Mapping[str, np.ndarray]) -> int:
    """A CRC-32 of every parameter's bytes, in name order: equal iff bit-identical (up to CRC).

    One sequential pass over the parameters' bytes (zlib's CRC-32): far cheaper than a training
    step, which does ~6 multiply-adds per parameter per token, so it can run every few steps.
    """
    crc = 0
    for name in sorted(params):
        a = np.ascontiguousarray(params[name])
        crc = zlib.crc32(name.encode("utf-8"), crc)
        crc = zlib.crc32(memoryview(a).cast("B"), crc)
    return crc


class SingleProcess:
    """One process, no communication: what ``train_loop`` uses when given no ``comm``."""

    rank = 0
    size = 1
    is_root = True
    shard = None

    def grad_buffer(self, params):
        return None

    def allreduce(self, grads, loss_sums):
        return grads, loss_sums

    def check_params(self, params, step: int) -> None:
        return None

    def check_same(self, what: str, value) -> None:
        return None

    def barrier(self) -> None:
        return None

    def __repr__(self) -> str:
        return "SingleProcess()"
