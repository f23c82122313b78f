"""The configuration package's import structure: submodules import each other directly,
and importing one light submodule loads none of the heavy libraries."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import responder.config

PACKAGE = Path(responder.config.__file__).parent
ROOT = PACKAGE.parents[1]


def package_imports(path: Path) -> list[int]:
    """Lines of `path` that import names from the package `responder.config` itself."""
    tree = ast.parse(path.read_text())
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "responder.config"
            and node.level == 0
            or isinstance(node, ast.ImportFrom) and node.level == 1 and node.module is None]


def test_submodules_never_import_from_the_package():
    offenders = {path.name: lines for path in sorted(PACKAGE.glob("*.py"))
                 if path.name != "__init__.py" and (lines := package_imports(path))}
    assert offenders == {}


def loaded_after(statement: str) -> set[str]:
    code = (f"import sys; {statement}; "
            "print(' '.join(m for m in ('pydantic', 'yaml', 'pyrad', 'cryptography') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return set(out.split())


def test_a_light_submodule_loads_no_heavy_library():
    assert loaded_after("import responder.config.algorithms") == set()


def test_the_package_still_exports_its_names():
    assert "pydantic" in loaded_after("from responder.config import load_config, ConfigError")
    from responder.config import ResponderConfig, build_responder_policy, load_config
    assert callable(load_config) and callable(build_responder_policy)
    assert ResponderConfig.__name__ == "ResponderConfig"
