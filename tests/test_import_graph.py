"""The package's modules import each other without cycles, and only by public names.

Every module of alphazoo (sdk/, adapters/, contrib/, compat/, mapped to their package names by
pyproject's ``package-dir``) is parsed with :mod:`ast`; each import is an edge, wherever it
sits: at the top, inside a function (a lazy import is still a dependency, and a cycle through
one only waits for the right call order to break), under ``if TYPE_CHECKING:`` (the type
checker follows it: two modules that name each other's types are one concept split in two, or
need a third module both import), relative or absolute. ``from package import name`` is an edge
to the submodule when ``name`` is one, else to the package.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def _modules() -> dict[str, Path]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found: dict[str, Path] = {}
    for package, folder in config["package-dir"].items():
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join([package, *parts])
            # a sub-package mapped to its own folder (alphazoo.adapters) is walked from there
            found.setdefault(name, path)
    return found


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        here = name if is_package else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = here.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules
                           else source for alias in node.names]
            for target in targets:
                # `import alphazoo.x.y` depends on alphazoo.x.y; a name inside a module
                # resolves to the longest module prefix.
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component that has one (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_a_cycle(graph, set(c)) for c in components]


def _a_cycle(graph: dict[str, set[str]], members: set[str]) -> list[str]:
    start = min(members)
    path, seen = [start], {start}
    while True:  # every member has an edge inside the component: walk until a repeat
        nxt = min(t for t in graph[path[-1]] if t in members)
        if nxt in seen:
            return path[path.index(nxt):] + [nxt]
        path.append(nxt)
        seen.add(nxt)


def test_the_graph_sees_every_kind_of_import():
    # so that an empty cycle list below means something
    graph = _graph()
    assert len(graph) > 80 and "alphazoo.adapters.keras" in graph
    assert "alphazoo.training.records" in graph["alphazoo.training.fanout"]  # relative
    assert "alphazoo.training.fanout" in graph["alphazoo.training.trainer"]  # in a function
    assert "alphazoo.host" in graph["alphazoo.training.fanout"]  # under TYPE_CHECKING
    assert "alphazoo.adapters._torch_models" in graph["alphazoo.adapters.torch"]  # from . import
    assert "alphazoo.store" in graph["alphazoo.contrib._lean_store"]  # absolute


def test_a_cycle_is_found_and_printed():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _private_imports() -> list[str]:
    """``from module import _name`` between two of the package's modules: a private name used
    across modules. (A private *module* such as ``adapters._torch_models`` may be imported for
    its public names; ``__future__`` and dunder names are not private.)"""
    found = []
    modules = _modules()
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
                continue
            local = node.level > 0 or (node.module or "").startswith("alphazoo")
            base = here.split(".")
            source = (".".join(base[:len(base) - (node.level - 1)] + [node.module or ""])
                      if node.level else node.module or "").rstrip(".")
            for alias in node.names:
                if f"{source}.{alias.name}" in modules:  # a (private) module, for its names
                    continue
                if local and alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{name}: from {'.' * node.level}{node.module or ''} "
                                 f"import {alias.name}")
    return found


def test_no_private_names_are_imported_across_modules():
    found = _private_imports()
    assert not found, "private names imported across modules:\n" + "\n".join(found)
