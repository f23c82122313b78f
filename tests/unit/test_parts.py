"""The parts table (clients/parts.py, lab/parts.py) against the templates, ci/apt-packages.txt and dpkg.

A plugin added to a charon template without its Debian package, or a package that
ci/setup.sh would not install, fails here; so does a missing part at start, which
must name its package at once instead of a login timing out later.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from clients.charon import Charon
from clients import parts
from lab import parts as lab_parts
from clients.process import Daemon

ROOT = Path(__file__).resolve().parents[2]
#: what charon 5.9.8 logs for a plugin without its file, and for one that dlopen refused
MISSING_FILE_LINE = ("00:00:00.001 00[LIB] plugin 'xauth-generic': failed to load - "
                     "xauth_generic_plugin_create not found and no plugin file available")
BROKEN_FILE_LINE = ("00:00:00.001 00[LIB] plugin 'openssl' failed to load: "
                    "/usr/lib/ipsec/plugins/libstrongswan-openssl.so: invalid ELF header")


def apt_packages() -> set[str]:
    lines = (ROOT / "ci" / "apt-packages.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_every_template_plugin_has_a_package():
    unmapped = [name for name in lab_parts.template_plugins() if name not in parts.PLUGINS]
    assert unmapped == [], f"add these charon plugins to clients.parts.PLUGINS: {unmapped}"


def test_every_package_of_the_table_is_installed_by_setup():
    packages = {package for _, package in [*parts.PROGRAMS.values(), *parts.FILES.values()]}
    packages |= set(parts.PLUGINS.values())
    assert packages - apt_packages() == set()


def test_the_templates_load_the_plugins_the_lab_depends_on():
    # Xauth credentials, AES/SHA-2 via OpenSSL and userspace ESP: without these a
    # strongSwan login fails late and obscurely
    assert {"xauth-generic", "openssl", "kernel-libipsec", "curve25519"} <= set(lab_parts.template_plugins())


def test_load_lines_are_read_in_order_without_repeats():
    conf = "charon {\n  load = random nonce openssl\n}\nswanctl {\n  load = pem openssl\n}\n"
    assert parts.plugins_in(conf) == ["random", "nonce", "openssl", "pem"]


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian system")
def test_each_part_belongs_to_the_package_the_table_names():
    wrong = []
    for part in lab_parts.every_part():
        path = part.path if part.path.startswith("/") else shutil.which(part.path)
        if path is None or not Path(path).exists():
            continue  # absence is ci/setup.sh's check (and the next test's)
        owner = subprocess.run(["dpkg-query", "-S", str(Path(path).resolve())],
                               capture_output=True, text=True)
        if owner.returncode != 0:  # /usr-merge: dpkg knows the /bin or /sbin name
            owner = subprocess.run(["dpkg-query", "-S", str(Path(path).resolve()).removeprefix("/usr")],
                                   capture_output=True, text=True)
        packages = {entry.split(":")[0].strip() for entry in owner.stdout.split(",")}
        if part.package not in packages:
            wrong.append(f"{part.name}: table says {part.package}, dpkg says {owner.stdout.strip()}")
    assert wrong == []


def test_a_missing_plugin_names_its_package(monkeypatch, tmp_path):
    monkeypatch.setattr(parts, "PLUGIN_DIR", tmp_path)
    (tmp_path / "libstrongswan-aes.so").write_bytes(b"")
    with pytest.raises(parts.MissingPart) as raised:
        parts.require_plugins(["aes", "xauth-generic"])
    message = str(raised.value)
    assert "'xauth-generic'" in message and "libcharon-extauth-plugins" in message
    assert "'aes'" not in message


def test_a_missing_program_names_its_package(monkeypatch, tmp_path):
    monkeypatch.setitem(parts.PROGRAMS, "vpnc", (str(tmp_path / "vpnc"), "vpnc"))
    with pytest.raises(parts.MissingPart, match=r"program 'vpnc' is missing .* package vpnc"):
        parts.require("vpnc")


def test_charon_log_lines_of_failed_plugins_are_recognised():
    log = "\n".join(["00[DMN] Starting IKE charon daemon", MISSING_FILE_LINE, BROKEN_FILE_LINE,
                     MISSING_FILE_LINE, "00[LIB] loaded plugins: charon random nonce"])
    assert parts.failed_plugins(log) == ["xauth-generic", "openssl"]
    assert parts.failed_plugins("00[LIB] loaded plugins: charon aes sha1") == []


class _NoNode:
    name = "nowhere"

    def popen(self, *args, **kwargs):
        raise AssertionError("a daemon with a missing part must not be started")

    def cmd(self, *args, **kwargs):
        raise AssertionError("not used")


def test_charon_refuses_to_go_on_after_a_plugin_failed_to_load(tmp_path):
    charon = Charon(_NoNode(), tmp_path)
    charon.filelog_path.write_text(MISSING_FILE_LINE + "\n")
    with pytest.raises(parts.MissingPart) as raised:
        charon.check_started()
    assert "'xauth-generic' (Debian package libcharon-extauth-plugins)" in str(raised.value)
    charon.filelog_path.write_text("00[DMN] Starting IKE charon daemon\n")
    charon.check_started()  # a clean log passes


def test_a_daemon_with_a_missing_program_fails_before_it_starts(monkeypatch, tmp_path):
    monkeypatch.setitem(parts.PROGRAMS, "tcpdump", (str(tmp_path / "tcpdump"), "tcpdump"))

    class Capture(Daemon):
        name = "capture"
        parts = ("tcpdump",)

        def argv(self):
            return ["tcpdump"]

    with pytest.raises(parts.MissingPart, match="package tcpdump"):
        Capture(_NoNode(), tmp_path / "capture").start()


def test_check_command_lists_each_missing_part_with_its_package(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(parts, "PLUGIN_DIR", tmp_path)
    assert lab_parts.main(["check"]) == 1
    err = capsys.readouterr().err
    assert "charon plugin 'xauth-generic' is missing" in err and "libcharon-extauth-plugins" in err
    assert lab_parts.main(["missing-packages"]) == 0
    assert "libstrongswan-extra-plugins" in capsys.readouterr().out.split()
    assert lab_parts.main(["bogus"]) == 2
