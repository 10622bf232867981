"""The runtime's own contract, checked on its source: no import circle between its
modules (``TYPE_CHECKING`` imports included), the flow and the listener never import
the stack, and no module reaches into another object's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import trio_tcp6

PACKAGE = Path(trio_tcp6.__file__).parent
RUNTIME = PACKAGE / "runtime"


def _imports(path: Path) -> set[str]:
    """The sibling runtime modules ``path`` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module is None:
                found.update(alias.name for alias in node.names)
            else:
                found.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[:2] == ["trio_tcp6", "runtime"] and len(parts) > 2:
                found.add(parts[2])
    return found


def runtime_graph() -> dict[str, set[str]]:
    modules = {p.stem: p for p in RUNTIME.glob("*.py") if p.stem != "__init__"}
    return {name: _imports(path) & set(modules) for name, path in modules.items()}


def test_no_import_circle() -> None:
    graph = runtime_graph()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in path, "import circle: " + " -> ".join([*path, name])
        if name in done:
            return
        for dep in graph[name]:
            visit(dep, [*path, name])
        done.add(name)

    for name in graph:
        visit(name, [])


def test_the_dependency_graph_is_as_documented() -> None:
    """docs/architecture.md states this graph; change both together."""
    assert runtime_graph() == {
        "_util": set(),
        "base": set(),
        "flowhost": set(),
        "endpoint": {"base", "flowhost"},
        "flow": {"_util", "base", "endpoint", "flowhost"},
        "listener": {"base", "flow"},
        "icmp": {"base", "flow", "timewait"},
        "stack": {
            "base",
            "flow",
            "icmp",
            "ipinput",
            "ipoutput",
            "listener",
            "passive",
            "timewait",
        },
        "ipinput": {"base", "flow", "icmp", "ipoutput", "listener", "passive", "timewait"},
        "passive": {"flow", "flowhost", "ipoutput", "listener", "timewait"},
        "ipoutput": {"flowhost"},
        "timewait": set(),
        "kernel": {"_util", "base", "sockopts", "tcpinfo"},
        "sockopts": set(),
        "tcpinfo": {"base"},
    }


def _own_names(tree: ast.Module) -> set[str]:
    """Private names the module defines itself (methods, attributes it assigns)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return names


def test_no_private_names_across_modules() -> None:
    """``other._x`` only where ``_x`` belongs to the module itself (a class reaching
    into a sibling class of the same module, or a base-class hook)."""
    hooks = {"_write_nodelay", "_close_gracefully", "_close_nowait", "_listen_nowait"}
    offenders = []
    for path in sorted(RUNTIME.glob("*.py")):
        tree = ast.parse(path.read_text())
        own = _own_names(tree) | hooks
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
                continue
            if node.attr.startswith("__") or node.attr in own:
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls", "trio"):
                continue
            offenders.append(f"{path.name}:{node.lineno}: .{node.attr}")
    assert offenders == []
