"""Hot-path kernels: each a Numba JIT function beside a readable NumPy twin.

The public names below check their inputs, then dispatch on :func:`get_backend`; the twins are
importable as ``<name>_numpy`` / ``<name>_numba`` from their modules. Matrix products go through
:mod:`.matmul`. Compile flags are documented in :mod:`minidistil.kernels.backend`; nothing here
sets threads, BLAS or the allocator (that is the opt-in :mod:`minidistil.fast`).
"""
from .backend import get_backend, set_backend, use_backend, set_num_threads
from .softmax_t import softmax_forward, softmax_backward, log_softmax, log_softmax_backward
from .layernorm import layernorm_forward, layernorm_backward
from .gelu import gelu_forward, gelu_backward
from .attention import attention_forward, attention_backward
from .embedding import embedding_backward
from .kl import soft_target_rows
from . import matmul  # the module: matmul.matmul, matmul.matmul_pair

__all__ = [
    "get_backend", "set_backend", "use_backend", "set_num_threads",
    "softmax_forward", "softmax_backward", "log_softmax", "log_softmax_backward",
    "layernorm_forward", "layernorm_backward",
    "gelu_forward", "gelu_backward",
    "attention_forward", "attention_backward",
    "embedding_backward",
    "soft_target_rows",
    "matmul",
]
