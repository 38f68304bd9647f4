"""What every training command checks and prepares before it works: its inputs, the run
directory (its config.json, its stages), the teacher it starts from and the tokenized corpus.

Each check raises ``UsageError`` (one line on stderr, exit code 2) before anything is written.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile

from .cli_parser import UsageError


def say(args, msg):
    if getattr(getattr(args, "comm", None), "is_root", True):  # under MPI, rank 0 alone speaks
        print(msg, flush=True)


def resolve_config(args):
    from .cli_config import ConfigError, resolve
    preset = getattr(args, "preset", None)
    if preset and args.quick:
        raise UsageError(f"--quick and --preset {preset} choose two recipes; give one of them")
    try:
        return resolve(args)
    except ConfigError as e:
        raise UsageError(str(e)) from None


def check_inputs(args) -> None:
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
    if getattr(getattr(args, "comm", None), "is_root", True):  # under MPI rank 0 alone writes the run:
        _probe_out(args.out)  # a probe on every rank raced (one removed the folder another probed in)


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


def merge_saved_config(args, cfg):
    """A run directory keeps its data/model settings: a later command must agree with them."""
    from .train.runs import CONFIG_FILE, load_config
    path = os.path.join(args.out, CONFIG_FILE)
    if not os.path.isfile(path):
        return cfg, False
    try:
        saved = load_config(args.out)
    except (ValueError, TypeError, KeyError, OSError) as e:
        raise UsageError(f"--out {args.out}: unreadable {CONFIG_FILE} ({e})") from None
    if args.resume and args.command == "demo":  # the stored run, its student settings included
        from .cli_config import ConfigError, resume_teacher_run
        try:
            return resume_teacher_run(args, saved, stored_teacher_source(args.out)), True
        except ConfigError as e:
            raise UsageError(str(e)) from None
    if saved.data != cfg.data or saved.model != cfg.model or saved.seed != cfg.seed:
        if args.command in ("pretrain", "demo", "ablate") or args.corpus or args.quick or args.seed:
            raise UsageError(f"--out {args.out} holds a run with another corpus/model/seed "
                             "configuration; use another --out (or the same options)")
    # data, model, seed and the evaluation come from the run directory; stage settings from this command
    return dataclasses.replace(cfg, seed=saved.seed, data=saved.data, model=saved.model,
                               eval=saved.eval), True


def prepare(args, cfg, vocab_path=None, tokenizer=None):
    """Load the corpus and tokenize it (the slow checks); errors -> UsageError."""
    from .train.runs import VOCAB_FILE, prepare_data
    if vocab_path is None:
        vocab_path = os.path.join(args.out, VOCAB_FILE)
    try:
        return prepare_data(cfg.data, vocab_path=vocab_path, tokenizer=tokenizer)
    except (ValueError, OSError, UnicodeError) as e:
        where = f"--corpus {args.corpus}" if args.corpus else "corpus"
        raise UsageError(f"{where}: {e}") from None


def start_run_dir(args, cfg, data) -> None:
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


def stage_state(out, stage):
    """'done' (model.npz), 'partial' (checkpoint only) or 'none'."""
    from .train.loop import CKPT_FILE
    from .train.runs import MODEL_FILE
    folder = os.path.join(out, stage)
    if os.path.isfile(os.path.join(folder, MODEL_FILE)):
        return "done"
    return "partial" if os.path.isfile(os.path.join(folder, CKPT_FILE)) else "none"


def check_stage_free(args, stage):
    state = stage_state(args.out, stage)
    if state != "none" and not args.resume:
        raise UsageError(f"--out {args.out} already holds a {stage} run ({state}); "
                         "pass --resume to continue it or choose another --out")


def _load_hf_teacher(folder):
    from .io.pretrained import load_pretrained
    try:
        loaded = load_pretrained(folder)
    except (ValueError, OSError, KeyError, TypeError) as e:
        raise UsageError(f"--teacher {folder}: {e}") from None
    model, tokenizer = loaded
    if tokenizer.vocab_size <= len(set(tokenizer.special_ids)):  # nothing could be masked or scored
        raise UsageError(f"--teacher {folder}: its tokenizer holds only the {tokenizer.vocab_size} "
                         "special tokens; a folder needs its full vocabulary (tokenizer.json or vocab.txt)")
    from .models import Bert
    if not isinstance(model, Bert):
        raise UsageError(f"--teacher {folder}: the teacher must be a BERT checkpoint, "
                         f"got a {type(model).__name__}")
    return model, tokenizer


def load_teacher(args, cfg):
    """(teacher, tokenizer or None, cfg) from --teacher FOLDER or DIR/pretrain/model.npz."""
    from .models import student_depth
    from .train.runs import MODEL_FILE, ModelSpec, load_model
    if getattr(args, "teacher", None):
        teacher, tok = _load_hf_teacher(args.teacher)
        c = teacher.config
        spec = ModelSpec(c.hidden_size, c.num_hidden_layers, c.num_attention_heads,
                         c.intermediate_size, student_depth(c.num_hidden_layers))
        data = dataclasses.replace(cfg.data, vocab_size=tok.vocab_size,
                                   max_len=min(cfg.data.max_len, c.max_position_embeddings))
        return teacher, tok, dataclasses.replace(cfg, model=spec, data=data)
    path = os.path.join(args.out, "pretrain", MODEL_FILE)
    if not os.path.isfile(path):
        raise UsageError(f"no teacher in {args.out}: run `minidistil pretrain --out {args.out}` "
                         "first or pass --teacher FOLDER")
    teacher, _ = load_model(path)
    return teacher, None, cfg


def stored_teacher_source(out):
    """The teacher folder a demo run started from (recorded in its pretrain/model.npz), or None."""
    from .train.checkpoint import load_checkpoint
    path = os.path.join(out, "pretrain", "model.npz")
    return load_checkpoint(path)[1].get("source") if os.path.isfile(path) else None
