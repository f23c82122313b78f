"""The responder runs with the core dependencies only (`pip install .`, no extras):
every module of responder/ imports, and `dynipsec responder check` works, while
Mininet, pexpect, jinja2 and the lab/clients packages cannot be imported at all.
The `lab` and `demo` commands then say which extra they need."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: what only the `lab` extra (and the repository's other packages) bring
ABSENT = ("mininet", "pexpect", "jinja2", "lab", "clients")

PROGRAM = textwrap.dedent(f"""
    import importlib, importlib.abc, pkgutil, sys

    class Absent(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {ABSENT!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, Absent())
    import responder
    for info in pkgutil.walk_packages(responder.__path__, "responder."):
        if not info.name.endswith("__main__"):      # that one would run the command
            importlib.import_module(info.name)
    from responder.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def run(*argv: str, program: str = PROGRAM) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", program, *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_the_responder_checks_a_configuration_without_the_lab_extra():
    done = run("responder", "check", "responder/examples/minimal.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("ok: 1 tunnel profiles")


def test_lab_commands_name_the_missing_extra_instead_of_failing():
    done = run("lab", "list")
    assert done.returncode == 3
    assert "not available" in done.stderr and "lab extra" in done.stderr


def test_the_blocker_really_blocks():
    done = run("--help", program=PROGRAM.replace("from responder.cli import main",
                                                 "import mininet"))
    assert done.returncode != 0 and "No module named 'mininet'" in done.stderr


def test_a_lab_without_the_lab_extra_names_what_to_install_before_building():
    """`pip install .` brings lab/ and clients/ but not Mininet, pexpect or jinja2: a lab
    must refuse to start with the names, not fail half-built inside Mininet."""
    program = PROGRAM.replace(repr(ABSENT), repr(("mininet", "pexpect", "jinja2"))).replace(
        "from responder.cli import main\nsys.exit(main(sys.argv[1:]))",
        "from lab.engine import require_lab_extra\nrequire_lab_extra()")
    assert "require_lab_extra()" in program
    done = run(program=program)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("lab.engine.LabError") and "mininet, jinja2, pexpect" in last, last
    assert "dynipsec[lab]" in last
