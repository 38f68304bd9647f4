"""Data parallelism: the same training run spread over several processes (MPI ranks).

Legend: B global micro-batch (sequences), N ranks, B_r the rows of rank r, P parameters.

What every rank does, each optimizer step (docs/distributed.md):

1. builds the SAME global micro-batch (every rank reads the whole corpus and draws the batch
   order from ``(seed, epoch)``) and the SAME dynamic mask (one generator, same state on every
   rank), then keeps only its own rows (:class:`Shard`): nothing depends on how many ranks
   there are or how they are scheduled;
2. runs forward and backward on its rows, with every loss term normalised by the token count
   of the GLOBAL micro-batch (known to every rank, since every rank drew the whole mask), so
   the shards' losses and gradients add up to those of one process on the whole batch;
3. accumulates ``accum_steps`` micro-batches into one flat contiguous buffer, each parameter's
   gradient a view into it, and sums the buffer across ranks with ONE ``Allreduce``;
4. clips and steps AdamW identically, so the parameters stay bit-identical; a cheap hash of
   them is compared across ranks every few steps (:class:`RanksDiverged` if they differ).

Rank 0 alone writes metrics, checkpoints and plots. A checkpoint holds nothing rank-specific,
so ``--resume`` works with any number of ranks.

:class:`SingleProcess` is the default of :func:`~minidistil.train.loop.train_loop` and does
nothing; :mod:`minidistil.parallel.mpi` (which imports mpi4py, lazily) is the real one.
Importing this package imports no MPI and changes nothing process-wide.
"""
from .comm import (MPI_EXTRA_HINT, MPIUnavailable, RanksDiverged, SingleProcess, launched_by_mpiexec,
                   params_hash)
from .shard import Shard, share, zero_grads

__all__ = ["MPI_EXTRA_HINT", "MPIUnavailable", "RanksDiverged", "SingleProcess", "Shard",
           "launched_by_mpiexec", "params_hash", "share", "zero_grads", "mpi_comm"]


def mpi_comm(**kwargs):
    """The MPI communicator over ``MPI.COMM_WORLD`` (:class:`~minidistil.parallel.mpi.MPIComm`).

    Raises :class:`MPIUnavailable` (one line saying what to install) when mpi4py is missing.
    """
    from .mpi import MPIComm
    return MPIComm(**kwargs)
