"""A small parser for strongSwan's settings syntax (strongswan.conf, swanctl.conf).

charon has no dry run, so the lab checks rendered files with this parser before
starting a daemon: balanced sections, `key = value` lines, comments, `include`,
and section templates (`name : base {`). It covers the subset the lab renders;
it is not a full reimplementation of libstrongswan's settings parser.
"""
from __future__ import annotations

import re

_SECTION = re.compile(r"^([\w.\-]+)\s*(?::\s*([\w.\-, ]+))?\s*\{$")
_KEY_VALUE = re.compile(r"^([\w.\-]+)\s*=\s*(.*)$")
_INCLUDE = re.compile(r"^include\s+\S+$")


class SettingsError(ValueError):
    """The text is not valid strongSwan settings syntax."""


def _strip_comment(line: str) -> str:
    """Removes a # comment unless the # sits inside double quotes."""
    quoted = False
    for i, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == "#" and not quoted:
            return line[:i]
    return line


def _unquote(value: str, lineno: int) -> str:
    value = value.strip()
    if value.startswith('"'):
        if len(value) < 2 or not value.endswith('"'):
            raise SettingsError(f"line {lineno}: unterminated quoted value")
        return value[1:-1]
    return value


def parse_settings(text: str) -> dict:
    """Returns nested dicts of the settings; raises SettingsError on a syntax error."""
    root: dict = {}
    stack: list[tuple[str, dict]] = [("", root)]
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        if line == "}":
            if len(stack) == 1:
                raise SettingsError(f"line {lineno}: '}}' without an open section")
            stack.pop()
            continue
        section = _SECTION.match(line)
        if section:
            name, base = section.groups()
            child: dict = {}
            if base:
                child["__base__"] = [b.strip() for b in base.split(",")]
            stack[-1][1][name] = child
            stack.append((name, child))
            continue
        key_value = _KEY_VALUE.match(line)
        if key_value:
            key, value = key_value.groups()
            stack[-1][1][key] = _unquote(value, lineno)
            continue
        if _INCLUDE.match(line):
            continue
        raise SettingsError(f"line {lineno}: cannot parse {raw.strip()!r}")
    if len(stack) > 1:
        open_names = ".".join(name for name, _ in stack[1:])
        raise SettingsError(f"end of file inside section {open_names!r}")
    return root


def lookup(settings: dict, dotted: str):
    """settings['a']['b']['c'] for 'a.b.c'; KeyError names the missing part."""
    node = settings
    for part in dotted.split("."):
        node = node[part]
    return node
