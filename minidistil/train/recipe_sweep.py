"""A sweep of the demo student's recipe: which change to the distillation buys retention?

``python -m minidistil.commands.recipe_sweep [--steps N] [--seed S] [--out DIR] VARIANT ...``

Every student is the demo's distilled student (the shipped teacher, its data and batches, the
same steps, masks and seed) with one VARIANT's changes to the distill stage. A VARIANT is
``field=value`` pairs joined by ``+``; the fields are those of ``DistillStageConfig`` and of its
loss (``init_layers``, ``alpha_ce``, ``alpha_mlm``, ``alpha_cos``, ``temperature``,
``ce_positions``, ``lr``, ``mlm_prob``, ``batch_size``, ``warmup_frac``, ``weight_decay``)::

    python -m minidistil.commands.recipe_sweep init_layers=top alpha_mlm=0 init_layers=top+alpha_mlm=0

The demo's own recipe always runs first, and each variant is scored on the same validation
tokens (the first ``--masks`` of the demo's fixed masks): accuracy +/- se, retention of the
teacher's accuracy and the paired difference from the demo's recipe, each with a 95% interval.
The intervals are over tokens (clustered by sequence) for one training seed; a difference of a
few tenths of a point needs other ``--seed`` runs before it is believed. Each student is kept in
``DIR/<variant>/model.npz``, so a second sweep into the same ``DIR`` trains only what is new;
the table is written to ``DIR/sweep.json``.
"""
from __future__ import annotations

import dataclasses
import os
import time

FIELDS = {"init_layers": str, "alpha_ce": float, "alpha_mlm": float, "alpha_cos": float,
          "temperature": float, "ce_positions": str, "lr": float, "mlm_prob": float,
          "batch_size": int, "warmup_frac": float, "weight_decay": float, "clip_norm": float}
BASE = "demo"  # the demo's recipe, the row every variant is compared with


def parse_variant(text: str) -> dict:
    """``"init_layers=top+alpha_mlm=0"`` -> ``{"init_layers": "top", "alpha_mlm": 0.0}``;
    ValueError naming the part that is wrong."""
    changes = {}
    for part in text.split("+"):
        field, eq, value = part.partition("=")
        field = field.strip()
        if not eq or field not in FIELDS:
            raise ValueError(f"variant {text!r}: {part!r} is not field=value with a field of "
                             f"{', '.join(FIELDS)}")
        try:
            changes[field] = FIELDS[field](value.strip())
        except ValueError:
            raise ValueError(f"variant {text!r}: {field} needs a {FIELDS[field].__name__}, "
                             f"got {value!r}") from None
    return changes


def folder_name(text: str) -> str:
    return text.replace("=", "-").replace("+", "_").replace(",", ".")


def sweep(variants: list, steps: int | None = None, seed: int = 0, n_masks: int = 14,
          out: str = "runs/sweep", log=print) -> dict:
    """Train the demo's student and each variant; score them paired. Returns the sweep's table."""
    from ..atomic import atomic_write_json
    from . import demo, intervals
    from .distill import distill, init_layer_list
    from .eval_set import cluster_masked, make_eval_set, predict
    from .runs import MODEL_FILE, distill_with, load_model, prepare_data, save_config
    folder = demo.shipped_teacher_folder()
    teacher, tok = demo.load_teacher_folder(folder)
    base = demo.teacher_run_config(folder, teacher, tok, seed=seed, steps=steps)
    cfgs = {BASE: base}
    for text in variants:
        stage = distill_with(base.distill, **parse_variant(text))  # checks every value
        init_layer_list(stage.init_layers, teacher.config.num_hidden_layers, base.model.student_layers)
        cfgs[text] = dataclasses.replace(base, distill=stage)
    data = prepare_data(base.data, tokenizer=tok)
    evalset = make_eval_set(data.val, tok, base.eval, n_masks=n_masks)
    masked = cluster_masked(evalset)
    os.makedirs(out, exist_ok=True)
    save_config(out, base)
    t_res = predict(teacher, evalset)
    rows, results = [], {}
    for name, cfg in cfgs.items():
        sub = os.path.join(out, folder_name(name))
        path = os.path.join(sub, MODEL_FILE)
        t0 = time.perf_counter()
        if os.path.isfile(path):
            student = load_model(path)[0]
        else:
            student, _ = distill(cfg, out, data, teacher, progress=False, folder=sub)
        seconds = time.perf_counter() - t0
        res = results[name] = predict(student, evalset)
        ret, ret_se = intervals.retention(res["cluster_correct"], t_res["cluster_correct"])
        row = {"variant": name, "changes": {} if name == BASE else parse_variant(name),
               "accuracy": res["accuracy"], "se": res["se"], "retention": ret,
               "retention_ci95": intervals.ci95(ret, ret_se), "train_s": round(seconds, 1)}
        if name != BASE:
            d, d_se = intervals.paired_difference(res["cluster_correct"], results[BASE]["cluster_correct"], masked)
            row.update(minus_demo=d, minus_demo_se=d_se, minus_demo_ci95=intervals.ci95(d, d_se))
        rows.append(row)
        log(format_row(row))
    table = {"teacher_accuracy": t_res["accuracy"], "steps": base.distill.steps, "seed": seed,
             "n_masks": n_masks, "n_masked": t_res["n_masked"], "rows": rows}
    atomic_write_json(os.path.join(out, "sweep.json"), table)
    return table


def format_row(row: dict) -> str:
    lo, hi = row["retention_ci95"]
    text = (f"{row['variant']:<36} {100 * row['accuracy']:6.2f} +/- {100 * row['se']:.2f}%  "
            f"retention {100 * row['retention']:5.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]")
    if "minus_demo" in row:
        a, b = row["minus_demo_ci95"]
        text += f"  minus {BASE} {100 * row['minus_demo']:+.2f} [{100 * a:+.2f}, {100 * b:+.2f}]"
    return text + f"  ({row['train_s']:.0f} s)"
