"""Outside set 2: 70 realistic wrong backward passes and 5 correct controls, written blind.

Provenance: written on 2026-12-01 by a separate session of the project that read only
``minidistil/exercises/forwards.py`` and ``stubs.py``: not the problems, the hints, their tests
or the hint table of docs/exercises.md. Its writer's self-check (not copied) found every
mistake wrong against central differences on three cases, and every control correct. It was
measured before any hint was changed for it: that first measurement (docs/exercises.md) is the
honest "outside" figure. The code below is the writer's, split at the exercise banners into
files of under 400 lines; nothing else changed. ``tests/test_outside_mistakes.py`` uses it.
"""

from .common import MISTAKES
from . import part_a, part_b, part_c  # noqa: E402,F401 - each part appends to MISTAKES
