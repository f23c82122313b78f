"""The probe in a lab client's namespace: cases over real UDP sockets.

    python -m lab.vendorids.agent PLAN.json

PLAN.json (written 0600 by lab.py: it holds the keys and passwords) names the
case file, the gateway, the client address and one run per case with its Xauth
user. All runs go at once (sessions share one IKE and one NAT-T socket,
demultiplexed by initiator cookie); each prints one JSON line
``{"case": ID, "view": {...}}`` as it finishes (probe.InitiatorView), the last
line is ``{"done": N}``. Exit status 0 when every run produced a view.
"""
from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Callable

from clients.ikev1_initiator import InitiatorConfig, InitiatorSession
from clients.ikev1_initiator.driver import EndpointPool, SessionRunner, UdpEndpoint
from clients.ikev1_initiator.hooks import MessageHook

from lab.vendorids.cases import load_cases
from lab.vendorids.craft import Target
from lab.vendorids.probe import probe

POLL = 0.02


class SocketDriver:
    """probe.Driver over the initiator's asyncio endpoints: real time, real sockets."""

    def __init__(self, ike: UdpEndpoint, natt: UdpEndpoint) -> None:
        self.ike = ike
        self.natt = natt
        self.runners: dict[int, SessionRunner] = {}

    def start(self, config: InitiatorConfig, hook: MessageHook) -> InitiatorSession:
        session = InitiatorSession(config, local=self.ike.address, local_natt=self.natt.address,
                                   hooks=hook)
        runner = SessionRunner(session, self.ike, self.natt)
        self.runners[id(session)] = runner
        runner.start()
        return session

    async def until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(POLL)
        return True

    async def idle(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def flush(self, session: InitiatorSession) -> None:
        self.runners[id(session)].flush()

    def detach(self) -> None:
        for runner in self.runners.values():
            runner.detach()


async def _run_all(plan: dict) -> int:
    table = load_cases(plan["cases_file"])
    pool = EndpointPool()
    ike, natt = await pool.pair(plan["source"])
    semaphore = asyncio.Semaphore(plan.get("concurrency", 16))
    done = 0

    async def one(run: dict) -> None:
        nonlocal done
        case = table.case(run["case"])
        target = Target(server=plan["server"], group=plan["group"],
                        main_mode_psk=plan["main_mode_psk"], group_psk=plan["group_psk"],
                        user=run["user"], password=run["password"], intranet=plan["intranet"],
                        client_address=plan["client_address"], xauth_wait=plan["xauth_wait"])
        driver = SocketDriver(ike, natt)
        async with semaphore:
            try:
                view = await probe(table, case, target, driver, dpd_wait=plan["dpd_wait"])
                print(json.dumps({"case": case.id, "view": view.as_dict()}), flush=True)
                done += 1
            finally:
                await asyncio.sleep(0.2)  # let the last Delete leave
                driver.detach()

    try:
        await asyncio.gather(*(one(run) for run in plan["runs"]))
    finally:
        pool.close()
    print(json.dumps({"done": done}), flush=True)
    return 0 if done == len(plan["runs"]) else 1


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    plan = json.loads(Path(argv[0]).read_text())
    return asyncio.run(_run_all(plan))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
