"""An outside set of realistic wrong backward passes, written as learners write them.

Each entry is a complete wrong implementation (not a perturbation of the reference) with the
hint key(s) that describe its mistake. Each is written from the exercise's statement as a whole
function and never calls the checker's recognisers; but its author also wrote the hints, so it
is not a blind set: a class's mistakes will find gaps it does not. It measures the checker
the way a class would meet it:

* every mistake must FAIL (at seeds 0 and 1);
* no hint may fire that does not describe the mistake (fired keys within the accepted ones,
  apart from the purely informative ``wrong_shape`` when the shape IS the mistake);
* at least 90% must get a specific hint naming them (measured: printed by the last test).
"""
import pytest

import learner_mistakes_layers  # noqa: F401 - registers its mistakes
import learner_mistakes_losses  # noqa: F401 - registers its mistakes
from learner_mistakes_common import GENERIC, MISTAKES
from minidistil.exercises import check

IDS = [m[0] for m in MISTAKES]


def _run(ex, fn, seed=0):
    return check(ex, fn, seed=seed, verbose=False)


@pytest.mark.parametrize("name,ex,fn,keys", MISTAKES, ids=IDS)
def test_every_outside_mistake_is_caught_and_no_wrong_hint_fires(name, ex, fn, keys):
    for seed in (0, 1):
        res = _run(ex, fn, seed)
        assert not res.passed, f"{name} passed at seed {seed}"
        wrong = [k for k in res.hint_keys if k not in keys | GENERIC]
        assert not wrong, f"{name}: hint(s) {wrong} fired for a mistake they do not describe"


def test_at_least_sixty_mistakes_and_ninety_percent_named():
    assert len(MISTAKES) >= 60
    named, missed = 0, []
    for name, ex, fn, keys in MISTAKES:
        res = _run(ex, fn)
        if set(res.hint_keys) & keys:
            named += 1
        else:
            missed.append((name, res.hint_keys))
    frac = named / len(MISTAKES)
    print(f"outside mistakes named by a specific hint: {named}/{len(MISTAKES)} = {frac:.1%}; "
          f"missed: {missed}")
    assert frac >= 0.9, missed
