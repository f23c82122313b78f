"""docs/scenarios.md is the schema's own field reference: regenerate it when the models
in lab/scenario_spec.py change (python -m lab.scenario_spec --markdown > docs/scenarios.md)."""
from __future__ import annotations

from lab.scenario_spec import DOCS_PATH, ScenarioSpec, _all_models, markdown_reference


def test_docs_match_the_schema():
    assert DOCS_PATH.read_text() == markdown_reference(), (
        "docs/scenarios.md is out of date: python -m lab.scenario_spec --markdown "
        "> docs/scenarios.md")


def test_every_model_and_field_is_documented():
    text = DOCS_PATH.read_text()
    for model in _all_models(ScenarioSpec):
        assert f"## `{model.__name__}`" in text
        for name, field in model.model_fields.items():
            assert f"| `{field.alias or name}` |" in text, f"{model.__name__}.{name}"
