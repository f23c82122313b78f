"""Subscriber lifecycle: the transition table, the resource ledger, timers, the table."""
import ipaddress
import random
from pathlib import Path

import pytest

from responder.licenses import LicenseManager
from responder.pools import PoolManager
from responder.subscriber import (LIVE_STATES, TEARDOWN_EVENTS, TRANSITIONS, LifecycleError,
                                  Peer, ResourceKind, State, Subscriber, SubscriberEvent,
                                  SubscriberGoneError, SubscriberTable, TableFullError,
                                  state_table_markdown)

A = ipaddress.IPv4Address
PEER = Peer(A("198.18.1.1"), 4500)

#: the happy path, as the Xauth/Mode-Config/Quick Mode code drives it
LOGIN = [SubscriberEvent.XAUTH_STARTED, SubscriberEvent.AUTH_GRANTED,
         SubscriberEvent.INTERFACE_CREATED, SubscriberEvent.CONFIG_SENT, SubscriberEvent.PHASE2_UP]


def new_sub(table=None, profile="p"):
    table = table or SubscriberTable(session_prefix="T")
    return table.create(PEER, profile, now=0.0)


def drive_to(sub, state):
    path = {State.INSTANTIATED: 0, State.AUTHENTICATING: 1, State.AUTHORIZED: 2,
            State.INTERFACE_UP: 3, State.CONFIGURED: 4, State.ACTIVE: 5}[state]
    for event in LOGIN[:path]:
        if event is SubscriberEvent.AUTH_GRANTED:
            sub.authorize(now=0.0)
        else:
            sub.handle(event)
    assert sub.state is state


def test_happy_path():
    sub = new_sub()
    drive_to(sub, State.ACTIVE)
    sub.handle(SubscriberEvent.PHASE2_UP)      # rekey
    assert sub.state is State.ACTIVE


@pytest.mark.parametrize("state", sorted(LIVE_STATES, key=lambda s: s.value))
@pytest.mark.parametrize("event", list(SubscriberEvent), ids=lambda e: e.value)
def test_every_event_in_every_live_state(state, event):
    """Either the table's transition happens, or LifecycleError names state and event."""
    sub = new_sub()
    drive_to(sub, state)
    expected = TRANSITIONS.get((state, event))
    if expected is None:
        with pytest.raises(LifecycleError) as err:
            sub.handle(event)
        assert state.value in str(err.value) and event.value in str(err.value)
        assert err.value.state is state and err.value.event is event
        assert sub.state is state
    elif event in TEARDOWN_EVENTS:
        sub.teardown(event)
        assert sub.state is State.GONE and sub.teardown_event is event
    else:
        assert sub.handle(event) is expected


@pytest.mark.parametrize("event", list(SubscriberEvent), ids=lambda e: e.value)
def test_every_event_after_teardown(event):
    sub = new_sub()
    drive_to(sub, State.ACTIVE)
    sub.teardown(SubscriberEvent.ADMIN_LOGOUT)
    if event in TEARDOWN_EVENTS:
        assert sub.teardown(event) == []          # harmless, nothing released again
        assert sub.state is State.GONE and sub.teardown_event is SubscriberEvent.ADMIN_LOGOUT
    else:
        with pytest.raises(LifecycleError):
            sub.handle(event)


def test_every_teardown_event_has_a_terminate_cause():
    from responder.aaa.accounting import TERMINATE_CAUSE
    assert set(TERMINATE_CAUSE) == set(TEARDOWN_EVENTS)


def test_teardown_releases_in_reverse_order_once():
    sub = new_sub()
    order = []
    for kind in (ResourceKind.LICENSES, ResourceKind.ADDRESS, ResourceKind.INTERFACE,
                 ResourceKind.ROUTE, ResourceKind.ACCOUNTING):
        sub.ledger.take(kind, kind.value, lambda k=kind: order.append(k))
    drive_to(sub, State.AUTHENTICATING)
    assert sub.teardown(SubscriberEvent.DPD_TIMEOUT) == []
    assert order == [ResourceKind.ACCOUNTING, ResourceKind.ROUTE, ResourceKind.INTERFACE,
                     ResourceKind.ADDRESS, ResourceKind.LICENSES]
    sub.teardown(SubscriberEvent.DPD_TIMEOUT)
    assert len(order) == 5


def test_a_failing_release_does_not_stop_the_others(caplog):
    sub = new_sub()
    released = []
    sub.ledger.take(ResourceKind.LICENSES, "lic", lambda: released.append("lic"))
    sub.ledger.take(ResourceKind.INTERFACE, "tun", lambda: 1 / 0)
    sub.ledger.take(ResourceKind.ROUTE, "route", lambda: released.append("route"))
    failures = sub.teardown(SubscriberEvent.ADMIN_LOGOUT)
    assert released == ["route", "lic"]
    assert [f.resource.kind for f in failures] == [ResourceKind.INTERFACE]
    assert "releasing interface tun failed" in caplog.text
    assert sub.teardown(SubscriberEvent.ADMIN_LOGOUT) == []   # not retried


def test_resource_taken_after_teardown_is_released_at_once():
    sub = new_sub()
    sub.teardown(SubscriberEvent.REMOTE_DELETE)
    released = []
    with pytest.raises(SubscriberGoneError):
        sub.ledger.take(ResourceKind.ADDRESS, "10.0.0.1", lambda: released.append(1))
    assert released == [1]


def test_early_release_of_one_child_sa():
    sub = new_sub()
    released = []
    sa = sub.ledger.take(ResourceKind.CHILD_SA, "spi 1", lambda: released.append("sa1"))
    sub.ledger.take(ResourceKind.CHILD_SA, "spi 2", lambda: released.append("sa2"))
    sub.ledger.release_one(sa)
    sub.ledger.release_one(sa)
    sub.teardown(SubscriberEvent.REMOTE_DELETE)
    assert released == ["sa1", "sa2"]


def _login_with_resources(sub, table, pools, licenses, events_log):
    """What the daemon does, with real pools and licenses."""
    sub.handle(SubscriberEvent.XAUTH_STARTED)
    licenses.acquire_both(sub.id)
    sub.ledger.take(ResourceKind.LICENSES, "both", lambda: licenses.release_both(sub.id))
    sub.authorize(now=0.0, session_timeout=100)
    lease = pools.allocate("vr1", "p", owner=sub.id)
    sub.ledger.take(ResourceKind.ADDRESS, str(lease.address), lambda: pools.release(lease))
    table.bind_address(sub, "vr1", lease.address)
    sub.ledger.take(ResourceKind.INTERFACE, "tun", lambda: events_log.append(("tun-", sub.id)))
    sub.handle(SubscriberEvent.INTERFACE_CREATED)


def test_property_random_event_orders_release_everything_once():
    """Random logins interleaved with random events (legal or not), fixed seed: at the
    end licenses, pools and the table are back to empty and every release ran once."""
    rng = random.Random(20240601)
    table = SubscriberTable(session_prefix="P")
    pools = PoolManager()
    pools.add_pool("vr1", "p", ["10.99.1.1-10.99.1.40"])
    licenses = LicenseManager(30, 30)
    events_log = []
    all_events = list(SubscriberEvent)
    subs = []
    for step in range(3000):
        if rng.random() < 0.2 and len(table) < 25:
            sub = table.create(PEER, "p", now=float(step))
            subs.append(sub)
            if rng.random() < 0.8:
                _login_with_resources(sub, table, pools, licenses, events_log)
            continue
        if not subs:
            continue
        sub = rng.choice(subs)
        event = rng.choice(all_events)
        if event is SubscriberEvent.AUTH_GRANTED:
            continue  # needs resources: exercised by _login_with_resources
        try:
            if event in TEARDOWN_EVENTS:
                sub.teardown(event)
            else:
                sub.handle(event)
        except LifecycleError as err:
            assert (err.state, err.event) not in TRANSITIONS
    for sub in subs:
        sub.teardown(SubscriberEvent.NAS_SHUTDOWN)
    assert len(table) == 0
    assert [s.in_use for s in licenses.stats()] == [0, 0]
    assert pools.stats()[0].used == 0
    tun_releases = [sid for what, sid in events_log if what == "tun-"]
    assert len(tun_releases) == len(set(tun_releases))


def test_timers_session_and_idle():
    sub = new_sub()
    assert sub.next_deadline() is None
    drive_to(sub, State.AUTHENTICATING)
    sub.authorize(now=100.0, session_timeout=60, idle_timeout=20)
    assert sub.next_deadline() == 120.0
    sub.note_activity(115.0)
    assert sub.next_deadline() == 135.0
    assert sub.check_timers(134.9) == []
    assert sub.check_timers(135.0) == [SubscriberEvent.IDLE_TIMEOUT]
    sub.note_activity(150.0)
    assert sub.check_timers(160.0) == [SubscriberEvent.SESSION_TIMEOUT]
    assert sub.check_timers(200.0) == [SubscriberEvent.SESSION_TIMEOUT,
                                       SubscriberEvent.IDLE_TIMEOUT]
    sub.change_session_timeout(300)            # CoA, from the start of the session
    assert sub.check_timers(160.0) == []
    assert sub.next_deadline() == 170.0         # idle again
    sub.change_idle_timeout(0)                  # 0 = no limit
    assert sub.next_deadline() == 400.0
    sub.teardown(SubscriberEvent.SESSION_TIMEOUT)
    assert sub.next_deadline() is None and sub.check_timers(1e9) == []


def test_table_indexes_and_limits():
    table = SubscriberTable(capacity=3, profile_limits={"small": 1}, session_prefix="AB")
    a = table.create(PEER, "small", now=0)
    with pytest.raises(TableFullError, match="max-interfaces"):
        table.create(PEER, "small", now=0)
    b = table.create(Peer(A("198.18.1.2")), "big", now=0)
    c = table.create(PEER, "big", now=0)
    with pytest.raises(TableFullError, match="full"):
        table.create(PEER, "big", now=0)
    assert a.acct_session_id == "AB00000001"
    table.set_username(a, "alice")
    table.set_username(b, "bob")
    table.bind_address(a, "vr1", A("10.0.0.1"))
    table.bind_address(b, "vr2", A("10.0.0.1"))
    assert table.by_address("vr1", "10.0.0.1") is a
    assert table.by_address("vr2", "10.0.0.1") is b
    assert table.by_user("alice") == [a]
    assert table.by_peer("198.18.1.1") == [a, c]
    assert table.by_session_id("AB00000002") is b
    assert table.select(address="10.0.0.1") == [a, b]
    assert table.select(address="10.0.0.1", vr="vr2") == [b]
    assert table.select(user="alice", address="10.0.0.9") == []
    assert table.refused == {"max-interfaces": 1, "capacity": 1}
    a.teardown(SubscriberEvent.ADMIN_LOGOUT)
    assert table.get(a.id) is None and table.by_user("alice") == []
    assert table.by_address("vr1", "10.0.0.1") is None
    assert table.count("small") == 0
    table.create(PEER, "small", now=1)            # the slot is free again


def test_table_expire():
    table = SubscriberTable()
    sub = table.create(PEER, "p", now=0)
    drive_to(sub, State.AUTHENTICATING)
    sub.authorize(now=10.0, session_timeout=5)
    assert table.next_deadline() == 15.0
    assert table.expire(14.0) == []
    assert table.expire(15.0) == [(sub, SubscriberEvent.SESSION_TIMEOUT)]
    assert sub.state is State.GONE and len(table) == 0


def test_docs_state_table_is_current():
    doc = Path(__file__).resolve().parents[2] / "docs" / "subscribers.md"
    assert state_table_markdown() in doc.read_text(), \
        "docs/subscribers.md is stale: paste the output of python -m responder.subscriber"
