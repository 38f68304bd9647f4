"""The figures of the paper's claims: the control curves and the ablation with its intervals.

* ``controls.png``: validation masked-token accuracy (a fixed subset of the evaluation tokens)
  against the optimizer step for the distilled student and each control, with the teacher's
  accuracy on the same tokens as a reference line; the shaded band is +/- 1.96 se.
* ``ablation.png`` (``minidistil ablate``): the change of accuracy of each ablation row against the triple loss
  (mean over seeds, 95% interval), beside the paper's change of GLUE macro-score.
"""
from __future__ import annotations

import numpy as np

from .plots import _plt, _save


CONTROLS_TITLE = "does the teacher help? students on the same batches and masks"


def plot_controls(curves: dict, labels: dict, teacher_accuracy: float | None, path: str,
                  n_masked: int | None = None, title: str = CONTROLS_TITLE) -> None:
    """``curves`` {name: [{"step", "accuracy", "se"}, ...]}; accuracies are fractions."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, (name, rows) in enumerate(curves.items()):
        if not rows:
            continue
        x = np.array([r["step"] for r in rows])  # (K,)
        y = 100 * np.array([r["accuracy"] for r in rows])  # (K,) percent
        e = 100 * 1.959964 * np.array([r.get("se", 0.0) or 0.0 for r in rows])  # (K,)
        style = "-" if i == 0 else "--"
        ax.plot(x, y, style, color=f"C{i}", marker="o", ms=3, lw=2 if i == 0 else 1.4,
                label=labels.get(name, name))
        ax.fill_between(x, y - e, y + e, color=f"C{i}", alpha=0.15, lw=0)
    if teacher_accuracy is not None:
        ax.axhline(100 * teacher_accuracy, color="k", lw=1, ls=":", label="teacher (same tokens)")
    sub = f"\n(a fixed subset: {n_masked} validation tokens; bands: 95% CI)" if n_masked else ""
    ax.set(title=title + sub,
           xlabel="optimizer step", ylabel="val masked-token accuracy (%)")
    ax.title.set_size(10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)
    plt.close(fig)


def plot_ablation_ci(rows: list[dict], path: str) -> None:
    """``rows``: {"variant", "mean", "ci95": [lo, hi], "paper"} (points; paper may be None)."""
    plt = _plt()
    x = np.arange(len(rows))  # (n,)
    fig, ax = plt.subplots(figsize=(9, 4.2))
    mean = np.array([r["mean"] for r in rows])  # (n,)
    lo = mean - np.array([r["ci95"][0] for r in rows])  # (n,)
    hi = np.array([r["ci95"][1] for r in rows]) - mean  # (n,)
    ax.bar(x - 0.2, mean, 0.4, yerr=np.vstack([lo, hi]), capsize=4, color="C0",
           label="minidistil: change of val masked-token accuracy (points, 95% CI over seeds and tokens)")
    paper = [np.nan if r.get("paper") is None else r["paper"] for r in rows]
    ax.bar(x + 0.2, paper, 0.4, color="C1", label="paper: change of GLUE macro-score (points)")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, [r["variant"].replace(", ", ",\n") for r in rows], fontsize=8)
    ax.set(title="ablation against the triple loss (Table 4), paired by seed and token",
           xlabel="row of the ablation", ylabel="change against the triple loss (points)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=1)
    _save(fig, path)
    plt.close(fig)
