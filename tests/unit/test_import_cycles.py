"""Import graph of responder/, clients/ and lab/: no module cycle, packages in one order.

The graph is read with `ast`, so it holds every import: at module level and inside
functions (an import moved into a function hides a cycle from the interpreter, not
from here). Relative imports are resolved; a package's `__init__` is a module of its
own, and `from pkg import name` is an edge to `pkg` and, if `pkg.name` is a module,
to that module too.

Packages form a chain, arrows meaning "is imported by": responder <- clients <- lab.
KNOWN_CYCLES lists the cycles that are still being taken apart: each must still be
there exactly as listed (remove it from the list once it is gone), and no other may
appear.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("responder", "clients", "lab")
#: package -> the packages it may import
ALLOWED_PACKAGE_EDGES = {"responder": set(), "clients": {"responder"},
                         "lab": {"responder", "clients"}}
KNOWN_CYCLES: set[frozenset[str]] = set()

Graph = dict[str, set[str]]


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find_modules(root: Path, packages=PACKAGES) -> dict[str, Path]:
    return {module_name(root, path): path
            for package in packages for path in sorted((root / package).rglob("*.py"))}


def absolute_target(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The module an ImportFrom names, with a relative one resolved against `module`."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_names(module: str, path: Path) -> list[str]:
    """Every dotted name a module imports, at any depth of its syntax tree."""
    tree = ast.parse(path.read_text(), str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = absolute_target(module, path.name == "__init__.py", node)
            names.append(target)
            names.extend(f"{target}.{alias.name}" for alias in node.names)
    return names


def known_module(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of `name` that is one of our modules (a name imported from a
    module is not a module itself)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path = ROOT, packages=PACKAGES) -> Graph:
    modules = find_modules(root, packages)
    graph: Graph = {module: set() for module in modules}
    for module, path in modules.items():
        for name in imported_names(module, path):
            target = known_module(name, modules)
            if target is not None and target != module:
                graph[module].add(target)
    return graph


def strongly_connected(graph: Graph) -> list[frozenset[str]]:
    """Tarjan's algorithm, iterative: the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            pushed = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    pushed = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if pushed:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def package_edges(graph: Graph) -> set[tuple[str, str, str, str]]:
    """(package, imported package, module, imported module) for every edge between
    top-level packages."""
    return {(module.split(".")[0], target.split(".")[0], module, target)
            for module, targets in graph.items() for target in targets
            if module.split(".")[0] != target.split(".")[0]}


def forbidden_package_edges(graph: Graph) -> list[str]:
    return sorted(f"{module} imports {target} ({package} -> {other})"
                  for package, other, module, target in package_edges(graph)
                  if other not in ALLOWED_PACKAGE_EDGES.get(package, set()))


def describe(cycle: frozenset[str], graph: Graph) -> str:
    edges = sorted(f"{a} -> {b}" for a in cycle for b in graph[a] if b in cycle)
    return f"{sorted(cycle)}: {', '.join(edges)}"


# -- the repository ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph()


def test_no_new_module_cycle(graph):
    new = [describe(c, graph) for c in strongly_connected(graph) if c not in KNOWN_CYCLES]
    assert not new, "import cycles:\n" + "\n".join(new)


def test_every_known_cycle_is_still_there_as_listed(graph):
    present = set(strongly_connected(graph))
    gone = [sorted(cycle) for cycle in KNOWN_CYCLES if cycle not in present]
    assert not gone, f"no longer cycles: remove them from KNOWN_CYCLES: {gone}"


def test_packages_import_down_the_chain_only(graph):
    wrong = forbidden_package_edges(graph)
    assert not wrong, "imports against responder <- clients <- lab:\n" + "\n".join(wrong)


# -- the graph builder, on a tree of its own -------------------------------------------------
def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_cycle_hidden_in_a_function_is_found(tmp_path):
    write_tree(tmp_path, {
        "lab/__init__.py": "",
        "lab/engine.py": "def stop():\n    from lab.sandbox import stop_sandbox\n",
        "lab/sandbox.py": "from lab.engine import stop\n",
        "lab/other.py": "import lab.engine\n",
    })
    cycles = strongly_connected(import_graph(tmp_path, ("lab",)))
    assert cycles == [frozenset({"lab.engine", "lab.sandbox"})]


def test_relative_imports_and_package_inits_are_modules(tmp_path):
    write_tree(tmp_path, {
        "clients/__init__.py": "from .base import Client\n",
        "clients/base.py": "from . import parts\n",
        "clients/parts.py": "from .. import clients\n" "import clients\n",
        "clients/sub/__init__.py": "from .leaf import x\n",
        "clients/sub/leaf.py": "from ..base import Client\n",
    })
    graph = import_graph(tmp_path, ("clients",))
    assert graph["clients.sub"] == {"clients.sub.leaf"}
    assert graph["clients.sub.leaf"] == {"clients.base"}
    assert graph["clients.base"] == {"clients", "clients.parts"}
    assert strongly_connected(graph) == [frozenset({"clients", "clients.base", "clients.parts"})]


def test_an_import_against_the_chain_is_named(tmp_path):
    write_tree(tmp_path, {
        "responder/__init__.py": "",
        "clients/__init__.py": "",
        "clients/charon.py": "from lab.daemon import Daemon\nimport responder\n",
        "lab/__init__.py": "",
        "lab/daemon.py": "import clients.charon\n",
    })
    wrong = forbidden_package_edges(import_graph(tmp_path))
    assert wrong == ["clients.charon imports lab.daemon (clients -> lab)"]
