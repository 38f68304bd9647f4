"""PNG figures of a run (matplotlib, Agg backend: no display needed).

* ``losses.png``: the teacher's MLM loss, and the student's total loss with each of its terms
  (Lce, Lmlm, Lcos) against the optimizer step;
* ``comparison.png``: size, inference time and validation accuracy of teacher and student
  (with the unigram baseline and 95% intervals), the paper's Table 3 in miniature.

Every figure is written at 110 dpi (``DPI``). The ablation and control figures are in
``plots_claims.py``.
"""
from __future__ import annotations

import os

import numpy as np


class _Figures:
    """pyplot's ``subplots`` and ``close`` without pyplot: minidistil draws on Figure objects of
    its own and saves them as PNG, so the caller's backend (a notebook's inline plots, a GUI) is
    never switched and no figure is left in pyplot's list."""

    @staticmethod
    def subplots(nrows=1, ncols=1, figsize=None, layout=None, **kw):
        from matplotlib.figure import Figure
        fig = Figure(figsize=figsize, layout=layout)
        return fig, fig.subplots(nrows, ncols, **kw)

    @staticmethod
    def close(fig):
        """Nothing to do: the figure was never registered with pyplot."""


def _plt():
    return _Figures


DPI = 110  # every PNG minidistil writes; tests/test_figures.py reads it back from the file


def _save(fig, path):
    from ..atomic import atomic_write
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight"))


def _smooth(y, k):
    y = np.asarray(y, dtype=np.float64)  # (N,)
    if k <= 1 or len(y) < k:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))  # (N+1,)
    out = (c[k:] - c[:-k]) / k  # (N-k+1,) moving average
    return np.concatenate([y[: k - 1], out])  # (N,)


def plot_losses(pretrain_rows: list[dict], distill_rows: list[dict], path: str) -> None:
    plt = _plt()
    # a --teacher run has no pretraining of its own: one panel, not an empty one
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained") if pretrain_rows else \
        plt.subplots(1, 1, figsize=(6, 4), layout="constrained")
    axes = np.atleast_1d(axes)
    ax = axes[0]
    if pretrain_rows:
        x = [r["step"] for r in pretrain_rows]
        y = [r["loss"] for r in pretrain_rows]
        ax.plot(x, y, alpha=0.3, color="C0")
        ax.plot(x, _smooth(y, 10), color="C0", label="MLM loss (moving mean of 10)")
        ax.legend()
        ax.set(title="teacher pretraining", xlabel="optimizer step", ylabel="MLM loss (nats per masked token)")
    ax = axes[-1]
    if distill_rows:
        x = [r["step"] for r in distill_rows]
        for i, (key, label) in enumerate((("loss", "total"), ("loss_ce", "Lce (soft targets)"),
                                           ("loss_mlm", "Lmlm"), ("loss_cos", "Lcos"))):
            if key in distill_rows[0]:
                ax.plot(x, _smooth([r[key] for r in distill_rows], 10), color=f"C{i}", label=label)
        ax.set_yscale("log")
        ax.legend()
    ax.set(title="student distillation (unweighted terms)", xlabel="optimizer step",
           ylabel="loss (nats; Lcos unitless), log scale")
    _save(fig, path)
    plt.close(fig)


def plot_comparison(report: dict, path: str) -> None:
    plt = _plt()
    t, s, u = report["teacher"], report.get("student"), report.get("unigram")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), layout="constrained")
    names = ["teacher", "student"] if s else ["teacher"]
    models = [t, s] if s else [t]
    axes[0].bar(names, [m["parameters"] / 1e6 for m in models], color=["C0", "C1"][: len(names)])
    axes[0].set(title="parameters", xlabel="model", ylabel="parameters (millions)")
    if "time_per_batch_s" in t:
        axes[1].bar(names, [1e3 * m["time_per_batch_s"] for m in models], color=["C0", "C1"][: len(names)])
        title = "inference per batch"
        if s:
            from .intervals import fmt_ci
            ci = report.get("speedup_ci95")
            title += f"\n(speed-up {report['speedup']:.2f}x" + (
                f", 95% CI {fmt_ci(ci, scale=1.0, signed=False)})" if ci else ")")
        axes[1].set(title=title, xlabel="model", ylabel="inference time per batch (ms)")
    if u is None:  # a teacher without an MLM head: agreement of the hidden states, not accuracy
        if s:
            keys = [("hidden_cosine", "per token"), ("embedding_cosine", "sentence\nembedding")]
            means = [report[k]["mean"] for k, _ in keys]
            axes[2].bar([lbl for _, lbl in keys], means, yerr=[report[k]["se"] for k, _ in keys],
                        capsize=4, color="C1")
            axes[2].axhline(1.0, color="C0", lw=1, ls="--", label="teacher itself")
            axes[2].set(title="student vs teacher: cosine of\nthe last hidden states",
                        xlabel="what is compared", ylabel="cosine (mean +/- s.e.)", ylim=(min(0.0, min(means) - 0.1), 1.1))
            axes[2].legend(fontsize=8, loc="upper right")
        else:
            axes[2].remove()  # nothing to compare yet: no empty panel
    else:
        bars = [u] + models
        err = [100 * 1.959964 * m["se"] if m.get("se") is not None else np.nan for m in bars]  # nan: no whisker
        axes[2].bar(["unigram"] + names, [100 * m["accuracy"] for m in bars], yerr=err, capsize=4,
                    color=["0.6", "C0", "C1"][: len(names) + 1])
        title = "val masked-token accuracy"
        if s:
            title += f"\n(retention {100 * report['retention']:.1f}%)"
        axes[2].set(title=title, xlabel="model (whiskers: 95% CI)", ylabel="masked-token accuracy (%)")
    _save(fig, path)
    plt.close(fig)


def plot_run(out: str, report: dict) -> list[str]:
    """Write losses.png and comparison.png into ``out/plots``; returns the paths."""
    from .loop import METRICS_FILE, read_metrics
    folder = os.path.join(out, "plots")
    os.makedirs(folder, exist_ok=True)
    paths = []
    pre = read_metrics(os.path.join(out, "pretrain", METRICS_FILE))
    dist = read_metrics(os.path.join(out, "distill", METRICS_FILE))
    if pre or dist:  # nothing trained in this run directory (evaluate --teacher alone): no empty panel
        paths.append(os.path.join(folder, "losses.png"))
        plot_losses(pre, dist, paths[-1])
    paths.append(os.path.join(folder, "comparison.png"))
    plot_comparison(report, paths[-1])
    return paths
