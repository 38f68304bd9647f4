"""Table 4 of the paper in miniature: which part of the triple loss matters, and does the teacher?

Every row is a student distilled from the same teacher with several seeds; a seed fixes the
batches, the masks and (for a random start) the initialisation, and it is the same seed for
every row, so each row's change against the full triple loss is paired by seed. Every student
is scored on the same fixed validation tokens (several masks per sequence), so it is paired by
token too:

==================  ===============================================  ====================
row                 what changes                                      paper (GLUE macro)
==================  ===============================================  ====================
triple              5 Lce + 2 Lmlm + 1 Lcos, student from teacher     (reference)
-Lce                alpha_ce = 0                                      -2.96
-Lcos               alpha_cos = 0                                     -1.46
-Lmlm               alpha_mlm = 0                                     -0.31
random-init         triple loss, random student (= control c)         -3.69
(a) Lmlm, teacher   Lmlm only, teacher init (no teacher in training)  (the paper's claim: < 0)
(b) Lmlm, random    Lmlm only, random init (the student alone)        (the paper's claim: < 0)
==================  ===============================================  ====================

Interval of a row (``intervals.seed_token_interval``): the mean over seeds of the per-seed paired
delta, with ``se^2 = var_seeds / S + se_tokens^2`` (seed spread plus the sampling of the shared
validation tokens) and the t quantile with S - 1 degrees of freedom. Verdict: "the paper's sign,
significant" when the 95% interval lies below zero, "opposite sign, significant" above, "not
resolved" when it holds zero. The paper's deltas are GLUE points, a different metric: compare
signs and ranking, not sizes.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from ..atomic import atomic_write_json
from . import intervals
from .loop import CKPT_FILE
from .runs import MODEL_FILE, Data, RunConfig, distill_with, load_model

# The ablation scores 35 students (7 rows x 5 seeds): it keeps 14 masks of each validation
# sequence (the first 14 of the demo's 42) so that it stays inside 30 minutes. Its intervals are
# dominated by the spread between seeds, which more masks do not lower.
ABLATE_MASKS = 14

VARIANTS = {
    "triple": {},
    "-Lce": {"alpha_ce": 0.0},
    "-Lcos": {"alpha_cos": 0.0},
    "-Lmlm": {"alpha_mlm": 0.0},
    "random-init": {"student_init": "random"},
    "(a) Lmlm, teacher init": {"alpha_ce": 0.0, "alpha_cos": 0.0},
    "(b) Lmlm, random init": {"alpha_ce": 0.0, "alpha_cos": 0.0, "student_init": "random"},
}
FOLDERS = {"triple": "triple", "-Lce": "-Lce", "-Lcos": "-Lcos", "-Lmlm": "-Lmlm",
           "random-init": "random-init", "(a) Lmlm, teacher init": "control-mlm-teacher-init",
           "(b) Lmlm, random init": "control-mlm-random-init"}
PAPER_DELTAS = {"triple": 0.0, "-Lce": -2.96, "-Lcos": -1.46, "-Lmlm": -0.31, "random-init": -3.69,
                "(a) Lmlm, teacher init": None, "(b) Lmlm, random init": None}


def variant_config(cfg: RunConfig, variant: str, seed: int, steps: int | None = None) -> RunConfig:
    changes = dict(VARIANTS[variant])
    if steps is not None:
        changes["steps"] = steps
    return dataclasses.replace(cfg, seed=seed, distill=distill_with(cfg.distill, **changes))


def ablate(cfg: RunConfig, out: str, data: Data, teacher, seeds: list[int],
           steps: int | None = None, progress: bool = True, log=print,
           variants: list[str] | None = None, keep_checkpoints: bool = False) -> dict:
    """Distil every row (or only ``variants``; "triple" is always included) with every seed;
    finished runs are reused. A finished run keeps its ``model.npz`` and drops its resume
    checkpoint unless ``keep_checkpoints`` (the CLI's ``--keep-checkpoints``). Returns the
    report (also written to ``out/ablation.json``)."""
    import time

    from .distill import distill
    from .evaluate import cluster_masked, make_eval_set, predict
    evalset = make_eval_set(data.val, data.tokenizer, cfg.eval, n_masks=min(cfg.eval.n_masks, ABLATE_MASKS))
    masked = cluster_masked(evalset)
    t = predict(teacher, evalset)
    variants = list(VARIANTS) if variants is None else ["triple"] + [v for v in variants if v != "triple"]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise ValueError(f"unknown ablation rows {bad}; expected some of {list(VARIANTS)}")
    correct, runs = {}, []  # (variant, seed) -> (n,) per-sequence correct counts
    for seed in seeds:
        for variant in variants:
            folder = os.path.join(out, "ablate", FOLDERS[variant], f"seed{seed}")
            model_path = os.path.join(folder, MODEL_FILE)
            t0 = time.perf_counter()
            if os.path.isfile(model_path):
                student, _ = load_model(model_path)
            else:
                vcfg = variant_config(cfg, variant, seed, steps)
                student, res = distill(vcfg, out, data, teacher, resume=True, progress=progress,
                                       folder=folder)
                ckpt = os.path.join(folder, CKPT_FILE)
                if res.finished and not keep_checkpoints and os.path.isfile(ckpt):
                    os.unlink(ckpt)  # model.npz is written: the resume state is no longer needed
            res = predict(student, evalset)
            correct[(variant, seed)] = res["cluster_correct"]
            runs.append({"variant": variant, "seed": seed, "accuracy": res["accuracy"], "se": res["se"],
                         "seconds": round(time.perf_counter() - t0, 1)})
            log(f"  {variant:<24} seed {seed}: val masked-token accuracy "
                f"{intervals.fmt_pm(res['accuracy'], res['se'])}%  ({runs[-1]['seconds']:.0f} s)")
    report = {"teacher_accuracy": t["accuracy"], "teacher_se": t["se"], "seeds": list(seeds),
              "steps": steps if steps is not None else cfg.distill.steps,
              "n_masked": int(masked.sum()), "n_val_sequences": int(len(masked)),
              "n_masks": evalset.n_masks, "runs": runs,
              "summary": summarize(correct, masked, seeds, variants),
              "interval": "mean over seeds of the per-seed paired delta; se^2 = var_seeds/S + "
                          "se_tokens^2; 95% = mean +/- t(S-1) se"}
    atomic_write_json(os.path.join(out, "ablation.json"), report)
    return report


def summarize(correct: dict, masked: np.ndarray, seeds: list[int], variants=None) -> list[dict]:
    """One row per variant: mean accuracy, the paired delta against triple, its interval, a verdict."""
    rows = []
    ref = np.mean([correct[("triple", s)] for s in seeds], axis=0)  # (n,)
    for variant in (VARIANTS if variants is None else variants):
        accs = np.array([correct[(variant, s)].sum() / masked.sum() for s in seeds])  # (S,)
        row = {"variant": variant, "mean_accuracy": float(accs.mean()),
               "std_accuracy": float(accs.std(ddof=1)) if len(seeds) > 1 else 0.0,
               "paper_delta": PAPER_DELTAS[variant]}
        if variant != "triple":
            per_seed = [intervals.paired_difference(correct[(variant, s)], correct[("triple", s)],
                                                    masked)[0] for s in seeds]
            mean_v = np.mean([correct[(variant, s)] for s in seeds], axis=0)  # (n,)
            _, tok_se = intervals.paired_difference(mean_v, ref, masked)
            if len(seeds) > 1:
                iv = intervals.seed_token_interval(per_seed, tok_se)
            else:  # one seed: the token interval only (no seed spread can be measured)
                d = float(per_seed[0])
                iv = {"mean": d, "se": tok_se, "seed_sd": float("nan"), "token_se": tok_se,
                      "ci95": list(intervals.ci95(d, tok_se))}
            row.update(per_seed_delta=[float(d) for d in per_seed], mean_delta=iv["mean"],
                       se_delta=iv["se"], seed_sd=iv["seed_sd"], token_se=iv["token_se"],
                       ci95=iv["ci95"], verdict=intervals.verdict(iv["ci95"], expected_sign=-1))
        rows.append(row)
    return rows


def format_ablation(report: dict) -> str:
    head = ("row", "val acc % (mean over seeds)", "delta vs triple, points [95% CI]", "paper (GLUE)",
            "verdict")
    rows = [head]
    for r in report["summary"]:
        if r["variant"] == "triple":
            rows.append((r["variant"], f"{100 * r['mean_accuracy']:.2f}", "(reference)", "-", ""))
            continue
        paper = "-" if r["paper_delta"] is None else f"{r['paper_delta']:+.2f}"
        rows.append((r["variant"], f"{100 * r['mean_accuracy']:.2f}",
                     f"{100 * r['mean_delta']:+.2f} {intervals.fmt_ci(r['ci95'])}", paper, r["verdict"]))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) if i in (0, 4) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append(f"(teacher {intervals.fmt_pm(report['teacher_accuracy'], report['teacher_se'])}%; "
                 f"{len(report['seeds'])} seeds x {report['steps']} steps per row; paired by seed and by "
                 f"token: {report['n_masked']} validation tokens, {report.get('n_masks', 1)} mask(s); "
                 "95% CI = mean +/- t(S-1) sqrt(var_seeds/S + se_tokens^2); the paper's rows of "
                 "Table 4 are GLUE points, for sign and ranking; (a) and (b) are the controls, the "
                 "paper's claim expects them below the triple loss)")
    return "\n".join(lines)


def plot_rows(report: dict) -> list[dict]:
    return [{"variant": r["variant"], "mean": 100 * r["mean_delta"],
             "ci95": [100 * r["ci95"][0], 100 * r["ci95"][1]], "paper": r["paper_delta"]}
            for r in report["summary"] if r["variant"] != "triple"]
