"""BLAS's ``gemm``, called from inside Numba kernels.

Numba reaches BLAS only through SciPy, which minidistil does not depend on. But NumPy ships
OpenBLAS, and OpenBLAS exports the CBLAS functions ``cblas_sgemm`` / ``cblas_dgemm`` (in NumPy's
wheels under the names ``scipy_cblas_sgemm64_``, with 64-bit integers). This module finds their
addresses with ``ctypes`` (in the library :mod:`~minidistil.kernels.blas` already found) and
gives the kernels one function,

    gemm(fn, ilp64, trans_a, trans_b, alpha, A, B, C)        # C = alpha * op(A) @ op(B)

where ``op(X)`` is ``X.T`` when ``trans_X``, ``A``/``B``/``C`` are 2-D array views whose rows may be
strided but whose last axis is contiguous (what BLAS calls a leading dimension), and ``fn`` is the
address from :func:`gemm_functions` for the arrays' dtype. Inside a jitted kernel it compiles to
a direct call through that address (an LLVM ``inttoptr`` + ``call``, :func:`_make_call`); the
address is a plain integer argument, so the kernel stays cacheable (a ``ctypes`` function used as
a global would make Numba refuse ``cache=True``). From plain Python (``NUMBA_DISABLE_JIT=1``) the
same call is NumPy's ``@``.

Why call BLAS from inside a kernel at all: the attention core is six small products per
(batch, head) with a softmax between them. Called one head at a time from a ``prange``, each
product's output is still in the core's cache when the softmax reads it, and the kernel needs no
(B, NH, T, T) temporaries and no thread hand-offs (kernels/attention.py has the figures).

BLAS must run single-threaded while several Numba threads call it: callers enter
:func:`~minidistil.kernels.blas.owned_cores` first.
"""
from __future__ import annotations

import ctypes
from typing import NamedTuple, Optional

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload

from . import blas

CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_TRANS = 101, 111, 112

# (sgemm, dgemm, integers are 64-bit): NumPy >= 2 wheels first (scipy-openblas64), then the
# 32-bit-integer scipy-openblas32 and a system OpenBLAS.
_NAMES = (("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", True),
          ("cblas_sgemm64_", "cblas_dgemm64_", True),
          ("scipy_cblas_sgemm", "scipy_cblas_dgemm", False),
          ("cblas_sgemm", "cblas_dgemm", False))


class GemmFunctions(NamedTuple):
    sgemm: int  # address of the float32 cblas gemm
    dgemm: int  # address of the float64 one
    ilp64: bool  # True when BLAS integers are 64-bit

    def address(self, dtype) -> int:
        return self.sgemm if np.dtype(dtype) == np.float32 else self.dgemm


_found: Optional[GemmFunctions] = None
_searched = False


def gemm_functions() -> Optional[GemmFunctions]:
    """The CBLAS gemm addresses in the OpenBLAS NumPy loaded, or None (searched once).

    None when BLAS cannot be controlled (no OpenBLAS found, or ``MINIDISTIL_BLAS_THREADS=native``):
    calling BLAS from several Numba threads is only safe and fast with BLAS held to one thread.
    """
    global _found, _searched
    if not _searched:
        _searched = True
        c = blas.control()
        if c is not None:
            lib = ctypes.CDLL(c.path)
            for s_name, d_name, ilp64 in _NAMES:
                s, d = getattr(lib, s_name, None), getattr(lib, d_name, None)
                if s is not None and d is not None:
                    addr = ctypes.cast(s, ctypes.c_void_p).value, ctypes.cast(d, ctypes.c_void_p).value
                    _found = GemmFunctions(addr[0], addr[1], ilp64)
                    break
    return _found


def _make_call(int_bits: int):
    """An intrinsic calling ``cblas_?gemm`` at a runtime address, with ``int_bits``-bit integers.

    Arguments: (address, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, C, ldc); beta is 0.
    The float type (float or double) follows the dtype of ``A``.
    """
    @intrinsic
    def call(typingctx, addr, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc):
        sig = types.void(addr, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc)

        def codegen(context, builder, signature, args):
            addr_v, ta, tb, m_v, n_v, k_v, alpha_v, a_v, lda_v, b_v, ldb_v, c_v, ldc_v = args
            aty, bty, cty = signature.args[7], signature.args[9], signature.args[11]
            fty = aty.dtype
            ity = types.int64 if int_bits == 64 else types.int32
            i32, iN = ir.IntType(32), context.get_value_type(ity)
            fl, ptr = context.get_value_type(fty), ir.IntType(8).as_pointer()
            fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, iN, iN, iN, fl, ptr, iN,
                                                   ptr, iN, fl, ptr, iN])
            fn = builder.inttoptr(addr_v, fnty.as_pointer())

            def as_int(val, ty, to):
                return context.cast(builder, val, ty, to)

            def data(ty, val):
                return builder.bitcast(context.make_array(ty)(context, builder, val).data, ptr)

            sa = signature.args
            builder.call(fn, [
                i32(CBLAS_ROW_MAJOR), as_int(ta, sa[1], types.int32), as_int(tb, sa[2], types.int32),
                as_int(m_v, sa[3], ity), as_int(n_v, sa[4], ity), as_int(k_v, sa[5], ity),
                context.cast(builder, alpha_v, sa[6], fty), data(aty, a_v), as_int(lda_v, sa[8], ity),
                data(bty, b_v), as_int(ldb_v, sa[10], ity), fl(0.0), data(cty, c_v),
                as_int(ldc_v, sa[12], ity)])
            return context.get_dummy_value()

        return sig, codegen

    return call


_call64 = _make_call(64)
_call32 = _make_call(32)


def gemm(fn, ilp64, trans_a, trans_b, alpha, a, b, c):
    """``c[...] = alpha * op(a) @ op(b)``, op transposing when ``trans_*``; see the module docstring.

    This Python body is the reference (and what runs under ``NUMBA_DISABLE_JIT=1``); jitted
    kernels compile the overload below, which calls BLAS at address ``fn``.
    """
    c[...] = alpha * ((a.T if trans_a else a) @ (b.T if trans_b else b))


@overload(gemm)
def _gemm_overload(fn, ilp64, trans_a, trans_b, alpha, a, b, c):
    def impl(fn, ilp64, trans_a, trans_b, alpha, a, b, c):
        M, N = c.shape
        K = a.shape[0] if trans_a else a.shape[1]
        if M == 0 or N == 0:
            return
        if K == 0:
            c[...] = 0
            return
        size = c.itemsize
        lda, ldb, ldc = a.strides[0] // size, b.strides[0] // size, c.strides[0] // size
        # BLAS wants each leading dimension >= the row length even for a single row
        lda = max(lda, a.shape[1], 1)
        ldb = max(ldb, b.shape[1], 1)
        ldc = max(ldc, N, 1)
        ta = CBLAS_TRANS if trans_a else CBLAS_NO_TRANS
        tb = CBLAS_TRANS if trans_b else CBLAS_NO_TRANS
        if ilp64:
            _call64(fn, ta, tb, M, N, K, alpha, a, lda, b, ldb, c, ldc)
        else:
            _call32(fn, ta, tb, M, N, K, alpha, a, lda, b, ldb, c, ldc)
    return impl


def blas_ready(x: np.ndarray) -> bool:
    """True when every 2-D tile ``x[..., :, :]`` can go to BLAS as is: the last axis contiguous and
    each row at a positive stride of at least one row length (no broadcast or reversed rows)."""
    s = x.itemsize
    return (x.ndim >= 2 and x.strides[-1] == s and x.strides[-2] % s == 0
            and x.strides[-2] >= max(x.shape[-1], 1) * s)
