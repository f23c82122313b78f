"""Broken configurations, one file each in tests/unit/configs/, and what `check` says.

Each case file holds only the sections that differ from responder/examples/minimal.yaml
(deep-merged: mappings merge, lists and scalars replace, the value ``<delete>`` removes
a key) and its expected lines as ``# expect: <substring of one problem line>``. The
number of problems must equal the number of expectations: no follow-on noise.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from responder.config import ConfigError, load_config

HERE = Path(__file__).parent
CASES_DIR = HERE / "configs"
MINIMAL = HERE.parents[1] / "responder" / "examples" / "minimal.yaml"
DELETE = "<delete>"


def deep_merge(base: Any, overlay: Any) -> Any:
    if not (isinstance(base, dict) and isinstance(overlay, dict)):
        return overlay
    merged = dict(base)
    for key, value in overlay.items():
        if value == DELETE:
            merged.pop(key, None)
        else:
            merged[key] = deep_merge(base.get(key), value)
    return merged


def expectations(case: Path) -> list[str]:
    return [line.removeprefix("# expect:").strip()
            for line in case.read_text().splitlines() if line.startswith("# expect:")]


def write_case(case: Path, tmp_path: Path) -> Path:
    data = deep_merge(yaml.safe_load(MINIMAL.read_text()), yaml.safe_load(case.read_text()))
    path = tmp_path / case.name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


CASES = sorted(CASES_DIR.glob("*.yaml"))


def test_there_are_enough_cases():
    single = [c for c in CASES if len(expectations(c)) == 1]
    multi = [c for c in CASES if len(expectations(c)) > 1]
    assert len(single) >= 25 and len(multi) >= 3


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_broken_config_reports_expected_lines(case: Path, tmp_path: Path):
    expected = expectations(case)
    assert expected, f"{case.name} has no '# expect:' line"
    problems = problems_of(write_case(case, tmp_path))
    for text in expected:
        assert any(text in line for line in problems), f"{text!r} not in {problems}"
    assert len(problems) == len(expected), problems


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_every_problem_is_one_line_with_a_key_path(case: Path, tmp_path: Path):
    for line in problems_of(write_case(case, tmp_path)):
        assert "\n" not in line
        path, sep, message = line.partition(": ")
        assert sep and message and " " not in path, line


def test_minimal_example_is_valid():
    assert load_config(MINIMAL).tunnel_profiles[0].name == "staff"


# -- file-level problems ----------------------------------------------------------------
def test_missing_file(tmp_path: Path):
    assert problems_of(tmp_path / "nope.yaml") == [
        "cannot read configuration: No such file or directory"]


@pytest.mark.parametrize("text, expected", [
    ("", "(top level): expected a mapping of sections, got an empty file"),
    ("- listen\n- vrs\n", "(top level): expected a mapping of sections, got list"),
    ("just words\n", "(top level): expected a mapping of sections, got str"),
])
def test_not_a_mapping(tmp_path: Path, text: str, expected: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert problems_of(path) == [expected]


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("listen:\n  - address: 192.0.2.1\nvrs: {corp: {netns: corp}\nworkers: 2\n")
    [line] = problems_of(path)
    assert line.startswith("line 4, column 1: invalid YAML: expected ',' or '}'"), line


def test_tab_indentation_is_a_yaml_error(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("listen:\n\t- address: 192.0.2.1\n")
    [line] = problems_of(path)
    assert line.startswith("line 2, column 1: invalid YAML:")


def test_config_error_text_lists_source_and_count(tmp_path: Path):
    case = write_case(CASES_DIR / "multi_references.yaml", tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config(case)
    first_line = str(caught.value).splitlines()[0]
    assert first_line == f"{case}: 5 problem(s)"
