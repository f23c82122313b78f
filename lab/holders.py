"""The record of what the sandbox commands started in a running lab, and its holders.

`<state dir>/sandbox/<prefix>.json` lists the gateway and client holders (detached
`python -m lab.sandbox hold ...` processes), captures and every PID a holder started.
`stop_sandbox(prefix)` ends all of it: clients, then the gateway, then captures, then
any recorded PID still alive; the lab's keeper and `lab clean` call it before they
tear a lab down. It needs no lab object, only the record and the PIDs in it.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from lab.state import ProcessRecord, state_dir, terminate_process, terminate_processes
from lab.topology import REPO_ROOT

HOLDER_START_TIMEOUT = 60.0
HOLDER_STOP_TIMEOUT = 30.0


# -- the record ----------------------------------------------------------------------------
def sandbox_path(prefix: str) -> Path:
    return state_dir() / "sandbox" / f"{prefix}.json"


def load_records(prefix: str) -> dict:
    try:
        return json.loads(sandbox_path(prefix).read_text())
    except (FileNotFoundError, ValueError):
        return {"gateway": None, "clients": {}, "captures": {}, "pids": {}}


@contextlib.contextmanager
def edit_records(prefix: str):
    """The record under an exclusive lock (holders and CLI invocations write at once)."""
    path = sandbox_path(prefix)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        records = load_records(prefix)
        yield records
        tmp = path.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps(records, indent=1))
        os.replace(tmp, path)


def remove_records(prefix: str) -> None:
    for path in (sandbox_path(prefix), sandbox_path(prefix).with_suffix(".lock")):
        path.unlink(missing_ok=True)


def stored_record(data: dict | None) -> ProcessRecord | None:
    return ProcessRecord(**data) if data else None


# -- holders: start, report, stop ----------------------------------------------------------
def start_holder(prefix: str, role: str, key: str, workdir: Path, options: dict) -> dict:
    """Starts a detached holder, waits for its report; returns the status it wrote."""
    workdir.mkdir(parents=True, exist_ok=True)
    status_file = workdir / f"holder-{role}.json"
    status_file.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "lab.sandbox", "hold", "--prefix", prefix, "--role", role,
            "--status", str(status_file), "--options", json.dumps(options)]
    with open(workdir / f"holder-{role}.log", "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                cwd=str(REPO_ROOT), start_new_session=True,
                                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    record = ProcessRecord.of(proc.pid, f"sandbox {role} holder {key}")
    with edit_records(prefix) as records:
        entry = {"holder": record.__dict__ if record else None, "workdir": str(workdir),
                 "status": str(status_file), "options": _public(options)}
        if role == "gateway":
            records["gateway"] = entry
        else:
            records["clients"][key] = entry
    deadline = time.monotonic() + HOLDER_START_TIMEOUT
    while time.monotonic() < deadline:
        status = read_status(status_file)
        if status.get("state") in ("up", "failed"):
            break
        if proc.poll() is not None:
            status = read_status(status_file) or {"state": "failed",
                                                   "error": f"holder exited {proc.returncode}; "
                                                            f"see {workdir}/holder-{role}.log"}
            break
        time.sleep(0.1)
    else:
        status = {"state": "failed", "error": f"no report after {HOLDER_START_TIMEOUT:.0f}s"}
    if status["state"] != "up":
        stop_holder(prefix, role, key)
    return status


def _public(options: dict) -> dict:
    return {k: v for k, v in options.items() if k != "password"}


def read_status(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def stop_holder(prefix: str, role: str, key: str) -> dict | None:
    """SIGTERM to the holder, wait until it has stopped what it holds; drop the record."""
    entry = load_records(prefix)["gateway"] if role == "gateway" \
        else load_records(prefix)["clients"].get(key)
    if entry is None:
        return None
    holder = stored_record(entry.get("holder"))
    if holder is not None and holder.is_alive():
        os.kill(holder.pid, signal.SIGTERM)
        deadline = time.monotonic() + HOLDER_STOP_TIMEOUT
        while holder.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if holder.is_alive():
            terminate_process(holder)
    with edit_records(prefix) as records:
        if role == "gateway":
            records["gateway"] = None
        else:
            records["clients"].pop(key, None)
    return entry


def stop_sandbox(prefix: str) -> list[str]:
    """Ends everything the sandbox commands started in lab `prefix`; a line per thing."""
    if not sandbox_path(prefix).exists():
        return []
    done = []
    for host in list(load_records(prefix)["clients"]):
        stop_holder(prefix, "client", host)
        done.append(f"client on {host} logged out")
    if load_records(prefix)["gateway"]:
        stop_holder(prefix, "gateway", "gateway")
        done.append("gateway stopped")
    records = load_records(prefix)
    leftovers = [stored_record(c["pid"]) for c in records["captures"].values()]
    leftovers += [stored_record(r) for r in records["pids"].values()]
    for record in terminate_processes([r for r in leftovers if r is not None]):
        done.append(f"process {record.pid} ({record.what})")
    remove_records(prefix)
    return done
