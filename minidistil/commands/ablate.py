"""``minidistil ablate``: Table 4 in miniature, its table and its plot."""
from __future__ import annotations

import os
import time

from ..cli_checks import say
from ..cli_parser import ABLATE_STEPS, ABLATE_STEPS_QUICK


def run_ablate(args, cfg, data, teacher, t0, cpu0) -> int:
    from ..train.ablate import ablate, format_ablation, plot_rows
    from ..train.plots_claims import plot_ablation_ci
    seeds = list(range(cfg.seed, cfg.seed + args.seeds))
    steps = args.steps or (ABLATE_STEPS_QUICK if args.quick else ABLATE_STEPS)
    report = ablate(cfg, args.out, data, teacher, seeds, steps=steps, progress=not args.no_progress,
                    keep_checkpoints=args.keep_checkpoints)
    os.makedirs(os.path.join(args.out, "plots"), exist_ok=True)
    path = os.path.join(args.out, "plots", "ablation.png")
    plot_ablation_ci(plot_rows(report), path)
    print(format_ablation(report))
    say(args, f"ablation finished in {time.perf_counter() - t0:.0f} s wall, "
               f"{time.process_time() - cpu0:.0f} s CPU; plot: {path}")
    return 0
