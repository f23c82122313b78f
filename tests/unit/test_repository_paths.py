"""No tracked file names a path that exists only on a development machine.

Tests, scripts and documents reach what they need through the repository
(paths computed from their own location, or relative links). An absolute path
such as a home or work directory, or a link into a sibling tree next to the
checkout, works only where it was written.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]

ABSOLUTE_PATH = re.compile(r"[\"' (]/[a-z]+/[A-Za-z]")
SYSTEM_PATH = re.compile(
    r"[\"' (]/(usr|etc|proc|sys|dev|run|var|tmp|bin|lib|sbin|opt|srv|mnt|media|nonexistent)/"
)
# Spelled in two parts so that this file does not report itself.
SIBLING_TREE = ".." + "/shared"

BINARY_SUFFIXES = {".pcap", ".pcapng", ".gz", ".png", ".jpg", ".pdf", ".pyc"}
UNTRACKED_DIRECTORIES = {".git", ".venv", "__pycache__", ".pytest_cache", "runs", "build", "results"}


def git_tracked_files() -> list[Path] | None:
    """The files git tracks, or None when git cannot tell."""
    if shutil.which("git") is None or not (REPOSITORY / ".git").exists():
        return None
    listing = subprocess.run(
        ["git", "-C", str(REPOSITORY), "ls-files", "-z"], capture_output=True, check=False
    )
    if listing.returncode != 0:
        return None
    return [REPOSITORY / name for name in listing.stdout.decode().split("\0") if name]


def walked_files() -> list[Path]:
    """Every file below the repository except build, cache and run output."""
    found = []
    for directory, subdirectories, files in os.walk(REPOSITORY):
        subdirectories[:] = [
            d for d in subdirectories if d not in UNTRACKED_DIRECTORIES and not d.endswith(".egg-info")
        ]
        found += [Path(directory) / name for name in files]
    return found


def repository_files() -> list[Path]:
    tracked = git_tracked_files()
    return sorted(path for path in (walked_files() if tracked is None else tracked) if path.is_file())


def text_of(path: Path) -> str | None:
    """The file's text, or None for a binary file."""
    if path.suffix in BINARY_SUFFIXES:
        return None
    data = path.read_bytes()
    if b"\0" in data:
        return None
    return data.decode("utf-8", errors="replace")


def names_development_path(line: str) -> bool:
    """True if the line holds an absolute non-system path or a link into a sibling tree."""
    if SIBLING_TREE in line:
        return True
    return any(not SYSTEM_PATH.match(line, hit.start()) for hit in ABSOLUTE_PATH.finditer(line))


def development_paths(files: list[Path]) -> list[str]:
    """`file:line: text` of every line that names a development machine's path."""
    findings = []
    for path in files:
        text = text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if names_development_path(line):
                findings.append(f"{path.relative_to(REPOSITORY)}:{number}: {line.strip()}")
    return findings


def absolute(*parts: str) -> str:
    return "/" + "/".join(parts)


@pytest.mark.parametrize(
    "line",
    [
        f'RESULTS = Path("{absolute("work", "shared", "reference")}")',
        f"reads {absolute('home', 'alice', 'captures')} at start",
        f"split('{absolute('work', 'main')}/')",
        f"see ({absolute('root', 'Notes.md')})",
        f"[spec]({SIBLING_TREE}/SPEC.md)",
        f'"{absolute("usr", "bin", "ip")}" then "{absolute("work", "x", "y")}"',
    ],
)
def test_detector_reports_development_paths(line):
    assert names_development_path(line)


@pytest.mark.parametrize(
    "line",
    [
        f'IP = "{absolute("usr", "sbin", "ip")}"',
        f"mount --bind DIR/run {absolute('run', 'netns', 'x')}",
        f"open('{absolute('proc', 'net', 'dev')}')",
        f'HOME = "{absolute("nonexistent", "home")}"',
        "tests/vectors/captures/ss-main.pcap",
        "https://datatracker.ietf.org/doc/html/rfc2409",
        "a/b/c and ../docs/spec.md",
    ],
)
def test_detector_accepts_system_and_relative_paths(line):
    assert not names_development_path(line)


def test_binary_files_are_not_read_as_text(tmp_path):
    capture = tmp_path / "x.pcap"
    capture.write_bytes(f' "{absolute("home", "a", "b")}"'.encode())
    blob = tmp_path / "blob"
    blob.write_bytes(b"\0" + f' "{absolute("home", "a", "b")}"'.encode())
    assert text_of(capture) is None and text_of(blob) is None


def test_repository_files_are_found():
    files = {path.relative_to(REPOSITORY).as_posix() for path in repository_files()}
    assert {"README.md", "pyproject.toml", "responder/__init__.py"} <= files


def test_walk_without_git_skips_virtualenv_and_caches():
    files = [path.relative_to(REPOSITORY) for path in walked_files()]
    assert Path(__file__).resolve().relative_to(REPOSITORY) in files
    assert not any(part in UNTRACKED_DIRECTORIES for path in files for part in path.parts[:-1])


def test_no_file_names_a_development_machine_path():
    findings = development_paths(repository_files())
    assert not findings, "paths that exist only on a development machine:\n" + "\n".join(findings)
