"""Generate the exercise and the solution notebooks from the one source, ``exercises.py``.

    python tutorials/exercises/make_notebooks.py            # write both .ipynb (not executed)
    python tutorials/exercises/make_notebooks.py --execute  # ... and run them (outputs kept)

In the source, solution code sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``
lines. The exercise version replaces each such block with a ``raise NotImplementedError``
naming the exercise (the function's name); the solution version only drops the marker lines.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

import jupytext
import nbformat

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "exercises.py"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_DEF = re.compile(r"^\s*def\s+(\w+)\s*\(")


def _transform(source: str, keep_solution: bool) -> str:
    out, inside, func = [], False, "exercise"
    for line in source.splitlines():
        m = _DEF.match(line)
        if m and not inside:
            func = m.group(1)
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"nested {BEGIN} in {func}")
            inside = True
            if not keep_solution:
                indent = line[: len(line) - len(line.lstrip())]
                name = func.removesuffix("_backward")
                out.append(f"{indent}# YOUR CODE HERE")
                out.append(f'{indent}raise NotImplementedError("exercise {name!r}: write {func}")')
            continue
        if stripped == END:
            if not inside:
                raise ValueError(f"{END} without {BEGIN} in {func}")
            inside = False
            continue
        if keep_solution or not inside:
            out.append(line)
    if inside:
        raise ValueError(f"unterminated {BEGIN} in {func}")
    return "\n".join(out)


def has_solutions(nb: nbformat.NotebookNode) -> bool:
    """True when a code cell of ``nb`` holds a ``### BEGIN SOLUTION`` block."""
    return any(c.cell_type == "code" and BEGIN in c.source for c in nb.cells)


def make_version(nb: nbformat.NotebookNode, solution: bool,
                 source: str = "tutorials/exercises/exercises.py",
                 tool: str = "tutorials/exercises/make_notebooks.py") -> nbformat.NotebookNode:
    """A copy of ``nb`` as the exercise (``solution=False``) or the solution version."""
    new = nbformat.from_dict(nb)
    for cell in new.cells:
        if cell.cell_type == "code":
            cell.source = _transform(cell.source, keep_solution=solution)
    title = "Solutions" if solution else "Exercises"
    new.cells.insert(0, nbformat.v4.new_markdown_cell(
        f"*{title} version, generated from `{source}` by `{tool}`; edit the source, not this "
        f"file.*"))
    return new


def execute(nb: nbformat.NotebookNode, timeout: int = 120) -> nbformat.NotebookNode:
    from nbclient import NotebookClient
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()
    return nb


def _write_atomic(nb, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".ipynb.tmp")
    os.close(fd)
    nbformat.write(nb, tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--execute", action="store_true", help="run the notebooks and keep outputs")
    ap.add_argument("--out", type=Path, default=HERE, help="output folder")
    args = ap.parse_args(argv)
    src = jupytext.read(SOURCE)
    for solution, name in ((False, "exercises.ipynb"), (True, "solutions.ipynb")):
        nb = make_version(src, solution)
        if args.execute:
            execute(nb)
        _write_atomic(nb, args.out / name)
        print("wrote", args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
