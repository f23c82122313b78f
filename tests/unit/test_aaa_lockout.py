"""The lockout table (responder/aaa/lockout.py): counters per user and per source,
back-off, lockout, reset on success, bounded memory, and the workers' lock copies."""
from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings, strategies as st

from responder.aaa.local import LocalBackend, LocalUser
from responder.aaa.base import REFUSAL_RULES, AuthRequest, AuthResult, NasInfo, Refusal
from responder.aaa.lockout import (SOURCE, USER, Lock, LockCopy, LockoutSettings,
                                   LockoutTable, lock_message, snapshot_message,
                                   unlock_message)

SETTINGS = LockoutSettings(max_failures=5, max_source_failures=20, window=300, duration=300,
                           backoff_base=1, backoff_max=8)


def fail(table, times, user="alice", source="198.18.1.2", start=0.0, step=1.0):
    return [table.failed(user, source, start + i * step) for i in range(times)]


def test_user_locked_at_the_fifth_failure():
    table = LockoutTable(SETTINGS)
    verdicts = fail(table, 5)
    assert [v.locked for v in verdicts] == [False] * 4 + [True]
    assert verdicts[-1].locks[0].kind == USER and verdicts[-1].locks[0].key == "alice"
    assert table.locked(USER, "alice", 4.0) == 4.0 + 300
    assert table.locked(USER, "alice", 303.9) is not None
    assert table.locked(USER, "alice", 304.0) is None
    assert table.locked(SOURCE, "198.18.1.2", 4.0) is None


def test_backoff_doubles_and_is_capped():
    table = LockoutTable(SETTINGS)
    delays = [v.delay for v in fail(table, 5)]
    assert delays == [1, 2, 4, 8, 8]
    assert SETTINGS.locked_delay == 8


def test_failures_outside_the_window_do_not_count():
    table = LockoutTable(SETTINGS)
    fail(table, 4, step=1)
    verdict = table.failed("alice", "198.18.1.2", 301.0)   # those at 0 and 1 fell out
    assert not verdict.locked and verdict.user_failures == 3


def test_success_resets_the_user_not_the_source():
    table = LockoutTable(SETTINGS)
    fail(table, 4)
    assert table.succeeded("alice")
    assert table.failed("alice", "198.18.1.2", 10).user_failures == 1
    rows = {(r["kind"], r["key"]): r for r in table.rows(10)}
    assert rows[(SOURCE, "198.18.1.2")]["failures"] == 5


def test_source_locked_across_user_names():
    table = LockoutTable(SETTINGS)
    verdicts = [table.failed(f"user{i}", "203.0.113.9", float(i)) for i in range(20)]
    assert not any(v.locked for v in verdicts[:19])
    assert [lock.kind for lock in verdicts[19].locks] == [SOURCE]
    assert table.locked(SOURCE, "203.0.113.9", 19.5) is not None
    assert all(table.locked(USER, f"user{i}", 19.5) is None for i in range(20))


def test_user_names_are_case_folded():
    table = LockoutTable(SETTINGS)
    for i, name in enumerate(["Alice", "ALICE", " alice", "alice ", "aLiCe"]):
        verdict = table.failed(name, f"10.0.0.{i}", float(i))
    assert verdict.locked and table.locked(USER, "ALICE", 5.0) is not None


def test_clear_and_disable():
    table = LockoutTable(SETTINGS)
    fail(table, 5)
    assert table.clear(USER, "Alice")
    assert table.locked(USER, "alice", 5.0) is None
    fail(table, 5, user="bob", start=10)
    table.configure(LockoutSettings(enabled=False))
    assert table.locks(20.0) == []
    assert table.failed("bob", "198.18.1.2", 21).delay == 0 and table.failures == 10


def test_memory_is_bounded_oldest_first():
    table = LockoutTable(LockoutSettings(max_entries=100))
    for i in range(1000):
        table.failed(f"user{i}", f"10.0.{i // 250}.{i % 250}", float(i) / 1000)
    rows = table.rows(1.0)
    users = [r["key"] for r in rows if r["kind"] == USER]
    assert len(users) == 100 and users[0] == "user900" and users[-1] == "user999"
    assert table.dropped == 1800


def test_expired_entries_make_room_before_live_ones_go():
    table = LockoutTable(LockoutSettings(max_entries=2, window=10, duration=10))
    table.failed("old", "10.0.0.1", 0.0)
    table.failed("live", "10.0.0.2", 5.0)
    table.failed("new", "10.0.0.3", 12.0)      # "old" expired at 10: no live entry dropped
    assert {r["key"] for r in table.rows(12.0) if r["kind"] == USER} == {"live", "new"}
    assert table.dropped == 0


def test_local_refusals_are_guesses_whatever_their_text():
    users = LocalBackend([LocalUser.from_config("alice", "pw-alice")])

    def result(name, password):
        return asyncio.run(users.authenticate(AuthRequest(name, password, NasInfo())))

    for refused in (result("alice", b"wrong"), result("mallory", b"x")):
        assert refused.refusal is Refusal.CREDENTIALS_REJECTED and refused.is_guess
        reworded = refused.with_overrides(reason="computer says no")
        assert reworded.is_guess and not reworded.is_final


def test_only_rejected_credentials_are_guesses_and_only_aaa_faults_are_final():
    assert [k for k, rule in REFUSAL_RULES.items() if rule.guess] == [
        Refusal.CREDENTIALS_REJECTED]
    assert {k for k, rule in REFUSAL_RULES.items() if rule.final} == {
        Refusal.AAA_UNAVAILABLE, Refusal.AAA_ERROR}
    assert set(REFUSAL_RULES) == set(Refusal)
    # the words of a guess under another kind do not make it one
    assert not AuthResult.refused("bad password", Refusal.AAA_ERROR).is_guess
    assert not AuthResult.refused("Access-Reject from x", Refusal.POLICY).is_guess
    assert not AuthResult(granted=True).is_guess and not AuthResult(granted=True).is_final


def test_a_refusal_has_a_kind_and_a_grant_none():
    with pytest.raises(ValueError):
        AuthResult(granted=False, reason="bad password")
    with pytest.raises(ValueError):
        AuthResult(granted=True, refusal=Refusal.POLICY)


def test_aaa_faults_of_the_worker():
    timeout = AuthResult.aaa_fault(TimeoutError(), 30.0)
    assert timeout.refusal is Refusal.AAA_UNAVAILABLE and timeout.is_final
    assert timeout.reason == "AAA timeout: no answer within 30s"
    error = AuthResult.aaa_fault(KeyError("nas"), 30.0)
    assert error.refusal is Refusal.AAA_ERROR and error.is_final and not error.is_guess
    assert error.reason == "AAA error: KeyError: 'nas'"


def test_lock_copy_follows_the_messages():
    copy = LockCopy()
    copy.apply(lock_message([_lock(USER, "alice", 130.0)], now=100.0, delay=2.0), now=50.0)
    assert copy.delay == 2.0
    assert copy.refusal("Alice", "10.0.0.1", 60.0) == "user-locked"
    assert copy.refusal("Alice", "10.0.0.1", 80.0) is None          # 30 s after arrival
    copy.apply(lock_message([_lock(SOURCE, "10.0.0.1", 10.0)], now=0.0, delay=2.0), now=0.0)
    assert copy.refusal("bob", "10.0.0.1", 1.0) == "source-locked"
    copy.apply(unlock_message([(SOURCE, "10.0.0.1")]), now=2.0)
    assert copy.refusal("bob", "10.0.0.1", 2.0) is None
    copy.apply(lock_message([_lock(USER, "bob", 10.0)], now=0.0, delay=2.0), now=0.0)
    copy.apply(unlock_message([("*", "*")]), now=1.0)
    assert len(copy) == 0
    copy.apply(lock_message([_lock(USER, "bob", 10.0)], now=0.0, delay=2.0), now=0.0)
    copy.apply(snapshot_message([_lock(USER, "carol", 10.0)], now=0.0, delay=2.0), now=0.0)
    assert copy.refusal("bob", "x", 1.0) is None and copy.refusal("carol", "x", 1.0)


def _lock(kind, key, until):
    return Lock(kind, key, until)


# -- properties ---------------------------------------------------------------------------
events = st.lists(st.tuples(st.sampled_from(["alice", "bob", "carol"]),
                            st.sampled_from(["10.0.0.1", "10.0.0.2"]),
                            st.floats(0, 50), st.booleans()), max_size=60)


@settings(max_examples=200, deadline=None)
@given(events)
def test_never_more_failures_than_a_lock_needs_and_delays_bounded(steps):
    table = LockoutTable(LockoutSettings(max_failures=3, max_source_failures=5, window=30,
                                         duration=20, backoff_base=0.5, backoff_max=3))
    now = 0.0
    for user, source, advance, success in steps:
        now += advance
        if success:
            table.succeeded(user)
            assert table.locked(USER, user, now) is None
            continue
        verdict = table.failed(user, source, now)
        assert 0 <= verdict.delay <= 3
        assert verdict.user_failures <= 3 and verdict.source_failures <= 5
        for lock in verdict.locks:
            assert lock.until == now + 20
    for row in table.rows(now):
        assert row["failures"] <= (3 if row["kind"] == USER else 5)
        assert 0 <= row["remaining"] <= 20


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1000), min_size=5, max_size=40))
def test_a_lock_needs_max_failures_within_one_window(times):
    times = sorted(times)
    table = LockoutTable(LockoutSettings(max_failures=5, window=60, duration=60))
    locked_at = [t for t in times if table.failed("alice", f"s{t}", t).locked]
    for at in locked_at:
        assert sum(1 for t in times if at - 60 < t <= at) >= 5


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 50), st.integers(0, 400))
def test_entries_never_exceed_the_cap(cap, count):
    table = LockoutTable(LockoutSettings(max_entries=cap))
    for i in range(count):
        table.failed(f"u{i}", f"s{i}", i * 0.01)
        assert all(len(c.entries) <= cap for c in table._kinds.values())


@pytest.mark.parametrize("failures,delay", [(0, 0), (1, 1), (2, 2), (3, 4), (4, 8), (99, 8)])
def test_backoff_table(failures, delay):
    assert SETTINGS.backoff(failures) == delay
