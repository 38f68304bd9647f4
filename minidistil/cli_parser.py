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
# The docstring above is `minidistil --help`: its first paragraph the description, the rest the
# epilog. main() and the dispatch live in cli.py, the checks before any work in cli_checks.py.
from __future__ import annotations

import argparse
import sys


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


def _init_layers(text):
    from .train.runs import check_init_layers
    try:
        return check_init_layers(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# the ablation's budget: 7 rows x 5 seeds x ABLATE_STEPS steps, <= 30 minutes on 2 cores
ABLATE_STEPS = 120
ABLATE_STEPS_QUICK = 20
ABLATE_SEEDS = 5
POS_INT = _number(int, 1)
NONNEG_INT = _number(int, 0)
POS_FLOAT = _number(float, 0.0, strict=True)
NONNEG_FLOAT = _number(float, 0.0)


def TEMPERATURE(text):
    """> 0, and 1/tau and tau^2 representable in float32, the training dtype (1e-40 -> 1/tau = inf)."""
    t = POS_FLOAT(text)
    if not (1.0 / 3.4e38 < t < 1.8e19):
        raise argparse.ArgumentTypeError(f"must be between 3e-39 and 1.8e19 (1/tau and tau^2 must fit "
                                         f"in float32), got {text!r}; the paper uses 2")
    return t


def _students(text):
    """``--students distill,a``: the folders of those students (train/controls.py)."""
    from .train.controls import parse_students
    try:
        return parse_students(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


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
    d.add_argument("--students", type=_students, default="distill,a,b,c", metavar="LIST",  # type= parses it
                   help="which students to train, "
                   "comma-separated: distill and any of the controls a, b, c (default: all four; "
                   "e.g. --students distill,a for the distillation gain alone)")
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
    s.add_argument("--init-layers", type=_init_layers, metavar="RULE", help="with --init teacher, the "
                   "teacher blocks the student copies: bottom (0,2,4,...: the paper's one layer out of "
                   "two, default), top (one of two ending at the last block: 1,3,5 for 6 -> 3) or a "
                   "comma-separated list such as 0,2,5")
    s.add_argument("--alpha-ce", type=NONNEG_FLOAT, help="weight of the soft-target loss Lce (default 5.0)")
    s.add_argument("--alpha-mlm", type=NONNEG_FLOAT, help="weight of the masked-LM loss Lmlm (default 2.0)")
    s.add_argument("--alpha-cos", type=NONNEG_FLOAT, help="weight of the hidden-state cosine loss Lcos (default 1.0)")
    s.add_argument("--temperature", type=TEMPERATURE, help="softmax temperature of Lce (default 2.0)")
    s.add_argument("--head-chunk", type=int, metavar="K", help="fused vocabulary head, K positions per "
                   "chunk: the same losses without (positions x V) arrays (default 0: off; docs/flops.md)")

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

    from .commands.glue import add_glue_parser
    add_glue_parser(sub, POS_INT, POS_FLOAT, NONNEG_FLOAT)
    add_export_parser(sub)
    sub.add_parser("bench", help="benchmarks (run `minidistil bench --help`)", add_help=False)
    return p
