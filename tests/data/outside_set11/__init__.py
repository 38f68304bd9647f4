"""An outside, blind set of learner mistakes for minidistil's gradient exercises (set 11).

Written blind: before writing this set I read only minidistil/exercises/stubs.py,
forwards.py, base.py and stages.py, docs/math.md and /work/wt/HELPERS.md, plus the opening of
minidistil/losses.py and masking.py for conventions. I did not read the checker, the hints, the
problems/solutions modules, the tests, docs/exercises.md, the README, the tutorials, other
helpers' directories or the git history of /work/main, and did not call ``check`` before
committing this set. Committed 2026-12-02 (UTC), before any measurement.

13 exercises x (1 correct control + 9 wrong backward passes, one mistake each): 117 mistakes.
Each entry: {"id", "exercise", "what", "fn", "control"}. Self-checked with float64 central
differences against minidistil.exercises.forwards (selfcheck.py at the repo root).
"""
from __future__ import annotations

from . import part_a, part_b, part_c, part_d, part_e

ENTRIES = (part_a.ENTRIES + part_b.ENTRIES + part_c.ENTRIES + part_d.ENTRIES
           + part_e.ENTRIES)
