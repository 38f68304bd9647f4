"""The ``minidistil glue`` command (its few lines in ``cli.py`` call these two functions)."""
from __future__ import annotations

import os
import sys


def add_glue_parser(sub, pos_int, pos_float, nonneg_float) -> None:
    g = sub.add_parser("glue", help="fine-tune teacher, student and controls on the miniature GLUE")
    g.add_argument("--out", default="runs/demo", help="the run directory holding the models (default runs/demo)")
    g.add_argument("--tasks", action="append", metavar="NAMES|FOLDER",
                   help="built-in tasks, comma-separated (area,swap,samedoc,related: all by default), or a "
                        "folder with train.tsv and dev.tsv in GLUE's layout; may be repeated")
    g.add_argument("--seeds", type=pos_int, default=3, help="fine-tuning seeds per model and task (default 3)")
    g.add_argument("--epochs", type=pos_int, help="maximum epochs (default 3; early stopping on dev)")
    g.add_argument("--lr", type=pos_float, help="peak learning rate (default 5e-4)")
    g.add_argument("--batch-size", type=pos_int, help="examples per batch (default 32)")
    g.add_argument("--no-group-by-length", action="store_true",
                   help="plain shuffled batches (default: batches of similar length, less padding, as "
                        "Hugging Face's --group_by_length)")
    g.add_argument("--table2-task", default="area", help="the classification task of Table 2 (default area)")
    g.add_argument("--alpha", type=nonneg_float, help="weight of the soft-target loss in (D) (default 0.5)")
    g.add_argument("--temperature", type=pos_float, help="temperature of (D) (default 2)")
    g.add_argument("--quick", action="store_true", help="96 training / 64 dev examples per task, 1 epoch (tests)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--no-fast", action="store_true", help="run the plain reference code only: "
                   "no thread pool, BLAS and malloc as they come (see minidistil.fast)")


def _task_list(args):
    from ..data.tasks import TASK_NAMES, load_task
    specs = args.tasks or [",".join(TASK_NAMES)]
    tasks = []
    for spec in specs:
        items = [spec] if os.path.isdir(spec) or os.path.isfile(spec) else [s for s in spec.split(",") if s.strip()]
        for item in items:
            tasks.append(load_task(item.strip()))
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"--tasks names a task twice: {names}")
    return tasks


def run_glue_command(args, usage_error) -> int:
    """Checks first (one line and exit 2 through ``usage_error``), then the work."""
    from dataclasses import replace
    from ..train.finetune import FinetuneConfig
    from ..train.glue import GlueConfig, find_models, run_glue
    from ..train.glue_report import format_glue, format_targets, plot_glue
    if not os.path.isdir(args.out):
        raise usage_error(f"--out {args.out}: no such run directory")
    try:
        find_models(args.out)
    except FileNotFoundError as e:
        raise usage_error(str(e)) from None
    if not os.path.isfile(os.path.join(args.out, "vocab.txt")):
        raise usage_error(f"--out {args.out}: no vocab.txt")
    try:
        tasks = _task_list(args)
    except (ValueError, OSError) as e:
        raise usage_error(f"--tasks: {e}") from None
    ft = FinetuneConfig()
    over = {k: v for k, v in (("epochs", args.epochs), ("lr", args.lr), ("batch_size", args.batch_size)) if v}
    if args.no_group_by_length:
        over["group_by_length"] = False
    if args.temperature is not None:
        over["temperature"] = args.temperature
    if args.quick:
        over.setdefault("epochs", 1)
    ft = replace(ft, **over)
    t2 = args.table2_task
    if t2 not in [t.name for t in tasks] or next(t for t in tasks if t.name == t2).is_regression:
        t2 = next((t.name for t in tasks if not t.is_regression), "")  # the first classification task
    soft = {} if args.alpha is None else {"alpha_soft": args.alpha}
    cfg = GlueConfig(seeds=tuple(range(args.seeds)), finetune=ft, table2_task=t2, **soft,
                     max_train=96 if args.quick else None,
                     max_dev=64 if args.quick else None, bootstrap=200 if args.quick else 1000)
    if not args.no_fast:  # as every training command: the speed layer, after the checks
        from .. import fast
        fast.enable()
    print(f"glue: {len(tasks)} task(s) x {args.seeds} seed(s) on the models of {args.out}", flush=True)
    report = run_glue(args.out, tasks, cfg, progress=not args.no_progress)
    print(format_glue(report))
    print(format_targets(report))
    path = plot_glue(report, os.path.join(args.out, "glue", "glue.png"))
    print(f"report: {os.path.join(args.out, 'glue', 'report.json')}; plot: {path}")
    sys.stdout.flush()
    return 0
