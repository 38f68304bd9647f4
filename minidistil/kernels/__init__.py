"""Hot-path kernels: each a Numba JIT function beside a readable NumPy twin.

The public names below dispatch on :func:`get_backend`; the twins are importable as
``<name>_numpy`` / ``<name>_numba`` from their modules.
"""
from .backend import get_backend, set_backend, use_backend
from .softmax_t import softmax_forward, softmax_backward, log_softmax
from .layernorm import layernorm_forward, layernorm_backward
from .gelu import gelu_forward, gelu_backward
from .attention import attention_forward, attention_backward

__all__ = [
    "get_backend", "set_backend", "use_backend",
    "softmax_forward", "softmax_backward", "log_softmax",
    "layernorm_forward", "layernorm_backward",
    "gelu_forward", "gelu_backward",
    "attention_forward", "attention_backward",
]
