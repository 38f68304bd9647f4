"""Outside set 10: 117 wrong backward passes and 13 correct controls, written strictly blind.

Its writer read only the exercise stubs, the forwards, ``exercises/base.py`` and ``stages.py``,
parts of ``docs/math.md``, never the checker, the hints, the problems
or any other set, and committed the set (with its own finite-difference self-check: every control
right, every mistake wrong on three cases) before the checker was opened. It was measured once,
on commit ``eb7f98d``, with ``check(exercise, fn)`` at the default seed, and every hint was
judged by the writer (``judged.py``). The code is as written, split in parts under 500 lines;
the temperature is still called ``T``, as the stubs had it then.
"""
from . import part_a, part_b, part_c  # noqa: F401 - registering the entries
from .part_c import ENTRIES  # noqa: F401
