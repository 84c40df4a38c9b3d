"""The package's layering, read from its source: no import cycle between modules, and the
low layers never import the high ones — at module level or inside a function alike (a
lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

import nxgid

SOURCE = Path(nxgid.__file__).parent
PACKAGE = SOURCE.parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in SOURCE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module → the nxgid modules it imports (``from pkg import mod`` counts as ``mod``)."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] == "nxgid" and (found := resolve(target)) \
                        and found != name:
                    graph[name].add(found)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_analysis_sees_lazy_and_relative_imports():
    graph = import_graph()
    # a function-level import (tasks import the converter only when they run)
    assert "nxgid.conversion.converter" in graph["nxgid.nexus.convert"] or \
        "nxgid.conversion" in graph["nxgid.nexus.convert"]
    assert "nxgid.nexus.entries" in graph["nxgid.experiment.recipe"]
    assert "nxgid.errors" in graph["nxgid.safety.paths"]


def test_no_import_cycle():
    graph = import_graph()
    cycles = _cycles(graph)
    shown = ["; ".join(f"{m} → {', '.join(sorted(graph[m] & set(c)))}" for m in c)
             for c in cycles]
    assert not cycles, "import cycles: " + " | ".join(shown)


#: The layers, lowest first: each may import only the layers before it (and itself).
LAYERS = (
    ("nxgid.errors",),
    ("nxgid.units", "nxgid.names"),
    ("nxgid.safety",),
    ("nxgid.geometry",),
    ("nxgid.images",),
    ("nxgid.conversion",),
    ("nxgid.plot",),
    ("nxgid.nexus",),
    ("nxgid.settings",),
    ("nxgid.experiment",),
    ("nxgid.beamlines",),
    ("nxgid.workflow",),
    ("nxgid.demo",),
    ("nxgid.cli",),
)


def _layer_of(module: str) -> int | None:
    for level, members in enumerate(LAYERS):
        if any(_within(module, member) for member in members):
            return level
    return None


def test_every_module_has_a_layer():
    """The root holds the layers and nothing else: a new module must be placed."""
    unplaced = sorted(m for m in import_graph() if m != "nxgid" and _layer_of(m) is None)
    assert not unplaced, f"modules in no layer: {unplaced}"


def test_the_root_is_the_map():
    """The package root holds the layers only (the README's table), no loose module."""
    loose = sorted(p.name for p in SOURCE.iterdir()
                   if p.suffix == ".py" and p.name != "__init__.py")
    assert loose == ["errors.py", "names.py", "units.py"], loose


def _within(module: str, prefix: str) -> bool:
    prefix = prefix.rstrip(".")
    return module == prefix or module.startswith(prefix + ".")


def _upward_imports(graph: dict[str, set[str]]) -> list[str]:
    broken = []
    for module, imported in graph.items():
        level = _layer_of(module)
        if level is None:
            continue
        broken += [f"{module} (layer {level}) → {target} (layer {_layer_of(target)})"
                   for target in sorted(imported)
                   if (_layer_of(target) or 0) > level]
    return broken


def test_low_layers_never_import_high_ones():
    broken = _upward_imports(import_graph())
    assert not broken, "\n".join(broken)


def test_the_layering_test_can_fail():
    """A high import placed in a low layer is seen (the analysis is not blind)."""
    graph = import_graph()
    graph["nxgid.geometry.poni"] = graph["nxgid.geometry.poni"] | {"nxgid.workflow.tasks"}
    assert _upward_imports(graph) == [
        "nxgid.geometry.poni (layer 3) → nxgid.workflow.tasks (layer 11)"]
