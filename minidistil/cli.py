"""The command line: minidistil demo | pretrain | distill | evaluate | ablate | glue | export | bench.

    minidistil demo                 tokenizer + teacher pretraining + distillation + evaluation
                                    + plots on the embedded corpus (the paper's Table 3)
    minidistil pretrain --out DIR   train the teacher (MLM)
    minidistil distill  --out DIR   distil the student from DIR's teacher (or --teacher FOLDER)
    minidistil evaluate --out DIR   evaluate teacher and student, print the table, write plots
    minidistil ablate   --out DIR   Table 4 in miniature (5 variants x --seeds seeds)
    minidistil glue     --out DIR   fine-tune every model on the miniature GLUE (Tables 1 and 2)
    minidistil export DIR --to HF   a trained stage (student, or DIR/pretrain: the teacher) as a
                                    Hugging Face folder; distill and demo write DIR/distill/hf
    minidistil bench ...            kernel and model benchmarks

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
        sp.add_argument("--keep-checkpoints", action="store_true", help="keep each finished stage's "
                        "resume checkpoint (checkpoint.npz) beside its model.npz")

    def training(sp):
        sp.add_argument("--steps", type=POS_INT, help="optimizer steps (overrides the preset)")
        sp.add_argument("--lr", type=POS_FLOAT, help="peak learning rate")
        sp.add_argument("--batch-size", type=POS_INT, help="sequences per micro-batch")
        sp.add_argument("--accum-steps", type=POS_INT, help="micro-batches per optimizer step")
        sp.add_argument("--max-steps", type=POS_INT, help="stop after this many steps (as if killed; "
                        "continue with --resume)")

    d = sub.add_parser("demo", help="the whole pipeline on the embedded corpus")
    common(d, "runs/demo")
    d.add_argument("--pretrain-steps", type=POS_INT, help="teacher pretraining steps (overrides the preset)")
    d.add_argument("--distill-steps", type=POS_INT, help="distillation steps (overrides the preset)")
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
    s.add_argument("--init", choices=["teacher", "random"], help="student initialisation: one teacher "
                   "layer out of two (default) or random")
    s.add_argument("--alpha-ce", type=NONNEG_FLOAT, help="weight of the soft-target loss Lce (default 5.0)")
    s.add_argument("--alpha-mlm", type=NONNEG_FLOAT, help="weight of the masked-LM loss Lmlm (default 2.0)")
    s.add_argument("--alpha-cos", type=NONNEG_FLOAT, help="weight of the hidden-state cosine loss Lcos (default 1.0)")
    s.add_argument("--temperature", type=POS_FLOAT, help="softmax temperature of Lce (default 2.0)")

    s = sub.add_parser("evaluate", help="evaluate teacher and student, print the comparison")
    common(s, "runs/demo")
    s.add_argument("--teacher", metavar="FOLDER", help="a Hugging Face BERT folder as the teacher")

    s = sub.add_parser("ablate", help="Table 4 in miniature: ablations x seeds")
    common(s, "runs/ablate")
    s.add_argument("--seeds", type=POS_INT, default=3, help="seeds per variant (default 3)")
    s.add_argument("--steps", type=POS_INT, help=f"distillation steps per run (default {ABLATE_STEPS}, "
                   f"{ABLATE_STEPS_QUICK} with --quick)")
    s.add_argument("--pretrain-steps", type=POS_INT, help="teacher pretraining steps (overrides the preset)")

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
    print(msg, flush=True)


def _run_pretrain(args, cfg, data):
    from .train.pretrain import pretrain
    from .train.runs import MODEL_FILE, load_model
    if _stage_state(args.out, "pretrain") == "done":
        _say(args, "teacher already trained: reusing " + os.path.join(args.out, "pretrain", MODEL_FILE))
        return load_model(os.path.join(args.out, "pretrain", MODEL_FILE))[0], True
    t0 = time.perf_counter()
    teacher, res = pretrain(cfg, args.out, data, resume=args.resume,
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
    student, res = distill(cfg, args.out, data, teacher, resume=args.resume,
                           max_steps=getattr(args, "max_steps", None), progress=not args.no_progress)
    parts = " (" + ", ".join(f"{k} {v:.3f}" for k, v in res.last_losses.items()) + ")" if res.last_losses else ""
    _say(args, f"distill: {res.step}/{cfg.distill.steps} steps in {time.perf_counter() - t0:.1f} s{parts}")
    _finish_stage(args, "distill", res.finished, student, data.tokenizer)
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
    if args.out is None:  # --quick runs get their own folder: runs/demo-quick beside runs/demo
        args.out = args.default_out + ("-quick" if args.quick else "")
    _check_inputs(args)
    cfg, saved = _config(args)
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
    # -------- from here on the run directory is written
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
        try:
            from . import bench
        except ImportError:
            sys.stderr.write("minidistil: error: bench is not available in this install\n")
            return 2
        return int(bench.main(argv[1:]) or 0)
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
    from .train.loop import TrainingDiverged
    try:
        if args.command == "glue":
            from .train.glue_cli import run_glue_command
            return run_glue_command(args, UsageError)
        if args.command == "export":
            from .export import run
            return run(args)
        return _cmd(args)
    except (UsageError, ExportError) as e:
        sys.stderr.write(f"minidistil {args.command}: error: {' '.join(str(e).split())}\n")
        return 2
    except TrainingDiverged as e:
        sys.stderr.write(f"minidistil {args.command}: {' '.join(str(e).split())}\n")
        return 1
    except OSError as e:  # permissions, a read-only or full disk, a vanished folder: one line
        what = e.strerror or str(e)
        where = f" ({e.filename})" if e.filename else ""
        sys.stderr.write(f"minidistil {args.command}: error: {what}{where}; files already "
                         "written are intact (each is written to a temporary file, then renamed)\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"minidistil {args.command}: interrupted; continue with --resume\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
