"""Accounting records (sans-I/O) and the Accountant queue with a fake sender."""
import ast
import asyncio
import ipaddress
from pathlib import Path

from responder.aaa.accounting import (TERMINATE_CAUSE, Accountant, AccountingSession, Counters,
                                      StatusType, TerminateCause, encode_counters)
from responder.subscriber import SubscriberEvent

A = ipaddress.IPv4Address


def session(**kw):
    return AccountingSession(session_id="S1", username="alice", framed_ip=A("10.99.1.5"),
                             started_at=100.0, class_=b"cls",
                             nas_attributes={"NAS-Port": 4}, **kw)


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
