"""Load generator: many concurrent subscribers through one initiator process.

    python -m clients.ikev1_initiator.load --server 198.18.0.1 --mode aggressive \\
        --id keyid:vr1 --psk-file group.key --user 'user{n:05d}' --password-file tmpl \\
        --count 1000 --rate 100 --sources-file sources.txt --hold 5 --output result.json
    ... --concurrency 32            # closed loop: as fast as the server allows

Three phases: logins (at a fixed offered rate, or closed loop with N logins in
flight), hold (every established session stays up answering DPD), logout (Delete
for every session). With `--wait-release` the hold ends when a line arrives on
stdin instead of after `--hold` seconds, so that a harness can measure the server
while everyone is logged in; the line ``{"event": "held", ...}`` on stdout says
that the login phase is over. `--release-each` instead deletes each session as soon
as it is up (login/logout churn). The result is one JSON document (stdout's last
line, and `--output`): latency percentiles and histogram, failures by reason, the
login rate per second, phase durations. Secrets are never printed.

The pure parts (`RateSchedule`, `LatencyHistogram`, `spread`, `address_block`,
`failure_reason`) are separate from the asyncio part (`run_load`).
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import ipaddress
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from responder.daemon.collector import FullCollections

from .config import InitiatorConfig, InitiatorConfigError as ConfigError
from .driver import EndpointPool, SessionRunner
from .session import InitiatorSession, Rng

__all__ = ["RateSchedule", "LatencyHistogram", "LoadResult", "address_block", "spread",
           "failure_reason", "run_load", "main"]

log = logging.getLogger(__name__)


# -- pure parts ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RateSchedule:
    """Start times of an open-loop load: session i starts at `start + i / rate`.

    Absolute times (not a sleep between starts) so that a slow turn of the event loop
    delays one start without shifting every later one."""

    rate: float
    start: float = 0.0

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError("the offered rate must be positive")

    def due(self, index: int) -> float:
        return self.start + index / self.rate

    def delay(self, index: int, now: float) -> float:
        """Seconds to wait before starting session `index` (0 when late)."""
        return max(0.0, self.due(index) - now)

    def lag(self, index: int, now: float) -> float:
        """Seconds session `index` starts behind its schedule (0 when on time)."""
        return max(0.0, now - self.due(index))


_PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99))


class LatencyHistogram:
    """Login latencies in milliseconds: exact percentiles and log-spaced buckets.

    Buckets: `per_decade` per factor of ten from `low` ms; everything under `low`
    falls in the first bucket, everything above the last edge in the last."""

    def __init__(self, low: float = 0.5, decades: int = 6, per_decade: int = 10) -> None:
        self.edges = [round(low * 10 ** (k / per_decade), 6)
                      for k in range(decades * per_decade + 1)]
        self.counts = [0] * (len(self.edges) + 1)
        self.samples: list[float] = []

    def record(self, ms: float) -> None:
        bisect.insort(self.samples, ms)
        self.counts[bisect.bisect_right(self.edges, ms)] += 1

    def merge(self, other: "LatencyHistogram") -> None:
        if other.edges != self.edges:
            raise ValueError("histograms with different buckets")
        for ms in other.samples:
            self.record(ms)

    def __len__(self) -> int:
        return len(self.samples)

    def percentile(self, fraction: float) -> float | None:
        """Nearest-rank percentile (fraction 0..1) of the recorded values."""
        if not self.samples:
            return None
        rank = max(1, math.ceil(fraction * len(self.samples)))
        return self.samples[min(rank, len(self.samples)) - 1]

    def buckets(self) -> list[dict]:
        """Non-empty buckets as {"le": upper edge in ms (None = above the last), "count"}."""
        uppers = self.edges + [None]
        return [{"le": uppers[i], "count": c} for i, c in enumerate(self.counts) if c]

    def summary(self) -> dict:
        pct = {name: self.percentile(q) for name, q in _PERCENTILES}
        return {"count": len(self), "min": self.samples[0] if self.samples else None,
                "max": self.samples[-1] if self.samples else None, **pct}

    def as_dict(self) -> dict:
        return {**self.summary(), "buckets": self.buckets(),
                "samples_ms": [round(s, 3) for s in self.samples]}

    @classmethod
    def from_samples(cls, samples: Sequence[float]) -> "LatencyHistogram":
        histogram = cls()
        for ms in samples:
            histogram.record(ms)
        return histogram


def spread(count: int, sources: Sequence[str]) -> list[str]:
    """The source of each of `count` sessions: round robin, so that no source carries
    more than ceil(count / len(sources)) of them (servers limit SAs per peer)."""
    if not sources:
        raise ValueError("at least one source address is needed")
    return [sources[i % len(sources)] for i in range(count)]


def sources_needed(count: int, per_source: int) -> int:
    """How many source addresses keep every source under `per_source` sessions."""
    if per_source < 1:
        raise ValueError("per_source must be at least 1")
    return max(1, math.ceil(count / per_source))


def address_block(network: str, first: str, count: int,
                  exclude: Sequence[str] = ()) -> list[str]:
    """`count` host addresses of `network` from `first` upwards, skipping `exclude`,
    the network and broadcast addresses."""
    net = ipaddress.ip_network(network)
    address = ipaddress.ip_address(first)
    if address not in net:
        raise ValueError(f"{first} is not in {network}")
    skip = {ipaddress.ip_address(a) for a in exclude} | {net.network_address,
                                                         net.broadcast_address}
    found: list[str] = []
    while len(found) < count:
        if address not in net:
            raise ValueError(f"{network} has not {count} free addresses from {first}")
        if address not in skip:
            found.append(str(address))
        address += 1
    return found


def failure_reason(state: str, error: str | None, notify: str | None, timed_out: bool) -> str:
    """A short key to count failures by: the notify type, a timeout and the state it
    stopped in, or the error's text before any detail (after ': ')."""
    if timed_out:
        return f"timeout in {state}"
    if notify:
        return f"notify {notify}"
    if error:
        return error.split(": ", 1)[0][:80]
    return f"ended in {state}"


def rate_timeline(times: Sequence[float], start: float, bin_s: float = 1.0) -> list[int]:
    """Completions per bin of `bin_s` seconds from `start`."""
    if not times:
        return []
    bins = [0] * (int((max(times) - start) / bin_s) + 1)
    for t in times:
        bins[max(0, int((t - start) / bin_s))] += 1
    return bins


# -- the asyncio part --------------------------------------------------------------------
@dataclass
class LoadResult:
    offered: int
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)
    failures: dict[str, int] = field(default_factory=dict)
    completions: list[float] = field(default_factory=list)
    retransmits: int = 0
    start_lag_max_s: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    released: int = 0
    server_deleted: int = 0
    started_at: float = 0.0

    @property
    def established(self) -> int:
        return len(self.histogram)

    def fail(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1

    def as_dict(self) -> dict:
        login_s = self.phases.get("login_s") or 0.0
        return {
            "offered": self.offered, "established": self.established,
            "failed": sum(self.failures.values()), "failures": dict(sorted(self.failures.items())),
            "latency_ms": self.histogram.as_dict(),
            "established_per_s": round(self.established / login_s, 2) if login_s else None,
            "rate_per_s": rate_timeline(self.completions, self.started_at),
            "retransmits": self.retransmits, "start_lag_max_s": round(self.start_lag_max_s, 3),
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
            "released": self.released, "deleted_by_server": self.server_deleted,
        }


class LoadRun:
    """Runs the three phases over shared endpoints (two sockets per source)."""

    def __init__(self, configs: Sequence[InitiatorConfig], sources: Sequence[str], *,
                 timeout: float, release_each: bool = False, hold_each: float = 0.0,
                 rng: Rng = os.urandom, ike_port: int = 0, natt_port: int = 0) -> None:
        self.configs = configs
        self.sources = spread(len(configs), sources)
        self.timeout = timeout
        self.release_each = release_each
        self.hold_each = hold_each
        self.rng = rng
        self.pool = EndpointPool(ike_port, natt_port)
        self.result = LoadResult(offered=len(configs))
        self.held: list[SessionRunner] = []
        self._loop = asyncio.get_running_loop()

    async def login(self, index: int) -> None:
        ike, natt = await self.pool.pair(self.sources[index])
        session = InitiatorSession(self.configs[index], local=ike.address,
                                   local_natt=natt.address, rng=self.rng)
        runner = SessionRunner(session, ike, natt)
        started = self._loop.time()
        timed_out = False
        runner.start()
        try:
            await asyncio.wait_for(runner.wait_for(_settled), self.timeout)
        except asyncio.TimeoutError:
            timed_out = True
            runner.abort(f"not established within {self.timeout:g} s")
        self.result.retransmits += session.retransmits
        if session.established:
            now = self._loop.time()
            self.result.histogram.record((now - started) * 1000.0)
            self.result.completions.append(now)
            await self._keep(runner)
        else:
            self.result.fail(failure_reason(session.state.value, session.error,
                                            session.error_notify, timed_out))
            runner.detach()

    async def _keep(self, runner: SessionRunner) -> None:
        if not self.release_each:
            self.held.append(runner)
            return
        if self.hold_each > 0:
            await asyncio.sleep(self.hold_each)
        self._release(runner)

    def _release(self, runner: SessionRunner) -> None:
        if runner.session.finished:
            self.result.server_deleted += 1
        else:
            runner.close()
            self.result.released += 1
        runner.detach()

    async def open_loop(self, rate: float) -> None:
        schedule = RateSchedule(rate, self._loop.time())
        tasks = []
        for index in range(len(self.configs)):
            await asyncio.sleep(schedule.delay(index, self._loop.time()))
            self.result.start_lag_max_s = max(self.result.start_lag_max_s,
                                              schedule.lag(index, self._loop.time()))
            tasks.append(asyncio.create_task(self.login(index)))
        await asyncio.gather(*tasks)

    async def closed_loop(self, in_flight: int) -> None:
        indices = iter(range(len(self.configs)))

        async def lane() -> None:
            for index in indices:
                await self.login(index)

        await asyncio.gather(*(lane() for _ in range(max(1, in_flight))))

    def release_all(self) -> None:
        for runner in self.held:
            self._release(runner)
        self.held = []

    def close(self) -> None:
        self.pool.close()


def _settled(session: InitiatorSession) -> bool:
    return session.established or session.finished


async def run_load(configs: Sequence[InitiatorConfig], sources: Sequence[str], *,
                   rate: float | None = None, concurrency: int | None = None,
                   hold: float = 0.0, release: Callable[[], "asyncio.Future | None"] | None = None,
                   timeout: float = 30.0, release_each: bool = False, hold_each: float = 0.0,
                   on_held: Callable[[LoadResult], None] | None = None,
                   rng: Rng = os.urandom) -> LoadResult:
    """Logs every config in (at `rate`/s, or closed loop with `concurrency` in flight),
    holds (`hold` s, or until the awaitable `release()` returns), deletes all."""
    if (rate is None) == (concurrency is None):
        raise ValueError("give either a rate or a concurrency")
    run = LoadRun(configs, sources, timeout=timeout, release_each=release_each,
                  hold_each=hold_each, rng=rng)
    loop = asyncio.get_running_loop()
    run.result.started_at = begin = loop.time()
    try:
        if rate is not None:
            await run.open_loop(rate)
        else:
            await run.closed_loop(concurrency or 1)
        run.result.phases["login_s"] = loop.time() - begin
        if on_held is not None:
            on_held(run.result)
        held_from = loop.time()
        if release is not None:
            await release()
        elif hold > 0:
            await asyncio.sleep(hold)
        run.result.phases["hold_s"] = loop.time() - held_from
        logout_from = loop.time()
        run.release_all()
        # let the last Delete datagrams leave before the sockets close
        await asyncio.sleep(0.2)
        run.result.phases["logout_s"] = loop.time() - logout_from
        return run.result
    finally:
        run.close()


# -- command line ----------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    from .__main__ import _parser as session_parser
    p = session_parser()
    p.prog = "python -m clients.ikev1_initiator.load"
    p.description = "load generator: many subscribers, one JSON result"
    p.add_argument("--concurrency", type=int, default=None,
                   help="closed loop: logins in flight at once (instead of --rate)")
    p.add_argument("--sources-file", type=Path, help="source addresses, one a line")
    p.add_argument("--wait-release", action="store_true",
                   help="hold until a line arrives on stdin (after printing the held event)")
    p.add_argument("--release-each", action="store_true",
                   help="delete each session once it is up (churn), after --hold-each s")
    p.add_argument("--hold-each", type=float, default=0.0)
    p.add_argument("--output", type=Path, help="also write the JSON result here")
    return p


def _sources(args: argparse.Namespace) -> list[str]:
    sources = list(args.source)
    if args.sources_file:
        sources += [line.strip() for line in args.sources_file.read_text().splitlines()
                    if line.strip()]
    if not sources:
        from .__main__ import _route_source
        sources = [_route_source(args.server, args.server_port)]
    return sources


async def _stdin_line() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


def _print_event(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}, sort_keys=True), flush=True)


def main(argv: list[str] | None = None) -> int:
    from .__main__ import _configs
    args = _parser().parse_args(argv)
    logging.basicConfig(level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        configs = _configs(args)
        sources = _sources(args)
        if args.concurrency is None and args.rate is None:
            raise ConfigError("give --rate or --concurrency")
    except (ConfigError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def held(result: LoadResult) -> None:
        _print_event("held", established=result.established,
                     failed=sum(result.failures.values()),
                     login_s=round(result.phases.get("login_s", 0.0), 3))

    # A load holds thousands of sessions. CPython's full collections over them (at
    # 5,000 sessions a pass takes hundreds of ms) would stall every login in flight and
    # count as the gateway's latency; a load is short, so it takes the worker's policy
    # over without its ticks: the oldest generation is left uncollected (the young
    # ones still are).
    FullCollections().start()
    started = time.time()
    result = asyncio.run(run_load(
        configs, sources, rate=args.rate if args.concurrency is None else None,
        concurrency=args.concurrency, hold=args.hold,
        release=_stdin_line if args.wait_release else None, timeout=args.timeout,
        release_each=args.release_each, hold_each=args.hold_each, on_held=held))
    document = {"started_unix": round(started, 3), "sources": len(sources),
                "mode": args.mode, "rate": args.rate if args.concurrency is None else None,
                "concurrency": args.concurrency, **result.as_dict()}
    text = json.dumps(document, sort_keys=True)
    if args.output:
        args.output.write_text(text + "\n")
    print(text, flush=True)
    return 0 if document["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
