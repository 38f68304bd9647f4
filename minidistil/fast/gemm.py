"""BLAS's ``gemm``, called from inside Numba kernels (used by the fast attention route).

The plain code this replaces: the batched ``@`` products of kernels/attention.py. Numba reaches
BLAS only through SciPy, which minidistil does not depend on; but NumPy ships OpenBLAS, which
exports the CBLAS functions ``cblas_sgemm`` / ``cblas_dgemm`` (in NumPy's wheels as
``scipy_cblas_sgemm64_``, with 64-bit integers). This module finds their addresses with ctypes
in the library threadpoolctl reports, and gives kernels one function,

    gemm(fns, trans_a, trans_b, alpha, A, B, C)        # C = alpha * op(A) @ op(B)

where ``op(X)`` is ``X.T`` when ``trans_X``, ``A``/``B``/``C`` are 2-D views whose last axis is
contiguous (rows may be strided: BLAS's leading dimension), and ``fns`` is the small int64 table
from :meth:`GemmFunctions.table`: which route to take and the function addresses. Inside a jitted
kernel ``gemm`` compiles to a direct call through an address (an LLVM ``inttoptr`` + ``call``);
the addresses are plain integers in an array argument, so the kernel stays cacheable. From plain
Python (``NUMBA_DISABLE_JIT=1``) the same call is NumPy's ``@``.

Two routes:

* ``cblas``: ``cblas_?gemm``, through OpenBLAS's own choice of kernel for the CPU.
* ``avx512``: OpenBLAS's AVX-512 "small matrix" kernels (``?gemm_small_kernel_b0_??_SKYLAKEX``),
  called directly. NumPy's OpenBLAS picks one kernel family at load time; a CPU it does not know
  gets its generic AVX2 "Haswell" kernels although it may run AVX-512. The AVX-512 kernels are in
  the same library, exported, and take the matrices as they lie (no packing copies), which suits
  the attention's small per-head products. Taken only when OpenBLAS picked a core family without
  AVX-512 (threadpoolctl reports which), the CPU has the AVX-512 subsets those kernels are compiled
  for, the library is OpenBLAS >= 0.3.17, and a self-test of every transpose passes;
  ``MINIDISTIL_GEMM=cblas`` turns it off.

BLAS must run single-threaded while several Numba threads call it: the fast layer holds it to
one thread (fast/threads.py) before this route is used; the AVX-512 kernels are single-threaded.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import re
from typing import NamedTuple, Optional

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload, register_jitable

from . import threads

CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_TRANS = 101, 111, 112
ROUTE_CBLAS32, ROUTE_CBLAS64, ROUTE_AVX512 = 0, 1, 2  # fns[0]: cblas (32- or 64-bit ints), AVX-512

# (sgemm, dgemm, integers are 64-bit): NumPy >= 2 wheels first (scipy-openblas64), then the
# 32-bit-integer scipy-openblas32 and a system OpenBLAS.
_NAMES = (("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", True),
          ("cblas_sgemm64_", "cblas_dgemm64_", True),
          ("scipy_cblas_sgemm", "scipy_cblas_dgemm", False),
          ("cblas_sgemm", "cblas_dgemm", False))

# The CPU features OpenBLAS compiles its SKYLAKEX kernels for (-march=skylake-avx512).
_AVX512 = ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")
_SMALL_MIN_VERSION = (0, 3, 17)
# OpenBLAS core families whose kernels already use AVX-512 (threadpoolctl's "architecture")
AVX512_CORES = ("skylakex", "cooperlake", "sapphirerapids")
_FLAGS = ("nn", "nt", "tn", "tt")  # column-major names, first letter for A: index 2 * tA + tB


class GemmFunctions(NamedTuple):
    sgemm: int  # address of the float32 cblas gemm
    dgemm: int  # address of the float64 one
    ilp64: bool  # True when BLAS integers are 64-bit
    small_s: tuple = ()  # the four float32 AVX-512 small kernels (nn, nt, tn, tt), or ()
    small_d: tuple = ()  # the four float64 ones, or ()
    why_not_avx512: str = ""  # why the AVX-512 route is off, when it is

    def address(self, dtype) -> int:
        """The cblas gemm for ``dtype``."""
        return self.sgemm if np.dtype(dtype) == np.float32 else self.dgemm

    @property
    def route(self) -> str:
        return "avx512" if self.small_s else "cblas"

    def table(self, dtype) -> np.ndarray:
        """``fns`` for :func:`gemm`: int64 ``[route, address, ...]`` for arrays of ``dtype``."""
        small = self.small_s if np.dtype(dtype) == np.float32 else self.small_d
        if small:
            return np.array((ROUTE_AVX512,) + tuple(small), dtype=np.int64)
        route = ROUTE_CBLAS64 if self.ilp64 else ROUTE_CBLAS32
        return np.array((route, self.address(dtype), 0, 0, 0), dtype=np.int64)

    def cblas_only(self) -> "GemmFunctions":
        """The same functions with the AVX-512 route off."""
        return self._replace(small_s=(), small_d=(), why_not_avx512="turned off")


_found: Optional[GemmFunctions] = None
_searched = False
_cblas_forced = 0  # > 0 inside cblas_route()


def gemm_functions() -> Optional[GemmFunctions]:
    """The gemm addresses in the OpenBLAS NumPy loaded, or None (searched once).

    None when NumPy's BLAS is not OpenBLAS (Apple Accelerate, MKL): then the fast attention
    route stays off.
    """
    global _found, _searched
    if not _searched:
        _searched = True
        c = threads.openblas()
        if c is not None:
            lib = ctypes.CDLL(c.filepath)  # already loaded by NumPy: this only returns a handle
            for s_name, d_name, ilp64 in _NAMES:
                s, d = getattr(lib, s_name, None), getattr(lib, d_name, None)
                if s is not None and d is not None:
                    (small_s, small_d), why = _avx512_kernels(lib, getattr(c, "architecture", None))
                    _found = GemmFunctions(_address(s), _address(d), ilp64, small_s, small_d, why)
                    break
    if _cblas_forced and _found is not None:
        return _found.cblas_only()
    return _found


@contextlib.contextmanager
def cblas_route():
    """Inside: the kernels call ``cblas_?gemm`` even where the AVX-512 route is on (to compare)."""
    global _cblas_forced
    _cblas_forced += 1
    try:
        yield
    finally:
        _cblas_forced -= 1


def _address(cfunc) -> int:
    return ctypes.cast(cfunc, ctypes.c_void_p).value


def _openblas_version(lib) -> Optional[tuple]:
    for name in ("scipy_openblas_get_config64_", "scipy_openblas_get_config", "openblas_get_config64_",
                 "openblas_get_config"):
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype = ctypes.c_char_p
            m = re.search(rb"OpenBLAS (\d+)\.(\d+)\.(\d+)", fn() or b"")
            return tuple(int(x) for x in m.groups()) if m else None
    return None


def _avx512_kernels(lib, architecture=None) -> tuple:
    """``((four float32 addresses, four float64 addresses), "")``, or ``(((), ()), why not)``."""
    if os.environ.get("MINIDISTIL_GEMM", "auto").strip().lower() == "cblas":
        return ((), ()), "MINIDISTIL_GEMM=cblas"
    if architecture and architecture.lower() in AVX512_CORES:
        return ((), ()), f"OpenBLAS already runs its AVX-512 kernels here ({architecture})"
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return ((), ()), "not an x86-64 CPU"
    try:
        import llvmlite.binding as llvm
        features = llvm.get_host_cpu_features()
    except Exception as e:  # pragma: no cover - llvmlite without host feature detection
        return ((), ()), f"the CPU's features are unknown ({e})"
    missing = [f for f in _AVX512 if not features.get(f, False)]
    if missing:
        return ((), ()), "the CPU lacks " + ", ".join(missing)
    version = _openblas_version(lib)
    if version is None or version < _SMALL_MIN_VERSION:
        return ((), ()), f"OpenBLAS {version or 'of unknown version'} is older than 0.3.17"
    addresses = []
    for p, dtype in (("s", np.float32), ("d", np.float64)):
        fns = [getattr(lib, f"{p}gemm_small_kernel_b0_{fl}_SKYLAKEX", None) for fl in _FLAGS]
        if any(f is None for f in fns):
            return ((), ()), "this OpenBLAS has no AVX-512 small-matrix kernels"
        if not _self_test(fns, dtype):
            return ((), ()), "the AVX-512 kernels failed their self-test"
        addresses.append(tuple(_address(f) for f in fns))
    return tuple(addresses), ""


def _self_test(fns, dtype) -> bool:
    """Every transpose, through ctypes, on odd sizes (masked edges), against NumPy's ``@``."""
    fl = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    rng = np.random.default_rng(0)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for f in fns:
        f.restype = ctypes.c_int
        f.argtypes = [i64, i64, i64, ptr, i64, fl, ptr, i64, ptr, i64]
    for M, N, K in ((37, 19, 13), (16, 33, 40), (1, 3, 1)):
        for ta in (False, True):
            for tb in (False, True):
                a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
                b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
                c = np.full((M, N), np.nan, dtype=dtype)
                # row-major C = op(a) op(b) is column-major C^T = op(b)^T op(a)^T: b goes first
                fns[2 * tb + ta](N, M, K, b.ctypes.data, b.shape[1], 0.5, a.ctypes.data, a.shape[1],
                                 c.ctypes.data, N)
                ref = 0.5 * ((a.T if ta else a) @ (b.T if tb else b))
                if not np.all(np.abs(c - ref) <= tol * max(1.0, float(np.max(np.abs(ref))))):
                    return False
    return True


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

            sa = signature.args
            builder.call(fn, [
                i32(CBLAS_ROW_MAJOR), as_int(ta, sa[1], types.int32), as_int(tb, sa[2], types.int32),
                as_int(m_v, sa[3], ity), as_int(n_v, sa[4], ity), as_int(k_v, sa[5], ity),
                context.cast(builder, alpha_v, sa[6], fty), _data(context, builder, aty, a_v),
                as_int(lda_v, sa[8], ity), _data(context, builder, bty, b_v),
                as_int(ldb_v, sa[10], ity), fl(0.0), _data(context, builder, cty, c_v),
                as_int(ldc_v, sa[12], ity)])
            return context.get_dummy_value()

        return sig, codegen

    return call


def _data(context, builder, ty, val):
    """The data pointer of array ``val`` (Numba type ``ty``), as an ``i8*``."""
    ptr = ir.IntType(8).as_pointer()
    return builder.bitcast(context.make_array(ty)(context, builder, val).data, ptr)


@intrinsic
def _call_small(typingctx, addr, m, n, k, a, lda, alpha, b, ldb, c, ldc):
    """Calls an OpenBLAS small-matrix kernel (column-major, beta 0) at a runtime address:
    ``int f(long M, long N, long K, T *A, long lda, T alpha, T *B, long ldb, T *C, long ldc)``."""
    sig = types.void(addr, m, n, k, a, lda, alpha, b, ldb, c, ldc)

    def codegen(context, builder, signature, args):
        addr_v, m_v, n_v, k_v, a_v, lda_v, alpha_v, b_v, ldb_v, c_v, ldc_v = args
        sa = signature.args
        fty = sa[4].dtype
        i64, fl = ir.IntType(64), context.get_value_type(fty)
        ptr = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.IntType(32), [i64, i64, i64, ptr, i64, fl, ptr, i64, ptr, i64])
        fn = builder.inttoptr(addr_v, fnty.as_pointer())

        def long(val, ty):
            return context.cast(builder, val, ty, types.int64)

        builder.call(fn, [long(m_v, sa[1]), long(n_v, sa[2]), long(k_v, sa[3]),
                          _data(context, builder, sa[4], a_v), long(lda_v, sa[5]),
                          context.cast(builder, alpha_v, sa[6], fty),
                          _data(context, builder, sa[7], b_v), long(ldb_v, sa[8]),
                          _data(context, builder, sa[9], c_v), long(ldc_v, sa[10])])
        return context.get_dummy_value()

    return sig, codegen


_call64 = _make_call(64)
_call32 = _make_call(32)


def gemm(fns, trans_a, trans_b, alpha, a, b, c):
    """``c[...] = alpha * op(a) @ op(b)``, op transposing when ``trans_*``; see the module docstring.

    This Python body is the reference (and what runs under ``NUMBA_DISABLE_JIT=1``); jitted
    kernels compile the overload below, which calls BLAS at the addresses in ``fns``.
    """
    c[...] = alpha * ((a.T if trans_a else a) @ (b.T if trans_b else b))


@overload(gemm)
def _gemm_overload(fns, trans_a, trans_b, alpha, a, b, c):
    def impl(fns, trans_a, trans_b, alpha, a, b, c):
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
        route = fns[0]
        if route == ROUTE_AVX512:
            # column-major kernels: row-major C = op(a) op(b) is C^T = op(b)^T op(a)^T, so b is
            # their first matrix and the sizes swap; a row-major matrix read column-major is its
            # transpose, which is why the transpose flags carry over unchanged
            if trans_b and not trans_a:
                # that is the "tn" kernel, which runs at half the speed of the others (8.4 against
                # 4.4 us at 128 x 128 x 32; OpenBLAS itself avoids it for a short K): b.T copied
                # out first, a (K, N) copy of O(K N) work against the product's O(M N K)
                bt = _transposed(b)
                _call_small(fns[1], N, M, K, bt, max(N, 1), alpha, a, lda, c, ldc)
                return
            fn = fns[1 + 2 * (1 if trans_b else 0) + (1 if trans_a else 0)]
            _call_small(fn, N, M, K, b, ldb, alpha, a, lda, c, ldc)
            return
        ta = CBLAS_TRANS if trans_a else CBLAS_NO_TRANS
        tb = CBLAS_TRANS if trans_b else CBLAS_NO_TRANS
        if route == ROUTE_CBLAS64:
            _call64(fns[1], ta, tb, M, N, K, alpha, a, lda, b, ldb, c, ldc)
        else:
            _call32(fns[1], ta, tb, M, N, K, alpha, a, lda, b, ldb, c, ldc)
    return impl


@register_jitable
def _transposed(x):
    """A C-ordered copy of ``x.T`` (2-D)."""
    R, C = x.shape
    t = np.empty((C, R), dtype=x.dtype)
    for i in range(R):
        for j in range(C):
            t[j, i] = x[i, j]
    return t


def blas_ready(x: np.ndarray) -> bool:
    """True when every 2-D tile ``x[..., :, :]`` can go to BLAS as is: the last axis contiguous and
    each row at a positive stride of at least one row length (no broadcast or reversed rows)."""
    s = x.itemsize
    return (x.ndim >= 2 and x.strides[-1] == s and x.strides[-2] % s == 0
            and x.strides[-2] >= max(x.shape[-1], 1) * s)
