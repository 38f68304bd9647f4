"""Printing and plotting the report of :func:`minidistil.train.glue.run_glue`."""
from __future__ import annotations

import os

import numpy as np

from .glue import PAPER_T1, PAPER_T2


def _table(rows) -> list:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return lines


def format_glue(report: dict) -> str:
    """Table 1 in miniature (dev scores, median of seeds), then Table 2 in miniature."""
    names = list(report["tasks"])
    head = ["model"] + [f"{n} ({_metric(report['tasks'][n]['metric'])})" for n in names] + ["macro", "retention"]
    rows = [head]
    for base, label in (("majority", "majority class"), ("bow", "bag-of-words log. reg.")):
        rows.append([label] + [f"{report['tasks'][n][base]['score']:.1f}" for n in names]
                    + [f"{report['macro'][base]:.1f}", ""])
    for key, label in report["models"].items():
        ret = report["retention"].get(key)
        rtxt = "100%" if key == "teacher" else _ret(ret)
        rows.append([label] + [f"{report['scores'][key][n]['median']:.1f}" for n in names]
                    + [f"{report['macro'][key]:.1f}", rtxt])
    rows.append(["paper: BERT-base (GLUE, 9 tasks)"] + [""] * len(names) + [f"{PAPER_T1['BERT-base']:.1f}", "100%"])
    rows.append(["paper: DistilBERT"] + [""] * len(names)
                + [f"{PAPER_T1['DistilBERT']:.1f}", f"{100 * PAPER_T1['DistilBERT'] / PAPER_T1['BERT-base']:.1f}%"])
    seeds = report["config"]["seeds"]
    lines = ["Table 1 in miniature: dev scores, median of %d seeds (retention: 95%% paired bootstrap "
             "interval over dev examples)" % len(seeds)] + _table(rows)
    t2 = report.get("table2")
    if t2:
        rows = [["model", f"{t2['task']} dev score", "paper: SQuAD EM / F1"],
                ["BERT teacher", f"{t2['teacher']['median']:.1f}", PAPER_T2["BERT-base"]],
                ["DistilBERT student", f"{t2['student']['median']:.1f}", PAPER_T2["DistilBERT"]],
                [f"DistilBERT (D), alpha {t2['alpha_soft']}, tau {t2['temperature']}",
                 f"{t2['student_D']['median']:.1f}", PAPER_T2["DistilBERT (D)"]]]
        lines += ["", "Table 2 in miniature: fine-tuning with a second distillation step "
                      "(seeds: " + ", ".join(f"{s:.1f}" for s in t2["student_D"]["seeds"]) + " for (D))"]
        lines += _table(rows)
        name = next((k for k in report.get("differences", {}) if k.startswith("student_D - student")), None)
        if name:
            d, txt = _diff(report, name)
            lines.append(f"(D) minus the plain student: {txt} points, 95% paired bootstrap interval -> "
                         + {"met": "(D) better", "MISSED": "(D) worse"}.get(d["verdict"], "not resolved"))
    lines.append(f"time: {report['wall_s']:.0f} s wall, {report['cpu_s']:.0f} s CPU")
    return "\n".join(lines)


def _metric(m):
    return {"accuracy": "acc", "mcc": "MCC", "pearson_spearman": "P/S corr"}[m]


def _ret(ret):
    if not ret or ret["ratio"] is None:
        return "-"
    lo, hi = ret["ci95"]
    ci = f" [{100 * lo:.0f}, {100 * hi:.0f}]" if lo is not None else ""
    return f"{100 * ret['ratio']:.1f}%{ci}"


def _diff(report, name):
    d = report["differences"][name]
    lo, hi = d["ci95"]
    ci = f" [{lo:+.1f}, {hi:+.1f}]" if lo is not None else ""
    return d, f"{d['difference']:+.1f}{ci}"


def format_targets(report: dict) -> str:
    """The targets of the miniature GLUE, each met or missed with its figure; a comparison is 'met' only when its
    95% paired bootstrap interval excludes zero ('not resolved' when it does not)."""
    out = []
    r = report["retention"].get("student", {})
    if r.get("ratio") is not None:
        out.append(f"student retains >= 97% of the teacher's macro-score: {_ret(r)} "
                   f"-> {'met' if r['ratio'] >= 0.97 else 'MISSED'}")
    for n, t in report["tasks"].items():
        if t["kind"] == "pair":
            d, txt = _diff(report, f"teacher - bow ({n})")
            tch, bow = report["scores"]["teacher"][n]["median"], t["bow"]["score"]
            out.append(f"teacher beats bag-of-words on {n}: {tch:.1f} vs {bow:.1f}, difference {txt} -> "
                       f"{d['verdict']}")
    if "control_a" in report["macro"]:
        d, txt = _diff(report, "student - control_a (macro)")
        s, a = report["macro"]["student"], report["macro"]["control_a"]
        out.append(f"student beats control (a) Lmlm only: macro {s:.1f} vs {a:.1f}, difference {txt} -> "
                   f"{d['verdict']}")
        keys = [(n, f"student - control_a ({n})") for n in report["tasks"]]
        if all(k in report["differences"] for _, k in keys):  # (a report written before has none)
            per = [(n, *_diff(report, k)) for n, k in keys]
            out.append("  student minus (a) per task: " + "; ".join(
                f"{n} {txt} ({d['verdict']})" for n, d, txt in per))
    else:
        out.append("student vs control (a): control (a) not in the run directory")
    mins = report["wall_s"] / 60
    out.append(f"glue in <= 20 minutes: {mins:.1f} min wall ({report['cpu_s'] / 60:.1f} min CPU) -> "
               f"{'met' if mins <= 20 else 'MISSED'}")
    out.append("(differences: points, median-seed predictions, 95% paired bootstrap interval over dev examples)")
    return "\n".join(out)


def plot_glue(report: dict, path: str) -> str:
    """Grouped bars: one group per task, one bar per model (median, whiskers = min..max over seeds),
    the bag-of-words and majority baselines as horizontal marks."""
    from ..atomic import atomic_write
    from .plots import DPI, _plt
    plt = _plt()
    names = list(report["tasks"])
    models = list(report["models"].items())
    fig, ax = plt.subplots(figsize=(2.2 * len(names) + 3, 4.5))
    w = 0.8 / len(models)
    x = np.arange(len(names))
    for j, (key, label) in enumerate(models):
        med = [report["scores"][key][n]["median"] for n in names]
        lo = [m - min(report["scores"][key][n]["seeds"]) for m, n in zip(med, names)]
        hi = [max(report["scores"][key][n]["seeds"]) - m for m, n in zip(med, names)]
        ax.bar(x - 0.4 + w * (j + 0.5), med, w, yerr=[lo, hi], capsize=2, label=label)
    for k, (base, style) in enumerate((("bow", "k--"), ("majority", "k:"))):
        for i, n in enumerate(names):
            ax.plot([i - 0.45, i + 0.45], [report["tasks"][n][base]["score"]] * 2, style,
                    label=({"bow": "bag-of-words baseline", "majority": "majority baseline"}[base] if i == 0 else None))
    ax.set_xticks(x)
    ax.set_xticklabels([f"{n}\n({_metric(report['tasks'][n]['metric'])})" for n in names])
    ax.set_xlabel("task (metric)")
    ax.set_ylabel("dev score (0-100; accuracy %, MCC x100, correlation x100)")
    ax.set_title(f"Miniature GLUE: median of {len(report['config']['seeds'])} seeds (whiskers: min-max)")
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight"))
    plt.close(fig)
    return path
