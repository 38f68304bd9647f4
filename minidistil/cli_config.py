"""The command line's run configuration: presets, flags, and the run directory's own config.json.

Rules (what a user of ``--resume`` expects):

* a new run directory starts from the preset (``--quick`` or the demo's), with the flags applied;
* an existing one starts from its ``config.json``: a later stage (``distill`` after
  ``pretrain``) needs no flag repeated, and a flag given for it overrides that stage's settings;
  ``--quick``, ``--corpus`` or ``--seed`` that contradict the stored data/model are refused;
* ``--resume`` continues with exactly the stored settings: no flag needs repeating, and a flag
  that contradicts them (a changed ``--steps`` would change the learning-rate schedule under
  the run) is refused with one line naming both values;
* a ``--teacher`` run remembers its teacher folder in ``config.json``;
* the evaluation settings (masks, batch) are the run's own, so ``evaluate --out RUN`` scores a
  run on the tokens its stages were scored on, and leaves them as they were.
"""
from __future__ import annotations

import dataclasses
import json
import os

TEACHER_KEY = "teacher"  # extra top-level key of config.json for --teacher runs

STAGE_FLAGS = (("steps", "steps", "--steps"), ("lr", "lr", "--lr"), ("batch_size", "batch_size", "--batch-size"),
               ("accum_steps", "accum_steps", "--accum-steps"))
DISTILL_FLAGS = (("student_init", "init", "--init"), ("init_layers", "init_layers", "--init-layers"),
                 ("alpha_ce", "alpha_ce", "--alpha-ce"),
                 ("alpha_mlm", "alpha_mlm", "--alpha-mlm"), ("alpha_cos", "alpha_cos", "--alpha-cos"),
                 ("temperature", "temperature", "--temperature"), ("head_chunk", "head_chunk", "--head-chunk"))


class ConfigError(ValueError):
    """A flag that contradicts the run directory (one line, exit 2)."""


def preset(args):
    """The recipe a new run starts from: ``--quick``, ``--preset NAME`` or the demo's."""
    from .train.runs import PRESETS
    seed = args.seed if args.seed is not None else 0
    return PRESETS["quick" if args.quick else getattr(args, "preset", None) or "demo"](seed)


def flag_changes(args) -> list[tuple[str, str, object, str]]:
    """``(section, field, value, flag)`` for every stage setting given on the command line."""
    cmd, out = args.command, []
    if cmd in ("pretrain", "distill"):
        flags = STAGE_FLAGS + (DISTILL_FLAGS if cmd == "distill" else ())
        out += [(cmd, f, getattr(args, a), flag) for f, a, flag in flags if getattr(args, a, None) is not None]
    if cmd in ("demo", "ablate") and getattr(args, "pretrain_steps", None):
        out.append(("pretrain", "steps", args.pretrain_steps, "--pretrain-steps"))
    if cmd == "demo" and getattr(args, "distill_steps", None):
        out.append(("distill", "steps", args.distill_steps, "--distill-steps"))
    return out


def apply_flags(cfg, args):
    """``cfg`` with the command line's corpus and stage settings."""
    if args.corpus:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, corpus=os.path.abspath(args.corpus)))
    from .train.runs import distill_with
    for section, field, value, flag in flag_changes(args):
        stage = getattr(cfg, section)
        try:  # the distill stage's loss fields live in stage.loss, which checks its values
            stage = distill_with(stage, **{field: value}) if section == "distill" else \
                dataclasses.replace(stage, **{field: value})
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{flag} {value}: {e}") from None
        cfg = dataclasses.replace(cfg, **{section: stage})
    return cfg


def read_saved(out: str):
    """``(RunConfig, raw dict)`` of ``out/config.json``, or ``(None, None)`` when there is none."""
    from .train.runs import CONFIG_FILE, RunConfig
    path = os.path.join(out, CONFIG_FILE)
    if not os.path.isfile(path):
        return None, None
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
        return RunConfig.from_dict(raw), raw
    except (ValueError, TypeError, KeyError, OSError, AttributeError) as e:
        raise ConfigError(f"--out {out}: unreadable {CONFIG_FILE} ({e})") from None


# stage fields a flag can set: they tell nothing about the preset a run was made with
_FLAG_FIELDS = {f for f, _, _ in STAGE_FLAGS + DISTILL_FLAGS} | {"loss"}


def preset_contradiction(saved, recipe) -> str | None:
    """``"model hidden_size 32; the preset has 128"``: the first setting that no flag sets
    (data but the corpus, model, the stages' checkpoint and schedule settings) in which the run
    ``saved`` differs from the preset ``recipe``; None when the run may have come from it."""
    for part in ("data", "model", "pretrain", "distill"):
        mine, theirs = getattr(saved, part), getattr(recipe, part)
        for f in dataclasses.fields(mine):
            if f.name in _FLAG_FIELDS or f.name == "corpus":
                continue
            a, b = getattr(mine, f.name), getattr(theirs, f.name)
            if a != b:
                return f"{part} {f.name} {a}; the preset has {b}"
    return None


def _show(v):
    return "the built-in corpus" if v is None else repr(v) if isinstance(v, str) else str(v)


def resolve(args):
    """``(cfg, saved cfg or None)``: the configuration this command runs with (see the module doc)."""
    from .train.runs import CONFIG_FILE, quick_config
    saved, raw = read_saved(args.out)
    if saved is None:
        return apply_flags(preset(args), args), None
    where = os.path.join(args.out, CONFIG_FILE)
    stored_teacher = raw.get(TEACHER_KEY)
    if getattr(args, "teacher", None) is None and stored_teacher and args.command in ("distill", "evaluate", "demo"):
        args.teacher = stored_teacher  # the run's own teacher: no flag to repeat
    if args.resume:
        problems = []
        if args.seed is not None and args.seed != saved.seed:
            problems.append(f"--seed {args.seed} contradicts {where} (seed {saved.seed})")
        if args.quick and saved.data.max_docs != quick_config().data.max_docs:
            problems.append(f"--quick contradicts {where} (the run was not made with --quick)")
        recipe = getattr(args, "preset", None)
        differs = recipe and preset_contradiction(saved, preset(args))
        if differs:
            problems.append(f"--preset {recipe} contradicts {where} ({differs})")
        if args.corpus and os.path.abspath(args.corpus) != saved.data.corpus:
            problems.append(f"--corpus {args.corpus} contradicts {where} (corpus {_show(saved.data.corpus)})")
        for section, field, value, flag in flag_changes(args):
            stage = getattr(saved, section)
            old = getattr(stage.loss if not hasattr(stage, field) else stage, field)
            if value != old:
                problems.append(f"{flag} {value} contradicts {where} ({section} {field} {old})")
        teacher = getattr(args, "teacher", None)
        if teacher and stored_teacher and os.path.abspath(teacher) != stored_teacher:
            problems.append(f"--teacher {teacher} contradicts {where} (teacher {stored_teacher})")
        if problems:
            raise ConfigError(problems[0] + "; --resume continues with the run's own settings: drop the "
                              "flag, or start a new run in another --out")
        return saved, saved
    cfg = apply_flags(preset(args), args)
    if (saved.data != cfg.data or saved.model != cfg.model or saved.seed != cfg.seed) and \
            (args.command in ("pretrain", "demo", "ablate") and not getattr(args, "teacher", None)
             or args.corpus or args.quick or args.seed is not None) and not stored_teacher:
        raise ConfigError(f"--out {args.out} holds a run with another corpus/model/seed "
                          "configuration; use another --out (or the same options)")
    # data, model, seed and the evaluation settings come from the run directory (so that
    # `evaluate --out RUN` re-scores a run on its own masks); stage settings too, unless given
    return apply_flags(saved, args), saved


def resume_teacher_run(args, saved, source: str | None):
    """``demo --resume`` from a teacher folder: the stored run (its distillation settings
    included), with every contradicting flag refused on one line naming both values.
    ``source`` is the teacher folder recorded in the run's ``pretrain/model.npz``."""
    from .train.runs import CONFIG_FILE
    where = os.path.join(args.out, CONFIG_FILE)
    problems = []
    if args.seed is not None and args.seed != saved.seed:
        problems.append(f"--seed {args.seed} contradicts {where} (seed {saved.seed})")
    if args.corpus and os.path.abspath(args.corpus) != saved.data.corpus:
        problems.append(f"--corpus {args.corpus} contradicts {where} (corpus {_show(saved.data.corpus)})")
    steps = getattr(args, "distill_steps", None)
    if steps is not None and steps != saved.distill.steps:
        problems.append(f"--distill-steps {steps} contradicts {where} (distill steps {saved.distill.steps})")
    teacher = getattr(args, "teacher", None)
    if teacher and source and os.path.abspath(teacher) != os.path.abspath(source):
        problems.append(f"--teacher {teacher} contradicts {os.path.join(args.out, 'pretrain')} "
                        f"(teacher {source})")
    if problems:
        raise ConfigError(problems[0] + "; --resume continues with the run's own settings: drop the "
                          "flag, or start a new run in another --out")
    return saved


def check_after_teacher(args, cfg, saved) -> None:
    """On ``--resume``: the teacher's adjustments must give back the stored model and data."""
    if saved is None or not args.resume:
        return
    for part in ("model", "data"):
        if getattr(cfg, part) != getattr(saved, part):
            raise ConfigError(f"--teacher {args.teacher} gives another {part} configuration than "
                              f"{os.path.join(args.out, 'config.json')}; resume with the run's own teacher")


def check_teacher_out(args, tokenizer) -> None:
    """``distill --teacher F --out D``: D must not hold a teacher or vocabulary of its own."""
    from .train.runs import VOCAB_FILE
    out = args.out
    if os.path.isdir(os.path.join(out, "pretrain")):
        raise ConfigError(f"--out {out} holds its own pretrained teacher ({os.path.join(out, 'pretrain')}); "
                          f"use another --out with --teacher {args.teacher}")
    vocab = os.path.join(out, VOCAB_FILE)
    if os.path.isfile(vocab):
        with open(vocab, encoding="utf-8") as f:
            mine = f.read().split("\n")[:-1]
        if mine != list(tokenizer.vocab):
            raise ConfigError(f"--out {out} holds another vocabulary ({vocab}) than --teacher {args.teacher}; "
                              "use another --out")


def save(out: str, cfg, teacher: str | None = None) -> None:
    """Write ``out/config.json`` (with the teacher folder of a --teacher run)."""
    from .atomic import atomic_write_json
    from .train.runs import CONFIG_FILE
    d = cfg.to_dict()
    if teacher:
        d[TEACHER_KEY] = os.path.abspath(teacher)
    atomic_write_json(os.path.join(out, CONFIG_FILE), d)
