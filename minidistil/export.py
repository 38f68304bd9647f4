"""``minidistil export RUN_OR_STAGE --to FOLDER``: a trained stage as a Hugging Face folder.

    minidistil export runs/demo --to my-student            # the student (distill stage)
    minidistil export runs/demo/pretrain --to my-teacher   # the teacher
    minidistil export runs/demo --stage pretrain --to t    # the same

The folder is what ``save_pretrained`` writes (``config.json``, ``model.safetensors``,
``vocab.txt``, tokenizer configs): the student loads in transformers as a
``DistilBertForMaskedLM``, the teacher as a ``BertForMaskedLM``, and both load back here with
``minidistil.load_pretrained``. ``distill`` and ``demo`` already write the student's folder to
``RUN/distill/hf``.
"""
from __future__ import annotations

import os

HF_DIR = "hf"  # RUN/distill/hf: the student as a Hugging Face folder
STAGES = ("pretrain", "distill")


class ExportError(ValueError):
    """Nothing to export where the user pointed (one line on the command line)."""


def find_stage(path: str, stage: str | None = None) -> tuple[str, str]:
    """``(model.npz path, vocab.txt path)`` of a run directory or a stage folder."""
    from .train.runs import CONFIG_FILE, MODEL_FILE, VOCAB_FILE
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise ExportError(f"{path}: not a folder (expected a run directory such as runs/demo, "
                          "or one of its stage folders such as runs/demo/pretrain)")
    if os.path.isfile(os.path.join(path, CONFIG_FILE)):  # a run directory
        stage = stage or "distill"
        folder = os.path.join(path, stage)
        run = path
    else:  # a stage folder
        name = os.path.basename(path)
        if stage is not None and stage != name:
            raise ExportError(f"{path} is the {name} stage folder, but --stage {stage} was asked for")
        folder, run = path, os.path.dirname(path)
    model = os.path.join(folder, MODEL_FILE)
    if not os.path.isfile(model):
        what = "finished stage" if os.path.isdir(folder) else "stage"
        raise ExportError(f"no {what} to export in {folder} (no {MODEL_FILE}); "
                          "train it first, or --resume a killed run")
    vocab = os.path.join(run, VOCAB_FILE)
    if not os.path.isfile(vocab):
        raise ExportError(f"{vocab} not found: the run's vocabulary is needed for the tokenizer files")
    return model, vocab


def write_hf_folder(model, tokenizer, to: str) -> str:
    """Write ``model`` and ``tokenizer`` to ``to`` with ``save_pretrained``; returns the folder."""
    from .io.pretrained import save_pretrained
    to = os.fspath(to)
    if os.path.exists(to) and not os.path.isdir(to):
        raise ExportError(f"--to {to}: exists and is not a folder")
    return str(save_pretrained(model, tokenizer, to))


def export(path: str, to: str, stage: str | None = None) -> str:
    """Export a stage of a run (default: the student) to ``to``; returns the folder written."""
    from .data.tokenizer import WordPieceTokenizer
    from .train.runs import load_model
    from .cli_config import TEACHER_KEY, read_saved
    model_path, vocab_path = find_stage(path, stage)
    try:
        model, _ = load_model(model_path)
        _, raw = read_saved(os.path.dirname(vocab_path))
        teacher = (raw or {}).get(TEACHER_KEY)
        if teacher and os.path.isdir(teacher):  # a --teacher run: its tokenizer's own settings (casing)
            from .io.pretrained import load_tokenizer
            tokenizer = load_tokenizer(teacher)
        else:
            tokenizer = WordPieceTokenizer.from_file(vocab_path)
    except (ValueError, KeyError, TypeError) as e:
        raise ExportError(f"{model_path}: {e}") from None
    return write_hf_folder(model, tokenizer, to)


def add_parser(sub) -> None:
    """The ``export`` sub-command's arguments (called by ``cli.build_parser``)."""
    s = sub.add_parser("export", help="write a trained stage (the student, or the teacher) as a "
                       "Hugging Face folder", description="Write a trained stage of a run as a Hugging "
                       "Face folder (config.json, model.safetensors, vocab.txt).",
                       epilog="distill and demo also write the student to RUN/distill/hf.")
    s.add_argument("run", metavar="RUN_OR_STAGE", help="a run directory (runs/demo: its student) or "
                   "a stage folder (runs/demo/pretrain: the teacher)")
    s.add_argument("--to", required=True, metavar="FOLDER", help="the Hugging Face folder to write "
                   "(config.json, model.safetensors, vocab.txt)")
    s.add_argument("--stage", choices=STAGES, help="which stage of a run directory (default distill)")


def run(args) -> int:
    """The ``export`` command; errors are ``ExportError`` (the CLI prints one line, exit 2)."""
    model_path, _ = find_stage(args.run, args.stage)
    folder = export(args.run, args.to, args.stage)
    print(f"exported {model_path} to {folder}: load it with transformers' "
          "AutoModelForMaskedLM.from_pretrained or minidistil.load_pretrained")
    return 0
