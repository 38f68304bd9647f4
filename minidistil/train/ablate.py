"""Table 4 of the paper in miniature: which part of the triple loss matters?

Five students are distilled from the same teacher, each with several seeds:

=============  ===============================================  ====================
variant        what changes                                      paper (GLUE macro)
=============  ===============================================  ====================
triple         5 Lce + 2 Lmlm + 1 Lcos, student from teacher     (reference)
-Lce           alpha_ce = 0                                      -2.96
-Lcos          alpha_cos = 0                                     -1.46
-Lmlm          alpha_mlm = 0                                     -0.31
random-init    triple loss, randomly initialised student         -3.69
=============  ===============================================  ====================

For every seed the change of validation masked-token accuracy (in points) against the triple
loss of the same seed is computed; the table reports its mean +/- standard deviation over seeds.
The paper's deltas are GLUE macro-score points, a different metric: compare signs and ranking.
"""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from ..atomic import atomic_write_json
from .runs import MODEL_FILE, Data, RunConfig, load_model

VARIANTS = {
    "triple": {},
    "-Lce": {"loss": {"alpha_ce": 0.0}},
    "-Lcos": {"loss": {"alpha_cos": 0.0}},
    "-Lmlm": {"loss": {"alpha_mlm": 0.0}},
    "random-init": {"student_init": "random"},
}
PAPER_DELTAS = {"triple": 0.0, "-Lce": -2.96, "-Lcos": -1.46, "-Lmlm": -0.31, "random-init": -3.69}


def variant_config(cfg: RunConfig, variant: str, seed: int, steps: int | None = None) -> RunConfig:
    changes = dict(VARIANTS[variant])
    if "loss" in changes:
        changes["loss"] = dataclasses.replace(cfg.distill.loss, **changes["loss"])
    if steps is not None:
        changes["steps"] = steps
    return dataclasses.replace(cfg, seed=seed, distill=dataclasses.replace(cfg.distill, **changes))


def ablate(cfg: RunConfig, out: str, data: Data, teacher, seeds: list[int],
           steps: int | None = None, progress: bool = True, log=print) -> dict:
    """Distil every variant with every seed (finished runs are reused); returns the summary."""
    from .distill import distill
    from .evaluate import make_eval_set, predict
    evalset = make_eval_set(data.val, data.tokenizer, cfg.eval)
    teacher_acc = predict(teacher, evalset)["accuracy"]
    results = {}  # (variant, seed) -> accuracy
    for seed in seeds:
        for variant in VARIANTS:
            folder = os.path.join(out, "ablate", variant, f"seed{seed}")
            model_path = os.path.join(folder, MODEL_FILE)
            if os.path.isfile(model_path):
                student, _ = load_model(model_path)
            else:
                vcfg = variant_config(cfg, variant, seed, steps)
                student, _ = distill(vcfg, out, data, teacher, resume=True, progress=progress,
                                     folder=folder)
            acc = predict(student, evalset)["accuracy"]
            results[(variant, seed)] = acc
            log(f"  {variant:<12} seed {seed}: val masked-token accuracy {100 * acc:.2f}%")
    summary = summarize(results, seeds)
    report = {"teacher_accuracy": teacher_acc, "seeds": list(seeds),
              "steps": steps if steps is not None else cfg.distill.steps,
              "runs": [{"variant": v, "seed": s, "accuracy": a} for (v, s), a in results.items()],
              "summary": summary}
    atomic_write_json(os.path.join(out, "ablation.json"), report)
    return report


def summarize(results: dict, seeds: list[int]) -> list[dict]:
    rows = []
    for variant in VARIANTS:
        accs = np.array([results[(variant, s)] for s in seeds])  # (S,)
        deltas = 100 * (accs - np.array([results[("triple", s)] for s in seeds]))  # (S,) points
        std = float(deltas.std(ddof=1)) if len(seeds) > 1 else 0.0
        rows.append({"variant": variant, "mean_accuracy": float(accs.mean()),
                     "std_accuracy": float(accs.std(ddof=1)) if len(seeds) > 1 else 0.0,
                     "mean_delta": float(deltas.mean()), "std_delta": std,
                     "paper_delta": PAPER_DELTAS[variant]})
    return rows


def format_ablation(report: dict) -> str:
    head = ("variant", "val acc (mean +/- std)", "delta vs triple (points)", "paper delta (GLUE)")
    rows = [head]
    for r in report["summary"]:
        rows.append((r["variant"], f"{100 * r['mean_accuracy']:.2f} +/- {100 * r['std_accuracy']:.2f}",
                     "-" if r["variant"] == "triple" else f"{r['mean_delta']:+.2f} +/- {r['std_delta']:.2f}",
                     "-" if r["variant"] == "triple" else f"{r['paper_delta']:+.2f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append(f"(teacher {100 * report['teacher_accuracy']:.2f}%; {len(report['seeds'])} seeds, "
                 f"{report['steps']} distillation steps each; paired by seed)")
    return "\n".join(lines)


def load_ablation(out: str) -> dict:
    with open(os.path.join(out, "ablation.json"), encoding="utf-8") as f:
        return json.load(f)
