"""The project's import graph, read from the source: the core (rag/) knows nothing of its shells,
and no module imports itself back, counting imports inside functions and through importlib."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

PACKAGES = ("rag", "harness", "ui", "models")
SHELLS = ("harness", "ui")  # built on rag; the `rag` command finds them through entry points


def module_files() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _dynamic_import(node: ast.Call) -> str | None:
    """The module named by `importlib.import_module("x")`, `import_module("x")` or `__import__("x")`."""
    function = node.func
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
    if name in ("import_module", "__import__") and node.args:
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    return None


def imported_names(module: str, path: Path) -> set[str]:
    """Every dotted name the module imports, anywhere in its body, as absolute names."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and (name := _dynamic_import(node)):
            names.add(name)
    return names


def import_graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports (a name that is not a module, such as a
    function imported from one, counts as its module)."""
    modules = module_files()
    graph = {}
    for module, path in modules.items():
        targets = set()
        for name in imported_names(module, path):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that ends where it starts, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_reader_sees_static_relative_and_dynamic_imports(tmp_path):
    source = tmp_path / "example.py"
    source.write_text(
        "import json\nfrom . import render\nfrom .errors import RagError\n"
        "def f():\n    import importlib\n    importlib.import_module('ui.app')\n    __import__('harness')\n"
    )
    names = imported_names("rag.example", source)
    assert {"json", "rag", "rag.render", "rag.errors.RagError", "ui.app", "harness"} <= names


def test_find_cycle_finds_a_cycle_and_only_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_core_imports_no_shell():
    graph = import_graph()
    assert "rag.cli" in graph and "harness.evaluation" in graph and "ui.app" in graph
    wrong = {
        (module, target)
        for module, targets in graph.items()
        if module.split(".")[0] == "rag"
        for target in targets
        if target.split(".")[0] in SHELLS
    }
    assert not wrong, f"rag/ imports its shells: {sorted(wrong)}"


def test_the_import_graph_has_no_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)
