"""Execute the tutorial sources and write the paired .ipynb files with their outputs.

    python tutorials/build_notebooks.py                 # every tutorials/NN_*.py
    python tutorials/build_notebooks.py 03 06           # only these numbers

The ``.py`` files (jupytext percent format) are the sources to edit and review; the ``.ipynb``
files are generated, executed, and committed so that a reader sees the results without running
anything. A fill-in tutorial (02, 03: code between ``### BEGIN SOLUTION`` and
``### END SOLUTION``) gives a student notebook, whose stubs raise ``NotImplementedError`` and
whose stage checks print FAIL, and ``NN_*_solutions.ipynb``, completed. Each notebook's wall time and its kernel's CPU time are
printed (the budget is 90 s per notebook on 2 cores; on a busy machine the CPU time is the
steadier figure).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


sys.path.insert(0, str(HERE / "exercises"))
from make_notebooks import has_solutions, make_version  # noqa: E402

sys.path.pop(0)


# run after the last cell and removed again: the kernel's CPU seconds (its own and its children's),
# which a loaded machine inflates much less than the wall time
_CPU_PROBE = ("import resource as _r\n"
              "print(sum(getattr(_r.getrusage(w), f) for w in (_r.RUSAGE_SELF, _r.RUSAGE_CHILDREN)"
              " for f in ('ru_utime', 'ru_stime')))")


def _execute_and_write(nb, out: Path, timeout: int | None) -> tuple[float, float]:
    nb.cells.append(nbformat.v4.new_code_cell(_CPU_PROBE))
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=timeout, startup_timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()
    seconds = time.perf_counter() - t0
    probe = nb.cells.pop()
    cpu = float("".join(o.get("text", "") for o in probe.get("outputs", [])) or "nan")
    for cell in nb.cells:  # keep diffs small: no per-run execution timestamps
        cell.get("metadata", {}).pop("execution", None)
    fd, tmp = tempfile.mkstemp(dir=HERE, suffix=".ipynb.tmp")
    os.close(fd)
    nbformat.write(nb, tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)
    return seconds, cpu


def _default_timeout() -> int | None:
    """Per-cell timeout in seconds: ``MINIDISTIL_NOTEBOOK_TIMEOUT`` (as for the tests), 0 for none."""
    t = int(os.environ.get("MINIDISTIL_NOTEBOOK_TIMEOUT", "600"))
    return t if t > 0 else None


def build(src: Path, timeout: int | None = None) -> tuple[float, float]:
    """Execute ``src`` into ``NN_*.ipynb``. A fill-in source (with ``### BEGIN SOLUTION`` blocks)
    gives two notebooks: the student's ``NN_*.ipynb`` (stubs, checks that fail) and
    ``NN_*_solutions.ipynb`` (completed). Returns the wall and kernel CPU seconds of the
    (solutions) run."""
    timeout = timeout if timeout is not None else _default_timeout()
    nb = jupytext.read(src)
    if not has_solutions(nb):
        return _execute_and_write(nb, src.with_suffix(".ipynb"), timeout)
    rel = f"tutorials/{src.name}"
    _execute_and_write(make_version(nb, False, rel, "tutorials/build_notebooks.py"),
                       src.with_suffix(".ipynb"), timeout)
    return _execute_and_write(make_version(nb, True, rel, "tutorials/build_notebooks.py"),
                              src.with_name(src.stem + "_solutions.ipynb"), timeout)


def main(argv=None) -> int:
    wanted = (argv if argv is not None else sys.argv[1:])
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures into the notebook
    sources = sorted(HERE.glob("[0-9][0-9]_*.py"))
    if wanted:
        sources = [s for s in sources if s.name[:2] in wanted]
    for src in sources:
        wall, cpu = build(src)
        print(f"{src.name}: {wall:.1f} s wall, {cpu:.1f} s kernel CPU", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
