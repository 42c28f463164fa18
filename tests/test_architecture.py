"""The folders show the architecture: byol_core's wings by layer, imports only pointing down.

Read from the source with ``ast`` (nothing is imported): an import circle, an import from a lower
layer to a higher one, or an import of our own modules inside a function (the usual way to hide a
circle) fails here with the modules named.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "byol_core"

# Lowest first. A module may import any module of a lower layer, and modules of its own wing.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("schema", "config", "presets", "stats", "stats_text", "files", "device", "distributed", "events", "text"),
    ("data",),
    ("augment",),
    ("methods",),
    ("lab",),
    ("studies", "analysis"),  # siblings: neither imports the other
    ("cli", "__main__", ""),  # "" is the package itself, whose __init__ registers every built-in stage
)
ROOT_MODULES, ENTRY_POINTS = LAYERS[0], LAYERS[-1]  # each one wing: the root's small modules; the entry points
VIEW_BUDGET, MODULE_BUDGET = 220, 450


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _wing(module: str) -> str:
    top = module.split(".")[0]
    return "root" if top in ROOT_MODULES else "entry" if top in ENTRY_POINTS else top


def _layer(module: str) -> int:
    top = module.split(".")[0]
    for rank, wings in enumerate(LAYERS):
        if top in wings:
            return rank
    raise AssertionError(f"byol_core.{module} belongs to no layer: add its wing to LAYERS in {__file__}")


def _imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import of our own modules."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = [p for p in base if p]
    in_function = {id(node) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for node in ast.walk(fn)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                prefix = base[:len(base) - node.level + 1]
                target = ".".join(prefix + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "byol_core":
                target = node.module.partition(".")[2]
            else:
                continue
            names = [f"{target}.{a.name}".strip(".") for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.partition(".")[2] for a in node.names if a.name.split(".")[0] == "byol_core"]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name != module:
                found.append((name, node.lineno, id(node) in in_function))
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def test_every_module_sits_in_a_layer_and_imports_only_downwards_or_within_its_wing():
    upward = []
    for module, imports in GRAPH.items():
        for target, line, _ in imports:
            if target == "" and module != "":
                upward.append(f"byol_core.{module}:{line} imports the package byol_core itself (import a module)")
            elif target and _layer(target) > _layer(module) or (
                    target and _layer(target) == _layer(module) and _wing(target) != _wing(module)):
                upward.append(f"byol_core.{module}:{line} imports byol_core.{target}")
    assert not upward, "imports that point up or sideways:\n" + "\n".join(upward)


def test_no_import_circles():
    graph = {m: {t for t, _, _ in imports} for m, imports in GRAPH.items()}
    circles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                circles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_no_import_of_our_modules_inside_a_function():
    hidden = [f"byol_core.{m}:{line} imports byol_core.{t}" for m, imports in GRAPH.items()
              for t, line, inside in imports if inside]
    assert not hidden, "imports inside functions (import at the top; if that makes a circle, cut it):\n" + \
        "\n".join(hidden)


def test_the_learning_core_never_imports_the_dashboard_or_streamlit():
    offenders = [f"byol_core.{m}" for m, path in MODULES.items()
                 if any(isinstance(n, (ast.Import, ast.ImportFrom)) and any(
                     (getattr(n, "module", None) or "").split(".")[0] in ("streamlit", "dashboard")
                     or a.name.split(".")[0] in ("streamlit", "dashboard") for a in n.names)
                        for n in ast.walk(ast.parse(path.read_text())))]
    assert not offenders, offenders


@pytest.mark.parametrize("folder, budget", [("dashboard/views", VIEW_BUDGET), ("dashboard", MODULE_BUDGET),
                                            ("byol_core", MODULE_BUDGET)])
def test_modules_stay_within_their_line_budget(folder, budget):
    over = {str(p.relative_to(ROOT)): n for p in (ROOT / folder).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > budget}
    assert not over, f"over {budget} lines (split out panels or helpers): {over}"


def test_the_rules_above_catch_what_they_claim(tmp_path):
    """The checks read real code: a planted upward import and a circle are found."""
    global GRAPH
    saved = GRAPH
    try:
        GRAPH = {**saved, "data.types": saved["data.types"] + [("lab.stages", 1, True)],
                 "lab.stages": saved["lab.stages"] + [("lab.summary", 2, False)]}
        GRAPH["lab.summary"] = GRAPH["lab.summary"] + [("lab.stages", 3, False)]
        with pytest.raises(AssertionError, match="byol_core.data.types:1 imports byol_core.lab.stages"):
            test_every_module_sits_in_a_layer_and_imports_only_downwards_or_within_its_wing()
        with pytest.raises(AssertionError, match="import circles"):
            test_no_import_circles()
        with pytest.raises(AssertionError, match="inside functions"):
            test_no_import_of_our_modules_inside_a_function()
    finally:
        GRAPH = saved
