"""Command line: log in one or many sessions against an IKEv1 server.

    python -m clients.ikev1_initiator --server 198.18.0.1 --mode aggressive \\
        --id keyid:vr1 --psk-file group.key --user user001 --password-file pw.txt
    python -m clients.ikev1_initiator ... --user 'user{n:03d}' --password-file tmpl \\
        --count 200 --rate 50          # tmpl holds e.g. pw-user{n:03d}

Prints one line per session, then a JSON summary (last line). The PSK and
passwords are never printed or logged. Exit status 0 when every session was
established, 1 otherwise, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import statistics
import sys
import time
from pathlib import Path

from .config import (
    InitiatorConfigError,
    EspOffer,
    IdentitySpec,
    IkeOffer,
    InitiatorConfig,
    Mode,
    NattMode,
    RetransmitSettings,
    parse_group,
)
from .driver import RunnerOutcome, run_sessions
from responder.ikev1.enums import AuthMethod


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m clients.ikev1_initiator",
                                description="dynipsec's IKEv1 initiator (test and load client)")
    p.add_argument("--server", required=True, help="server IPv4 address")
    p.add_argument("--server-port", type=int, default=500)
    p.add_argument("--server-natt-port", type=int, default=4500)
    p.add_argument("--mode", choices=[m.value for m in Mode], default="main")
    p.add_argument("--id", dest="identity", required=True,
                   help="keyid:GROUP, fqdn:NAME, ufqdn:USER@DOMAIN, ipv4:ADDR ({n} allowed)")
    key = p.add_mutually_exclusive_group(required=True)
    key.add_argument("--psk", help="pre-shared key (visible in ps: prefer --psk-file)")
    key.add_argument("--psk-file", type=Path)
    key.add_argument("--psk-env", help="name of an environment variable holding the key")
    p.add_argument("--user", help="Xauth user name; {n} = session number (format spec allowed)")
    pw = p.add_mutually_exclusive_group()
    pw.add_argument("--password-file", type=Path, help="Xauth password (a {n} template too)")
    pw.add_argument("--password-env")
    p.add_argument("--no-xauth-vid", action="store_true",
                   help="do not send the Xauth vendor ID (static tunnel)")
    p.add_argument("--no-dpd-vid", action="store_true")
    p.add_argument("--no-unity-vid", action="store_true")
    p.add_argument("--natt", choices=[m.value for m in NattMode], default="on")
    p.add_argument("--initial-contact", action="store_true")
    p.add_argument("--ike", action="append", default=[],
                   help="IKE proposal like aes256-sha256-modp2048 (repeatable)")
    p.add_argument("--esp", action="append", default=[],
                   help="ESP proposal like aes256-sha1 (repeatable)")
    p.add_argument("--pfs", help="PFS group for Quick Mode (e.g. modp2048)")
    p.add_argument("--no-mode-config", action="store_true")
    p.add_argument("--no-quick-mode", action="store_true")
    p.add_argument("--static-selectors", metavar="LOCAL,REMOTE",
                   help="fixed Quick Mode selectors (implies --no-mode-config)")
    p.add_argument("--remote-selector", default="0.0.0.0/0",
                   help="remote network when the local side is the assigned address")
    p.add_argument("--local-selector", metavar="NET",
                   help="local selector instead of the assigned address, Mode-Config still "
                        "done (a subscriber asking for other selectors: refused)")
    p.add_argument("--source", action="append", default=[],
                   help="source address (repeatable; sessions use them in turn)")
    p.add_argument("--source-port", type=int, default=0, help="IKE source port (0 = any)")
    p.add_argument("--natt-source-port", type=int, default=0, help="NAT-T source port (0 = any)")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--first", type=int, default=1, help="value of {n} for the first session")
    p.add_argument("--rate", type=float, default=None, help="session starts per second")
    p.add_argument("--hold", type=float, default=0.0, help="seconds to stay up before Delete")
    p.add_argument("--timeout", type=float, default=30.0, help="per-session setup limit")
    p.add_argument("--retransmit-timeout", type=float, default=2.0)
    p.add_argument("--quiet", action="store_true", help="only the JSON summary")
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


def _read_secret(value: str | None, path: Path | None, env: str | None, what: str) -> str | None:
    if value is not None:
        return value
    if path is not None:
        return path.read_text().rstrip("\r\n")
    if env is not None:
        secret = os.environ.get(env)
        if secret is None:
            raise InitiatorConfigError(f"{what}: environment variable {env} is not set")
        return secret
    return None


def _configs(args: argparse.Namespace) -> list[InitiatorConfig]:
    psk = _read_secret(args.psk, args.psk_file, args.psk_env, "PSK")
    password = _read_secret(None, args.password_file, args.password_env, "password")
    if args.user and password is None:
        raise InitiatorConfigError("--user needs --password-file or --password-env")
    auth = AuthMethod.XAUTH_INIT_PSK if args.user else AuthMethod.PRE_SHARED_KEY
    base = dict(
        server=args.server, server_port=args.server_port, server_natt_port=args.server_natt_port,
        mode=Mode(args.mode), send_xauth_vid=not args.no_xauth_vid,
        send_dpd_vid=not args.no_dpd_vid, send_unity_vid=not args.no_unity_vid,
        natt=NattMode(args.natt), initial_contact=args.initial_contact,
        ike_proposals=tuple(IkeOffer.parse(text, auth) for text in args.ike),
        pfs_group=parse_group(args.pfs) if args.pfs else None,
        mode_config=not (args.no_mode_config or args.static_selectors),
        quick_mode=not args.no_quick_mode, remote_selector=args.remote_selector,
        retransmit=RetransmitSettings(timeout=args.retransmit_timeout),
    )
    if args.esp:
        base["esp_proposals"] = tuple(EspOffer.parse(text) for text in args.esp)
    if args.local_selector:
        base["local_selector"] = args.local_selector
    if args.static_selectors:
        local, _, remote = args.static_selectors.partition(",")
        base.update(local_selector=local, remote_selector=remote or "0.0.0.0/0")
    configs = []
    for n in range(args.first, args.first + args.count):
        per_session = dict(base, identity=IdentitySpec.parse(args.identity.format(n=n)),
                           psk=(psk or "").encode())
        if args.user:
            per_session.update(xauth_user=args.user.format(n=n),
                               xauth_password=(password or "").format(n=n).encode())
        configs.append(InitiatorConfig(**per_session))
    return configs


def _line(outcome: RunnerOutcome, config: InitiatorConfig) -> str:
    r = outcome.result.as_dict()
    fields = {
        "session": outcome.index + 1, "user": config.xauth_user or "-",
        "id": str(config.identity), "ok": "yes" if r["completed"] else "no",
        "state": r["state"], "address": r["address"] or "-",
        "dns": ",".join(r["dns"]) or "-", "wins": ",".join(r["wins"]) or "-",
        "phase1_ms": r["phase1_ms"], "xauth_ms": r["xauth_ms"],
        "mode_config_ms": r["mode_config_ms"], "quick_mode_ms": r["quick_mode_ms"],
        "spis": ";".join(f"{c['inbound_spi']}/{c['outbound_spi']}" for c in r["children"]) or "-",
        "floated": r["floated"], "retransmits": r["retransmits"],
        "error": (r["error"] or "-").replace(" ", "_"),
        "notify": (r["notify"] or "-").replace(" ", "_"),
    }
    return " ".join(f"{k}={v}" for k, v in fields.items())


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 3)


def _summary(outcomes: list[RunnerOutcome], wall: float) -> dict:
    done = [o.result for o in outcomes if o.result.completed]
    setup = [o.result.timings.elapsed()["quick_mode_ms"] or o.result.timings.elapsed()["phase1_ms"]
             for o in outcomes if o.result.completed]
    setup = [s for s in setup if s is not None]
    errors: dict[str, int] = {}
    for outcome in outcomes:
        if not outcome.result.completed:
            key = outcome.result.error or outcome.result.state
            errors[key] = errors.get(key, 0) + 1
    return {
        "sessions": len(outcomes), "established": len(done), "failed": len(outcomes) - len(done),
        "wall_s": round(wall, 3),
        "established_per_s": round(len(done) / wall, 2) if wall > 0 else None,
        "setup_ms": {"p50": round(statistics.median(setup), 3) if setup else None,
                     "p95": _percentile(setup, 0.95), "max": max(setup) if setup else None},
        "retransmits": sum(o.result.retransmits for o in outcomes),
        "errors": errors,
    }


def _route_source(server: str, port: int) -> str:
    """The address the kernel would send from (a connected UDP socket sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((server, port))
        return probe.getsockname()[0]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        configs = _configs(args)
    except (InitiatorConfigError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # NAT-D hashes our address: bind a real one, never the wildcard
    sources = args.source or [_route_source(args.server, args.server_port)]

    def report(outcome: RunnerOutcome) -> None:
        if not args.quiet:
            print(_line(outcome, configs[outcome.index]), flush=True)

    started = time.monotonic()
    outcomes = asyncio.run(run_sessions(
        configs, sources=sources, rate=args.rate, hold=args.hold, timeout=args.timeout,
        ike_port=args.source_port, natt_port=args.natt_source_port, on_done=report))
    summary = _summary(outcomes, time.monotonic() - started)
    print(json.dumps(summary, sort_keys=True), flush=True)
    return 0 if summary["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
