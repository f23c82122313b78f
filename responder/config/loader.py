"""Reading a configuration file: YAML -> :class:`ResponderConfig` or one
:class:`ConfigError` that lists every problem, one line each, key path first.

Secrets never reach a message: pydantic's input values are shown only for plain
scalars outside secret keys, and YAML errors are reported by line and column without
the offending line's text.
"""
from __future__ import annotations

import copy
import types
import typing
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from responder.config.algorithms import suggest
from responder.config.checks import cross_check
from responder.config.model import ResponderConfig

#: keys whose values are never shown in a message
SECRET_KEYS = frozenset({"secret", "password"})


class ConfigError(ValueError):
    """The configuration cannot be used. ``problems`` holds one line per mistake."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(problems))


# -- key paths ----------------------------------------------------------------------------
def format_path(loc: tuple[Any, ...]) -> str:
    """('tunnel_profiles', 1, 'transforms', 0) -> 'tunnel_profiles[1].transforms[0]'."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif str(part) == "[key]" or str(part).startswith("function-"):
            continue  # pydantic's step names, not keys of the file
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def _unwrap(annotation: Any) -> list[Any]:
    """The model classes an annotation may hold (through Optional, list, dict values)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list):
        return [m for arg in typing.get_args(annotation) for m in _unwrap(arg)]
    if origin is dict:
        return _unwrap(typing.get_args(annotation)[1])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class whose keys live at ``loc`` (indexes and dict keys are skipped)."""
    model: type[BaseModel] = ResponderConfig
    for part in loc:
        if isinstance(part, int) or part not in model.model_fields:
            continue  # a list index or a dict key (VR name, pool name, user name)
        candidates = _unwrap(model.model_fields[part].annotation)
        if not candidates:
            return None
        model = candidates[0]
    return model


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _unknown_key(loc: tuple[Any, ...]) -> str:
    model = _model_at(loc[:-1])
    if model is None:
        return "unknown key"
    allowed = _allowed_keys(model)
    return f"unknown key{suggest(str(loc[-1]), allowed)} (allowed: {', '.join(allowed)})"


# -- pydantic errors -> lines -------------------------------------------------------------
_OWN_MESSAGE_TYPES = frozenset({"value_error", "assertion_error"})


def _is_secret(loc: tuple[Any, ...]) -> bool:
    return any(str(part) in SECRET_KEYS for part in loc)


def _message(error: dict[str, Any]) -> str:
    kind, loc = error["type"], error["loc"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    if kind in _OWN_MESSAGE_TYPES:
        return error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    message = error["msg"][:1].lower() + error["msg"][1:]
    if _is_secret(loc):
        if kind == "string_type":
            return "must be a string (quote it in YAML)"
        return message
    value = error.get("input")
    if isinstance(value, (str, int, float, bool)) or value is None:
        return f"{message} (got {value!r})"
    return message


def format_validation_error(exc: ValidationError) -> list[str]:
    lines: list[str] = []
    for error in exc.errors(include_url=False, include_context=False):
        line = f"{format_path(error['loc'])}: {_message(error)}"
        if line not in lines:
            lines.append(line)
    return lines


# -- entry points -------------------------------------------------------------------------
def parse_config(data: Any, *, source: str = "<config>",
                 base_dir: Path | str | None = None) -> ResponderConfig:
    """Validate plain data (as loaded from YAML). ``base_dir`` anchors relative
    ``secret_file`` paths. Raises :class:`ConfigError` listing every problem."""
    if not isinstance(data, dict):
        kind = "an empty file" if data is None else type(data).__name__
        raise ConfigError(source, [f"(top level): expected a mapping of sections, got {kind}"])
    context = {"base_dir": base_dir}
    try:
        config = ResponderConfig.model_validate(data, context=context)
    except ValidationError as exc:
        problems = format_validation_error(exc)
        problems += _cross_check_the_rest(data, exc, context)
        raise ConfigError(source, problems) from None
    problems = cross_check(config)
    if problems:
        raise ConfigError(source, problems)
    return config


def _cross_check_the_rest(data: dict, exc: ValidationError, context: dict) -> list[str]:
    """Report cross-section mistakes too when some values are broken.

    Each broken value is cut out at its deepest key that has a default (so a bad
    transform list falls back to the default list, and the profile's VR can still be
    checked). A broken value with no default above it inside its section (a profile
    without ``vr``) cuts the whole section. Checks that read a cut value are skipped,
    and lines under a cut path dropped: they would describe the default, not the file.
    """
    repaired = copy.deepcopy(data)
    cuts: list[tuple] = []
    for error in exc.errors():
        loc = error["loc"]
        if not loc:
            continue
        cut = _cut_point(loc, error["type"]) or loc[:1]
        _delete(repaired, cut)
        cuts.append(cut)
    sections = _validate_sections(repaired, cuts, context)
    # Every section in it has been validated on its own; the model has no validator
    # of its own, so constructing without validation loses nothing.
    partial = ResponderConfig.model_construct(**sections)
    cut_paths = [format_path(cut) for cut in cuts]
    return [line for line in cross_check(partial, cuts)
            if not any(_under(line, path) for path in cut_paths)]


def _validate_sections(data: dict, cuts: list[tuple], context: dict) -> dict[str, Any]:
    sections: dict[str, Any] = {}
    for name, field in ResponderConfig.model_fields.items():
        if name not in data:
            continue
        adapter = TypeAdapter(Annotated[field.annotation, field])
        try:
            sections[name] = adapter.validate_python(data[name], context=context)
        except ValidationError:
            cuts.append((name,))  # cutting one value broke another: give up on the section
    return sections


def _cut_point(loc: tuple[Any, ...], error_type: str) -> tuple[Any, ...] | None:
    """The deepest prefix of ``loc`` that is a key with a default (or the unknown key
    itself), or None."""
    if error_type == "extra_forbidden":
        return loc
    model: type[BaseModel] | None = ResponderConfig
    best = None
    for depth, part in enumerate(loc):
        if model is None or isinstance(part, int) or part not in model.model_fields:
            continue  # list index, dict key, or a pydantic step name
        field = model.model_fields[part]
        if not field.is_required():
            best = loc[:depth + 1]
        candidates = _unwrap(field.annotation)
        model = candidates[0] if candidates else None
    return best


def _delete(data: Any, path: tuple[Any, ...]) -> None:
    for part in path[:-1]:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(data, dict):
        data.pop(path[-1], None)


def _under(line: str, path: str) -> bool:
    return line.startswith(path) and line[len(path):len(path) + 1] in (".", "[", ":")


def load_config(path: Path | str) -> ResponderConfig:
    """Read and validate a configuration file; :class:`ConfigError` on any problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read configuration: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [_yaml_problem(exc)]) from None
    return parse_config(data, source=str(path), base_dir=path.parent)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    # Only the position and the parser's words: the marked line itself may hold a secret.
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(exc, "problem", None) or "not valid YAML"
    context = getattr(exc, "context", None)
    return f"{where}invalid YAML: {problem}" + (f" ({context})" if context else "")
