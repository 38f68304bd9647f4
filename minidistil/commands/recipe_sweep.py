"""``python -m minidistil.commands.recipe_sweep``: the command line of
:mod:`minidistil.train.recipe_sweep` (the sweep itself is teaching-path code; this entry point
switches the speed layer on unless ``--no-fast``)."""
from __future__ import annotations

import argparse
import sys

from ..train.recipe_sweep import __doc__ as SWEEP_DOC
from ..train.recipe_sweep import parse_variant, sweep


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m minidistil.commands.recipe_sweep",
                                description=SWEEP_DOC.split("\n\n")[0])
    p.add_argument("variants", nargs="*", metavar="VARIANT",
                   help="field=value[+field=value...], e.g. init_layers=top+alpha_mlm=0")
    p.add_argument("--steps", type=int, help="student steps (default: the demo's 400)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0, the demo's)")
    p.add_argument("--masks", type=int, default=14, help="validation masks scored (default 14)")
    p.add_argument("--out", default="runs/sweep", help="where the students and sweep.json go")
    p.add_argument("--no-fast", action="store_true", help="the plain reference code only")
    args = p.parse_args(argv)
    for name, v in (("--steps", args.steps), ("--masks", args.masks)):
        if v is not None and v < 1:
            p.error(f"{name} must be >= 1, got {v}")
    try:
        for text in args.variants:
            parse_variant(text)
    except ValueError as e:
        p.error(str(e))
    if not args.no_fast:
        from .. import fast
        fast.enable()
    try:
        sweep(args.variants, steps=args.steps, seed=args.seed, n_masks=args.masks, out=args.out)
    except ValueError as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
