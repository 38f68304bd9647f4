"""Outside set 12: a blind set of learner mistakes for minidistil's gradient exercises.

13 controls and 117 wrong backward passes (9 per exercise), each with exactly one slip.

What I read before writing it: /work/main/minidistil/exercises/stubs.py, forwards.py, base.py,
stages.py, /work/main/docs/math.md, and /work/main/minidistil/layers/block.py (the block
conventions). Written blind: I did not read checker.py, hints.py, problems*.py, solutions.py,
tests/, docs/exercises.md, README.md, tutorials/, other helpers' directories or /work/main's
git history, and did not call ``check`` before committing. Self-checked against my own float64
central differences of the forwards (selfcheck.py). Committed: 2026-12-02 00:33 UTC (phase 1, before any call of check).
"""
from __future__ import annotations

from . import part_a, part_b, part_c, part_d

ENTRIES = part_a.ENTRIES + part_b.ENTRIES + part_c.ENTRIES + part_d.ENTRIES
