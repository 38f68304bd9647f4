"""The command line's entry point: ``main`` parses the arguments (``cli_parser.py``: every flag and
its help), dispatches to the command, and turns every expected failure into one line on stderr.

Where each command lives:

    demo, ablate from the shipped teacher   commands/demo.py, commands/ablate.py
    pretrain, distill, evaluate             commands/stages.py (after the checks below)
    glue                                    commands/glue.py
    export                                  export.py
    bench, bench-ranks                      bench/, parallel/bench.py
    checks before any work                  cli_checks.py (inputs, run directory, teacher, corpus)
    presets, flags and config.json          cli_config.py

Exit codes: 0 done, 2 bad input or a file-system error (one line on stderr), 1 a diverged run,
130 interrupted (continue with --resume).
"""
from __future__ import annotations

import os
import sys
import time

from .cli_checks import (check_inputs, check_stage_free, load_teacher, prepare, resolve_config, say,
                         stage_state, start_run_dir)
from .cli_parser import UsageError, build_parser
from .commands.ablate import run_ablate
from .commands.demo import run_demo_students, run_from_teacher
from .commands.stages import run_distill, run_evaluate, run_pretrain


def _fail(args, message, code):
    """One line on stderr, exit ``code``; on several MPI ranks every rank is stopped."""
    comm = getattr(args, "comm", None)
    if getattr(comm, "size", 1) > 1:
        comm.abort(message, code)
    sys.stderr.write(message + "\n")
    return code


def _communicator(args):
    from .parallel.launch import communicator
    try:
        return communicator(args.command, getattr(args, "mpi", False))
    except (ValueError, RuntimeError) as e:
        raise UsageError(str(e)) from None


def _cmd(args) -> int:
    if args.out is None:  # --quick runs get their own folder: runs/demo-quick beside runs/demo
        args.out = args.default_out + ("-quick" if args.quick else "")
    check_inputs(args)
    if not getattr(getattr(args, "comm", None), "is_root", True):
        return _cmd_locked(args)  # under MPI rank 0 holds the lock and alone writes the run's files
    from .train.lock import RunLock, RunLocked  # one writer per run directory (train/lock.py)
    try:
        lock = RunLock(args.out, command=f"minidistil {args.command}")
    except RunLocked as e:
        raise UsageError(str(e)) from None
    with lock:
        if lock.note:
            sys.stderr.write(f"minidistil {args.command}: note: {lock.note}\n")
        from .atomic import remove_stale_temp_files
        remove_stale_temp_files(args.out)  # .tmp-* of a write killed before its rename
        return _cmd_locked(args)


def _cmd_locked(args) -> int:
    if not args.no_fast:  # after the lock: a refused second writer prints its one line only
        from . import fast
        fast.enable()
    if args.command == "demo" and not (args.pretrain or args.quick):
        return run_from_teacher(args)
    if args.command == "ablate" and not (args.pretrain or args.quick) and \
            stage_state(args.out, "pretrain") != "done":
        return run_from_teacher(args)
    cpu0 = time.process_time()
    cfg, saved = resolve_config(args)
    cmd = args.command
    if cmd in ("pretrain", "demo") and not getattr(args, "teacher", None):
        check_stage_free(args, "pretrain")
    if cmd in ("distill", "demo"):
        for name in (args.students if cmd == "demo" else ["distill"]):
            check_stage_free(args, name)
    if cmd == "ablate" and stage_state(args.out, "pretrain") != "done":
        check_stage_free(args, "pretrain")
    if args.resume and cmd in ("pretrain", "distill") and stage_state(args.out, cmd) == "none":
        raise UsageError(f"--resume: nothing to resume in {os.path.join(args.out, cmd)}")
    teacher = tok = None
    if cmd in ("distill", "evaluate") or (cmd == "demo" and args.teacher) or \
            (cmd == "ablate" and stage_state(args.out, "pretrain") == "done"):
        if getattr(args, "teacher", None) and not args.resume and cmd in ("distill", "demo") and \
                os.path.isdir(os.path.join(args.out, "pretrain")):
            raise UsageError(f"--out {args.out} holds its own pretrained teacher ("
                             f"{os.path.join(args.out, 'pretrain')}); use another --out with --teacher {args.teacher}")
        teacher, tok, cfg = load_teacher(args, cfg)
        if tok is not None:
            from .cli_config import ConfigError, check_after_teacher, check_teacher_out
            try:
                check_after_teacher(args, cfg, saved)
                if not args.resume and cmd in ("distill", "demo"):
                    check_teacher_out(args, tok)
            except ConfigError as e:
                raise UsageError(str(e)) from None
    if cmd == "distill" and getattr(args, "init_layers", None) and cfg.distill.student_init == "random":
        raise UsageError("--init-layers names the teacher blocks a student copies; a random start "
                         "(--init random) copies none: drop one of the two")
    if cmd == "distill" and teacher is not None and cfg.distill.student_init == "teacher":
        from .train.distill import init_layer_list
        try:  # before the data and the run directory: --init-layers must fit this teacher
            init_layer_list(cfg.distill.init_layers, teacher.config.num_hidden_layers, cfg.model.student_layers)
        except ValueError as e:
            raise UsageError(f"--init-layers: {e}") from None
    t0 = time.perf_counter()
    data = prepare(args, cfg, tokenizer=tok)
    say(args, f"data: {len(data.train)} training / {len(data.val)} validation sequences, "
               f"vocabulary {data.tokenizer.vocab_size} ({time.perf_counter() - t0:.1f} s)")
    # -------- from here on the run directory is written (under MPI: by rank 0, once all checked it)
    comm = getattr(args, "comm", None)
    if comm is not None:
        comm.barrier()
        comm.check_same("the training data (number of sequences)", len(data.train))
    if getattr(comm, "is_root", True):
        start_run_dir(args, cfg, data)
    if cmd == "pretrain":
        run_pretrain(args, cfg, data)
        return 0
    if cmd == "distill":
        run_distill(args, cfg, data, teacher)
        return 0
    if cmd == "evaluate":
        from .train.demo import load_students
        run_evaluate(args, cfg, data, teacher, load_students(args.out))
        return 0
    if cmd == "demo":
        if teacher is None:
            teacher, _ = run_pretrain(args, cfg, data)
        return run_demo_students(args, cfg, data, teacher, t0, cpu0)
    if cmd == "ablate":
        if teacher is None:
            teacher, _ = run_pretrain(args, cfg, data)
        return run_ablate(args, cfg, data, teacher, t0, cpu0)
    raise AssertionError(cmd)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":  # owned by minidistil.bench; imported only when asked for
        from .bench import main as bench_main
        return int(bench_main(argv[1:]) or 0)
    if argv and argv[0] == "bench-ranks":  # ranks against threads (minidistil/parallel/bench.py)
        from .parallel.bench import main as bench_ranks
        return int(bench_ranks(argv[1:]) or 0)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    if args.command is None:
        parser.print_help()
        return 0
    import warnings
    with warnings.catch_warnings():  # restored on return: main() changes nothing for its caller
        def one_line(message, category, filename, lineno, file=None, line=None):  # no source line
            sys.stderr.write(f"minidistil {args.command}: warning: {' '.join(str(message).split())}\n")
        warnings.showwarning = one_line
        return _dispatch(args)


def _dispatch(args) -> int:
    from .export import ExportError
    from .train.checkpoint import RunFileError
    from .train.loop import TrainingDiverged
    try:
        args.comm = _communicator(args)
        if args.command == "glue":
            from .commands.glue import run_glue_command
            return run_glue_command(args, UsageError)
        if args.command == "export":
            from .export import run
            return run(args)
        return _cmd(args)
    except (UsageError, ExportError, RunFileError) as e:
        return _fail(args, f"minidistil {args.command}: error: {' '.join(str(e).split())}", 2)
    except TrainingDiverged as e:
        return _fail(args, f"minidistil {args.command}: {' '.join(str(e).split())}", 1)
    except OSError as e:  # permissions, a read-only or full disk, a vanished folder: one line
        what = e.strerror or str(e)
        where = f" ({e.filename})" if e.filename else ""
        return _fail(args, f"minidistil {args.command}: error: {what}{where}; files already "
                     "written are intact (each is written to a temporary file, then renamed)", 2)
    except KeyboardInterrupt:
        return _fail(args, f"minidistil {args.command}: interrupted; continue with --resume", 130)
    except Exception as e:
        from .parallel.launch import abort_on_error
        abort_on_error(getattr(args, "comm", None), args.command, e)  # several ranks: stop them all
        raise


if __name__ == "__main__":
    sys.exit(main())
