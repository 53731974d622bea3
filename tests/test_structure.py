"""The shape of the package, checked: no import cycles, no module too long to hold in one's head, and no SQL
outside echo_agent/memory/ (docs/architecture.md, "Rules the tests keep")."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "echo_agent"
MAX_LINES = 450
SQL_ATTRIBUTES = {"conn", "rows", "transaction", "execute", "executemany", "executescript", "cursor"}
"""A store's connection and its query helpers: only echo_agent/memory/ may touch them."""


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_names(tree: ast.AST) -> list[str]:
    """Every module named by an import at any depth (inside functions too), except under `if TYPE_CHECKING:`;
    `from a.b import c` names `a.b.c` (which resolves to `a.b` when c is not a module)."""
    names: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def import_graph() -> dict[str, set[str]]:
    known = modules()

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in known.items():
        targets = {resolve(n) for n in imported_names(ast.parse(path.read_text())) if n.startswith("echo_agent")}
        graph[name] = {t for t in targets if t and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (a path that comes back to its start), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := dfs(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (found := dfs(start)):
            return found
    return None


def test_no_import_cycles_among_echo_agent_modules():
    graph = import_graph()
    assert graph["echo_agent.cli.app"] >= {"echo_agent.cli.assistant", "echo_agent.cli.common"}
    assert "echo_agent.memory.store" in graph["echo_agent.memory.exchange"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_lazy_imports_and_skips_type_checking():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import echo_agent.a\n"
                     "def f():\n    from echo_agent.b import c\n")
    assert imported_names(tree) == ["typing.TYPE_CHECKING", "echo_agent.b.c"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_module_is_longer_than_a_reader_can_hold():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_only_the_memory_package_touches_sqlite():
    found = []
    for name, path in modules().items():
        if name == "echo_agent.memory" or name.startswith("echo_agent.memory."):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in SQL_ATTRIBUTES:
                found.append(f"{name}:{node.lineno} .{node.attr}")
        found += [f"{name}: imports {n}" for n in imported_names(tree) if n.split(".")[0] in ("sqlite3", "sqlite_utils")]
    assert not found, "SQLite outside echo_agent/memory/: " + "; ".join(found)
