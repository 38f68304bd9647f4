"""Self-grading gradient exercises.

>>> from minidistil.exercises import check, list_exercises, stubs
>>> list_exercises()   # doctest: +SKIP
['linear', 'gelu', 'layernorm', 'softmax_t', 'log_softmax_t', 'attention', 'embedding_tied',
 'cross_entropy', 'kl_soft_target', 'cosine', 'triple_loss', 'hidden_mse', 'encoder_block']

Write ``<name>_backward`` with the signature of its stub in :mod:`.stubs`, then
``check("<name>", your_function)``. The forwards are in :mod:`.forwards`; the reference
solutions are kept apart in :mod:`.solutions` (don't peek). docs/exercises.md explains more.
"""
from .checker import CheckResult, Hint, check, list_exercises
from .problems import EXERCISES

__all__ = ["check", "list_exercises", "CheckResult", "Hint", "EXERCISES"]
