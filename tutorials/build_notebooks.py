"""Execute the tutorial sources and write the paired .ipynb files with their outputs.

    python tutorials/build_notebooks.py                 # every tutorials/NN_*.py
    python tutorials/build_notebooks.py 03 06           # only these numbers

The ``.py`` files (jupytext percent format) are the sources to edit and review; the ``.ipynb``
files are generated, executed, and committed so that a reader sees the results without running
anything. A fill-in tutorial (02, 03: code between ``### BEGIN SOLUTION`` and
``### END SOLUTION``) gives a student notebook, whose stubs raise ``NotImplementedError`` and
whose stage checks print FAIL, and ``NN_*_solutions.ipynb``, completed. Each notebook's run time is printed (the budget is 90 s on 2 cores).
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


def _execute_and_write(nb, out: Path, timeout: int) -> float:
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()
    seconds = time.perf_counter() - t0
    for cell in nb.cells:  # keep diffs small: no per-run execution timestamps
        cell.get("metadata", {}).pop("execution", None)
    fd, tmp = tempfile.mkstemp(dir=HERE, suffix=".ipynb.tmp")
    os.close(fd)
    nbformat.write(nb, tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)
    return seconds


def build(src: Path, timeout: int = 300) -> float:
    """Execute ``src`` into ``NN_*.ipynb``. A fill-in source (with ``### BEGIN SOLUTION`` blocks)
    gives two notebooks: the student's ``NN_*.ipynb`` (stubs, checks that fail) and
    ``NN_*_solutions.ipynb`` (completed). Returns the seconds of the (solutions) run."""
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
        print(f"{src.name}: {build(src):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
