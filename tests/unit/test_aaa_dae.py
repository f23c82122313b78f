"""RFC 5176 processor (sans-I/O) with requests built by pyrad, against a real
SubscriberTable: ACK/NAK rules, Event-Timestamp replay protection and the replay cache."""
import ipaddress

import pytest
from pyrad import packet as rp

from responder.aaa.dae import DaeClient, DaeProcessor, SubscriberDirectory
from responder.aaa.radius import load_dictionary
from responder.subscriber import Peer, ResourceKind, State, SubscriberEvent, SubscriberTable

A = ipaddress.IPv4Address
DICT = load_dictionary()
SECRET = b"coasecret"
CLIENT = ("127.0.0.1", 40000)
NOW = 1_700_000_000.0


def log_in(table, user="alice", address="10.99.1.5"):
    sub = table.create(Peer(A("198.18.1.9")), "p", now=0)
    sub.handle(SubscriberEvent.XAUTH_STARTED)
    sub.authorize(now=0.0, session_timeout=100)
    table.set_username(sub, user)
    table.bind_address(sub, "vr1", A(address))
    return sub


@pytest.fixture
def setup():
    table = SubscriberTable(session_prefix="D")
    sub = log_in(table)
    released = []
    sub.ledger.take(ResourceKind.ADDRESS, "10.99.1.5", lambda: released.append("address"))
    proc = DaeProcessor([DaeClient("127.0.0.1", SECRET)], SubscriberDirectory(table),
                        nas_identifier="dynipsec")
    return table, sub, proc, released


def request(code, secret=SECRET, stamp=NOW, **attrs):
    """A signed request; Event-Timestamp ``stamp`` unless it is None."""
    pkt = rp.CoAPacket(code=code, secret=secret, dict=DICT)
    if stamp is not None:
        pkt["Event-Timestamp"] = int(stamp)
    for name, value in attrs.items():
        pkt[name.replace("_", "-")] = value
    return pkt.RequestPacket()


def decode(reply, raw_request):
    req = rp.CoAPacket(packet=raw_request, secret=SECRET, dict=DICT)
    rep = req.CreateReply(packet=reply)
    assert req.VerifyReply(rep, reply)
    return rep


def test_disconnect_by_session_id_tears_down_and_acks(setup):
    table, sub, proc, released = setup
    raw = request(rp.DisconnectRequest, Acct_Session_Id=sub.acct_session_id, User_Name="alice")
    reply = decode(proc.handle(raw, CLIENT, NOW), raw)
    assert reply.code == rp.DisconnectACK
    assert sub.state is State.GONE and sub.teardown_event is SubscriberEvent.RADIUS_DISCONNECT
    assert released == ["address"] and len(table) == 0
    # a retransmission gets the same ACK, not a 503
    assert decode(proc.handle(raw, CLIENT, NOW), raw).code == rp.DisconnectACK
    assert proc.stats["replays_answered_from_cache"] == 1


def test_disconnect_by_framed_ip(setup):
    _, sub, proc, _ = setup
    raw = request(rp.DisconnectRequest, Framed_IP_Address="10.99.1.5")
    assert decode(proc.handle(raw, CLIENT, NOW), raw).code == rp.DisconnectACK
    assert not sub.live


def test_unknown_session_is_nak_503(setup):
    _, sub, proc, _ = setup
    raw = request(rp.DisconnectRequest, User_Name="alice", Framed_IP_Address="10.99.1.6")
    reply = decode(proc.handle(raw, CLIENT, NOW), raw)
    assert reply.code == rp.DisconnectNAK and reply["Error-Cause"] == ["Session-Context-Not-Found"]
    assert sub.live


def test_coa_session_timeout(setup):
    _, sub, proc, _ = setup
    raw = request(rp.CoARequest, User_Name="alice", Session_Timeout=3600)
    assert decode(proc.handle(raw, CLIENT, NOW), raw).code == rp.CoAACK
    assert sub.session_timeout == 3600 and sub.live


@pytest.mark.parametrize("code,attrs,cause", [
    (rp.DisconnectRequest, {"User_Name": "alice", "Session_Timeout": 5}, "Unsupported-Attribute"),
    (rp.CoARequest, {"User_Name": "alice", "Filter_Id": "x"}, "Unsupported-Attribute"),
    (rp.CoARequest, {"Session_Timeout": 5}, "Missing-Attribute"),
    (rp.CoARequest, {"User_Name": "alice"}, "Missing-Attribute"),
    (rp.CoARequest, {"User_Name": "alice", "Session_Timeout": 5, "Service_Type": "Authorize-Only"},
     "Unsupported-Service"),
    (rp.DisconnectRequest, {"User_Name": "alice", "NAS_Identifier": "other"},
     "NAS-Identification-Mismatch"),
])
def test_naks(setup, code, attrs, cause):
    _, sub, proc, _ = setup
    raw = request(code, **attrs)
    reply = decode(proc.handle(raw, CLIENT, NOW), raw)
    assert reply.code in (rp.DisconnectNAK, rp.CoANAK) and reply["Error-Cause"] == [cause]
    assert sub.live and sub.session_timeout == 100


def test_unknown_client_bad_secret_and_malformed_are_dropped(setup):
    _, sub, proc, _ = setup
    raw = request(rp.DisconnectRequest, User_Name="alice")
    assert proc.handle(raw, ("127.0.0.2", 1), NOW) is None
    assert proc.handle(request(rp.DisconnectRequest, secret=b"wrong", User_Name="alice"),
                       CLIENT, NOW) is None
    assert proc.handle(b"\x28\x01\x00", CLIENT, NOW) is None
    assert sub.live
    assert proc.stats["dropped_unknown_client"] == 1 and proc.stats["dropped_bad_authenticator"] == 1
    assert proc.stats["dropped_malformed"] == 1


@pytest.mark.parametrize("code,attrs", [
    (rp.DisconnectRequest, {"User_Name": "alice"}),
    (rp.CoARequest, {"User_Name": "alice", "Session_Timeout": 5}),
])
def test_request_without_event_timestamp_is_nak_invalid_request(setup, code, attrs):
    _, sub, proc, _ = setup
    raw = request(code, stamp=None, **attrs)
    reply = decode(proc.handle(raw, CLIENT, NOW), raw)
    assert reply.code in (rp.DisconnectNAK, rp.CoANAK)
    assert reply["Error-Cause"] == ["Invalid-Request"]
    assert sub.live and sub.session_timeout == 100
    assert proc.stats["refused_no_event_timestamp"] == 1


@pytest.mark.parametrize("offset", [-301, 301, -1000])
def test_event_timestamp_outside_the_window_is_nak_invalid_request(setup, offset):
    _, sub, proc, _ = setup
    raw = request(rp.DisconnectRequest, stamp=NOW + offset, User_Name="alice")
    reply = decode(proc.handle(raw, CLIENT, NOW), raw)
    assert reply.code == rp.DisconnectNAK and reply["Error-Cause"] == ["Invalid-Request"]
    assert sub.live and proc.stats["refused_stale_timestamp"] == 1


def test_event_timestamp_at_the_edge_of_the_window_is_accepted(setup):
    _, sub, proc, _ = setup
    raw = request(rp.DisconnectRequest, stamp=NOW - 300, User_Name="alice")
    assert decode(proc.handle(raw, CLIENT, NOW), raw).code == rp.DisconnectACK
    assert not sub.live


def test_replay_from_another_port_is_answered_from_cache_never_acted_on_twice(setup):
    """A captured Disconnect sent again from another source port, after the user came
    back: the new session stays, the replay gets the first answer."""
    table, sub, proc, _ = setup
    raw = request(rp.DisconnectRequest, User_Name="alice")
    assert decode(proc.handle(raw, CLIENT, NOW), raw).code == rp.DisconnectACK
    assert not sub.live
    again = log_in(table)
    reply = decode(proc.handle(raw, ("127.0.0.1", 40001), NOW + 10), raw)
    assert reply.code == rp.DisconnectACK
    assert again.live and proc.stats["replays_answered_from_cache"] == 1
    assert proc.stats["disconnect_ack"] == 1


def test_old_request_replayed_after_the_window_is_refused(setup):
    table, sub, proc, _ = setup
    raw = request(rp.DisconnectRequest, User_Name="alice")
    assert decode(proc.handle(raw, CLIENT, NOW), raw).code == rp.DisconnectACK
    again = log_in(table)
    for source in (CLIENT, ("127.0.0.1", 40001)):
        reply = decode(proc.handle(raw, source, NOW + 1000), raw)
        assert reply.code == rp.DisconnectNAK and reply["Error-Cause"] == ["Invalid-Request"]
    assert again.live and proc.stats["disconnect_ack"] == 1


def test_without_required_timestamp_a_replay_in_the_window_is_not_acted_on(setup):
    table, sub, _, _ = setup
    proc = DaeProcessor([DaeClient("127.0.0.1", SECRET)], SubscriberDirectory(table),
                        require_event_timestamp=False)
    raw = request(rp.DisconnectRequest, stamp=None, User_Name="alice")
    assert decode(proc.handle(raw, CLIENT, NOW), raw).code == rp.DisconnectACK
    again = log_in(table)
    assert decode(proc.handle(raw, ("127.0.0.1", 40001), NOW + 60), raw).code == rp.DisconnectACK
    assert again.live and proc.stats["disconnect_ack"] == 1


def test_full_replay_cache_refuses_new_requests_until_entries_expire(setup):
    table, sub, _, _ = setup
    proc = DaeProcessor([DaeClient("127.0.0.1", SECRET)], SubscriberDirectory(table),
                        cache_size=1)
    first = request(rp.CoARequest, User_Name="alice", Session_Timeout=50)
    assert decode(proc.handle(first, CLIENT, NOW), first).code == rp.CoAACK
    second = request(rp.CoARequest, User_Name="alice", Session_Timeout=60)
    reply = decode(proc.handle(second, CLIENT, NOW), second)
    assert reply.code == rp.CoANAK and reply["Error-Cause"] == ["Resources-Unavailable"]
    assert sub.session_timeout == 50
    later = request(rp.CoARequest, stamp=NOW + 301, User_Name="alice", Session_Timeout=70)
    assert decode(proc.handle(later, CLIENT, NOW + 301), later).code == rp.CoAACK
    assert sub.session_timeout == 70


def test_proxy_state_is_echoed(setup):
    _, _, proc, _ = setup
    raw = request(rp.CoARequest, User_Name="alice", Session_Timeout=9, Proxy_State=b"ps1")
    assert decode(proc.handle(raw, CLIENT, NOW), raw)["Proxy-State"] == [b"ps1"]


def test_counters_requests_acks_naks_by_error_cause_and_replays(setup):
    _, sub, proc, _ = setup
    stale = request(rp.DisconnectRequest, stamp=NOW - 1000, User_Name="alice")
    nobody = request(rp.CoARequest, User_Name="nobody", Session_Timeout=5)
    change = request(rp.CoARequest, User_Name="alice", Session_Timeout=50)
    disconnect = request(rp.DisconnectRequest, User_Name="alice")
    for raw in (stale, nobody, change, disconnect, disconnect):   # the last: a replay
        assert proc.handle(raw, CLIENT, NOW) is not None
    assert proc.handle(request(rp.DisconnectRequest, secret=b"wrong"), CLIENT, NOW) is None
    counters = proc.counters()
    assert counters["requests"] == {"disconnect": 3, "coa": 2}
    assert counters["acks"] == {"disconnect": 1, "coa": 1}
    assert counters["naks"] == {"disconnect": {"404": 1}, "coa": {"503": 1}}
    assert counters["replays_answered_from_cache"] == 1
    assert counters["other"]["dropped_bad_authenticator"] == 1
    assert counters["other"]["refused_stale_timestamp"] == 1
