"""Hot-path kernels: each a Numba JIT function beside a readable NumPy twin.

The public names below check their inputs, then dispatch on :func:`get_backend`; the twins are
importable as ``<name>_numpy`` / ``<name>_numba`` from their modules. They keep the layers'
contract: ``y, cache = <kernel>_forward(...)`` with a named cache (the same type from both
twins) and ``<kernel>_backward(dy, cache)``. Two kernels have no forward of their own: the
embedding's scatter-add (its forward is plain indexing in ``layers/embedding.py``) and
``soft_target_rows``, which returns the loss terms and the gradient direction in one sweep. Matrix products go through
:mod:`.matmul`. Compile flags are documented in :mod:`minidistil.kernels.backend`; nothing here
sets threads, BLAS or the allocator (that is the opt-in :mod:`minidistil.fast`).
"""
from .backend import get_backend, set_backend, use_backend, set_num_threads
from .softmax_t import (SoftmaxCache, LogSoftmaxCache, softmax_forward, softmax_backward,
                        log_softmax_forward, log_softmax_backward)
from .layernorm import LayerNormCache, layernorm_forward, layernorm_backward
from .gelu import GeluCache, gelu_forward, gelu_backward
from .attention import AttentionCache, attention_forward, attention_backward
from .embedding import embedding_backward
from .kl import soft_target_rows
from . import matmul  # the module: matmul.matmul, matmul.matmul_pair

__all__ = [
    "get_backend", "set_backend", "use_backend", "set_num_threads",
    "SoftmaxCache", "LogSoftmaxCache", "softmax_forward", "softmax_backward",
    "log_softmax_forward", "log_softmax_backward",
    "LayerNormCache", "layernorm_forward", "layernorm_backward",
    "GeluCache", "gelu_forward", "gelu_backward",
    "AttentionCache", "attention_forward", "attention_backward",
    "embedding_backward",
    "soft_target_rows",
    "matmul",
]
