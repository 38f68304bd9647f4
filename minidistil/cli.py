"""The command line: minidistil demo | pretrain | distill | evaluate | ablate | glue | export | bench.

    minidistil demo                 from the shipped teacher: the distilled student and three
                                    controls, Table 1 in miniature with intervals, the
                                    distillation gain, Table 3, plots (--pretrain: train the
                                    teacher from scratch first)
    minidistil pretrain --out DIR   train the teacher (MLM)
    minidistil distill  --out DIR   distil the student from DIR's teacher (or --teacher FOLDER)
    minidistil evaluate --out DIR   evaluate teacher and student, print the table, write plots
    minidistil ablate   --out DIR   Table 4 in miniature (5 variants x --seeds seeds)
    minidistil glue     --out DIR   fine-tune every model on the miniature GLUE (Tables 1 and 2)
    minidistil export DIR --to HF   a trained stage (student, or DIR/pretrain: the teacher) as a
                                    Hugging Face folder; distill and demo write DIR/distill/hf
    minidistil bench ...            kernel and model benchmarks
    minidistil bench-ranks          2 MPI ranks x 1 thread against 1 rank x 2 threads
    mpiexec -n N minidistil pretrain|distill ...   data-parallel (docs/distributed.md)

Bad input (a missing file, a bad number, an unwritable --out, an unusable corpus) gives one line
on stderr and exit code 2, before anything is written; so does a file-system error later (a full
or read-only disk). A diverged run exits with code 1. --resume continues with the run's own
config.json: no flag needs repeating. A finished stage keeps model.npz and drops its resume
checkpoint (--keep-checkpoints keeps it).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
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


# the ablation's budget: 7 rows x 5 seeds x ABLATE_STEPS steps, <= 30 minutes on 2 cores
ABLATE_STEPS = 120
ABLATE_STEPS_QUICK = 20
ABLATE_SEEDS = 5
POS_INT = _number(int, 1)
NONNEG_INT = _number(int, 0)
POS_FLOAT = _number(float, 0.0, strict=True)
NONNEG_FLOAT = _number(float, 0.0)


def TEMPERATURE(text):
    """> 0, and 1/T and T^2 representable in float32, the training dtype (1e-40 -> 1/T = inf)."""
    t = POS_FLOAT(text)
    if not (1.0 / 3.4e38 < t < 1.8e19):
        raise argparse.ArgumentTypeError(f"must be between 3e-39 and 1.8e19 (1/T and T^2 must fit "
                                         f"in float32), got {text!r}; the paper uses 2")
    return t


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="minidistil", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    from . import __version__
    from .export import add_parser as add_export_parser
    p.add_argument("--version", action="version", version=f"minidistil {__version__}")
    sub = p.add_subparsers(dest="command", metavar="{demo,pretrain,distill,evaluate,ablate,glue,export,bench}")

    def common(sp, default_out):
        sp.set_defaults(default_out=default_out)
        sp.add_argument("--out", help=f"run directory (default {default_out}, {default_out}-quick with --quick)")
        sp.add_argument("--seed", type=NONNEG_INT, help="random seed (default 0; on --resume the run's own)")
        sp.add_argument("--quick", action="store_true", help="tiny model, small corpus slice (seconds)")
        sp.add_argument("--corpus", metavar="PATH", help="a .txt file or a folder of .txt files "
                        "(default: the embedded CPython documentation corpus)")
        sp.add_argument("--resume", action="store_true", help="continue a killed run from its last "
                        "checkpoint, with the settings in its config.json")
        sp.add_argument("--no-progress", action="store_true", help="no progress bars")
        sp.add_argument("--no-fast", action="store_true", help="run the plain reference code only: "
                        "no thread pool, BLAS and malloc as they come (see minidistil.fast)")
        sp.add_argument("--keep-checkpoints", action="store_true", help="keep each finished stage's "
                        "resume checkpoint (checkpoint.npz) beside its model.npz")

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
    d.add_argument("--pretrain", action="store_true", help="pretrain the teacher from scratch "
                   "first instead of starting from the shipped teacher")
    d.add_argument("--pretrain-steps", type=POS_INT, help="teacher steps (with --pretrain or --quick)")
    d.add_argument("--distill-steps", type=POS_INT, help="steps of the student and of each control")
    d.add_argument("--teacher", metavar="FOLDER", help="start from this Hugging Face BERT folder "
                   "instead of the shipped teacher")

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
    s.add_argument("--init", choices=["teacher", "random"], help="student initialisation: one teacher "
                   "layer out of two (default) or random")
    s.add_argument("--alpha-ce", type=NONNEG_FLOAT, help="weight of the soft-target loss Lce (default 5.0)")
    s.add_argument("--alpha-mlm", type=NONNEG_FLOAT, help="weight of the masked-LM loss Lmlm (default 2.0)")
    s.add_argument("--alpha-cos", type=NONNEG_FLOAT, help="weight of the hidden-state cosine loss Lcos (default 1.0)")
    s.add_argument("--temperature", type=TEMPERATURE, help="softmax temperature of Lce (default 2.0)")

    s = sub.add_parser("evaluate", help="evaluate teacher and student, print the comparison")
    common(s, "runs/demo")
    s.add_argument("--teacher", metavar="FOLDER", help="a Hugging Face BERT folder as the teacher")

    s = sub.add_parser("ablate", help="Table 4 in miniature: ablations x seeds")
    common(s, "runs/ablate")
    s.add_argument("--seeds", type=POS_INT, default=ABLATE_SEEDS,
                   help=f"seeds per row (default {ABLATE_SEEDS})")
    s.add_argument("--steps", type=POS_INT, help=f"distillation steps per run (default {ABLATE_STEPS}, "
                   f"{ABLATE_STEPS_QUICK} with --quick)")
    s.add_argument("--pretrain-steps", type=POS_INT, help="teacher steps (with --pretrain or --quick)")
    s.add_argument("--pretrain", action="store_true", help="pretrain the teacher from scratch "
                   "first instead of starting from the shipped teacher")
    s.add_argument("--teacher", metavar="FOLDER", help="start from this Hugging Face BERT folder "
                   "instead of the shipped teacher")

    from .train.glue_cli import add_glue_parser
    add_glue_parser(sub, POS_INT, POS_FLOAT, NONNEG_FLOAT)
    add_export_parser(sub)
    sub.add_parser("bench", help="benchmarks (run `minidistil bench --help`)", add_help=False)
    return p


# ---------------------------------------------------------------- configuration and checks

def _config(args):
    from .cli_config import ConfigError, resolve
    preset = getattr(args, "preset", None)
    if preset and args.quick:
        raise UsageError(f"--quick and --preset {preset} choose two recipes; give one of them")
    try:
        return resolve(args)
    except ConfigError as e:
        raise UsageError(str(e)) from None


def _check_inputs(args) -> None:
    """Everything that can be checked without work: paths and the output folder."""
    from .train.runs import check_writable_dir
    if not args.out.strip():
        raise UsageError("--out: empty path; name a folder for the run")
    if args.corpus is not None and not args.corpus.strip():
        raise UsageError("--corpus '': an empty path; omit --corpus to use the built-in corpus")
    if args.corpus and not os.path.exists(args.corpus):
        raise UsageError(f"--corpus {args.corpus}: no such file or folder")
    if args.corpus and not (os.path.isfile(args.corpus) or os.path.isdir(args.corpus)):
        raise UsageError(f"--corpus {args.corpus}: not a regular file or a folder (a FIFO, device "
                         "or socket); pass a .txt file or a folder of .txt files")
    teacher = getattr(args, "teacher", None)
    if teacher and not os.path.isdir(teacher):
        raise UsageError(f"--teacher {teacher}: not a folder (expected a Hugging Face BERT folder "
                         "with config.json, vocab.txt and model weights)")
    try:
        check_writable_dir(args.out)
    except ValueError as e:
        raise UsageError(str(e)) from None
    _probe_out(args.out)


def _probe_out(out):
    """Create ``out`` and a file in it, then remove what was made: a read-only disk (which
    ``os.access`` does not see for root), /proc or /sys fail here, before any work."""
    path, made = os.path.abspath(out), []
    while not os.path.exists(path):
        made.append(path)
        path = os.path.dirname(path)
    try:
        os.makedirs(out, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot write there ({e.strerror or e})") from None
    finally:
        for d in made:  # innermost first
            try:
                os.rmdir(d)
            except OSError:
                pass


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
    # data, model, seed and the evaluation come from the run directory; stage settings from this command
    return dataclasses.replace(cfg, seed=saved.seed, data=saved.data, model=saved.model,
                               eval=saved.eval), True


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
    from .cli_config import save
    from .train.runs import VOCAB_FILE
    os.makedirs(args.out, exist_ok=True)
    if not args.resume:  # a new stage's settings; --resume keeps the stored ones
        save(args.out, cfg, getattr(args, "teacher", None))
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
    _finish_stage(args, "pretrain", res.finished)
    return teacher, res.finished


def _finish_stage(args, stage, finished, model=None, tokenizer=None):
    """A finished stage: drop the resume checkpoint (model.npz stays); the student's HF folder."""
    from .train.loop import CKPT_FILE
    if not finished:
        return
    ckpt = os.path.join(args.out, stage, CKPT_FILE)
    if not args.keep_checkpoints and os.path.isfile(ckpt):
        os.unlink(ckpt)
    if model is not None:
        from .export import HF_DIR, write_hf_folder
        folder = os.path.join(args.out, stage, HF_DIR)
        if not os.path.isfile(os.path.join(folder, "model.safetensors")):
            _say(args, "Hugging Face folder: " + write_hf_folder(model, tokenizer, folder))


def _run_distill(args, cfg, data, teacher):
    from .train.distill import distill
    from .train.runs import MODEL_FILE, load_model
    if _stage_state(args.out, "distill") == "done":
        _say(args, "student already trained: reusing " + os.path.join(args.out, "distill", MODEL_FILE))
        student = load_model(os.path.join(args.out, "distill", MODEL_FILE))[0]
        _finish_stage(args, "distill", True, student, data.tokenizer)
        return student, True
    t0 = time.perf_counter()
    student, res = distill(cfg, args.out, data, teacher, resume=args.resume, comm=getattr(args, "comm", None),
                           max_steps=getattr(args, "max_steps", None), progress=not args.no_progress)
    parts = " (" + ", ".join(f"{k} {v:.3f}" for k, v in res.last_losses.items()) + ")" if res.last_losses else ""
    _say(args, f"distill: {res.step}/{cfg.distill.steps} steps in {time.perf_counter() - t0:.1f} s{parts}")
    _finish_stage(args, "distill", res.finished, student, data.tokenizer)
    return student, res.finished


def _run_evaluate(args, cfg, data, teacher, students: dict):
    from .train.controls import format_claims
    from .train.demo import evaluate_run, write_plots
    from .train.evaluate import format_table, format_targets
    report = evaluate_run(args.out, cfg, data, teacher, students)
    paths = write_plots(args.out, report, data, cfg, teacher)
    print("Table 1 in miniature:")
    print(format_claims(report))
    print("\nTable 3 in miniature:")
    print(format_table(report))
    print(format_targets(report))
    _say(args, "plots: " + ", ".join(paths))
    return report


def _from_teacher(args) -> int:
    """``demo``/``ablate`` without --pretrain/--quick: the shipped teacher (or --teacher)."""
    from .train import demo
    from .train.controls import STUDENTS
    t0, cpu0 = time.perf_counter(), time.process_time()
    _check_inputs(args)
    try:
        folder = args.teacher or demo.shipped_teacher_folder()
        teacher, tok = demo.load_teacher_folder(folder)
    except (ValueError, OSError, KeyError, TypeError) as e:
        raise UsageError(f"teacher: {e}") from None
    corpus = os.path.abspath(args.corpus) if args.corpus else None
    cfg = demo.teacher_run_config(folder, teacher, tok, seed=args.seed or 0,
                                  steps=getattr(args, "distill_steps", None), corpus=corpus)
    cfg, _ = _merge_saved_config(args, cfg)
    for name in (STUDENTS if args.command == "demo" else []):
        _check_stage_free(args, name)
    data = _prepare(args, cfg, tokenizer=tok)
    _say(args, f"teacher: {folder} ({teacher.config.num_hidden_layers} layers, hidden "
               f"{teacher.config.hidden_size}, {teacher.num_parameters() / 1e6:.2f}M parameters); data: "
               f"{len(data.train)} training / {len(data.val)} validation sequences of at most "
               f"{cfg.data.max_len} tokens ({time.perf_counter() - t0:.1f} s)")
    demo.write_teacher_run(args.out, cfg, data, teacher, source=str(folder))
    if args.command == "ablate":
        return _ablate(args, cfg, data, teacher, t0, cpu0)
    return _demo_students(args, cfg, data, teacher, t0, cpu0)


def _ablate(args, cfg, data, teacher, t0, cpu0) -> int:
    from .train.ablate import ablate, format_ablation, plot_rows
    from .train.plots_claims import plot_ablation_ci
    seeds = list(range(cfg.seed, cfg.seed + args.seeds))
    steps = args.steps or (ABLATE_STEPS_QUICK if args.quick else ABLATE_STEPS)
    report = ablate(cfg, args.out, data, teacher, seeds, steps=steps, progress=not args.no_progress)
    os.makedirs(os.path.join(args.out, "plots"), exist_ok=True)
    path = os.path.join(args.out, "plots", "ablation.png")
    plot_ablation_ci(plot_rows(report), path)
    print(format_ablation(report))
    _say(args, f"ablation finished in {time.perf_counter() - t0:.0f} s wall, "
               f"{time.process_time() - cpu0:.0f} s CPU; plot: {path}")
    return 0


def _demo_students(args, cfg, data, teacher, t0, cpu0) -> int:
    from .train import demo
    t1 = time.perf_counter()
    models, _ = demo.run_students(cfg, args.out, data, teacher, resume=args.resume,
                                  progress=not args.no_progress, log=lambda m: _say(args, m))
    for name, (model, finished) in models.items():  # the distilled student also as an HF folder
        _finish_stage(args, name, finished, model if name == "distill" else None, data.tokenizer)
    _run_evaluate(args, cfg, data, teacher, {k: m for k, (m, _) in models.items()})
    _say(args, f"demo finished in {time.perf_counter() - t0:.0f} s wall, "
               f"{time.process_time() - cpu0:.0f} s CPU (students and evaluation "
               f"{time.perf_counter() - t1:.0f} s wall); run directory {args.out}")
    return 0


def _cmd(args) -> int:
    if args.out is None:  # --quick runs get their own folder: runs/demo-quick beside runs/demo
        args.out = args.default_out + ("-quick" if args.quick else "")
    _check_inputs(args)
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
        return _from_teacher(args)
    if args.command == "ablate" and not (args.pretrain or args.quick) and \
            _stage_state(args.out, "pretrain") != "done":
        return _from_teacher(args)
    cpu0 = time.process_time()
    cfg, saved = _config(args)
    cmd = args.command
    if cmd in ("pretrain", "demo") and not getattr(args, "teacher", None):
        _check_stage_free(args, "pretrain")
    if cmd in ("distill", "demo"):
        from .train.controls import STUDENTS
        for name in (STUDENTS if cmd == "demo" else ["distill"]):
            _check_stage_free(args, name)
    if cmd == "ablate" and _stage_state(args.out, "pretrain") != "done":
        _check_stage_free(args, "pretrain")
    if args.resume and cmd in ("pretrain", "distill") and _stage_state(args.out, cmd) == "none":
        raise UsageError(f"--resume: nothing to resume in {os.path.join(args.out, cmd)}")
    teacher = tok = None
    if cmd in ("distill", "evaluate") or (cmd == "demo" and args.teacher) or \
            (cmd == "ablate" and _stage_state(args.out, "pretrain") == "done"):
        if getattr(args, "teacher", None) and not args.resume and cmd in ("distill", "demo") and \
                os.path.isdir(os.path.join(args.out, "pretrain")):
            raise UsageError(f"--out {args.out} holds its own pretrained teacher ("
                             f"{os.path.join(args.out, 'pretrain')}); use another --out with --teacher {args.teacher}")
        teacher, tok, cfg = _teacher(args, cfg)
        if tok is not None:
            from .cli_config import ConfigError, check_after_teacher, check_teacher_out
            try:
                check_after_teacher(args, cfg, saved)
                if not args.resume and cmd in ("distill", "demo"):
                    check_teacher_out(args, tok)
            except ConfigError as e:
                raise UsageError(str(e)) from None
    t0 = time.perf_counter()
    data = _prepare(args, cfg, tokenizer=tok)
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
        from .train.demo import load_students
        _run_evaluate(args, cfg, data, teacher, load_students(args.out))
        return 0
    if cmd == "demo":
        if teacher is None:
            teacher, done = _run_pretrain(args, cfg, data)
        return _demo_students(args, cfg, data, teacher, t0, cpu0)
    if cmd == "ablate":
        if teacher is None:
            teacher, _ = _run_pretrain(args, cfg, data)
        return _ablate(args, cfg, data, teacher, t0, cpu0)
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
            from .train.glue_cli import run_glue_command
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
