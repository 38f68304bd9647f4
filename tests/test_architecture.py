"""The layout's promises, checked by reading the source (no imports, so nothing can hide behind
an import that happens to be cached):

* the teaching path (kernels, layers, models, losses, masking, train, gradcheck) reaches no speed
  code: no ``minidistil.fast``, no ``minidistil.bench``, no threadpoolctl, ctypes or malloc
  tuning, and no environment variable set, through any chain of imports inside the package
  (function-level imports included: they run as soon as the function does). The command line
  is not the teaching path: it is what switches the fast layer on (``cli.py``, ``cli_*.py`` and
  each command's ``train/<command>_cli.py``), so the walk neither starts nor continues there;
* no source file of the package, the tests or the tutorials is over 500 lines.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "minidistil"
TEACHING = ("kernels", "layers", "models", "losses", "masking", "train", "gradcheck", "task_losses")
FORBIDDEN_PACKAGES = ("minidistil.fast", "minidistil.bench")
FORBIDDEN_THIRD_PARTY = ("threadpoolctl", "ctypes")
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """The absolute names an ``import`` statement brings in (a relative one resolved)."""
    if node.level == 0:
        base = node.module or ""
    else:
        parts = module.split(".")
        keep = len(parts) - node.level + (1 if is_package else 0)
        base = ".".join(parts[:keep] + ([node.module] if node.module else []))
    return [base] + [f"{base}.{a.name}" for a in node.names]


def _imports(path: Path) -> tuple[set[str], list[str]]:
    """(the modules ``path`` imports anywhere in its body, the process-wide effects it writes)."""
    module, tree = _module_name(path), ast.parse(path.read_text(encoding="utf-8"))
    names, effects = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names |= set(_resolve(module, path.name == "__init__.py", node))
        elif isinstance(node, ast.Attribute) and node.attr in ("mallopt", "putenv", "setdefault") and \
                isinstance(node.value, (ast.Name, ast.Attribute)) and \
                (getattr(node.value, "attr", None) or getattr(node.value, "id", None)) in ("environ", "libc", "os"):
            effects.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.attr}")
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Subscript) and getattr(t.value, "attr", getattr(t.value, "id", None)) == "environ":
                    effects.append(f"{path.relative_to(ROOT)}:{node.lineno} environ[...] =")
    return names, effects


def _graph():
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    return files, {m: _imports(p) for m, p in files.items()}


def _is_command_line(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return last == "cli" or last.startswith("cli_") or last.endswith("_cli")


def _teaching_modules(files):
    return sorted(m for m in files if m.count(".") >= 1 and m.split(".")[1] in TEACHING
                  and not _is_command_line(m))


def test_the_graph_sees_imports():
    """The analysis itself works: the fast layer imports threadpoolctl, train imports kernels."""
    files, graph = _graph()
    assert any(n.startswith("threadpoolctl") for n in graph["minidistil.fast.threads"][0])
    assert "minidistil.layers.linear" in files and any(
        n.startswith("minidistil.kernels") for n in graph["minidistil.layers.linear"][0])
    assert len(_teaching_modules(files)) > 30
    assert "minidistil.train.glue_cli" not in _teaching_modules(files)  # the command line
    assert "minidistil.train.glue" in _teaching_modules(files)


def test_the_teaching_path_reaches_no_speed_code():
    files, graph = _graph()
    bad = []
    for start in _teaching_modules(files):
        seen, todo, chain = {start}, [start], {start: [start]}
        while todo:
            m = todo.pop()
            names, effects = graph[m]
            bad += [f"{' -> '.join(chain[m])}: {e}" for e in effects]
            for n in names:
                if n.startswith(FORBIDDEN_PACKAGES) or n.split(".")[0] in FORBIDDEN_THIRD_PARTY:
                    bad.append(f"{' -> '.join(chain[m])} imports {n}")
                # the modules of the package this name is (or is inside of)
                for target in {n, n.rsplit(".", 1)[0]}:
                    if target in files and target not in seen and not target.startswith(FORBIDDEN_PACKAGES) \
                            and not _is_command_line(target):
                        seen.add(target)
                        chain[target] = chain[m] + [target]
                        todo.append(target)
    assert not sorted(set(bad)), "\n".join(sorted(set(bad)))


def test_the_fast_layer_is_seen_as_forbidden():
    """A teaching module that imported minidistil.fast would be caught (the check can fail)."""
    tree = ast.parse("from ..fast import threads\n")
    names = set(_resolve("minidistil.layers.linear", False, tree.body[0]))
    assert any(n.startswith(FORBIDDEN_PACKAGES) for n in names)


@pytest.mark.parametrize("folder", ["minidistil", "tests", "tutorials"])
def test_no_source_file_is_over_500_lines(folder):
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / folder).rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines: {long}"
