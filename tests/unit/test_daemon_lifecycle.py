"""Orchestrator lifecycle details in memory (the rig of test_daemon_orchestrator: real
engine, Transaction task, local AAA, supervisor bookkeeping, the project's initiator):

* a license refusal after AAA ends Xauth with STATUS=FAIL at the first attempt;
* per-profile Mode-Config `send_unrequested` and Xauth `max_attempts`;
* the remote delete grace: the same user back from the same address re-attaches to the
  waiting subscriber (address, interface, accounting kept), else logged out after it;
* INITIAL-CONTACT: the user's older subscriber from the same address goes at once.
"""
from __future__ import annotations

import asyncio
import copy

from clients.ikev1_initiator import (ConfigReceived, IdentitySpec, InitiatorConfig,
                                     InitiatorSession, Mode)
from clients.ikev1_initiator.results import SessionFailed, XauthDone
from responder.ikev1.enums import ConfigAttribute

from tests.unit.test_daemon_orchestrator import CONFIG, SERVER, Rig, run, seeded


def _session(rig: Rig, user: str, password: str, port: int, *, initial_contact: bool = False,
             group: str = "vr1"):
    cfg = InitiatorConfig(server=SERVER[0], identity=IdentitySpec.parse(f"keyid:{group}"),
                          psk=f"psk-{group}".encode(), mode=Mode.AGGRESSIVE, xauth_user=user,
                          xauth_password=password.encode(), remote_selector="10.50.0.0/24",
                          initial_contact=initial_contact)
    session = InitiatorSession(cfg, local=("198.18.1.2", port),
                               local_natt=("198.18.1.2", port + 1), rng=seeded(port))
    rig.wire.add(session)
    return session


def _profiles(**mode_config):
    profiles = copy.deepcopy(CONFIG["tunnel_profiles"])
    profiles[0]["mode_config"].update(mode_config)
    return profiles


def test_license_refusal_fails_xauth_at_once(tmp_path):
    async def main():
        rig = Rig(tmp_path, licenses={"ipsec_tunnel": 5, "subscriber": 1})
        first = _session(rig, "alice", "pw-alice", 20_000)
        assert await rig.run_until(lambda: first.established)
        second = _session(rig, "carol", "pw-carol", 21_000)
        assert await rig.run_until(lambda: second.finished)
        seen = list(second.events())
        assert [e for e in seen if isinstance(e, XauthDone)] == [XauthDone(False)]
        assert any(isinstance(e, SessionFailed) and "Xauth rejected" in e.reason for e in seen)
        assert rig.orchestrator.stats["aaa_refused"] == 0  # one attempt, no re-prompt
        assert rig.supervisor.refused["subscriber-license"] == 1
        assert rig.engine.sa_count == 1  # the refused SA went after the ACK
        assert len(rig.orchestrator.table) == 1 and len(rig.supervisor.held) == 1

    run(main())


def test_strict_pull_by_default_and_send_unrequested_per_profile(tmp_path):
    """The initiator asks for address, netmask, DNS and WINS: strict pull answers just
    that; with send_unrequested the banner and split-include come too."""
    async def login(**mode_config):
        rig = Rig(tmp_path, tunnel_profiles=_profiles(**mode_config))
        session = _session(rig, "alice", "pw-alice", 22_000)
        assert await rig.run_until(lambda: session.established)
        [config] = [e.config for e in session.events() if isinstance(e, ConfigReceived)]
        return config

    banner, split = int(ConfigAttribute.UNITY_BANNER), int(ConfigAttribute.UNITY_SPLIT_INCLUDE)
    strict = run(login())
    assert strict.address and strict.wins == ("10.50.0.137", "10.50.0.138")
    assert banner not in strict.raw and split not in strict.raw
    everything = run(login(send_unrequested=True))
    assert banner in everything.raw and split in everything.raw


def test_profile_xauth_max_attempts(tmp_path):
    async def main():
        profiles = _profiles()
        profiles[0]["xauth"] = {"max_attempts": 1}
        rig = Rig(tmp_path, tunnel_profiles=profiles)
        session = _session(rig, "alice", "wrong", 23_000)
        assert await rig.run_until(lambda: session.finished)
        assert rig.orchestrator.stats["aaa_refused"] == 1
        assert rig.orchestrator.refused["auth-failed"] == 1

    run(main())


def test_remote_delete_grace_reattach_then_logout(tmp_path):
    async def main():
        rig = Rig(tmp_path, ike={"remote_delete_grace": 0.3, "force_encap": True})
        sup = rig.supervisor
        first = _session(rig, "alice", "pw-alice", 24_000)
        assert await rig.run_until(lambda: first.established)
        (key, record), = sup.registry.items()
        address, interface = record["address"], record["interface"]
        first.close(rig.wire.now)  # Delete of everything
        assert await rig.run_until(lambda: rig.engine.sa_count == 0)
        assert key in sup.registry and not rig.link.downs  # waiting in the grace
        assert sup.registry[key]["grace"] is True
        again = _session(rig, "alice", "pw-alice", 25_000)
        assert await rig.run_until(lambda: again.established)
        [config] = [e.config for e in again.events() if isinstance(e, ConfigReceived)]
        assert config.address == address
        assert list(sup.registry) == [key] and sup.registry[key]["grace"] is False
        assert sup.registry[key]["peer"] == "198.18.1.2:25001"
        assert list(rig.interfaces.live) == [interface] and not rig.interfaces.removed
        assert rig.orchestrator.stats["reattached"] == 1
        await asyncio.sleep(0.5)  # the first grace timer was cancelled
        assert key in sup.registry and not rig.link.downs
        again.close(rig.wire.now)
        assert await rig.run_until(lambda: rig.engine.sa_count == 0)
        await asyncio.sleep(0.5)
        assert rig.link.downs == [(key, "remote-delete")]
        assert not sup.held and not rig.interfaces.live and len(rig.orchestrator.table) == 0

    run(main())


def test_another_user_does_not_reattach(tmp_path):
    async def main():
        rig = Rig(tmp_path, ike={"remote_delete_grace": 0.3, "force_encap": True})
        first = _session(rig, "alice", "pw-alice", 26_000)
        assert await rig.run_until(lambda: first.established)
        first.close(rig.wire.now)
        assert await rig.run_until(lambda: rig.engine.sa_count == 0)
        other = _session(rig, "carol", "pw-carol", 27_000)
        assert await rig.run_until(lambda: other.established)
        assert len(rig.supervisor.registry) == 2
        assert rig.orchestrator.stats["reattached"] == 0
        await asyncio.sleep(0.5)
        assert [cause for _, cause in rig.link.downs] == ["remote-delete"]

    run(main())


def test_initial_contact_drops_the_users_older_subscriber(tmp_path):
    async def main():
        rig = Rig(tmp_path)
        old = _session(rig, "alice", "pw-alice", 28_000)
        assert await rig.run_until(lambda: old.established)
        (old_key, _), = rig.supervisor.registry.items()
        # the old client restarts without a Delete: it simply never speaks again
        other = _session(rig, "carol", "pw-carol", 29_000, initial_contact=True)
        assert await rig.run_until(lambda: other.established)
        assert old_key in rig.supervisor.registry  # another user: untouched
        new = _session(rig, "alice", "pw-alice", 30_000, initial_contact=True)
        assert await rig.run_until(lambda: new.established)
        assert old_key not in rig.supervisor.registry
        assert rig.link.downs == [(old_key, "initial-contact")]
        assert sorted(r["user"] for r in rig.supervisor.registry.values()) == ["alice", "carol"]

    run(main())


def test_supervisor_ends_older_sessions_on_other_workers(tmp_path):
    """The new login's worker handles its own subscribers; the supervisor those of the
    other workers: INITIAL-CONTACT -> initial-contact, waiting in the grace ->
    remote-delete; other users, other addresses and live sessions without
    INITIAL-CONTACT stay."""
    async def main():
        rig = Rig(tmp_path, licenses={"ipsec_tunnel": 10, "subscriber": 10})
        sup = rig.supervisor
        calls = []

        async def logout(records, cause):
            calls.append((sorted(r["key"] for r in records), cause.value))
            return len(records)
        sup.logout = logout
        for key, record in {
            "1:1": {"key": "1:1", "user": "alice", "peer": "198.18.1.2:4500"},
            "1:2": {"key": "1:2", "user": "alice", "peer": "198.18.1.2:4500", "grace": True},
            "1:3": {"key": "1:3", "user": "alice", "peer": "198.18.1.3:4500"},
            "1:4": {"key": "1:4", "user": "bob", "peer": "198.18.1.2:4500"},
        }.items():
            sup.sessions.up(key, 1, record)
        request = {"user": "alice", "peer": "198.18.1.2", "vr": "vr1", "profile_vr": "vr1",
                   "profile_pool": "vr1"}
        assert sup.acquire(0, {"key": "0:9", **request, "initial_contact": False})["ok"]
        await asyncio.sleep(0)
        assert calls == [(["1:2"], "remote-delete")]
        calls.clear()
        assert sup.acquire(0, {"key": "0:10", **request, "initial_contact": True})["ok"]
        await asyncio.sleep(0)
        assert calls == [(["1:1"], "initial-contact"), (["1:2"], "remote-delete")]

    run(main())
