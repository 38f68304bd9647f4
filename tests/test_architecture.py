"""The layout's promises, checked by reading the source (no imports, so nothing can hide behind
an import that happens to be cached):

* the teaching path (kernels, layers, models, losses, masking, train, gradcheck) reaches no speed
  code: no ``minidistil.fast``, no ``minidistil.bench``, no threadpoolctl, ctypes or malloc
  tuning, no environment variable set or removed and no thread count set, through any chain of
  imports inside the package (function-level imports included: they run as soon as the function
  does). The command line is not the teaching path: it is what switches the fast layer on
  (``cli.py``, ``cli_*.py`` and ``commands/``), so the walk does not start there; it does follow a
  teaching module into it, and no module under ``train/`` (or any teaching package) is exempt;
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
# process-wide writes, as ``owner.method``: os.environ's, os's and libc's (ctypes) setters
EFFECT_METHODS = {"environ": ("setdefault", "update", "pop", "popitem", "clear"),
                  "os": ("putenv", "unsetenv"), "libc": ("mallopt",)}
THREAD_SETTERS = ("set_num_threads",)  # numba.set_num_threads(...), or any set_num_threads(...)
# (module, function): the knob the teaching path defines for its users and never calls itself; a
# call to it from a teaching module is still caught (the callers are parallel/, bench/, tutorials)
KNOBS = {("minidistil.kernels.backend", "set_num_threads")}
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


def _name(node) -> str | None:
    """``environ`` for ``os.environ`` or ``environ``; None for anything but a name or attribute."""
    return getattr(node, "attr", None) or getattr(node, "id", None)


def _walk(tree):
    """Every node, with the name of the innermost function around it (None at import level)."""
    todo = [(tree, None)]
    while todo:
        node, func = todo.pop()
        yield node, func
        inner = node.name if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
        todo += [(child, inner) for child in ast.iter_child_nodes(node)]


def _scan(module: str, is_package: bool, source: str, where: str) -> tuple[set[str], list[str]]:
    """(the modules ``source`` imports anywhere in its body, the process-wide effects it writes)."""
    names, effects = set(), []
    for node, func in _walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names |= set(_resolve(module, is_package, node))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, (ast.Name, ast.Attribute)) and \
                node.attr in EFFECT_METHODS.get(_name(node.value), ()):
            effects.append(f"{where}:{node.lineno} {_name(node.value)}.{node.attr}")
        elif isinstance(node, ast.Call) and _name(node.func) in THREAD_SETTERS and \
                (module, func) not in KNOBS:
            effects.append(f"{where}:{node.lineno} {_name(node.func)}(...)")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.target if isinstance(node, ast.AugAssign) else node.targets
            for t in targets if isinstance(targets, list) else [targets]:
                if isinstance(t, ast.Subscript) and _name(t.value) == "environ":
                    what = "del environ[...]" if isinstance(node, ast.Delete) else "environ[...] ="
                    effects.append(f"{where}:{node.lineno} {what}")
    return names, effects


def _imports(path: Path) -> tuple[set[str], list[str]]:
    return _scan(_module_name(path), path.name == "__init__.py", path.read_text(encoding="utf-8"),
                 str(path.relative_to(ROOT)))


def _graph():
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    return files, {m: _imports(p) for m, p in files.items()}


def _teaching_modules(files):
    return sorted(m for m in files if m.count(".") >= 1 and m.split(".")[1] in TEACHING)


def test_the_graph_sees_imports():
    """The analysis itself works: the fast layer imports threadpoolctl, train imports kernels."""
    files, graph = _graph()
    assert any(n.startswith("threadpoolctl") for n in graph["minidistil.fast.threads"][0])
    assert "minidistil.layers.linear" in files and any(
        n.startswith("minidistil.kernels") for n in graph["minidistil.layers.linear"][0])
    assert len(_teaching_modules(files)) > 30
    assert "minidistil.commands.glue" not in _teaching_modules(files)  # the command line
    assert "minidistil.fast" in graph["minidistil.commands.glue"][0]  # ... which switches speed on
    assert "minidistil.train.glue" in _teaching_modules(files)
    train = [m for m in files if m.startswith("minidistil.train.")]
    assert train and set(train) <= set(_teaching_modules(files))  # no module of train/ is exempt


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
                    if target in files and target not in seen and not target.startswith(FORBIDDEN_PACKAGES):
                        seen.add(target)
                        chain[target] = chain[m] + [target]
                        todo.append(target)
    assert not sorted(set(bad)), "\n".join(sorted(set(bad)))


def test_the_fast_layer_is_seen_as_forbidden():
    """A teaching module that imported minidistil.fast would be caught (the check can fail)."""
    tree = ast.parse("from ..fast import threads\n")
    names = set(_resolve("minidistil.layers.linear", False, tree.body[0]))
    assert any(n.startswith(FORBIDDEN_PACKAGES) for n in names)


@pytest.mark.parametrize("line", [
    'os.environ["OMP_NUM_THREADS"] = "1"', 'os.environ.setdefault("OMP_NUM_THREADS", "1")',
    'os.environ.update(OMP_NUM_THREADS="1")', 'os.environ.pop("OMP_NUM_THREADS", None)',
    'del os.environ["OMP_NUM_THREADS"]', 'os.putenv("OMP_NUM_THREADS", "1")',
    "numba.set_num_threads(1)", "set_num_threads(1)",
    "def f():\n    numba.set_num_threads(1)",  # inside a function: it runs as soon as f does
])
def test_each_process_wide_effect_is_seen(line):
    """Each write the walk looks for would be caught in a teaching module (the check can fail)."""
    _, effects = _scan("minidistil.layers.linear", False, f"import os\nimport numba\n{line}\n", "x.py")
    assert effects, line


def test_only_the_knob_itself_may_set_threads():
    """kernels/backend.py's ``set_num_threads`` (the user's knob) may call Numba's; no one else."""
    body = "def set_num_threads(n):\n    numba.set_num_threads(n)\n"
    assert not _scan("minidistil.kernels.backend", False, body, "backend.py")[1]
    assert _scan("minidistil.kernels.matmul", False, body, "matmul.py")[1]
    assert _scan("minidistil.kernels.backend", False, body + "set_num_threads(1)\n", "backend.py")[1]


@pytest.mark.parametrize("folder", ["minidistil", "tests", "tutorials"])
def test_no_source_file_is_over_500_lines(folder):
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / folder).rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines: {long}"
