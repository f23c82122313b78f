"""The control API: one JSON request per line on a Unix socket, one JSON answer.

Requests (``{"cmd": ...}``) and what they answer:

===========================================  ==========================================
``{"cmd": "ping"}``                          ``{"ok": true, "pid": ..., "workers": [...]}``
``{"cmd": "show", "what": "subscribers",     ``{"ok": true, "rows": [...]}`` (filters
"vr": V, "profile": P, "user": U}``           optional)
``{"cmd": "show", "what": "ike-sa"}``        rows from every worker
``{"cmd": "show", "what": "ipsec-sa"}``      rows from every worker
``{"cmd": "show", "what": "licenses"}``      total / in use / free, refused by reason
``{"cmd": "show", "what": "pools"}``         per VR and pool: size / used / free
``{"cmd": "show", "what": "tunnel-profiles"}``  profile -> VR, pool, subscribers
``{"cmd": "show", "what": "statistics"}``    engine, worker, data path, accounting
                                             counters; RADIUS clients (``radius``: the
                                             supervisor's for accounting, each worker's
                                             for AAA) and DAE (``dae``)
``{"cmd": "logout", "user": U | "address":   ``{"ok": true, "count": N}``
A, "vr": V | "profile": P | "all": true}``
``{"cmd": "show", "what": "lockouts"}``      Xauth failure counters: key, kind (user /
                                             source), failures, locked, locked_until
``{"cmd": "lockout", "action": "clear",      ``{"ok": true, "cleared": N}``; the workers
"user": U | "source": A | "all": true}``      accept the user / address again at once
``{"cmd": "reload"}``                        like SIGHUP: ``{"ok": true, "reloaded": bool,
                                             "changed", "applied", "restart_needed"}`` or
                                             ``"errors"`` (the file was refused)
===========================================  ==========================================

Errors: ``{"ok": false, "error": "..."}``. The socket is created mode 0600 (root only).
``dynipsec show ...`` / ``logout ...`` / ``lockout clear ...`` / ``reload`` (:func:`register`)
are the CLI on it; their exit codes are :data:`EXIT_CODES`.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .view import SupervisorView

log = logging.getLogger(__name__)

__all__ = ["ControlServer", "ControlError", "request", "register", "DEFAULT_SOCKET"]

DEFAULT_SOCKET = "/run/dynipsec/control.sock"
MAX_REQUEST = 64 * 1024
SHOW_WHAT = ("subscribers", "ike-sa", "ipsec-sa", "licenses", "pools", "tunnel-profiles",
             "statistics", "lockouts")


#: the CLI's exit codes (also in ``--help``)
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_NOT_RUNNING, EXIT_PERMISSION = 0, 1, 2, 3, 4
EXIT_CODES = """exit codes:
  0  done
  1  the daemon refused the request (or a reload refused the configuration)
  2  usage error
  3  the daemon is not running (no control socket, or nobody answers on it)
  4  permission denied on the control socket (run as root)"""


class ControlError(Exception):
    """The daemon could not be reached, or refused the request."""

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ControlServer:
    def __init__(self, supervisor: "SupervisorView", path: str | Path) -> None:
        self.supervisor = supervisor
        self.path = Path(path)
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if _answers(self.path):
                raise ControlError(f"{self.path}: another dynipsec answers there")
            self.path.unlink()
        old_umask = os.umask(0o077)
        try:
            self._server = await asyncio.start_unix_server(self._client, path=str(self.path),
                                                           limit=MAX_REQUEST)
        finally:
            os.umask(old_umask)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    break
                try:
                    request_ = json.loads(line)
                    if not isinstance(request_, dict):
                        raise ValueError("a request is a JSON object")
                    answer = await self.handle(request_)
                except Exception as exc:  # noqa: BLE001 - answer, never crash the daemon
                    answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                writer.write(json.dumps(answer, default=str).encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()

    async def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        s = self.supervisor
        cmd = req.get("cmd")
        if cmd == "ping":
            return {"ok": True, "pid": os.getpid(),
                    "workers": [{"index": h.index, "pid": h.pid, "generation": h.generation,
                                 "ready": h.ready.is_set()} for h in s.workers]}
        if cmd == "show":
            return {"ok": True, **await self._show(req)}
        if cmd == "logout":
            return {"ok": True, "count": await self._logout(req)}
        if cmd == "lockout":
            return {"ok": True, "cleared": self._lockout(req)}
        if cmd == "reload":
            result = dict(await s.reload())
            return {"ok": True, "reloaded": result.pop("ok"), **result}
        raise ControlError(f"unknown command {cmd!r} (ping, show, logout, lockout, reload)")

    def _lockout(self, req: dict[str, Any]) -> int:
        if req.get("action") != "clear":
            raise ControlError(f"unknown lockout action {req.get('action')!r} (clear)")
        if not (req.get("all") or req.get("user") or req.get("source")):
            raise ControlError("lockout clear needs --user, --source or --all")
        return self.supervisor.lockouts.clear(user=req.get("user"), source=req.get("source"),
                                              everything=bool(req.get("all")))

    async def _show(self, req: dict[str, Any]) -> dict[str, Any]:
        s = self.supervisor
        what = req.get("what")
        if what == "subscribers":
            await s.refresh_counters()
            rows = [r for r in s.subscriber_rows()
                    if (not req.get("vr") or req["vr"] in (r.get("vr"), r.get("netns")))
                    and (not req.get("profile") or r.get("profile") == req["profile"])
                    and (not req.get("user") or r.get("user") == req["user"])]
            return {"rows": rows}
        if what in ("ike-sa", "ipsec-sa"):
            rows = []
            for reply in await s.ask_workers({"op": "show", "what": what}):
                rows += reply.get("rows", [])
            return {"rows": rows}
        if what == "licenses":
            # refused logins by reason: the workers' (AAA, profile, license, address...)
            # and the supervisor's split of license refusals by pool
            refused: Counter[str] = Counter()
            for reply in await s.ask_workers({"op": "show", "what": "statistics"}):
                refused.update(reply.get("refused") or {})
            refused.update(s.refused)
            return {"rows": [{"kind": st.kind, "total": st.size, "in_use": st.in_use,
                              "free": max(0, st.size - st.in_use)}
                             for st in s.licenses.stats()],
                    "refused": dict(sorted(refused.items()))}
        if what == "pools":
            return {"rows": [{"vr": st.vr, "pool": st.pool, "size": st.size, "used": st.used,
                              "free": st.free} for st in s.pools.stats()]}
        if what == "tunnel-profiles":
            counts = Counter(r.get("profile") for r in s.registry.values())
            return {"rows": [{"profile": p.name, "vr": p.vr, "pool": p.pool,
                              "max_interfaces": p.max_interfaces, "subscribers": counts[p.name],
                              "identities": [str(i) for i in p.match.identities],
                              "local_networks": [str(n) for n in p.local_networks]}
                             for p in s.cfg.tunnel_profiles]}
        if what == "lockouts":
            return {"rows": s.lockouts.rows()}
        if what == "statistics":
            workers = await s.ask_workers({"op": "show", "what": "statistics"})
            accounting = vars(s.accountant.stats) if s.accountant else None
            return {"supervisor": dict(s.stats), "refused": dict(s.refused),
                    "accounting": accounting, **s.aaa_counters(), "workers": workers,
                    "subscribers": len(s.registry), "reload": s.last_reload,
                    "metrics": (f"{s.cfg.metrics.address}:{s.cfg.metrics.port}"
                                if s.metrics is not None else None)}
        raise ControlError(f"unknown show {what!r} ({', '.join(SHOW_WHAT)})")

    async def _logout(self, req: dict[str, Any]) -> int:
        s = self.supervisor
        criteria = {k: req.get(k) for k in ("user", "address", "vr", "profile")}
        if not req.get("all") and not any(criteria.values()):
            raise ControlError("logout needs --user, --address, --vr, --profile or --all")
        records = s.select(**criteria) if not req.get("all") else list(s.registry.values())
        from responder.subscriber import SubscriberEvent as Event
        return await s.logout(records, Event.ADMIN_LOGOUT)


def _answers(path: Path) -> bool:
    try:
        request(path, {"cmd": "ping"}, timeout=1)
        return True
    except ControlError:
        return False


def request(path: str | Path, req: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
    """One request to a running daemon (blocking; for the CLI and the lab)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        sock.sendall(json.dumps(req).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    except (FileNotFoundError, ConnectionRefusedError):
        raise ControlError(f"dynipsec is not running (no control socket answers at {path})",
                           EXIT_NOT_RUNNING) from None
    except PermissionError:
        raise ControlError(f"permission denied on {path} (the control socket is root's)",
                           EXIT_PERMISSION) from None
    except OSError as exc:
        raise ControlError(f"cannot talk to dynipsec at {path}: {exc}", EXIT_NOT_RUNNING) from None
    finally:
        sock.close()
    try:
        answer = json.loads(data)
    except json.JSONDecodeError:
        raise ControlError(f"no answer from {path}", EXIT_NOT_RUNNING) from None
    if not answer.get("ok"):
        raise ControlError(answer.get("error", "request refused"))
    return answer


# -- CLI ------------------------------------------------------------------------------------
SUBSCRIBER_COLUMNS = ("user", "address", "vr", "interface", "profile", "worker", "uptime",
                      "bytes_in", "bytes_out", "vendor_ids")
COLUMNS = {
    "subscribers": SUBSCRIBER_COLUMNS,
    "ike-sa": ("ike_sa", "subscriber", "user", "peer", "local", "exchange", "state",
               "transform", "children", "dpd"),
    "licenses": ("kind", "total", "in_use", "free"),
    "pools": ("vr", "pool", "size", "used", "free"),
    "tunnel-profiles": ("profile", "vr", "pool", "max_interfaces", "subscribers",
                        "identities", "local_networks"),
    "lockouts": ("key", "kind", "failures", "locked", "locked_until"),
}


def _add_socket(parser) -> None:
    parser.add_argument("-s", "--socket", default=DEFAULT_SOCKET,
                        help=f"control socket (default {DEFAULT_SOCKET})")


def register(sub) -> None:
    show = sub.add_parser("show", help="show the running responder's state",
                          epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("what", choices=SHOW_WHAT)
    show.add_argument("--vr", help="subscribers: only this VR (name or namespace)")
    show.add_argument("--profile", help="subscribers: only this tunnel profile")
    show.add_argument("--user", help="subscribers: only this user")
    show.add_argument("--json", action="store_true", help="the JSON answer, as the API gives it")
    _add_socket(show)
    show.set_defaults(func=cmd_show)
    logout = sub.add_parser("logout", help="log subscribers out (admin-logout)",
                            epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    logout.add_argument("--user")
    logout.add_argument("--address")
    logout.add_argument("--vr", help="alone: everyone in the VR; with --address: that VR's")
    logout.add_argument("--profile")
    logout.add_argument("--all", action="store_true")
    logout.add_argument("--json", action="store_true")
    _add_socket(logout)
    logout.set_defaults(func=cmd_logout)
    lockout = sub.add_parser("lockout", help="Xauth lockouts (see show lockouts)",
                             epilog=EXIT_CODES,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    lockout.add_argument("action", choices=("clear",))
    which = lockout.add_mutually_exclusive_group(required=True)
    which.add_argument("--user", help="this user name's counter and lock")
    which.add_argument("--source", help="this source address's counter and lock")
    which.add_argument("--all", action="store_true", help="every counter and lock")
    lockout.add_argument("--json", action="store_true")
    _add_socket(lockout)
    lockout.set_defaults(func=cmd_lockout)
    reload = sub.add_parser(
        "reload", help="reload the configuration file (as SIGHUP): applies what can change "
        "without dropping subscribers, reports what needs a restart",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    reload.add_argument("--json", action="store_true")
    _add_socket(reload)
    reload.set_defaults(func=cmd_reload)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _table(rows: list[dict], columns=None) -> str:
    if not rows:
        return "(none)"
    columns = list(columns or rows[0].keys())
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            out += _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = []
        for index, item in enumerate(value):
            rest = {k: v for k, v in item.items() if k not in ("group", "server")}
            out += _flatten(rest, f"{prefix}.{_row_label(item, index)}")
        return out
    return [(prefix, _cell(value))]


def _row_label(row: dict, index: int) -> str:
    """A list row's name in flat output: ``group/server`` (RADIUS servers), else its index."""
    return f"{row['group']}/{row['server']}" if "group" in row and "server" in row else str(index)


def _statistics(answer: dict) -> str:
    parts = [f"subscribers  {answer.get('subscribers', 0)}"]
    sections = [("supervisor", answer.get("supervisor")), ("refused", answer.get("refused")),
                ("accounting", answer.get("accounting")),
                ("radius accounting", answer.get("radius")), ("dae", answer.get("dae")),
                ("reload", answer.get("reload")),
                ("metrics", answer.get("metrics"))]
    for index, worker in enumerate(answer.get("workers") or []):
        sections.append((f"worker {index}", worker))
    for title, value in sections:
        pairs = _flatten(value) if isinstance(value, dict) else [("", _cell(value))]
        if not pairs:
            continue
        parts.append(f"\n{title}:")
        width = max(len(k) for k, _ in pairs)
        parts += [f"  {k.ljust(width)}  {v}".rstrip() for k, v in pairs]
    return "\n".join(parts)


def _fail(command: str, exc: ControlError) -> int:
    print(f"dynipsec {command}: {exc}", file=sys.stderr)
    return exc.exit_code


def cmd_show(args) -> int:
    req = {"cmd": "show", "what": args.what}
    for key in ("vr", "profile", "user"):
        if getattr(args, key):
            req[key] = getattr(args, key)
    try:
        answer = request(args.socket, req)
    except ControlError as exc:
        return _fail("show", exc)
    if args.json:
        print(json.dumps(answer, indent=1, default=str))
        return EXIT_OK
    if args.what == "statistics":
        print(_statistics(answer))
    elif "rows" in answer:
        print(_table(answer["rows"], COLUMNS.get(args.what)))
        if args.what == "licenses":
            refused = answer.get("refused") or {}
            print("\nrefused logins by reason: " + (", ".join(
                f"{k} {v}" for k, v in refused.items()) or "none"))
    else:
        print(json.dumps({k: v for k, v in answer.items() if k != "ok"}, indent=1, default=str))
    return EXIT_OK


def cmd_logout(args) -> int:
    req: dict[str, Any] = {"cmd": "logout"}
    for key in ("user", "address", "profile", "vr"):
        if getattr(args, key):
            req[key] = getattr(args, key)
    if args.all:
        req["all"] = True
    if len(req) == 1:
        print("dynipsec logout: give --user, --address, --vr, --profile or --all", file=sys.stderr)
        return EXIT_USAGE
    try:
        answer = request(args.socket, req, timeout=30)
    except ControlError as exc:
        return _fail("logout", exc)
    print(json.dumps(answer) if args.json else f"{answer['count']} subscriber(s) logged out")
    return EXIT_OK


def cmd_lockout(args) -> int:
    req: dict[str, Any] = {"cmd": "lockout", "action": args.action}
    for key in ("user", "source"):
        if getattr(args, key):
            req[key] = getattr(args, key)
    if args.all:
        req["all"] = True
    try:
        answer = request(args.socket, req)
    except ControlError as exc:
        return _fail("lockout", exc)
    print(json.dumps(answer) if args.json else f"{answer['cleared']} counter(s) cleared")
    return EXIT_OK


def cmd_reload(args) -> int:
    try:
        answer = request(args.socket, {"cmd": "reload"}, timeout=60)
    except ControlError as exc:
        return _fail("reload", exc)
    if args.json:
        print(json.dumps(answer, indent=1, default=str))
        return EXIT_OK if answer.get("reloaded") else EXIT_REFUSED
    if not answer.get("reloaded"):
        errors = answer.get("errors") or []
        print(f"dynipsec reload: configuration refused ({len(errors)} problem(s)); the running "
              "configuration stays", file=sys.stderr)
        for line in errors:
            print(line, file=sys.stderr)
        return EXIT_REFUSED
    applied, restart = answer.get("applied") or [], answer.get("restart_needed") or {}
    if not answer.get("changed"):
        print("reloaded: no change")
    else:
        print(f"reloaded: {len(applied)} change(s) applied" + (":" if applied else ""))
        for path in applied:
            print(f"  {path}")
    if restart:
        print(f"restart needed for {len(restart)} change(s) (the running values stay):")
        for path, why in restart.items():
            print(f"  {path}: {why}")
    failed = [w for w in answer.get("workers") or [] if not w.get("ok")]
    if failed:
        print(f"dynipsec reload: {len(failed)} worker(s) did not reload: "
              + "; ".join(str(w.get("error")) for w in failed), file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK
