"""``minidistil demo`` (and ``ablate``) from the shipped teacher or ``--teacher FOLDER``: load the
teacher, tokenize, then the distilled student and its controls (or the ablation)."""
from __future__ import annotations

import os
import time

from ..cli_checks import check_inputs, check_stage_free, merge_saved_config, prepare, say, stored_teacher_source
from ..cli_parser import UsageError
from .ablate import run_ablate
from .stages import finish_stage, run_evaluate


def run_from_teacher(args) -> int:
    """``demo``/``ablate`` without --pretrain/--quick: the shipped teacher (or --teacher)."""
    from ..train import demo
    t0, cpu0 = time.perf_counter(), time.process_time()
    check_inputs(args)
    if args.resume and not args.teacher and args.command == "demo":
        args.teacher = stored_teacher_source(args.out)  # the run's own teacher: no flag to repeat
    try:
        folder = args.teacher or demo.shipped_teacher_folder()
        teacher, tok = demo.load_teacher_folder(folder)
    except (ValueError, OSError, KeyError, TypeError) as e:
        raise UsageError(f"teacher: {e}") from None
    corpus = os.path.abspath(args.corpus) if args.corpus else None
    cfg = demo.teacher_run_config(folder, teacher, tok, seed=args.seed or 0,
                                  steps=getattr(args, "distill_steps", None), corpus=corpus)
    cfg, _ = merge_saved_config(args, cfg)
    for name in (args.students if args.command == "demo" else []):
        check_stage_free(args, name)
    data = prepare(args, cfg, tokenizer=tok)
    say(args, f"teacher: {folder} ({teacher.config.num_hidden_layers} layers, hidden "
               f"{teacher.config.hidden_size}, {teacher.num_parameters() / 1e6:.2f}M parameters); data: "
               f"{len(data.train)} training / {len(data.val)} validation sequences of at most "
               f"{cfg.data.max_len} tokens ({time.perf_counter() - t0:.1f} s)")
    demo.write_teacher_run(args.out, cfg, data, teacher, source=os.path.abspath(folder))
    if args.command == "ablate":
        return run_ablate(args, cfg, data, teacher, t0, cpu0)
    return run_demo_students(args, cfg, data, teacher, t0, cpu0)


def run_demo_students(args, cfg, data, teacher, t0, cpu0) -> int:
    from ..train import demo
    t1 = time.perf_counter()
    models, _ = demo.run_students(cfg, args.out, data, teacher, resume=args.resume,
                                  progress=not args.no_progress, log=lambda m: say(args, m),
                                  names=args.students)
    for name, (model, finished) in models.items():  # the distilled student also as an HF folder
        finish_stage(args, name, finished, model if name == "distill" else None, data.tokenizer)
    run_evaluate(args, cfg, data, teacher, {k: m for k, (m, _) in models.items()})
    say(args, f"demo finished in {time.perf_counter() - t0:.0f} s wall, "
               f"{time.process_time() - cpu0:.0f} s CPU (students and evaluation "
               f"{time.perf_counter() - t1:.0f} s wall); run directory {args.out}")
    say(args, f"downstream, the paper's way (fine-tuned on a miniature GLUE: Tables 1 and 2): "
              f"minidistil glue --out {args.out} (about 19 minutes on 2 cores, more than this "
              f"demo's 10; docs/glue.md)")
    return 0
