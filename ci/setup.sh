#!/usr/bin/env bash
# Idempotent setup of a fresh Debian 12 machine (as root): Debian packages, then
# a virtualenv .venv with dynipsec installed editable with its test extras.
# Re-running it is cheap: it skips what is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-$ROOT/.venv}
PY=${PYTHON:-/usr/bin/python3}

log() { printf '[setup] %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
    echo "ci/setup.sh: must run as root (it installs Debian packages and the lab needs namespaces)" >&2
    exit 1
fi

mapfile -t pkgs < <(grep -Ev '^\s*(#|$)' ci/apt-packages.txt)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # tshark asks whether non-root users may capture; answer no, without a prompt
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    log "Debian packages present"
fi

# Debian starts packaged daemons on install where an init system runs; the lab
# runs its own private instances and must not share ports with these.
for svc in freeradius strongswan-starter strongswan ipsec; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
        log "stopping packaged service $svc (the lab runs private instances)"
        systemctl stop "$svc" || true
        systemctl disable "$svc" >/dev/null 2>&1 || true
    fi
done

EXTRAS=lab,test,bench
stamp="$VENV/.dynipsec-setup"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
# the names of the project's Python requirements (with EXTRAS) that are not installed:
# a package removed from the virtualenv by hand must bring the install back
missing_python() {
    "$VENV/bin/python" - "$EXTRAS" <<'PYEOF'
import importlib.metadata as md, re, sys
extras = set(sys.argv[1].split(","))
try:
    requirements = md.requires("dynipsec") or []
except md.PackageNotFoundError:
    print("dynipsec"); sys.exit()
for requirement in requirements:
    extra = re.search(r'extra\s*==\s*"([^"]+)"', requirement)
    if extra and extra.group(1) not in extras:
        continue
    name = re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0]
    try:
        md.version(name)
    except md.PackageNotFoundError:
        print(name)
PYEOF
}
if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
        && [ -z "$(missing_python)" ]; then
    log "virtualenv up to date ($VENV)"
else
    [ -x "$VENV/bin/python" ] || { log "creating virtualenv $VENV"; "$PY" -m venv "$VENV"; }
    gone=$(missing_python | tr '\n' ' ')
    log "installing Python packages into $VENV${gone:+ (missing: ${gone% })}"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e ".[$EXTRAS]"
    echo "$want" > "$stamp"
fi
"$VENV/bin/python" -c 'import cryptography, pyroute2, pyrad, mininet.net, jinja2, pexpect, yaml, pydantic, scapy, rich, hypothesis, matplotlib' \
    || { echo "ci/setup.sh: the virtualenv is incomplete" >&2; exit 1; }
# every program, file and charon plugin the lab uses, each named with its package;
# a package whose files were removed by hand (dpkg still lists it) is reinstalled once
mapfile -t broken < <("$VENV/bin/python" -m lab.parts missing-packages)
if [ ${#broken[@]} -gt 0 ]; then
    log "parts missing although installed, reinstalling: ${broken[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall --no-install-recommends "${broken[@]}" \
        || log "reinstall failed"
fi
"$VENV/bin/python" -m lab.parts check \
    || { echo "ci/setup.sh: parts are missing after the install (lines above); add their packages to ci/apt-packages.txt" >&2; exit 1; }
log "ready: $("$VENV/bin/dynipsec" --version)"
