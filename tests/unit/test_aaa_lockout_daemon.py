"""The lockout wiring in memory: the real orchestrator, engine, Transaction task, local
AAA and supervisor bookkeeping (tests/unit/test_daemon_orchestrator.py's rig) with the
supervisor's LockoutCenter answering the worker's LoginGuard directly (no socketpair);
the supervisor's message handling, the control API and the metrics."""
from __future__ import annotations

import copy
import logging
import time

import pytest

from responder.aaa.base import AuthResult, Refusal
from responder.aaa.lockout import LockoutSettings
from responder.config.builders import build_lockout_settings
from responder.daemon.control import ControlServer
from responder.daemon.lockouts import LockoutCenter, LoginGuard
from responder.daemon.supervisor import Supervisor, WorkerHandle
from responder.config import parse_config

from .test_daemon_orchestrator import CONFIG, Rig, run

LOCKOUT = {"max_failures": 5, "max_source_failures": 20, "backoff_base": 1, "backoff_max": 8}


def lockout_rig(tmp_path, **lockout):
    aaa = {**copy.deepcopy(CONFIG["aaa"]), "lockout": {**LOCKOUT, **lockout}}
    rig = Rig(tmp_path, aaa=aaa)
    center = rig.supervisor.lockouts
    rig.delays = []

    async def report(message):
        return center.failed(message)

    async def sleep(seconds):
        rig.delays.append(seconds)

    guard = LoginGuard(report, time.monotonic, sleep=sleep, notify=lambda m: None)
    center.broadcast = guard.apply
    rig.orchestrator.guard = guard
    return rig


def test_locked_after_five_wrong_passwords_right_one_refused_until_cleared(tmp_path, caplog):
    async def main():
        rig = lockout_rig(tmp_path)
        o, center = rig.orchestrator, rig.supervisor.lockouts
        first = rig.session("alice", "guess-1-secret", port=10_000)   # three attempts
        assert await rig.run_until(lambda: first.finished)
        second = rig.session("alice", "guess-2-secret", port=11_000)  # locked at its 2nd
        assert await rig.run_until(lambda: second.finished)
        assert o.stats["aaa_refused"] == 5 and rig.delays == [1, 2, 4, 8, 8]
        assert center.table.locked("user", "alice", time.monotonic()) is not None
        # the right password while locked: refused at once, AAA not asked
        right = rig.session("alice", "pw-alice", port=12_000)
        assert await rig.run_until(lambda: right.finished)
        assert not right.established
        assert o.stats["aaa_refused"] == 5 and o.refused["user-locked"] == 1
        assert rig.delays[-1] == 8
        # another user from the same source is not locked by alice's counter
        bob = rig.session("bob", "pw-bob", port=13_000)
        assert await rig.run_until(lambda: bob.established)
        # cleared: the right password logs in
        assert center.clear(user="alice") == 1
        again = rig.session("alice", "pw-alice", port=14_000)
        assert await rig.run_until(lambda: again.established)
        assert {r["user"] for r in rig.supervisor.registry.values()} == {"alice", "bob"}

    with caplog.at_level(logging.DEBUG):
        run(main())
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "user-locked" in text and "'alice'" in text
    assert "locked for 300 s" in text
    assert not any(word in text for word in ("guess-1-secret", "guess-2-secret", "pw-alice"))


def test_success_resets_the_users_counter(tmp_path):
    async def main():
        rig = lockout_rig(tmp_path)
        wrong = rig.session("alice", "wrong", port=10_000)
        assert await rig.run_until(lambda: wrong.finished)
        table = rig.supervisor.lockouts.table
        assert {(r["kind"], r["failures"]) for r in table.rows(time.monotonic())} == {
            ("user", 3), ("source", 3)}
        right = rig.session("alice", "pw-alice", port=11_000)
        assert await rig.run_until(lambda: right.established)
        assert {(r["kind"], r["failures"]) for r in table.rows(time.monotonic())} == {
            ("source", 3)}

    run(main())


def test_source_lock_refuses_every_user_without_aaa(tmp_path):
    async def main():
        rig = lockout_rig(tmp_path, max_source_failures=4)
        wrong = rig.session("alice", "wrong", port=10_000)
        assert await rig.run_until(lambda: wrong.finished)
        wrong = rig.session("carol", "wrong", port=11_000)       # 4th failure: source locked
        assert await rig.run_until(lambda: wrong.finished)
        assert rig.orchestrator.stats["aaa_refused"] == 4
        bob = rig.session("bob", "pw-bob", port=12_000)
        assert await rig.run_until(lambda: bob.finished)
        assert not bob.established and rig.orchestrator.refused["source-locked"] == 1
        assert rig.orchestrator.stats["aaa_refused"] == 4

    run(main())


def test_disabled_counts_nothing(tmp_path):
    async def main():
        rig = lockout_rig(tmp_path, enabled=False)
        for port in (10_000, 11_000):
            wrong = rig.session("alice", "wrong", port=port)
            assert await rig.run_until(lambda: wrong.finished)
        right = rig.session("alice", "pw-alice", port=12_000)
        assert await rig.run_until(lambda: right.established)
        assert set(rig.delays) == {0}

    run(main())


# -- supervisor messages, control API, metrics --------------------------------------------
class RecordingChannel:
    closed = False

    def __init__(self):
        self.sent = []

    def notify(self, message):
        self.sent.append(message)


def supervisor(tmp_path, **lockout):
    cfg = parse_config({**CONFIG, "metrics": {"enabled": True},
                        "aaa": {**copy.deepcopy(CONFIG["aaa"]),
                                "lockout": {**LOCKOUT, **lockout}}})
    sup = Supervisor(cfg, str(tmp_path / "config.yaml"))
    for index in range(2):
        handle = WorkerHandle(index, [])
        handle.channel = RecordingChannel()
        sup.workers.append(handle)
    return sup


def test_supervisor_counts_once_and_broadcasts_to_every_worker(tmp_path):
    sup = supervisor(tmp_path, max_failures=2)
    w0, w1 = sup.workers
    first = sup._on_worker_message(w0, {"op": "auth-failed", "user": "alice",
                                        "source": "198.18.1.2"})
    assert first == {"delay": 1, "locked": False, "failures": 1}
    assert not w0.channel.sent and not w1.channel.sent
    second = sup._on_worker_message(w1, {"op": "auth-failed", "user": "alice",
                                         "source": "198.18.1.3"})
    assert second["locked"] is True and second["delay"] == 2
    for handle in (w0, w1):
        (message,) = handle.channel.sent
        assert message["op"] == "lockout" and message["lock"][0][:2] == ["user", "alice"]
        assert 299 < message["lock"][0][2] <= 300
    # a worker (re)started gets every lock in force
    sup._on_worker_message(w1, {"op": "ready"})
    assert w1.channel.sent[-1]["replace"] is True and w1.channel.sent[-1]["lock"]
    # an acquire (AAA granted) resets the user's counter
    sup.lockouts.clear(user="alice")
    sup._on_worker_message(w0, {"op": "auth-failed", "user": "bob", "source": "198.18.1.2"})
    sup.acquire(0, {"key": "0:1", "user": "bob", "vr": "vr1", "profile_vr": "vr1",
                    "profile_pool": "vr1"})
    assert not [r for r in sup.lockouts.rows() if r["kind"] == "user"]


def test_control_show_and_clear(tmp_path):
    sup = supervisor(tmp_path, max_failures=1)
    control = ControlServer(sup, tmp_path / "control.sock")
    sup._on_worker_message(sup.workers[0], {"op": "auth-failed", "user": "alice",
                                            "source": "198.18.1.2"})
    rows = run(control.handle({"cmd": "show", "what": "lockouts"}))["rows"]
    (row,) = [r for r in rows if r["kind"] == "user"]
    assert row["key"] == "alice" and row["failures"] == 1 and row["locked"]
    assert row["locked_until"].endswith("Z")
    answer = run(control.handle({"cmd": "lockout", "action": "clear", "user": "alice"}))
    assert answer == {"ok": True, "cleared": 1}
    assert sup.workers[1].channel.sent[-1] == {"op": "lockout", "unlock": [["user", "alice"]]}
    assert run(control.handle({"cmd": "lockout", "action": "clear", "all": True}))["cleared"] == 1
    assert sup.workers[1].channel.sent[-1]["unlock"] == [["*", "*"]]


def test_lockout_metrics(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    sup = supervisor(tmp_path, max_failures=2)
    sup.ask_workers = _no_workers
    for _ in range(2):
        sup.lockouts.failed({"user": "alice", "source": "198.18.1.2"})
    text = run(_render(sup))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("dynipsec_xauth_failures_total", ())] == 2
    assert samples[("dynipsec_lockouts_total", (("kind", "user"),))] == 1
    assert samples[("dynipsec_lockouts_active", (("kind", "user"),))] == 1
    assert samples[("dynipsec_lockouts_active", (("kind", "source"),))] == 0
    assert samples[("dynipsec_xauth_refused_locked_total", (("reason", "user-locked"),))] == 3


async def _no_workers(message):
    if message.get("what") == "statistics":
        return [{"refused": {"user-locked": 1}}, {"refused": {"user-locked": 2}}]
    return []


async def _render(sup):
    return (await sup.metrics.render()).decode()


def test_center_log_never_names_a_password(caplog):
    center = LockoutCenter(LockoutSettings(max_failures=1))
    with caplog.at_level(logging.DEBUG):
        center.failed({"user": "alice", "source": "10.0.0.1", "password": "leaked"})
    assert "alice" in caplog.text and "leaked" not in caplog.text


def test_guard_counts_only_guesses_and_slows_down_without_a_supervisor():
    reports, delays = [], []

    async def unreachable(message):
        reports.append(message)
        raise ConnectionError("supervisor gone")

    async def sleep(seconds):
        delays.append(seconds)

    guard = LoginGuard(unreachable, time.monotonic, sleep=sleep)
    for refusal in (Refusal.AAA_UNAVAILABLE, Refusal.AAA_ERROR, Refusal.POLICY):
        # even in the words of a wrong password: the kind decides
        assert run(guard.failed("alice", "10.0.0.1",
                                AuthResult.refused("bad password", refusal))) is False
    assert reports == [] and delays == []
    rejected = AuthResult.refused("the server said no", Refusal.CREDENTIALS_REJECTED)
    assert run(guard.failed("alice", "10.0.0.1", rejected)) is False
    assert reports == [{"op": "auth-failed", "user": "alice", "source": "10.0.0.1"}]
    assert delays == [1.0]


def test_reload_switching_lockout_off_lifts_every_lock(tmp_path):
    sup = supervisor(tmp_path, max_failures=1)
    sup.lockouts.failed({"user": "alice", "source": "198.18.1.2"})
    data = {**CONFIG, "metrics": {"enabled": True},
            "aaa": {**copy.deepcopy(CONFIG["aaa"]), "lockout": {"enabled": False}}}
    sup.lockouts.configure(build_lockout_settings(parse_config(data)))
    assert sup.lockouts.rows() == []
    message = sup.workers[0].channel.sent[-1]
    assert message["op"] == "lockout" and message["replace"] and message["lock"] == []


def test_cli_lockout_clear_needs_one_target():
    from responder.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["lockout", "clear", "--source", "198.18.1.2"])
    assert args.source == "198.18.1.2" and args.func.__name__ == "cmd_lockout"
    with pytest.raises(SystemExit):
        parser.parse_args(["lockout", "clear"])
    with pytest.raises(SystemExit):
        parser.parse_args(["lockout", "clear", "--user", "a", "--all"])
    assert parser.parse_args(["show", "lockouts"]).what == "lockouts"
