"""Helper of test_reliability_kernels.py: print one digest per kernel output (run in a subprocess).

Kept tiny: every plain Numba kernel with a row sum, float32 and float64, on fixed inputs.
"""
import hashlib
import sys

import numpy as np

from minidistil.kernels import attention as A, kl as K, layernorm as LN, softmax_t as S


def digest(a):
    return hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def main():
    out = {}
    for dt in (np.float32, np.float64):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((9, 37)).astype(dt)  # (N, V), V not a multiple of 8
        d = rng.standard_normal((9, 37)).astype(dt)  # (N, V)
        name = np.dtype(dt).name
        p, cache = S.softmax_forward_numba(x, 2.0)
        out["softmax_" + name] = digest(p)
        out["softmax_backward_" + name] = digest(S.softmax_backward_numba(d, cache))
        lp, cache = S.log_softmax_forward_numba(x, 2.0)
        out["log_softmax_" + name] = digest(lp)
        out["log_softmax_backward_" + name] = digest(S.log_softmax_backward_numba(d, cache))
        g = np.linspace(0.5, 1.5, 37).astype(dt)  # (C,)
        b = np.linspace(-0.1, 0.1, 37).astype(dt)  # (C,)
        y, cache = LN.layernorm_forward_numba(x, g, b)
        out["layernorm_" + name] = digest(y) + digest(cache.rstd)
        out["layernorm_backward_" + name] = "".join(digest(a) for a in LN.layernorm_backward_numba(d, cache))
        kl, diff = K.soft_target_rows_numba(x, d, 2.0)
        out["soft_target_" + name] = digest(kl) + digest(diff)
        scores = rng.standard_normal((2, 2, 11, 11)).astype(dt)  # (B, NH, T, T)
        mask = np.ones((2, 11), dtype=bool)  # (B, T)
        mask[1, 7:] = False
        A._masked_softmax_inplace(scores, mask, dt(0.3))
        out["attention_softmax_" + name] = digest(scores)
        dprobs = rng.standard_normal(scores.shape).astype(dt)  # (B, NH, T, T)
        A._softmax_backward_inplace(dprobs, scores, dt(0.3))
        out["attention_softmax_backward_" + name] = digest(dprobs)
    for k in sorted(out):
        sys.stdout.write(f"{k} {out[k]}\n")


if __name__ == "__main__":
    main()
