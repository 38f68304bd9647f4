"""The control runs that show what the teacher adds: the paper's claim, tested.

The distilled student and three controls share the student architecture, the steps, the
batches, the masks and the seed (each is a ``distill`` stage run, so the training loop draws the
same batches and the same masks from the same generators); they differ only in the loss and the
initialisation:

==============================  ==========================  ======================================
folder                          loss                        initialisation
==============================  ==========================  ======================================
``distill``                     5 Lce + 2 Lmlm + 1 Lcos     one teacher layer out of two
``control-mlm-teacher-init``    2 Lmlm (a)                  one teacher layer out of two
``control-mlm-random-init``     2 Lmlm (b)                  random (the student trained alone)
``control-triple-random-init``  5 Lce + 2 Lmlm + 1 Lcos (c) random
==============================  ==========================  ======================================

(a) starts exactly where the distilled student starts and sees the same data, but never the
teacher's outputs: ``distilled - (a)`` is the gain from the teacher during training, the
distillation gain. (b) is the student with no teacher at all; (c) is the paper's
random-initialisation row of Table 4. The controls keep the ``alpha_mlm`` of the triple loss, so
only the terms that use the teacher are removed (AdamW makes the overall scale of the loss all
but irrelevant). With ``alpha_ce = alpha_cos = 0`` the teacher's forward pass is skipped.

A validation curve (accuracy on a fixed subset of the validation tokens against the step) is
written to ``<folder>/curve.json`` during training, for the plot of the effect.
"""
from __future__ import annotations

import dataclasses
import json
import os

from ..atomic import atomic_write_json
from .runs import RunConfig, distill_with

DISTILLED = "distill"
STUDENTS = {  # folder -> changes to the distill stage
    DISTILLED: {},
    "control-mlm-teacher-init": {"alpha_ce": 0.0, "alpha_cos": 0.0, "student_init": "teacher"},
    "control-mlm-random-init": {"alpha_ce": 0.0, "alpha_cos": 0.0, "student_init": "random"},
    "control-triple-random-init": {"student_init": "random"},
}
GAIN_AGAINST = "control-mlm-teacher-init"
LABELS = {
    DISTILLED: "distilled student (triple loss, teacher init)",
    "control-mlm-teacher-init": "(a) Lmlm only, teacher init",
    "control-mlm-random-init": "(b) Lmlm only, random init",
    "control-triple-random-init": "(c) triple loss, random init",
}
CURVE_FILE = "curve.json"
# the short names of ``minidistil demo --students`` (the letters of the controls in the docs)
SHORT_NAMES = {"distill": DISTILLED, "a": "control-mlm-teacher-init", "b": "control-mlm-random-init",
               "c": "control-triple-random-init"}


def parse_students(text: str) -> tuple:
    """``"distill,a"`` -> the folders of those students, in :data:`STUDENTS` order; ``ValueError``
    naming what is wrong (an unknown name, or no distilled student, which every figure compares)."""
    names = [t.strip() for t in str(text).split(",") if t.strip()]
    folders = []
    for t in names:
        f = SHORT_NAMES.get(t, t)
        if f not in STUDENTS:
            raise ValueError(f"unknown student {t!r}; expected a comma-separated list of "
                             f"{', '.join(SHORT_NAMES)} (or their folders: {', '.join(STUDENTS)})")
        folders.append(f)
    if DISTILLED not in folders:
        raise ValueError(f"the list must include distill (the distilled student every figure is compared "
                         f"with), got {text!r}")
    return tuple(n for n in STUDENTS if n in folders)


def student_config(cfg: RunConfig, name: str) -> RunConfig:
    """The run configuration of student ``name`` (one of :data:`STUDENTS`)."""
    if name not in STUDENTS:
        raise ValueError(f"unknown student {name!r}; expected one of {sorted(STUDENTS)}")
    return dataclasses.replace(cfg, distill=distill_with(cfg.distill, **STUDENTS[name]))


class Curve:
    """``on_step`` callback: accuracy on a fixed evaluation subset every ``every`` steps.

    Rows ``{"step", "accuracy", "se"}`` are kept in ``path`` (rewritten atomically each time);
    a resumed run keeps the rows up to the step it resumes from.
    """

    def __init__(self, path: str, evalset, every: int, total: int, resume: bool = False):
        self.path, self.evalset, self.every, self.total = path, evalset, max(1, every), total
        self.rows = []
        if resume and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                self.rows = json.load(f)["rows"]

    def __call__(self, step: int, model) -> None:
        if step % self.every and step != self.total:
            return
        from .evaluate import predict
        if any(r["step"] == step for r in self.rows):
            return
        self.rows = [r for r in self.rows if r["step"] < step]
        res = predict(model, self.evalset)
        self.rows.append({"step": step, "accuracy": res["accuracy"], "se": res["se"]})
        atomic_write_json(self.path, {"n_masked": res["n_masked"], "rows": self.rows})


def read_curve(folder: str) -> dict | None:
    path = os.path.join(folder, CURVE_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def train_students(cfg: RunConfig, out: str, data, teacher, curve_set=None, curve_every: int = 50,
                   resume: bool = False, progress: bool = True, log=print,
                   names=tuple(STUDENTS)) -> dict:
    """Train (or reuse) every student of :data:`STUDENTS`; returns ``{name: (model, seconds)}``."""
    import time

    from .distill import distill
    from .runs import MODEL_FILE, load_model
    models = {}
    for name in names:
        folder = os.path.join(out, name)
        path = os.path.join(folder, MODEL_FILE)
        if os.path.isfile(path):
            log(f"{name}: already trained, reusing {path}")
            models[name] = (load_model(path)[0], 0.0)
            continue
        scfg = student_config(cfg, name)
        on_step = None
        if curve_set is not None:
            on_step = Curve(os.path.join(folder, CURVE_FILE), curve_set, curve_every,
                            scfg.distill.steps, resume=resume)
        t0 = time.perf_counter()
        student, res = distill(scfg, out, data, teacher, resume=resume, progress=progress,
                               folder=folder, on_step=on_step)
        dt = time.perf_counter() - t0
        parts = ", ".join(f"{k} {v:.3f}" for k, v in res.last_losses.items() if v)
        log(f"{name}: {res.step} steps in {dt:.0f} s ({parts})")
        models[name] = (student, dt)
    return models


# ---------------------------------------------------------------- the printed table

def format_claims(report: dict, teacher_label: str = "teacher") -> str:
    """Table 1 in miniature (accuracy +/- se, retention with its 95% interval) and the gain."""
    from .intervals import fmt_ci, fmt_pm
    t = report["teacher"]
    rows = [("model", "val acc % (+/- se)", "retention (95% CI)", "distilled minus this (95% CI)")]
    rows.append((teacher_label, fmt_pm(t["accuracy"], t["se"]), "100%", ""))
    s = report.get("student")
    if s is not None:
        ret_ci = fmt_ci(report["retention_ci95"], digits=1, signed=False)
        rows.append((LABELS[DISTILLED], fmt_pm(s["accuracy"], s["se"]),
                     f"{100 * report['retention']:.1f}% {ret_ci}", ""))
    for name, c in report.get("controls", {}).items():
        vs = c.get("student_minus_this")
        rows.append((LABELS.get(name, name), fmt_pm(c["accuracy"], c["se"]),
                     f"{100 * c['retention']['value']:.1f}% "
                     f"{fmt_ci(c['retention']['ci95'], digits=1, signed=False)}",
                     f"{100 * vs['diff']:+.2f} {fmt_ci(vs['ci95'])}" if vs else ""))
    u = report["unigram"]
    rows.append(("unigram baseline", f"{100 * u['accuracy']:.2f}", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    few = report.get("control_masks")
    same = "the same for the teacher, the distilled student and (a)" if few else "the same for every model"
    lines.append(f"(validation masked-token accuracy: {report['n_val_sequences']} sequences x "
                 f"{report['n_masks']} fixed masks = {report['n_masked']} tokens, {same}; se "
                 "clustered by sequence; retention by the delta method; paper: BERT-base "
                 "79.5, DistilBERT 77.0 GLUE macro = 96.9%)")
    if few:
        names = ", ".join(LABELS.get(n, n).split(" ")[0] for n in few["controls"])
        lines.append(f"({names}: scored on the first {few['n_masks']} masks = {few['n_masked']} tokens, "
                     "their retention and difference against the teacher and the distilled student "
                     "on those same tokens)")
    g = report.get("gain")
    if g:
        lines.append(f"distillation gain (distilled minus {LABELS[g['against']]}): "
                     f"{100 * g['diff']:+.2f} points, 95% CI {fmt_ci(g['ci95'])}, "
                     f"se {100 * g['se']:.2f} ({g['z']:.1f} se), paired on the same tokens")
    return "\n".join(lines)
