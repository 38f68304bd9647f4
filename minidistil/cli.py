"""The command line: ``minidistil demo | pretrain | distill | evaluate | ablate | bench``.

    minidistil demo                 tokenizer + teacher pretraining + distillation + evaluation
                                    + plots on the embedded corpus (the paper's Table 3)
    minidistil pretrain --out DIR   train the teacher (MLM)
    minidistil distill  --out DIR   distil the student from DIR's teacher (or --teacher FOLDER)
    minidistil evaluate --out DIR   evaluate teacher and student, print the table, write plots
    minidistil ablate   --out DIR   Table 4 in miniature (5 variants x --seeds seeds)
    minidistil glue     --out DIR   fine-tune every model on the miniature GLUE (Tables 1 and 2)
    minidistil bench ...            kernel and model benchmarks
    minidistil bench-ranks          2 MPI ranks x 1 thread against 1 rank x 2 threads
    mpiexec -n N minidistil pretrain|distill ...   data-parallel (docs/distributed.md)

Bad input (a missing file, a bad number, an unwritable --out, an unusable corpus) gives one line
on stderr and exit code 2, before anything is written. A diverged run exits with code 1.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time


class UsageError(Exception):
    """Bad command-line input: reported on one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _number(kind, low=None, name="value", strict=False):
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if kind is float and not (v == v and abs(v) != float("inf")):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if low is not None and (v <= low if strict else v < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low}, got {text!r}")
        return v
    return parse


# the ablation's budget: 5 variants x 3 seeds x 200 steps + a teacher, <= 30 minutes on 2 cores
ABLATE_STEPS = 200
ABLATE_STEPS_QUICK = 20
POS_INT = _number(int, 1)
NONNEG_INT = _number(int, 0)
POS_FLOAT = _number(float, 0.0, strict=True)
NONNEG_FLOAT = _number(float, 0.0)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="minidistil", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="command", metavar="{demo,pretrain,distill,evaluate,ablate,glue,bench}")

    def common(sp, default_out):
        sp.add_argument("--out", default=default_out, help=f"run directory (default {default_out})")
        sp.add_argument("--seed", type=NONNEG_INT, default=0, help="random seed (default 0)")
        sp.add_argument("--quick", action="store_true", help="tiny model, small corpus slice (seconds)")
        sp.add_argument("--corpus", metavar="PATH", help="a .txt file or a folder of .txt files "
                        "(default: the embedded CPython documentation corpus)")
        sp.add_argument("--resume", action="store_true", help="continue a killed run from its last checkpoint")
        sp.add_argument("--no-progress", action="store_true", help="no progress bars")
        sp.add_argument("--no-fast", action="store_true", help="run the plain reference code only: "
                        "no thread pool, BLAS and malloc as they come (see minidistil.fast)")

    def training(sp):
        sp.add_argument("--steps", type=POS_INT, help="optimizer steps (overrides the preset)")
        sp.add_argument("--lr", type=POS_FLOAT, help="peak learning rate")
        sp.add_argument("--batch-size", type=POS_INT, help="sequences per micro-batch")
        sp.add_argument("--accum-steps", type=POS_INT, help="micro-batches per optimizer step")
        sp.add_argument("--max-steps", type=POS_INT, help="stop after this many steps (as if killed; "
                        "continue with --resume)")
        sp.add_argument("--mpi", action="store_true", help="data-parallel over MPI ranks (automatic "
                        "under mpiexec; needs pip install 'minidistil[mpi]'; docs/distributed.md)")

    d = sub.add_parser("demo", help="the whole pipeline on the embedded corpus")
    common(d, "runs/demo")
    d.add_argument("--pretrain-steps", type=POS_INT)
    d.add_argument("--distill-steps", type=POS_INT)
    d.add_argument("--teacher", metavar="FOLDER", help="skip pretraining: a Hugging Face BERT folder")

    s = sub.add_parser("pretrain", help="train the teacher with masked language modelling")
    common(s, "runs/demo")
    training(s)
    s.add_argument("--preset", choices=["demo", "teacher"], help="a named recipe: demo (the demo's "
                   "teacher, default) or teacher (the recipe of the teacher shipped in "
                   "minidistil/assets, about an hour on 2 cores)")

    s = sub.add_parser("distill", help="distil the student from the teacher (triple loss)")
    common(s, "runs/demo")
    training(s)
    s.add_argument("--teacher", metavar="FOLDER", help="a Hugging Face BERT folder (config.json, "
                   "vocab.txt, weights) instead of the teacher pretrained in --out")
    s.add_argument("--init", choices=["teacher", "random"], help="student initialisation")
    s.add_argument("--alpha-ce", type=NONNEG_FLOAT)
    s.add_argument("--alpha-mlm", type=NONNEG_FLOAT)
    s.add_argument("--alpha-cos", type=NONNEG_FLOAT)
    s.add_argument("--temperature", type=POS_FLOAT)

    s = sub.add_parser("evaluate", help="evaluate teacher and student, print the comparison")
    common(s, "runs/demo")
    s.add_argument("--teacher", metavar="FOLDER", help="a Hugging Face BERT folder as the teacher")

    s = sub.add_parser("ablate", help="Table 4 in miniature: ablations x seeds")
    common(s, "runs/ablate")
    s.add_argument("--seeds", type=POS_INT, default=3, help="seeds per variant (default 3)")
    s.add_argument("--steps", type=POS_INT, help=f"distillation steps per run (default {ABLATE_STEPS}, "
                   f"{ABLATE_STEPS_QUICK} with --quick)")
    s.add_argument("--pretrain-steps", type=POS_INT)

    from .train.glue_cli import add_glue_parser
    add_glue_parser(sub, POS_INT, POS_FLOAT, NONNEG_FLOAT)
    sub.add_parser("bench", help="benchmarks (run `minidistil bench --help`)", add_help=False)
    return p


# ---------------------------------------------------------------- configuration and checks

def _config(args):
    from .train.runs import PRESETS
    preset = getattr(args, "preset", None)
    if preset and args.quick:
        raise UsageError(f"--quick and --preset {preset} choose two recipes; give one of them")
    cfg = PRESETS["quick" if args.quick else preset or "demo"](args.seed)
    if args.corpus:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, corpus=os.path.abspath(args.corpus)))
    cmd = args.command
    stage_over = {k: getattr(args, a) for k, a in
                  (("steps", "steps"), ("lr", "lr"), ("batch_size", "batch_size"),
                   ("accum_steps", "accum_steps")) if getattr(args, a, None) is not None}
    if cmd == "pretrain" and stage_over:
        cfg = dataclasses.replace(cfg, pretrain=dataclasses.replace(cfg.pretrain, **stage_over))
    if cmd == "distill":
        extra = {"student_init": args.init} if args.init is not None else {}
        loss = {k: getattr(args, k) for k in ("alpha_ce", "alpha_mlm", "alpha_cos", "temperature")
                if getattr(args, k) is not None}
        if loss:
            try:
                extra["loss"] = dataclasses.replace(cfg.distill.loss, **loss)
            except (TypeError, ValueError) as e:
                raise UsageError(str(e)) from None
        if stage_over or extra:
            cfg = dataclasses.replace(cfg, distill=dataclasses.replace(cfg.distill, **stage_over, **extra))
    if cmd in ("demo", "ablate") and getattr(args, "pretrain_steps", None):
        cfg = dataclasses.replace(cfg, pretrain=dataclasses.replace(cfg.pretrain, steps=args.pretrain_steps))
    if cmd == "demo" and args.distill_steps:
        cfg = dataclasses.replace(cfg, distill=dataclasses.replace(cfg.distill, steps=args.distill_steps))
    return cfg


def _check_inputs(args) -> None:
    """Everything that can be checked without work: paths and the output folder."""
    from .train.runs import check_writable_dir
    if args.corpus and not os.path.exists(args.corpus):
        raise UsageError(f"--corpus {args.corpus}: no such file or folder")
    teacher = getattr(args, "teacher", None)
    if teacher and not os.path.isdir(teacher):
        raise UsageError(f"--teacher {teacher}: not a folder (expected a Hugging Face BERT folder "
                         "with config.json, vocab.txt and model weights)")
    try:
        check_writable_dir(args.out)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _merge_saved_config(args, cfg):
    """A run directory keeps its data/model settings: a later command must agree with them."""
    from .train.runs import CONFIG_FILE, load_config
    path = os.path.join(args.out, CONFIG_FILE)
    if not os.path.isfile(path):
        return cfg, False
    try:
        saved = load_config(args.out)
    except (ValueError, TypeError, KeyError, OSError) as e:
        raise UsageError(f"--out {args.out}: unreadable {CONFIG_FILE} ({e})") from None
    if saved.data != cfg.data or saved.model != cfg.model or saved.seed != cfg.seed:
        if args.command in ("pretrain", "demo", "ablate") or args.corpus or args.quick or args.seed:
            raise UsageError(f"--out {args.out} holds a run with another corpus/model/seed "
                             "configuration; use another --out (or the same options)")
    # data, model and seed come from the run directory; stage settings from this command
    return dataclasses.replace(cfg, seed=saved.seed, data=saved.data, model=saved.model), True


def _prepare(args, cfg, vocab_path=None, tokenizer=None):
    """Load the corpus and tokenize it (the slow checks); errors -> UsageError."""
    from .train.runs import VOCAB_FILE, prepare_data
    if vocab_path is None:
        vocab_path = os.path.join(args.out, VOCAB_FILE)
    try:
        return prepare_data(cfg.data, vocab_path=vocab_path, tokenizer=tokenizer)
    except (ValueError, OSError, UnicodeError) as e:
        where = f"--corpus {args.corpus}" if args.corpus else "corpus"
        raise UsageError(f"{where}: {e}") from None


def _start_run_dir(args, cfg, data) -> None:
    from .atomic import atomic_write_text
    from .train.runs import CONFIG_FILE, VOCAB_FILE, save_config
    os.makedirs(args.out, exist_ok=True)
    if not os.path.isfile(os.path.join(args.out, CONFIG_FILE)):
        save_config(args.out, cfg)
    vocab = os.path.join(args.out, VOCAB_FILE)
    if not os.path.isfile(vocab):
        tmp = vocab + ".tmp"
        data.tokenizer.save(tmp)
        with open(tmp, encoding="utf-8") as f:
            text = f.read()
        os.unlink(tmp)
        atomic_write_text(vocab, text)


def _stage_state(out, stage):
    """'done' (model.npz), 'partial' (checkpoint only) or 'none'."""
    from .train.loop import CKPT_FILE
    from .train.runs import MODEL_FILE
    folder = os.path.join(out, stage)
    if os.path.isfile(os.path.join(folder, MODEL_FILE)):
        return "done"
    return "partial" if os.path.isfile(os.path.join(folder, CKPT_FILE)) else "none"


def _check_stage_free(args, stage):
    state = _stage_state(args.out, stage)
    if state != "none" and not args.resume:
        raise UsageError(f"--out {args.out} already holds a {stage} run ({state}); "
                         "pass --resume to continue it or choose another --out")


def _load_hf_teacher(folder):
    try:
        from .io.pretrained import load_pretrained
    except ImportError:
        raise UsageError("--teacher needs minidistil.io.pretrained, which this install lacks") from None
    try:
        loaded = load_pretrained(folder)
    except (ValueError, OSError, KeyError, TypeError) as e:
        raise UsageError(f"--teacher {folder}: {e}") from None
    model, tokenizer = loaded
    from .models import Bert
    if not isinstance(model, Bert):
        raise UsageError(f"--teacher {folder}: the teacher must be a BERT checkpoint, "
                         f"got a {type(model).__name__}")
    return model, tokenizer


def _teacher(args, cfg):
    """(teacher, tokenizer or None, cfg) from --teacher FOLDER or DIR/pretrain/model.npz."""
    from .train.runs import MODEL_FILE, ModelSpec, load_model
    if getattr(args, "teacher", None):
        teacher, tok = _load_hf_teacher(args.teacher)
        c = teacher.config
        spec = ModelSpec(c.hidden_size, c.num_hidden_layers, c.num_attention_heads,
                         c.intermediate_size, max(1, c.num_hidden_layers // 2))
        data = dataclasses.replace(cfg.data, vocab_size=tok.vocab_size,
                                   max_len=min(cfg.data.max_len, c.max_position_embeddings))
        return teacher, tok, dataclasses.replace(cfg, model=spec, data=data)
    path = os.path.join(args.out, "pretrain", MODEL_FILE)
    if not os.path.isfile(path):
        raise UsageError(f"no teacher in {args.out}: run `minidistil pretrain --out {args.out}` "
                         "first or pass --teacher FOLDER")
    teacher, _ = load_model(path)
    return teacher, None, cfg


# ---------------------------------------------------------------- commands

def _say(args, msg):
    if getattr(getattr(args, "comm", None), "is_root", True):  # under MPI, rank 0 alone speaks
        print(msg, flush=True)


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


def _run_pretrain(args, cfg, data):
    from .train.pretrain import pretrain
    from .train.runs import MODEL_FILE, load_model
    if _stage_state(args.out, "pretrain") == "done":
        _say(args, "teacher already trained: reusing " + os.path.join(args.out, "pretrain", MODEL_FILE))
        return load_model(os.path.join(args.out, "pretrain", MODEL_FILE))[0], True
    t0 = time.perf_counter()
    teacher, res = pretrain(cfg, args.out, data, resume=args.resume, comm=getattr(args, "comm", None),
                            max_steps=getattr(args, "max_steps", None), progress=not args.no_progress)
    last = f", last loss {res.last_losses['loss']:.3f}" if "loss" in res.last_losses else ""
    _say(args, f"pretrain: {res.step}/{cfg.pretrain.steps} steps in {time.perf_counter() - t0:.1f} s{last}")
    return teacher, res.finished


def _run_distill(args, cfg, data, teacher):
    from .train.distill import distill
    from .train.runs import MODEL_FILE, load_model
    if _stage_state(args.out, "distill") == "done":
        _say(args, "student already trained: reusing " + os.path.join(args.out, "distill", MODEL_FILE))
        return load_model(os.path.join(args.out, "distill", MODEL_FILE))[0], True
    t0 = time.perf_counter()
    student, res = distill(cfg, args.out, data, teacher, resume=args.resume, comm=getattr(args, "comm", None),
                           max_steps=getattr(args, "max_steps", None), progress=not args.no_progress)
    parts = " (" + ", ".join(f"{k} {v:.3f}" for k, v in res.last_losses.items()) + ")" if res.last_losses else ""
    _say(args, f"distill: {res.step}/{cfg.distill.steps} steps in {time.perf_counter() - t0:.1f} s{parts}")
    return student, res.finished


def _run_evaluate(args, cfg, data, teacher, student):
    from .atomic import atomic_write_json
    from .train.evaluate import evaluate_models, format_table, format_targets
    from .train.plots import plot_run
    t0 = time.perf_counter()
    report = evaluate_models(teacher, student, data, cfg.eval)
    report["eval_time_s"] = time.perf_counter() - t0
    atomic_write_json(os.path.join(args.out, "eval.json"), report)
    paths = plot_run(args.out, report)
    print(format_table(report))
    print(format_targets(report))
    _say(args, "plots: " + ", ".join(paths))
    return report


def _cmd(args) -> int:
    if not args.no_fast:
        from . import fast
        fast.enable()
    cfg = _config(args)
    _check_inputs(args)
    cfg, existing = _merge_saved_config(args, cfg)
    cmd = args.command
    if cmd in ("pretrain", "demo") and not getattr(args, "teacher", None):
        _check_stage_free(args, "pretrain")
    if cmd in ("distill", "demo"):
        _check_stage_free(args, "distill")
    if cmd == "ablate" and _stage_state(args.out, "pretrain") != "done":
        _check_stage_free(args, "pretrain")
    if args.resume and cmd in ("pretrain", "distill") and _stage_state(args.out, cmd) == "none":
        raise UsageError(f"--resume: nothing to resume in {os.path.join(args.out, cmd)}")
    teacher = tok = None
    if cmd in ("distill", "evaluate") or (cmd == "demo" and args.teacher) or \
            (cmd == "ablate" and _stage_state(args.out, "pretrain") == "done"):
        teacher, tok, cfg = _teacher(args, cfg)
    vocab_path = os.path.join(args.teacher, "vocab.txt") if getattr(args, "teacher", None) else None
    t0 = time.perf_counter()
    data = _prepare(args, cfg, vocab_path=vocab_path, tokenizer=tok)
    _say(args, f"data: {len(data.train)} training / {len(data.val)} validation sequences, "
               f"vocabulary {data.tokenizer.vocab_size} ({time.perf_counter() - t0:.1f} s)")
    # -------- from here on the run directory is written (under MPI: by rank 0, once all checked it)
    comm = getattr(args, "comm", None)
    if comm is not None:
        comm.barrier()
        comm.check_same("the training data (number of sequences)", len(data.train))
    if getattr(comm, "is_root", True):
        _start_run_dir(args, cfg, data)
    if cmd == "pretrain":
        _run_pretrain(args, cfg, data)
        return 0
    if cmd == "distill":
        _run_distill(args, cfg, data, teacher)
        return 0
    if cmd == "evaluate":
        from .train.runs import MODEL_FILE, load_model
        spath = os.path.join(args.out, "distill", MODEL_FILE)
        student = load_model(spath)[0] if os.path.isfile(spath) else None
        _run_evaluate(args, cfg, data, teacher, student)
        return 0
    if cmd == "demo":
        t_start = time.perf_counter()
        if teacher is None:
            teacher, done = _run_pretrain(args, cfg, data)
        student, _ = _run_distill(args, cfg, data, teacher)
        _run_evaluate(args, cfg, data, teacher, student)
        _say(args, f"demo finished in {time.perf_counter() - t0:.0f} s "
                   f"(training and evaluation {time.perf_counter() - t_start:.0f} s); run directory {args.out}")
        return 0
    if cmd == "ablate":
        from .train.ablate import ablate, format_ablation
        from .train.plots import plot_ablation
        if teacher is None:
            teacher, _ = _run_pretrain(args, cfg, data)
        seeds = list(range(args.seed, args.seed + args.seeds))
        steps = args.steps or (ABLATE_STEPS_QUICK if args.quick else ABLATE_STEPS)
        report = ablate(cfg, args.out, data, teacher, seeds, steps=steps,
                        progress=not args.no_progress)
        os.makedirs(os.path.join(args.out, "plots"), exist_ok=True)
        path = os.path.join(args.out, "plots", "ablation.png")
        plot_ablation(report["summary"], path)
        print(format_ablation(report))
        _say(args, f"ablation finished in {time.perf_counter() - t0:.0f} s; plot: {path}")
        return 0
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
    from .train.loop import TrainingDiverged
    try:
        args.comm = _communicator(args)
        if args.command == "glue":
            from .train.glue_cli import run_glue_command
            return run_glue_command(args, UsageError)
        return _cmd(args)
    except UsageError as e:
        return _fail(args, f"minidistil {args.command}: error: {' '.join(str(e).split())}", 2)
    except TrainingDiverged as e:
        return _fail(args, f"minidistil {args.command}: {' '.join(str(e).split())}", 1)
    except KeyboardInterrupt:
        return _fail(args, f"minidistil {args.command}: interrupted; continue with --resume", 130)
    except Exception as e:
        from .parallel.launch import abort_on_error
        abort_on_error(getattr(args, "comm", None), args.command, e)  # several ranks: stop them all
        raise


if __name__ == "__main__":
    sys.exit(main())
