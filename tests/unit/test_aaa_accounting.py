"""Accounting records (sans-I/O) and the Accountant queue with a fake sender."""
import ast
import asyncio
import ipaddress
from pathlib import Path

from responder.aaa.journal import AccountingJournal, DeadLetters, next_boot_id
from responder.aaa.accounting import (TERMINATE_CAUSE, Accountant, AccountingSession, Counters,
                                      StatusType, TerminateCause, encode_counters)
from responder.subscriber import SubscriberEvent

A = ipaddress.IPv4Address


def session(**kw):
    fields = dict(session_id="S1", username="alice", framed_ip=A("10.99.1.5"), started_at=100.0,
                  class_=b"cls", nas_attributes={"NAS-Port": 4})
    return AccountingSession(**{**fields, **kw})


def test_start_interim_stop_attributes():
    s = session(interim_interval=60)
    start = s.start(100.0)
    assert start.status is StatusType.START
    assert start.attributes == {"Acct-Status-Type": 1, "Acct-Session-Id": "S1", "User-Name": "alice",
                                "Acct-Authentic": 1, "NAS-Port": 4,
                                "Framed-IP-Address": "10.99.1.5", "Class": b"cls"}
    assert not s.due(159.9) and s.due(160.0)
    interim = s.interim(161.0, Counters(10, 20, 1, 2))
    assert interim.attributes["Acct-Session-Time"] == 61
    assert interim.attributes["Acct-Input-Octets"] == 10 and interim.attributes["Acct-Output-Packets"] == 2
    assert s.next_interim_at == 220.0                       # not shifted by the late tick
    stop = s.stop(400.0, Counters(5 * 2**32 + 7, 3, 9, 9), SubscriberEvent.DPD_TIMEOUT)
    assert stop.attributes["Acct-Terminate-Cause"] == TerminateCause.LOST_CARRIER == 2
    assert stop.attributes["Acct-Input-Octets"] == 7 and stop.attributes["Acct-Input-Gigawords"] == 5
    assert stop.attributes["Acct-Session-Time"] == 300 and not s.due(1e9)


def test_interim_skips_missed_intervals_instead_of_bursting():
    s = session(interim_interval=10)
    s.interim(1000.0, Counters())
    assert s.next_interim_at == 1010.0


def test_terminate_causes_of_the_spec():
    assert TERMINATE_CAUSE[SubscriberEvent.REMOTE_DELETE] == 1
    assert TERMINATE_CAUSE[SubscriberEvent.DPD_TIMEOUT] == 2
    assert TERMINATE_CAUSE[SubscriberEvent.IDLE_TIMEOUT] == 4
    assert TERMINATE_CAUSE[SubscriberEvent.SESSION_TIMEOUT] == 5
    assert TERMINATE_CAUSE[SubscriberEvent.ADMIN_LOGOUT] == 6
    assert TERMINATE_CAUSE[SubscriberEvent.RADIUS_DISCONNECT] == 6     # RFC 5176 §3.6
    assert TERMINATE_CAUSE[SubscriberEvent.WORKER_LOST] == 8


def test_internal_error_stops_with_nas_error_never_admin_reset():
    stop = session().stop(160.0, Counters(), SubscriberEvent.INTERNAL_ERROR)
    assert stop.attributes["Acct-Terminate-Cause"] == TerminateCause.NAS_ERROR == 9


def test_counters_encoding_wraps_at_32_bits():
    enc = encode_counters(Counters(2**32, 2**33 + 1, 2**32 + 3, 4))
    assert (enc["Acct-Input-Octets"], enc["Acct-Input-Gigawords"]) == (0, 1)
    assert (enc["Acct-Output-Octets"], enc["Acct-Output-Gigawords"]) == (1, 2)
    assert enc["Acct-Input-Packets"] == 3


class FlakySender:
    def __init__(self, failures=0):
        self.failures, self.sent = failures, []

    async def send_accounting(self, attributes, created_at, group=None):
        if self.failures:
            self.failures -= 1
            raise TimeoutError("timeout: no RADIUS server answered")
        self.sent.append(attributes)


def test_accountant_retries_stop_until_delivered_in_order():
    async def main():
        sender = FlakySender(failures=3)
        acct = Accountant(sender, retry_backoff=0.01, clock=lambda: 500.0)
        task = asyncio.create_task(acct.run())
        acct.start_session(session(), counters=lambda: Counters(1, 2, 3, 4))
        acct.stop_session("S1", SubscriberEvent.RADIUS_DISCONNECT, now=130.0)
        assert await acct.drain(5)
        task.cancel()
        return sender, acct
    sender, acct = asyncio.run(main())
    assert [a["Acct-Status-Type"] for a in sender.sent] == [1, 2]
    assert sender.sent[1]["Acct-Terminate-Cause"] == 6 and sender.sent[1]["Acct-Output-Octets"] == 2
    assert acct.stats.failed_attempts == 3 and acct.stats.sent == 2 and acct.pending() == 0


def test_accountant_tick_queues_due_interims_once():
    now = [100.0]
    acct = Accountant(FlakySender(), clock=lambda: now[0])
    acct.start_session(session(interim_interval=30))
    assert acct.next_deadline() == 130.0
    assert acct.tick(129.0) == 0
    assert acct.tick(130.0) == 1
    assert acct.tick(200.0) == 0      # the previous Interim is still queued: coalesced
    assert acct.pending() == 2


def test_full_queue_evicts_interims_then_drops_loudly(caplog):
    acct = Accountant(FlakySender(), max_queue=2, clock=lambda: 0.0)
    acct.start_session(session(interim_interval=1))
    assert acct.tick(101.0) == 1                        # queue: Start, Interim
    acct.stop_session("S1", SubscriberEvent.ADMIN_LOGOUT, 102.0)  # evicts the Interim
    assert acct.stats.dropped_interim == 1 and acct.pending() == 2
    other = AccountingSession("S2", "bob", None, 0.0)
    acct.start_session(other)                           # nothing to evict: dropped, counted
    assert acct.stats.dropped_start == 1
    assert "DROPPED START of session S2" in caplog.text


def _imported_modules(path):
    tree = ast.parse(Path(path).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_subscriber_lifecycle_does_not_import_accounting():
    """One direction only: accounting imports the lifecycle's teardown-cause table."""
    import responder.subscriber as lifecycle
    assert not any(name.startswith("responder.aaa") for name in _imported_modules(lifecycle.__file__))
    assert "responder.subscriber" in _imported_modules(
        __import__("responder.aaa.accounting").aaa.accounting.__file__)


# -- journal, dead letters, Accounting-On/Off ------------------------------------------------


class RecordingSender:
    """Acknowledges every record except those of ``refused`` sessions."""

    def __init__(self, refused=()):
        self.refused, self.sent, self.tries = set(refused), [], []

    async def send_accounting(self, attributes, created_at, group=None):
        self.tries.append(attributes["Acct-Session-Id"])
        if attributes["Acct-Session-Id"] in self.refused:
            raise TimeoutError("timeout: no RADIUS server answered")
        self.sent.append(dict(attributes))


async def _run_until_drained(acct, timeout=5):
    task = asyncio.create_task(acct.run())
    try:
        return await acct.drain(timeout)
    finally:
        task.cancel()


def test_journal_replays_undelivered_records_once_after_a_crash(tmp_path):
    path = tmp_path / "accounting.journal"

    async def crashed_run():
        acct = Accountant(RecordingSender(refused={"S1"}), retry_backoff=0.01,
                          journal=AccountingJournal(path))
        task = asyncio.create_task(acct.run())
        acct.start_session(session(), counters=lambda: Counters(1, 2, 3, 4))
        acct.stop_session("S1", SubscriberEvent.WORKER_LOST, now=130.0)
        await asyncio.sleep(0.05)
        task.cancel()              # no drain, no close: as a SIGKILL leaves it

    async def next_run():
        sender = RecordingSender()
        acct = Accountant(sender, journal=AccountingJournal(path))
        assert acct.stats.replayed == 2
        assert await _run_until_drained(acct)
        return sender

    asyncio.run(crashed_run())
    sender = asyncio.run(next_run())
    assert [(a["Acct-Session-Id"], a["Acct-Status-Type"]) for a in sender.sent] == [("S1", 1), ("S1", 2)]
    assert sender.sent[1]["Acct-Terminate-Cause"] == TerminateCause.PORT_ERROR
    assert sender.sent[0]["Class"] == b"cls"          # bytes survive the JSON journal
    assert path.read_text() == ""                     # compacted once everything was delivered
    assert AccountingJournal(path).pending() == []    # a third run replays nothing


def test_record_leaves_journal_only_after_its_response(tmp_path):
    journal = AccountingJournal(tmp_path / "j")

    class SlowSender:
        def __init__(self):
            self.release = asyncio.Event()
            self.in_flight = asyncio.Event()

        async def send_accounting(self, attributes, created_at, group=None):
            self.in_flight.set()
            await self.release.wait()

    async def main():
        sender = SlowSender()
        acct = Accountant(sender, journal=journal)
        task = asyncio.create_task(acct.run())
        acct.start_session(session())
        await sender.in_flight.wait()
        in_flight = len(AccountingJournal(journal.path).pending())
        sender.release.set()
        assert await acct.drain(5)
        task.cancel()
        return in_flight
    assert asyncio.run(main()) == 1
    assert AccountingJournal(journal.path).pending() == []


def test_replayed_record_keeps_its_age_for_acct_delay_time(tmp_path):
    path = tmp_path / "j"
    wall = [1000.0]
    first = Accountant(RecordingSender(), clock=lambda: 50.0, wall_clock=lambda: wall[0],
                       journal=AccountingJournal(path))
    first.start_session(session())               # created at monotonic 100 = 50 s in the future
    wall[0] = 1300.0
    second = Accountant(RecordingSender(), clock=lambda: 7.0, wall_clock=lambda: wall[0],
                        journal=AccountingJournal(path))
    (record,) = list(second._queue)
    assert record.created_at == 7.0 - 300.0      # made 300 s (wall) ago


def test_poison_record_is_dead_lettered_and_the_queue_goes_on(tmp_path, caplog):
    dead = DeadLetters(tmp_path / "dead")
    journal = AccountingJournal(tmp_path / "j")
    sender = RecordingSender(refused={"POISON"})
    acct = Accountant(sender, retry_backoff=0.01, journal=journal, dead_letters=dead,
                      max_attempts=3)
    acct.start_session(session(session_id="POISON"))
    acct.start_session(session(session_id="GOOD1"))
    acct.start_session(session(session_id="GOOD2"))
    assert asyncio.run(_run_until_drained(acct))
    assert sender.tries.count("POISON") == 3
    assert [a["Acct-Session-Id"] for a in sender.sent] == ["GOOD1", "GOOD2"]
    (letter,) = dead.read()
    assert letter["session_id"] == "POISON" and letter["attempts"] == 3
    assert letter["attributes"]["User-Name"] == "alice"
    assert acct.stats.dead_lettered == 1 and journal.pending() == []
    assert "START of session POISON dead-lettered" in caplog.text


def test_record_older_than_max_age_is_dead_lettered(tmp_path):
    now = [0.0]

    class AgingSender(RecordingSender):
        async def send_accounting(self, attributes, created_at, group=None):
            now[0] += 40.0
            await super().send_accounting(attributes, created_at, group)

    sender = AgingSender(refused={"OLD"})
    acct = Accountant(sender, retry_backoff=0.001, clock=lambda: now[0], max_age=100.0,
                      dead_letters=DeadLetters(tmp_path / "dead"))
    acct.enqueue(AccountingSession("OLD", "u", None, 0.0).start(0.0))
    acct.enqueue(AccountingSession("NEW", "u", None, 0.0).start(0.0))
    assert asyncio.run(_run_until_drained(acct))
    assert sender.tries.count("OLD") == 3 and [a["Acct-Session-Id"] for a in sender.sent] == ["NEW"]


def test_accounting_on_and_off_records():
    acct = Accountant(RecordingSender(), clock=lambda: 5.0)
    acct.nas_status(StatusType.ACCOUNTING_ON, "0000002A", {"NAS-Identifier": "dynipsec"})
    acct.nas_status(StatusType.ACCOUNTING_OFF, "0000002A", {"NAS-Identifier": "dynipsec"})
    on, off = list(acct._queue)
    assert on.attributes == {"Acct-Status-Type": 7, "Acct-Session-Id": "0000002A",
                             "NAS-Identifier": "dynipsec"}
    assert off.attributes["Acct-Status-Type"] == 8


def test_boot_id_counts_up_from_a_random_start(tmp_path):
    ids = [int(next_boot_id(tmp_path), 16) for _ in range(3)]
    assert ids[1:] == [(ids[0] + 1) & 0xFFFFFFFF, (ids[0] + 2) & 0xFFFFFFFF]
    (tmp_path / "boot-count").write_text("41\n")
    assert next_boot_id(tmp_path) == "0000002A"


def test_fresh_state_directories_do_not_share_boot_ids(tmp_path):
    """Two daemons (or one before and after a tmpfs state directory is wiped) reporting
    to one RADIUS server: their Acct-Session-Ids must not collide."""
    firsts = {next_boot_id(tmp_path / str(n)) for n in range(20)}
    assert len(firsts) == 20
    (tmp_path / "0" / "boot-count").write_text("garbage")
    assert next_boot_id(tmp_path / "0") not in firsts


def test_journal_ignores_a_line_cut_short_by_a_crash(tmp_path):
    path = tmp_path / "j"
    journal = AccountingJournal(path, compact_after=10)
    first = journal.add({"n": 1})
    journal.add({"n": 2})
    journal.done(first)
    journal.close()
    with open(path, "a") as handle:
        handle.write('{"op":"add","id":9,"entr')
    assert [e for _, e in AccountingJournal(path).pending()] == [{"n": 2}]


def test_failures_that_sent_nothing_are_not_attempts(tmp_path):
    class NotSent(Exception):
        pass

    class DeadThenUp(RecordingSender):
        def __init__(self):
            super().__init__()
            self.unsent = 5

        async def send_accounting(self, attributes, created_at, group=None):
            if self.unsent:
                self.unsent -= 1
                raise NotSent("every server marked dead")
            await super().send_accounting(attributes, created_at, group)

    sender = DeadThenUp()
    acct = Accountant(sender, retry_backoff=0.001, max_attempts=2, unsent_errors=(NotSent,),
                      dead_letters=DeadLetters(tmp_path / "dead"))
    acct.start_session(session())
    assert asyncio.run(_run_until_drained(acct))
    assert [a["Acct-Session-Id"] for a in sender.sent] == ["S1"] and acct.stats.dead_lettered == 0


def test_a_burst_of_records_is_synced_once_and_before_it_is_sent(tmp_path, monkeypatch):
    """Group commit: the records queued in one turn of the event loop share one fsync,
    and that fsync happens before the first of them is handed to the sender."""
    import os as _os
    events = []
    real_fsync = _os.fsync
    monkeypatch.setattr("responder.aaa.journal.os.fsync",
                        lambda fd: (events.append("fsync"), real_fsync(fd))[1])

    class OrderedSender:
        async def send_accounting(self, attributes, created_at, group=None):
            events.append("send")

    async def main():
        acct = Accountant(OrderedSender(), journal=AccountingJournal(tmp_path / "j"))
        events.clear()                               # compaction at open is not the burst
        task = asyncio.create_task(acct.run())
        for n in range(50):
            acct.start_session(session(session_id=f"S{n}"))
        assert await acct.drain(5)
        task.cancel()
    asyncio.run(main())
    assert events.count("send") == 50
    assert events[0] == "fsync"
    assert events.count("fsync") <= 3, events[:10]
