"""Outside blind set 13 of learner mistakes for minidistil's gradient-exercise checker.

Written blind: the author read only minidistil/exercises/stubs.py, forwards.py, base.py,
stages.py and docs/math.md (plus /work/wt/HELPERS.md). The checker, hints, problems*,
solutions, tests, docs/exercises.md, README, tutorials, CHANGELOG and git history were not
read, and ``check`` was not called, before this set was committed.

13 exercises x (1 control + 9 single-slip mistakes) = 130 entries, self-checked against the
forwards by float64 central differences (selfcheck.py). Committed 2026-12-02 at about 01:33 UTC.
"""
from .common import ENTRIES
from . import part_a, part_b, part_c, part_d  # noqa: F401  (registering the entries)

__all__ = ["ENTRIES"]
