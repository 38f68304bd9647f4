"""Outside set 7: 117 wrong backward passes and 13 correct controls, written strictly blind.

Its writer read only the exercise stubs, the forwards, ``exercises/base.py`` and ``stages.py``,
``docs/math.md``, notebooks 02 and 03 and the text of the teaching issue, never the checker, the
hints, the problems or any earlier set, and committed the set (with its own finite-difference
self-check: every control right, every mistake wrong on three cases) before the checker was
opened. It was then measured once, on commit ``a3279f5``, with ``check(exercise, fn)`` at the
default seed, and every hint was judged by the writer (``judged.py``). The set is kept as it was
written, split in three files only to keep each under 500 lines; the parameter is still called
``T`` for the temperature, as the stubs had it then.
"""
from . import part_a, part_b, part_c  # noqa: F401 - registering the entries
from .common import ENTRIES  # noqa: F401
