"""Outside, blind set 14 of learner mistakes for minidistil's gradient-exercise checker.

What was read to write it: /work/main/minidistil/exercises/stubs.py, forwards.py, base.py,
stages.py (and, by slip, the exercises package's __init__.py, the head of masking.py and the
``def`` lines of gradcheck.py), and /work/main/docs/math.md. Written blind: checker.py,
hints.py, problems*.py, solutions.py, tests/, docs/exercises.md, README, tutorials, CHANGELOG,
other helpers' directories and /work/main's git history were not read, and ``check`` was not
imported or called before this set was committed (2026-12-02, about 01:10 UTC; the commit
hash is in the report and in judged.py).

13 exercises x (1 correct control + 9 single-slip wrong backward passes) = 130 entries.
``ENTRIES``: dicts ``{"id", "exercise", "what", "fn", "control"}``.
"""
from . import part_a, part_b, part_c, part_d, part_e

ENTRIES = part_a.ENTRIES + part_b.ENTRIES + part_c.ENTRIES + part_d.ENTRIES + part_e.ENTRIES

__all__ = ["ENTRIES"]
