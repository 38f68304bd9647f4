"""Outside set 3: 103 realistic wrong backward passes and 13 correct controls, written blind.

Provenance: written on 2026-12-01 by a separate session of the project that read only
``stubs.py``, ``forwards.py``, ``base.py``, ``docs/math.md`` and how to call ``check`` in
docs/exercises.md: not the checker, the problems, the hints, the solutions, their tests or the
earlier outside sets. One slip: the page printed to learn how to call ``check`` also showed
docs/exercises.md's hint-key table, which was therefore seen once before the set was written.
Its writer's self-check (central differences of forwards.py, no checker; not copied) found every
mistake wrong on two or three cases and every control right. Controls are the ids ending in
``_ok``. The set was measured with ``check(name, fn)`` at its default seed before any hint was
changed for it: that first measurement (docs/exercises.md) is the honest "outside" figure. The
code below is the writer's, split at the exercise banners into files of under 400 lines, with
``MISTAKES = ENTRIES`` added; nothing else changed. ``tests/test_outside_mistakes.py`` uses it.
"""

from .common import MISTAKES
from . import part_a, part_b, part_c  # noqa: E402,F401 - each part appends to MISTAKES
