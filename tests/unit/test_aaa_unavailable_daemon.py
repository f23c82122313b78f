"""AAA unavailable in memory (tests/unit/test_daemon_orchestrator.py's rig: the real
orchestrator, engine, Transaction task and supervisor bookkeeping): a RADIUS back end
whose every server is dead, a back end that never answers (the worker's AAA timeout) and
one that raises end Xauth after one round with STATUS=FAIL, counted as aaa_unavailable,
the phase 1 SA deleted and no lockout failure counted; a wrong password still
re-prompts."""
from __future__ import annotations

import asyncio
import logging

from responder.aaa.base import Authenticator, Registry
from responder.aaa.radius import (RadiusBackend, RadiusClient, RadiusServer, RadiusTransport,
                                  ServerGroup)

from .test_aaa_lockout_daemon import lockout_rig
from .test_daemon_orchestrator import run


class Counting:
    """A back end that counts its requests and answers with `answer(request)`."""

    def __init__(self, name, answer):
        self.name, self.answer, self.requests = name, answer, 0

    async def authenticate(self, request):
        self.requests += 1
        return await self.answer(request)


def dead_radius() -> RadiusBackend:
    group = ServerGroup("lab", (RadiusServer("127.0.0.1", b"s3cret", auth_port=9),),
                        dead_time=60)
    client = RadiusClient([group], transport=RadiusTransport("127.0.0.1"))
    client._dead_until[("lab", 0)] = client.clock() + 60   # its timeouts were seen before
    return RadiusBackend(client)


def use_backend(rig, backend) -> None:
    registry = Registry()
    registry.register(backend)
    rig.orchestrator.auth = Authenticator(registry, backend.name)


async def finish(rig, session) -> bool:
    """Pump with a little real time too (the AAA timeout is a real one)."""
    for _ in range(400):
        if await rig.run_until(lambda: session.finished, rounds=1):
            return True
        await asyncio.sleep(0.002)
    return session.finished


async def one_refused_login(rig, backend):
    use_backend(rig, backend)
    session = rig.session("alice", "pw-alice")
    assert await finish(rig, session)
    return session


def assert_one_final_round(rig, session, backend_requests):
    o = rig.orchestrator
    assert not session.established
    assert backend_requests == 1                    # one Xauth round, not max_attempts
    assert o.stats["aaa_refused"] == 1 and o.refused["aaa_unavailable"] == 1
    assert rig.engine.sa_count == 0                 # phase 1 deleted
    assert rig.task.stats.get("late_aaa_result", 0) == 0
    assert rig.supervisor.lockouts.table.failures == 0 and rig.delays == []
    assert not rig.supervisor.registry and not list(o.table)


def test_every_radius_server_dead_one_round_then_fail_and_delete(tmp_path, caplog):
    async def main():
        rig = lockout_rig(tmp_path)
        radius = dead_radius()
        counting = Counting("radius", radius.authenticate)
        session = await one_refused_login(rig, counting)
        radius.client.close()
        assert_one_final_round(rig, session, counting.requests)
        assert radius.client.transport.stats["refused_all_dead"] == 1

    with caplog.at_level(logging.INFO):
        run(main())
    assert "aaa unavailable: radius: no server answering (group lab)" in caplog.text
    assert "pw-alice" not in caplog.text


def test_aaa_timeout_is_unavailable(tmp_path, caplog):
    async def never(request):
        await asyncio.Event().wait()

    async def main():
        rig = lockout_rig(tmp_path)
        rig.orchestrator.aaa_timeout = 0.05
        backend = Counting("local", never)
        session = await one_refused_login(rig, backend)
        assert_one_final_round(rig, session, backend.requests)

    with caplog.at_level(logging.INFO):
        run(main())
    assert "aaa unavailable: AAA timeout: no answer within 0.05s" in caplog.text


def test_aaa_error_is_final_too(tmp_path, caplog):
    async def broken(request):
        raise RuntimeError("back end bug")

    async def main():
        rig = lockout_rig(tmp_path)
        backend = Counting("local", broken)
        session = await one_refused_login(rig, backend)
        assert_one_final_round(rig, session, backend.requests)

    with caplog.at_level(logging.INFO):
        run(main())
    assert "aaa unavailable: AAA error: RuntimeError: back end bug" in caplog.text


def test_wrong_password_still_re_prompts(tmp_path):
    async def main():
        rig = lockout_rig(tmp_path)
        local = rig.orchestrator.auth.registry.get("local")
        backend = Counting("local", local.authenticate)
        use_backend(rig, backend)
        session = rig.session("alice", "wrong")
        assert await finish(rig, session)
        o = rig.orchestrator
        assert not session.established and backend.requests == 3     # max_attempts
        assert o.stats["aaa_refused"] == 3 and o.refused["aaa_unavailable"] == 0
        assert rig.supervisor.lockouts.table.failures == 3

    run(main())
