"""The package's layering, read from the source: each layer imports only from itself and the layers
below it, no two modules import each other (directly or around a circle), and no import hides inside a
function unless it keeps a heavy optional dependency out of a light path (and says which, in a
`# optional: <package>` comment on the import line).

Layers, bottom to top: utils and profiles (plumbing and plain data), sar (the loss), models, data,
metrics, train, study, report. `sarlib/__init__.py` is the public API and may import any layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sarlib"
LAYERS = {"utils": 0, "profiles": 0, "sar": 1, "models": 2, "data": 3, "metrics": 4, "train": 5, "study": 6,
          "report": 7}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The sarlib modules an import statement reads (a package counts as its __init__)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
        if node.level:
            base = ".".join(base.split(".")[: len(base.split(".")) - node.level + 1])
            target = f"{base}.{node.module}" if node.module else base
        else:
            target = node.module or ""
        # `from pkg import mod` names a module; `from mod import name` names the module itself
        names = [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names]
    return sorted({n for n in names if n.split(".")[0] == "sarlib" and n in MODULES})


def _statements(module: str) -> list[tuple[ast.Import | ast.ImportFrom, bool, str]]:
    """(import statement, inside a function?, its source line) for every import of `module`."""
    source = MODULES[module].read_text()
    lines = source.splitlines()
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, in_function, lines[child.lineno - 1]))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(source), False)
    return found


def _imports(module: str) -> list[tuple[str, int, bool, str]]:
    """(imported sarlib module, line, inside a function?, source line) for every sarlib import of `module`."""
    return [(target, node.lineno, inside, text) for node, inside, text in _statements(module)
            for target in _resolve(module, node)]


def _names(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The absolute module names an import statement reaches for (sarlib or not, existing or not)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not node.level:
        return [node.module or ""]
    base = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
    base = ".".join(base.split(".")[: len(base.split(".")) - node.level + 1])
    return [f"{base}.{node.module}" if node.module else base]


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_subpackage_is_a_known_layer():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(LAYERS), "a new top-level folder needs a place in LAYERS"
    stray = [m for m in MODULES if m.count(".") == 1 and m.split(".")[1] not in LAYERS]
    assert stray == [], f"modules outside every layer: {stray}"


@pytest.mark.parametrize("module", [m for m in MODULES if _layer(m) is not None])
def test_imports_only_run_downward(module):
    upward = [f"line {line}: {target}" for target, line, _, _ in _imports(module)
              if _layer(target) is not None and _layer(target) > _layer(module)]
    assert upward == [], f"{module} imports from a higher layer: {upward}"


def test_no_import_cycles():
    graph = {m: {t for t, _, _, _ in _imports(m) if t != m} for m in MODULES}
    state: dict[str, int] = {}
    cycles = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if nxt == "sarlib" or nxt.startswith(node + "."):
                continue  # a package's __init__ re-exporting its own modules is not a cycle
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                walk(nxt, stack + [nxt])
        state[node] = 2

    for module in MODULES:
        if module not in state:
            walk(module, [module])
    assert cycles == [], f"import cycles: {cycles}"


def test_every_sarlib_import_names_a_module_that_exists():
    """An import inside a function runs only when called: a stale one must fail here, not in a user's run."""
    stale = [f"{m}:{node.lineno}: {text.strip()}" for m in MODULES for node, _, text in _statements(m)
             for name in _names(m, node) if name.split(".")[0] == "sarlib" and name not in MODULES]
    assert stale == []


def test_imports_inside_functions_say_which_optional_dependency_they_keep_out():
    hidden = [f"{m}:{node.lineno}: {text.strip()}" for m in MODULES for node, inside, text in _statements(m)
              if inside and "# optional:" not in text]
    assert hidden == [], "imports inside functions (move them up, or mark `# optional: <package>`)"


def test_the_layering_check_sees_a_violation():
    """The checks above read real import statements: an upward import, written as a module of the loss
    layer would write it, resolves to the train layer's config and is one layer too high."""
    planted = ast.parse("from ..train.config import TrainConfig\n").body[0]
    assert _resolve("sarlib.sar.entropy", planted) == ["sarlib.train.config"]
    assert _layer("sarlib.train.config") > _layer("sarlib.sar.entropy")
    assert _resolve("sarlib.train.engine", ast.parse("from . import config\n").body[0]) == ["sarlib.train.config"]
