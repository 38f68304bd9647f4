"""Vectorisable ``exp`` and ``erf`` for the float32 Numba kernels.

Why this exists: numba 0.68 has no vector maths library (Intel SVML support is gone), so
``math.exp`` or ``math.erf`` inside a jitted loop is one scalar libm call per element, while
NumPy's own float32 ``np.exp`` is SIMD. A fused softmax built on scalar ``exp`` is *slower*
than the NumPy twin it fuses, and GELU's scalar ``erff`` dominates its kernel. Written with plain
arithmetic (no calls, no branches but selects), both become loop bodies LLVM vectorises (8
float32 lanes with AVX2); docs/performance.md has the kernels' timings.

``fast_exp`` (Cody & Waite range reduction, as in Cephes ``expf``):

    k = round(z / ln 2)                          so z = k ln2 + r,  |r| <= ln2 / 2
    r = z - k * C1 - k * C2                      ln 2 = C1 + C2 split in two for exactness
    exp(r) ~ 1 + r + r^2 * P(r)                  degree-5 minimax polynomial (Cephes coefficients)
    exp(z) = exp(r) * 2^k                        2^k built straight from its IEEE-754 bits

``2^k`` is made by writing ``k + 127`` into the exponent field of a float32: an integer
"bitcast" (:func:`_exp2i`), a few 32-bit integer instructions. It is applied as two halves,
``2^(k//2) * 2^(k - k//2)``, so that very large and very small ``z`` overflow to ``inf`` and
underflow gradually to 0 exactly as IEEE arithmetic does. Accuracy: within 2 ulp of ``exp``
(tests/test_kernels_backend.py holds it to 4e-7 relative over the whole float32 range).

``fast_erf``: the rational approximation ``erf(x) ~ x P(x^2) / Q(x^2)`` on ``|x| <= 4`` (erf is
1 to float32 precision beyond), degrees 6 and 4, with the coefficients Eigen and XLA use for
float32 erf. Accuracy: 4e-7 absolute (a few ulp of 1), 3e-7 relative near 0 (tested).

float64 kernels keep ``math.exp``/``math.erf``: the float64 twins are the gradient-check reference
and must agree to 1e-12; the demo trains in float32. With ``NUMBA_DISABLE_JIT=1`` the same
algorithms run in plain Python on NumPy scalars (the bitcast becomes ``ndarray.view``).

Numba's ``cache=True`` does not notice edits to this file from the kernels that inline these
functions: after changing it, delete the cache (``NUMBA_CACHE_DIR`` or ``__pycache__/*.nb*``).
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba.core import types
from numba.extending import intrinsic, overload

# Cephes expf constants (S. L. Moshier, Cephes Mathematical Library): the split of ln 2 and the
# minimax coefficients of (exp(r) - 1 - r) / r^2 on |r| <= ln2 / 2.
_LOG2E = 1.44269504088896341
_C1 = 0.693359375
_C2 = -2.12194440e-4
_P = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
      1.6666665459e-1, 5.0000001201e-1)
# Beyond these exp(z) is 0 or inf in float32 anyway; clamping keeps k inside int32 and the bits valid.
_LO, _HI = -104.0, 89.0

_F32 = np.float32
_LOG2E_32, _C1_32, _C2_32 = _F32(_LOG2E), _F32(_C1), _F32(_C2)
_P0, _P1, _P2, _P3, _P4, _P5 = (_F32(c) for c in _P)
_LO_32, _HI_32, _HALF_32, _ONE_32 = _F32(_LO), _F32(_HI), _F32(0.5), _F32(1.0)
_ZERO_32 = _F32(0.0)
_FLUSH_32 = _F32(-87.33)  # exp(-87.33) ~ 1.2e-38, just above 2^-126, the smallest normal float32

# erf(x) ~ x * A(x^2) / B(x^2) on |x| <= 4 (the float32 erf of Eigen / XLA), highest power first.
_ERF_A = tuple(_F32(c) for c in (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
                                   -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
                                   -1.60960333262415e-02))
_ERF_B = tuple(_F32(c) for c in (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
                                   -7.37332916720468e-03, -1.42647390514189e-02))
_A0, _A1, _A2, _A3, _A4, _A5, _A6 = _ERF_A
_B0, _B1, _B2, _B3, _B4 = _ERF_B
_ERF_CLAMP = _F32(4.0)


@intrinsic
def _exp2i(typingctx, kf):
    """2.0**kf for a float32 ``kf`` holding an integer in [-126, 127], built from its bits.

    LLVM IR: ``fptosi`` to i32, add the exponent bias 127, shift into the exponent field (bit 23),
    ``bitcast`` to float. All 32-bit integer work, so it vectorises (numba's own integer arithmetic
    would widen to int64, which AVX2 cannot convert from float32 in vector registers).
    """
    if kf != types.float32:
        return None

    def codegen(context, builder, signature, args):
        i32 = context.get_value_type(types.int32)
        k = builder.fptosi(args[0], i32)
        bits = builder.shl(builder.add(k, i32(127)), i32(23))
        return builder.bitcast(bits, context.get_value_type(types.float32))

    return types.float32(types.float32), codegen


def _exp2i_py(kf):
    """2.0**kf as float32 for integral -126 <= kf <= 127 (pure-Python twin of the intrinsic)."""
    return np.array([(int(kf) + 127) << 23], dtype=np.int32).view(np.float32)[0]


def _exp_reduced(z):
    """``(exp(r), k)`` with ``z = k ln2 + r``: the range reduction and polynomial both float32
    exps share (plain arithmetic: the Python paths call it, the compiled ones ``_exp_reduced_jit``)."""
    kf = np.floor(z * _LOG2E_32 + _HALF_32)  # round(z / ln 2), as a float32
    r = z - kf * _C1_32 - kf * _C2_32
    poly = ((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5
    return poly * r * r + r + _ONE_32, kf


_exp_reduced_jit = numba.njit(fastmath={"nsz", "arcp", "contract", "afn"}, error_model="numpy")(_exp_reduced)


def fast_exp(z):
    """``exp(z)``: the float32 polynomial above for float32 input, ``math.exp`` for float64.

    This Python body is what runs under ``NUMBA_DISABLE_JIT=1`` (and from plain Python); inside
    jitted kernels the :func:`_fast_exp_overload` implementation below is compiled in instead.
    """
    with np.errstate(over="ignore", under="ignore"):  # overflow to inf, as the compiled code
        if isinstance(z, np.float32):
            if z != z:  # NaN (math.floor would raise)
                return z
            er, kf = _exp_reduced(min(max(z, _LO_32), _HI_32))
            k1 = np.floor(kf * _HALF_32)
            return er * _exp2i_py(k1) * _exp2i_py(kf - k1)
        return np.exp(z) if isinstance(z, np.floating) else math.exp(z)


@overload(fast_exp, jit_options={"fastmath": {"nsz", "arcp", "contract", "afn"}})
def _fast_exp_overload(z):
    if isinstance(z, types.Float) and z.bitwidth == 32:
        def impl(z):
            # min/max written as selects: NaN compares false and flows through to the result.
            if z < _LO_32:
                z = _LO_32
            if z > _HI_32:
                z = _HI_32
            er, kf = _exp_reduced_jit(z)
            if kf != kf:  # NaN input: er is NaN already; keep the integer conversion defined
                kf = _ONE_32
            k1 = np.floor(kf * _HALF_32)  # 2^k = 2^k1 * 2^(k - k1): no overflow of the bits
            s1 = _exp2i(k1)
            s2 = _exp2i(kf - k1)
            return er * s1 * s2
        return impl
    if isinstance(z, types.Float):
        def impl(z):
            return math.exp(z)
        return impl
    return None


def fast_exp_nonpositive(z):
    """``exp(z)`` for the ``z <= 0`` of a softmax (``score - max``), about twice as fast as
    :func:`fast_exp`: one power of two instead of two halves, and results below 2^-126
    (``z < -87.33``) flushed to exactly 0 instead of denormals. Within 2 ulp of ``exp`` above
    that; NaN stays NaN. For ``z > 0`` it is right up to ``z = 88`` and undefined beyond.
    float64 input: ``math.exp``. Python body for ``NUMBA_DISABLE_JIT=1``; kernels compile the
    overload below.
    """
    if isinstance(z, np.float32):
        if z != z:
            return z
        if z <= _FLUSH_32:
            return _F32(0.0)
        er, kf = _exp_reduced(z)
        return er * _exp2i_py(kf)
    return np.exp(z) if isinstance(z, np.floating) else math.exp(z)


@overload(fast_exp_nonpositive, jit_options={"fastmath": {"nsz", "arcp", "contract", "afn"}})
def _fast_exp_nonpositive_overload(z):
    if isinstance(z, types.Float) and z.bitwidth == 32:
        def impl(z):
            er, kf = _exp_reduced_jit(z if z > _FLUSH_32 else _FLUSH_32)  # a select: vectorises; NaN -> flush
            y = er * _exp2i(kf)
            y = y if z > _FLUSH_32 else _ZERO_32
            return z if z != z else y  # NaN in, NaN out
        return impl
    if isinstance(z, types.Float):
        def impl(z):
            return math.exp(z)
        return impl
    return None


def _erf32(x):
    """The float32 rational erf; plain arithmetic, shared by the Python and the compiled path."""
    if x > _ERF_CLAMP:
        x = _ERF_CLAMP
    if x < -_ERF_CLAMP:
        x = -_ERF_CLAMP
    z = x * x
    a = (((((_A0 * z + _A1) * z + _A2) * z + _A3) * z + _A4) * z + _A5) * z + _A6
    b = (((_B0 * z + _B1) * z + _B2) * z + _B3) * z + _B4
    return x * a / b


def fast_erf(x):
    """``erf(x)``: the float32 rational approximation above for float32 input, ``math.erf`` otherwise.

    This Python body runs under ``NUMBA_DISABLE_JIT=1``; jitted kernels compile the overload below.
    """
    if isinstance(x, np.float32):
        return _erf32(x)
    return type(x)(math.erf(x)) if isinstance(x, np.floating) else math.erf(x)


_erf32_jit = numba.njit(fastmath={"nsz", "arcp", "contract", "afn"}, error_model="numpy")(_erf32)


@overload(fast_erf, jit_options={"fastmath": {"nsz", "arcp", "contract", "afn"}})
def _fast_erf_overload(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        def impl(x):
            return _erf32_jit(x)
        return impl
    if isinstance(x, types.Float):
        def impl(x):
            return math.erf(x)
        return impl
    return None


def fast_exp_array(z: np.ndarray) -> np.ndarray:
    """Elementwise :func:`fast_exp` of a float32/float64 array (for tests and notebooks)."""
    flat = np.ascontiguousarray(z).reshape(-1)  # (n,)
    out = np.empty_like(flat)  # (n,)
    _fast_exp_loop(flat, out)
    return out.reshape(z.shape)


@numba.njit(cache=True, error_model="numpy")
def _fast_exp_loop(z, out):
    for i in range(z.shape[0]):
        out[i] = fast_exp(z[i])


def fast_erf_array(x: np.ndarray) -> np.ndarray:
    """Elementwise :func:`fast_erf` of a float32/float64 array (for tests and notebooks)."""
    flat = np.ascontiguousarray(x).reshape(-1)  # (n,)
    out = np.empty_like(flat)  # (n,)
    _fast_erf_loop(flat, out)
    return out.reshape(x.shape)


@numba.njit(cache=True, error_model="numpy")
def _fast_erf_loop(x, out):
    for i in range(x.shape[0]):
        out[i] = fast_erf(x[i])
