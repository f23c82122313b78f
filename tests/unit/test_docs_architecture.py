"""docs/architecture.md matches the code: its module map names every module and
subpackage (and only paths that exist), and its IPC table lists the ops the supervisor
and the workers handle."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from responder.daemon import ipc

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
DAEMON = ROOT / "responder" / "daemon"
TO_SUPERVISOR = "worker -> supervisor"
TO_WORKER = "supervisor -> worker"


def section(title_start: str) -> str:
    text = DOC.read_text()
    start = text.index(f"\n## {title_start}")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def table_rows(text: str) -> list[list[str]]:
    """Cells of every markdown table row in ``text`` (header and rule rows left out)."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip("|"))])
    return [row for row in rows if row[0] not in ("path", "op")]


def mapped_paths() -> set[str]:
    return {re.fullmatch(r"`([^`]+)`", row[0]).group(1) for row in table_rows(section("Module map"))}


def modules_and_subpackages(package: str) -> set[str]:
    base = ROOT / package
    found = {f"{package}/{f.name}" for f in base.glob("*.py")}
    found |= {f"{package}/{d.name}/" for d in base.iterdir() if (d / "__init__.py").is_file()}
    return found


def test_the_module_map_names_every_module_and_subpackage():
    wanted = set()
    for package in ("responder", "clients", "lab", "responder/daemon", "responder/ikev1"):
        wanted |= modules_and_subpackages(package)
    missing = wanted - mapped_paths()
    assert not missing, f"not in the module map of docs/architecture.md: {sorted(missing)}"


def test_every_path_in_the_module_map_exists():
    absent = sorted(path for path in mapped_paths() if not (ROOT / path).exists())
    assert not absent, f"docs/architecture.md maps paths that do not exist: {absent}"


def handled_ops(function_name: str, files) -> set[str]:
    """The strings compared with ``op`` (``op == "..."``) in every function of that name."""
    ops = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name == function_name:
                ops |= ops_compared_in(node)
    return ops


def ops_compared_in(function: ast.FunctionDef) -> set[str]:
    ops = set()
    for node in ast.walk(function):
        if (isinstance(node, ast.Compare) and isinstance(node.left, ast.Name)
                and node.left.id == "op" and isinstance(node.ops[0], ast.Eq)
                and isinstance(node.comparators[0], ast.Constant)):
            ops.add(node.comparators[0].value)
    return ops


def documented_ops(direction: str) -> set[str]:
    rows = table_rows(section("Supervisor <-> worker messages"))
    return {re.fullmatch(r"`([^`]+)`", row[0]).group(1) for row in rows if row[1] == direction}


def test_the_ipc_table_lists_what_the_supervisor_handles():
    code = handled_ops("_on_worker_message", sorted(DAEMON.glob("*.py")))
    assert code, "no _on_worker_message found in responder/daemon"
    assert documented_ops(TO_SUPERVISOR) == code


def test_the_ipc_table_lists_what_a_worker_handles():
    code = handled_ops("_on_message", [DAEMON / "worker.py"]) | {ipc.CONFIGURE}
    assert documented_ops(TO_WORKER) == code
