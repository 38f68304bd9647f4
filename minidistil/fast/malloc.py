"""Keep freed memory for reuse: glibc ``malloc`` tuned so that a training step stops page-faulting.

The plain code this replaces is nothing: the C library's defaults. A training step allocates and
frees the same few hundred megabytes every time (activations of (32, 128, 512) float32 are 8 MB
each, logits tens of MB). glibc serves blocks above its *mmap threshold* with fresh pages from the
kernel and returns them on ``free``, and trims the top of its heap when more than the *trim
threshold* lies free there; either way the next step touches brand-new pages, and every 4 KB page
costs a fault in which the kernel zeroes it.

So :func:`tune_malloc` (called by :func:`minidistil.fast.enable`, never at import) makes two
``mallopt`` calls: no block is served by ``mmap`` any more (``M_MMAP_MAX = 0``; the distillation
step's (4096, 4096) float32 logits are 64 MB, above the 32 MB the mmap threshold can be raised
to), and up to 256 MB of freed heap is kept rather than trimmed. The price: the process does not
hand freed memory back to the system until it exits (its peak resident size does not change: the
same blocks are reused step after step). This cannot be undone, which is why it is opt-in. Other C
libraries (macOS, Windows, musl) are left alone; ``MINIDISTIL_MALLOC=system`` keeps glibc's
defaults even with the fast layer on. docs/performance.md has the measured page faults.
"""
from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_MAX = -4
TRIM_THRESHOLD = 256 * 1024 * 1024

_applied = None  # None: not tried yet; then True/False


def tune_malloc() -> bool:
    """Apply the two ``mallopt`` settings once; True if glibc accepted them."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux") or os.environ.get("MINIDISTIL_MALLOC", "").strip().lower() == "system":
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: musl has no mallopt thresholds
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied


def malloc_tuned() -> bool:
    """Whether :func:`tune_malloc` took effect in this process (for reports)."""
    return bool(_applied)
