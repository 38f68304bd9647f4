"""``minidistil glue --out RUN``: the paper's Tables 1 and 2 in miniature.

Every model of the run directory (the teacher, the distilled student and the control students
that exist) is fine-tuned on every task with ``len(seeds)`` seeds; as in the paper, the median
over seeds is reported. Retention = student macro-score / teacher macro-score, with a 95%
paired bootstrap interval over dev examples (the median-seed predictions of both models,
resampled with the same indices on every task). Table 2: on one classification task, the
student fine-tuned plainly beside "DistilBERT (D)", fine-tuned with the extra soft-target loss
against the fine-tuned teacher's logits (same seeds). Writes ``RUN/glue/report.json`` and
``RUN/glue/glue.png``.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..atomic import atomic_write_json
from ..models.heads import classifier_for
from . import intervals
from .baselines import bow_baseline, majority_baseline
from .finetune import FinetuneConfig, encode_examples, finetune, predict_logits
from .task_metrics import task_score

# (folder in the run directory, key, row label); the first two are required
MODELS = (("pretrain", "teacher", "BERT teacher"),
          ("distill", "student", "DistilBERT student"),
          ("control-mlm-teacher-init", "control_a", "(a) Lmlm only, teacher init"),
          ("control-mlm-random-init", "control_b", "(b) Lmlm only, random init"),
          ("control-triple-random-init", "control_c", "(c) triple loss, random init"))
PAPER_T1 = {"BERT-base": 79.5, "DistilBERT": 77.0}  # GLUE dev macro-scores (Sanh et al. 2019, Table 1)
PAPER_T2 = {"BERT-base": "81.2 / 88.5", "DistilBERT": "77.7 / 85.8", "DistilBERT (D)": "79.1 / 86.9"}


@dataclass
class GlueConfig:
    seeds: tuple = (0, 1, 2)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    table2_task: str = "area"
    alpha_soft: float = 0.5  # (D)'s weight of the soft-target loss; its temperature is finetune.temperature
    max_train: int | None = None  # keep the first examples only (tests)
    max_dev: int | None = None
    bootstrap: int = 1000


def find_models(run: str) -> list:
    """``[(key, label, path)]`` of the models present; teacher and student are required."""
    from .runs import MODEL_FILE
    found = []
    for folder, key, label in MODELS:
        path = os.path.join(run, folder, MODEL_FILE)
        if os.path.isfile(path):
            found.append((key, label, path))
        elif key in ("teacher", "student"):
            raise FileNotFoundError(f"{run}: no {key} at {os.path.join(folder, MODEL_FILE)} (run "
                                    f"`minidistil {'pretrain' if key == 'teacher' else 'distill'} --out {run}` first)")
    return found


def _median_index(scores) -> int:
    return int(np.argsort(scores)[(len(scores) - 1) // 2])


def bootstrap_scores(tasks, preds: dict, n: int, seed: int = 0) -> dict:
    """Paired bootstrap over dev examples: ``{key: (n, n_tasks) scores}`` for every model of
    ``preds`` (``{key: {task name: (N,) dev predictions}}``), each resample scoring every model on
    the same examples; NaN where a model has no predictions for a task."""
    rng = np.random.default_rng(seed)
    out = {k: np.full((n, len(tasks)), np.nan) for k in preds}  # (n, n_tasks) each
    for j, t in enumerate(tasks):
        gold = np.array([ex.label for ex in t.dev])  # (N,)
        for b in range(n):
            i = rng.integers(0, len(gold), len(gold))  # (N,) one resample of the dev examples
            for k, p in preds.items():
                if t.name in p:
                    out[k][b, j] = task_score(t.metric, p[t.name][i], gold[i])["score"]
    return out


def _ci(values):
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if len(v) else [None, None]


def verdict(ci) -> str:
    """'met' when the 95% interval of (a - b) lies above 0, 'MISSED' below, else 'not resolved'
    (the sign test of ``intervals.verdict``, read with a positive expected sign)."""
    if ci[0] is None:
        return "not resolved"
    return {"the paper's sign, significant": "met", "opposite sign, significant": "MISSED"}.get(
        intervals.verdict(ci, expected_sign=+1), "not resolved")


def _intervals(tasks, median_preds, bow_preds, d_preds, table2_task, n):
    """Retention intervals ``{key: [lo, hi]}`` and the compared differences ``{name: {"difference",
    "ci95", "verdict"}}``, every interval a 95% paired bootstrap over dev examples."""
    names = [t.name for t in tasks]
    preds = dict(median_preds, bow=bow_preds)
    if d_preds is not None:
        preds["student_D"] = {table2_task: d_preds}
    boot = bootstrap_scores(tasks, preds, n)
    full = {k: np.array([task_score(t.metric, p[t.name], np.array([ex.label for ex in t.dev]))["score"]
                         if t.name in p else np.nan for t in tasks]) for k, p in preds.items()}  # (n_tasks,)
    macro = {k: v.mean(axis=1) for k, v in boot.items() if k in median_preds}  # (n,) each
    retention = {}
    for k in median_preds:
        if k != "teacher":
            ok = macro["teacher"] > 0
            retention[k] = _ci(macro[k][ok] / macro["teacher"][ok])
    pairs = []  # (name, point difference, bootstrap differences)
    if "control_a" in macro:
        pairs.append(("student - control_a (macro)", full["student"].mean() - full["control_a"].mean(),
                      macro["student"] - macro["control_a"]))
    for j, t in enumerate(tasks):
        if t.kind == "pair":
            pairs.append((f"teacher - bow ({t.name})", full["teacher"][j] - full["bow"][j],
                          boot["teacher"][:, j] - boot["bow"][:, j]))
        if "control_a" in macro:  # where the macro difference comes from
            pairs.append((f"student - control_a ({t.name})", full["student"][j] - full["control_a"][j],
                          boot["student"][:, j] - boot["control_a"][:, j]))
    if d_preds is not None:
        j = names.index(table2_task)
        pairs.append((f"student_D - student ({table2_task})", full["student_D"][j] - full["student"][j],
                      boot["student_D"][:, j] - boot["student"][:, j]))
    diffs = {}
    for name, d, samples in pairs:
        ci = _ci(samples)
        diffs[name] = {"difference": float(d), "ci95": ci, "verdict": verdict(ci)}
    return retention, diffs


def run_glue(run: str, tasks: list, cfg: GlueConfig = GlueConfig(), progress: bool = True, log=print) -> dict:
    from ..data.tokenizer import WordPieceTokenizer
    from .runs import VOCAB_FILE, load_model
    t_start, c_start = time.perf_counter(), time.process_time()
    models = find_models(run)
    tok = WordPieceTokenizer.from_file(os.path.join(run, VOCAB_FILE))
    encoders = {key: load_model(path)[0] for key, _, path in models}
    ft = cfg.finetune
    steps_total = sum(len(cfg.seeds) * ft.epochs * -(-len(t.train[:cfg.max_train]) // ft.batch_size)
                      for t in tasks) * (len(models) + (1 if cfg.table2_task in [t.name for t in tasks] else 0))
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps_total, desc="glue", unit="step")
    report = {"run": run, "config": asdict(cfg), "models": {k: lbl for k, lbl, _ in models},
              "tasks": {}, "scores": {}, "table2": None}
    median_preds = {k: {} for k, _, _ in models}
    bow_preds, d_preds = {}, None
    for task in tasks:
        train, dev = task.train[:cfg.max_train], task.dev[:cfg.max_dev]
        task = replace(task, train=train, dev=dev)
        enc_tr = encode_examples(train, tok, ft.max_len, task.is_regression)
        enc_dv = encode_examples(dev, tok, ft.max_len, task.is_regression)
        report["tasks"][task.name] = {"kind": task.kind, "metric": task.metric, "num_labels": task.num_labels,
                                      "train": len(train), "dev": len(dev), "balance_train": task.balance("train"),
                                      "balance_dev": task.balance("dev"), "description": task.description,
                                      "majority": majority_baseline(task),
                                      "bow": bow_baseline(task, with_pred=True)}
        bow_preds[task.name] = report["tasks"][task.name]["bow"].pop("pred")
        soft = {}
        for key, label, _ in models:
            runs = []
            for seed in cfg.seeds:
                clf = classifier_for(encoders[key], seed=seed, num_labels=task.num_labels)
                res = finetune(clf, enc_tr, enc_dv, task.metric, tok.pad_id, ft, seed=seed,
                               progress=bar.update if bar else None)
                runs.append(res)
                if key == "teacher" and task.name == cfg.table2_task and not task.is_regression:
                    soft[seed] = predict_logits(clf, enc_tr, tok.pad_id, ft.eval_batch_size)  # (N, K)
            scores = [r.best_score for r in runs]
            m = _median_index(scores)
            median_preds[key][task.name] = runs[m].dev_pred
            report["scores"].setdefault(key, {})[task.name] = {
                "median": float(np.median(scores)), "seeds": scores, "epochs": [r.best_epoch for r in runs],
                "seconds": [round(r.seconds, 2) for r in runs]}
            if bar is None:
                log(f"  {task.name:<8} {label:<32} median {np.median(scores):6.2f}  seeds "
                    + " ".join(f"{s:.2f}" for s in scores))
        if soft:
            d_cfg = replace(ft, alpha_soft=cfg.alpha_soft)
            d_scores, d_runs = [], []
            for seed in cfg.seeds:
                clf = classifier_for(encoders["student"], seed=seed, num_labels=task.num_labels)
                r = finetune(clf, enc_tr, enc_dv, task.metric, tok.pad_id, d_cfg, seed=seed, soft_targets=soft[seed],
                             progress=bar.update if bar else None)
                d_scores.append(r.best_score)
                d_runs.append(r)
            d_preds = d_runs[_median_index(d_scores)].dev_pred
            report["table2"] = {"task": task.name, "alpha_soft": cfg.alpha_soft, "temperature": ft.temperature,
                                "teacher": report["scores"]["teacher"][task.name],
                                "student": report["scores"]["student"][task.name],
                                "student_D": {"median": float(np.median(d_scores)), "seeds": d_scores}}
    if bar is not None:
        bar.close()
    names = [t.name for t in tasks]
    macro = {k: float(np.mean([report["scores"][k][n]["median"] for n in names])) for k in report["scores"]}
    report["macro"] = macro
    for base in ("majority", "bow"):
        macro[base] = float(np.mean([report["tasks"][n][base]["score"] for n in names]))
    tasks_cut = [replace(t, dev=t.dev[:cfg.max_dev]) for t in tasks]
    t2 = report["table2"]["task"] if report["table2"] else ""
    ret_ci, diffs = _intervals(tasks_cut, median_preds, bow_preds, d_preds, t2, cfg.bootstrap)
    report["retention"] = {k: {"ratio": macro[k] / macro["teacher"] if macro["teacher"] > 0 else None,
                               "ci95": ci} for k, ci in ret_ci.items()}
    report["differences"] = diffs
    report["wall_s"] = time.perf_counter() - t_start
    report["cpu_s"] = time.process_time() - c_start
    out = os.path.join(run, "glue")
    os.makedirs(out, exist_ok=True)
    atomic_write_json(os.path.join(out, "report.json"), _jsonable(report))
    return report


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x
