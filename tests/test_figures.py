"""Every figure minidistil writes or a notebook shows is at least 100 dpi, read back from the PNG.

The CLI's plot functions are called on small made-up inputs and the resolution is read from the
PNG's ``pHYs`` chunk (matplotlib writes the dpi there). The committed tutorial notebooks are
read as JSON: every image output must carry >= 100 dpi, and each notebook must hold one image
per figure its source shows (a notebook not regenerated after its source changed fails here).
"""
import base64
import json
import re
import struct
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
MIN_DPI = 100


def png_dpi(data: bytes) -> float | None:
    """The horizontal resolution stored in a PNG's pHYs chunk, in dots per inch (None if absent)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    i = 8
    while i + 8 <= len(data):
        (n,), kind = struct.unpack(">I", data[i:i + 4]), data[i + 4:i + 8]
        if kind == b"pHYs":
            x, _, unit = struct.unpack(">IIB", data[i + 8:i + 17])
            return x * 0.0254 if unit == 1 else None
        if kind == b"IDAT":
            return None
        i += 12 + n
    return None


def test_png_dpi_reads_what_matplotlib_wrote(tmp_path):
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    for dpi in (72, 110):
        fig.savefig(tmp_path / f"{dpi}.png", dpi=dpi)
        assert png_dpi((tmp_path / f"{dpi}.png").read_bytes()) == pytest.approx(dpi, abs=0.5)
    plt.close(fig)


def _cli_figures(out: Path) -> list[Path]:
    from minidistil.train.glue_report import plot_glue
    from minidistil.train.plots import plot_comparison, plot_losses
    from minidistil.train.plots_claims import plot_ablation_ci, plot_controls
    pre = [{"step": s, "loss": 7.0 - s / 50} for s in range(1, 101)]
    dist = [{"step": s, "loss": 9.0 - s / 50, "loss_ce": 1.0 / s, "loss_mlm": 3.0, "loss_cos": 1e-3 / s}
            for s in range(1, 61)]
    plot_losses(pre, dist, str(out / "losses.png"))
    plot_losses([], dist, str(out / "losses_distill_only.png"))
    m = {"parameters": 2e6, "time_per_batch_s": 0.02, "accuracy": 0.4, "se": 0.01}
    plot_comparison({"teacher": m, "student": dict(m, parameters=1e6), "unigram": {"accuracy": 0.06},
                     "speedup": 2.0, "retention": 0.9}, str(out / "comparison.png"))
    plot_controls({"distill": [{"step": s, "accuracy": 0.1 + s / 1000, "se": 0.01} for s in (0, 50, 100)]},
                  {"distill": "distilled"}, 0.45, str(out / "controls.png"), n_masked=500)
    plot_ablation_ci([{"variant": "-Lce", "mean": -1.0, "ci95": [-2.0, 0.0], "paper": -2.96},
                      {"variant": "(a) Lmlm, teacher init", "mean": -1.5, "ci95": [-2.5, -0.5], "paper": None}],
                     str(out / "ablation.png"))
    tasks = {"area": {"metric": "accuracy", "bow": {"score": 60.0}, "majority": {"score": 25.0}}}
    scores = {"teacher": {"area": {"median": 70.0, "seeds": [68.0, 70.0, 71.0]}}}
    plot_glue({"tasks": tasks, "models": {"teacher": "teacher"}, "scores": scores,
               "config": {"seeds": [0, 1, 2]}}, str(out / "glue.png"))
    return sorted(out.glob("*.png"))


def test_every_cli_figure_is_at_least_100_dpi(tmp_path):
    paths = _cli_figures(tmp_path)
    assert len(paths) == 6
    for p in paths:
        dpi = png_dpi(p.read_bytes())
        assert dpi is not None and dpi >= MIN_DPI - 0.01, f"{p.name}: {dpi} dpi"


NOTEBOOK_SOURCES = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))


def _figures_shown(src: str) -> int:
    """How many figures a notebook source shows: plt.show() calls and displayed PNG files."""
    code = "\n".join(line.split("#")[0] for line in src.splitlines())
    return len(re.findall(r"\bplt\.show\(\)", code)) + len(re.findall(r"display\(Image\(", code))


@pytest.mark.parametrize("src", NOTEBOOK_SOURCES, ids=[p.stem for p in NOTEBOOK_SOURCES])
def test_notebook_source_sets_the_dpi(src):
    text = src.read_text(encoding="utf-8")
    if "matplotlib" not in text:
        pytest.skip("draws no figures")
    dpis = [float(v) for v in re.findall(r"[\"']figure\.dpi[\"']\s*:\s*([0-9.]+)", text)]
    assert dpis, f"{src.name}: set figure.dpi in plt.rcParams (matplotlib_inline draws at fig.dpi)"
    explicit = [float(v) for v in re.findall(r"\bdpi\s*=\s*([0-9.]+)", text)]
    low = [d for d in dpis + explicit if d < MIN_DPI]
    assert not low, f"{src.name}: dpi {low} < {MIN_DPI}"


@pytest.mark.parametrize("src", NOTEBOOK_SOURCES, ids=[p.stem for p in NOTEBOOK_SOURCES])
def test_committed_notebook_images_are_at_least_100_dpi(src):
    shown = _figures_shown(src.read_text(encoding="utf-8"))
    built = [src.with_suffix(".ipynb")]
    if (src.with_name(src.stem + "_solutions.ipynb")).exists():
        built.append(src.with_name(src.stem + "_solutions.ipynb"))
    for nb_path in built:
        assert nb_path.exists(), f"{nb_path.name} is missing: run tutorials/build_notebooks.py {src.name[:2]}"
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
        images = [base64.b64decode(o["data"]["image/png"]) for c in nb["cells"] if c["cell_type"] == "code"
                  for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        assert len(images) == shown, (f"{nb_path.name}: {len(images)} images, its source shows {shown} "
                                      f"figures: rebuild it with tutorials/build_notebooks.py")
        dpis = [png_dpi(b) for b in images]
        # pHYs stores whole dots per metre: 100 dpi reads back as 99.9998
        assert all(d is not None and d >= MIN_DPI - 0.01 for d in dpis), f"{nb_path.name}: dpi {dpis}"


def test_figure_count_sees_comments_and_display():
    assert _figures_shown("plt.show()\n# plt.show()\ndisplay(Image(filename=p))\nx = 1  # plt.show()") == 2


def test_plotting_leaves_the_callers_backend_and_pyplot_alone(tmp_path):
    # plots.py used to call matplotlib.use("Agg", force=True): inside a notebook every later
    # plt.show() then drew nothing (notebook 07 lost its last figure)
    import subprocess
    import sys
    code = (
        "import matplotlib\n"
        "matplotlib.use('svg')\n"  # stands for the notebook's inline backend
        "import matplotlib.pyplot as plt\n"
        "from minidistil.train.plots_claims import plot_controls\n"
        "rows = {'distill': [{'step': 0, 'accuracy': 0.1, 'se': 0.01}, {'step': 4, 'accuracy': 0.2, 'se': 0.01}]}\n"
        f"plot_controls(rows, {{'distill': 'student'}}, 0.3, {str(tmp_path / 'c.png')!r}, n_masked=10)\n"
        "print(matplotlib.get_backend(), len(plt.get_fignums()))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["svg", "0"]
    assert (tmp_path / "c.png").stat().st_size > 1000
