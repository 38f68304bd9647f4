"""The MPI communicator: one flat gradient buffer, one Allreduce per step, hashes, Abort.

Legend: P parameters (all tensors together), N ranks.

Why one flat buffer. An Allreduce costs a latency (microseconds on one machine, tens of
microseconds over a network) plus its bytes over the bandwidth. One call per tensor would pay
the latency ~100 times per step (the student has ~100 tensors) and hand MPI many small messages;
one call on a contiguous (P,) buffer pays it once and lets MPI pipeline the whole buffer. The
gradients are accumulated straight into views of that buffer, so nothing is copied in or out.

mpi4py is imported only here, when a communicator is made (:func:`minidistil.parallel.mpi_comm`).
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from .comm import MPI_EXTRA_HINT, MPIUnavailable, RanksDiverged, params_hash
from .shard import Shard

# How long a rank other than 0 waits before it aborts the run on its own error: long enough for
# rank 0, which usually meets the same error (bad input is the same everywhere), to report it
# alone and stop everyone; short enough that a rank's private error still ends the run soon.
ABORT_GRACE_S = 2.0
# How long a rank waits between writing its last line and calling Abort. MPICH's launcher stops
# forwarding a rank's output as soon as one rank aborts; without this pause the line that says
# what went wrong can be lost (seen once in CI: only "Traceback (most recent call last):" came).
ABORT_FLUSH_S = 1.0


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError:
        raise MPIUnavailable(f"MPI runs need mpi4py: {MPI_EXTRA_HINT}") from None
    except RuntimeError as e:  # mpi4py without a loadable MPI library
        raise MPIUnavailable(f"mpi4py found no MPI library ({e}): {MPI_EXTRA_HINT}") from None
    return MPI


class MPIComm:
    """Data parallelism over ``MPI.COMM_WORLD`` (or ``comm``); see :mod:`minidistil.parallel`.

    ``check_every``: compare a hash of the parameters across ranks every this many steps.
    """

    def __init__(self, comm=None, check_every: int = 10):
        if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
            raise ValueError(f"check_every must be an int >= 1, got {check_every!r}")
        self.MPI = _import_mpi()
        self.comm = self.MPI.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.is_root = self.rank == 0
        self.shard = Shard(self.rank, self.size)
        self.check_every = check_every
        self._flat = None  # (P,) the gradient buffer
        self._views = None  # name -> view into _flat, shaped like the parameter
        self._checked = False  # the first check_params call always compares (the start)

    # ------------------------------------------------------------ gradients
    def grad_buffer(self, params) -> dict:
        """Zeroed gradients for ``params``: views of one contiguous (P,) buffer."""
        if self._views is None or self._views.keys() != params.keys() or \
                any(v.shape != params[k].shape for k, v in self._views.items()):
            dtypes = {np.dtype(p.dtype) for p in params.values()}
            if len(dtypes) != 1:
                raise TypeError(f"all parameters must share one dtype, got {sorted(map(str, dtypes))}")
            total = sum(p.size for p in params.values())
            self._flat = np.empty(total, dtype=dtypes.pop())  # (P,)
            self._views, off = {}, 0
            for name, p in params.items():
                self._views[name] = self._flat[off:off + p.size].reshape(p.shape)  # a view, p's shape
                off += p.size
        self._flat.fill(0)
        return dict(self._views)

    def allreduce(self, grads: dict, loss_sums: dict) -> tuple[dict, dict]:
        """Sum the gradients (in place, ONE Allreduce on the flat buffer) and the loss sums.

        The loss sums travel in a second, tiny float64 Allreduce so that the reported losses
        keep float64 precision whatever the parameters' dtype.
        """
        if self._views is None or grads.keys() != self._views.keys() or \
                any(grads[k] is not v for k, v in self._views.items()):
            raise ValueError("allreduce needs the gradients returned by grad_buffer, accumulated in place")
        MPI = self.MPI
        self.comm.Allreduce(MPI.IN_PLACE, self._flat, op=MPI.SUM)
        keys = list(loss_sums)  # the same step function on every rank: the same keys, same order
        sums = np.array([loss_sums[k] for k in keys], dtype=np.float64)  # (n_losses,)
        self.comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
        return grads, dict(zip(keys, sums.tolist()))

    # ------------------------------------------------------------ agreement checks
    def check_same(self, what: str, value) -> None:
        """Raise :class:`RanksDiverged` on every rank unless every rank passed an equal ``value``."""
        values = self.comm.allgather(value)
        if any(v != values[0] for v in values[1:]):
            shown = ", ".join(f"rank {r}: {v}" for r, v in enumerate(values[:4]))
            raise RanksDiverged(f"the ranks disagree on {what} ({shown}{', ...' if len(values) > 4 else ''})")

    def check_params(self, params, step: int) -> None:
        """Every ``check_every`` steps: the parameters must be bit-identical on every rank."""
        if step % self.check_every == 0 or not self._checked:
            self._checked = True
            self.check_same(f"the parameters after step {step} (CRC-32 of their bytes); "
                            "the ranks no longer train the same model", params_hash(params))

    def barrier(self) -> None:
        self.comm.Barrier()

    # ------------------------------------------------------------ threads and faults
    def ranks_on_this_machine(self) -> int:
        """How many ranks share this machine (its memory), this one included."""
        local = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED)
        try:
            return local.Get_size()
        finally:
            local.Free()

    def abort(self, message: str, code: int = 1) -> None:
        """Print ``message`` (one line, on stderr) and stop every rank: ``MPI.COMM_WORLD.Abort``.

        Never returns. Ranks other than 0 wait :data:`ABORT_GRACE_S` first, so that an error
        every rank meets is reported once, by rank 0.
        """
        if not self.is_root:
            time.sleep(ABORT_GRACE_S)
        message = f"[rank {self.rank} of {self.size}] {message}"
        sys.stderr.write(message.rstrip("\n") + "\n")
        sys.stderr.flush()
        sys.stdout.flush()
        time.sleep(ABORT_FLUSH_S)  # let the launcher forward the line before Abort cuts it off
        self.MPI.COMM_WORLD.Abort(int(code))
        os._exit(int(code))  # not reached: Abort ends the process

    def __repr__(self) -> str:
        return f"MPIComm(rank={self.rank}, size={self.size})"
