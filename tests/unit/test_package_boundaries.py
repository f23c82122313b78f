"""Package boundaries: the responder stands alone, the clients stand below the lab.

The responder is what an operator installs on a concentrator; the lab and the clients
prove it. So nothing in `responder/` imports `lab` or `clients` (the `dynipsec` command
finds the lab's commands through an entry point), nothing in `clients/` imports `lab`
(the lab drives the clients, never the other way round), and the lab's third-party packages
(Mininet, pexpect, jinja2) are an extra, not a dependency of the responder.
"""
from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB_ONLY = ("mininet", "pexpect", "jinja2")


def imported_packages(path: Path) -> set[str]:
    """Top-level package names a module imports (module level or inside functions)."""
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


RESPONDER_MODULES = sorted((ROOT / "responder").rglob("*.py"))


@pytest.mark.parametrize("path", RESPONDER_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_responder_imports_neither_lab_nor_clients(path):
    wrong = imported_packages(path) & {"lab", "clients", *LAB_ONLY}
    assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


CLIENT_MODULES = sorted((ROOT / "clients").rglob("*.py"))


@pytest.mark.parametrize("path", CLIENT_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_clients_do_not_import_the_lab(path):
    wrong = imported_packages(path) & {"lab"}
    assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_the_lab_packages_are_an_extra_of_their_own():
    requirements = importlib.metadata.requires("dynipsec") or []
    for name in LAB_ONLY:
        lines = [r for r in requirements if re.match(rf"{name}\b", r, re.I)]
        assert lines, f"{name} is not declared"
        assert all('extra == "lab"' in r for r in lines), f"{name}: {lines}"


def test_the_responder_cli_loads_without_the_lab():
    """`dynipsec responder check` in an interpreter where importing the lab fails: the
    responder's commands work, the lab's say why they are not available."""
    script = (
        "import sys, importlib.abc\n"
        "class NoLab(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('lab', 'clients', 'mininet', 'pexpect', 'jinja2'):\n"
        "            raise ImportError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, NoLab())\n"
        "from responder.cli import main\n"
        "code = main(['responder', 'check', '-c', sys.argv[1]])\n"
        "assert code == 0, code\n"
        "code = main(['lab', 'status'])\n"
        "sys.exit(10 + code)\n")
    config = ROOT / "responder" / "examples" / "lab-default.yaml"
    done = subprocess.run([sys.executable, "-c", script, str(config)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 13, done.stdout + done.stderr
    assert "ok:" in done.stdout
    assert "dynipsec lab: not available: No module named 'lab" in done.stderr


def test_an_error_with_an_exit_status_is_one_line(capsys, monkeypatch):
    from clients.parts import MissingPart
    from responder import cli

    def fail(args):
        raise MissingPart("program 'tshark' is missing: install the Debian package tshark")

    monkeypatch.setattr(cli, "core_registrars", lambda: [
        lambda sub: sub.add_parser("boom").set_defaults(func=fail)])
    assert cli.main(["boom"]) == 3
    err = capsys.readouterr().err
    assert err == "dynipsec: program 'tshark' is missing: install the Debian package tshark\n"


def test_output_into_a_closed_pipe_is_quiet():
    """`dynipsec ... | head`: when the reader goes away, no traceback on stderr."""
    script = ("import sys\n"
              "from responder import cli\n"
              "def flood(args):\n"
              "    for n in range(200000):\n"
              "        print('line', n)\n"
              "cli.core_registrars = lambda: [\n"
              "    lambda sub: sub.add_parser('flood').set_defaults(func=flood)]\n"
              "sys.exit(cli.main(['flood']))\n")
    done = subprocess.run(f"{sys.executable} -c \"$SCRIPT\" | head -1", shell=True,
                          env={"SCRIPT": script, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.stdout == "line 0\n"
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
