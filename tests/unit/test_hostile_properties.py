"""Property tests: random mutations of messages recorded from an in-memory login.

Recorded once per module: Main Mode 1/3/5, Quick Mode 1/3 and an R-U-THERE of
an established SA; Aggressive Mode 1/3 of another. Mutations (hypothesis):
truncation, extension, header and payload length fields, Next Payload
chaining (retype, drop, duplicate a payload), flags, message IDs, cookies,
version, exchange type, bit flips - one to three at a time. Plus payload
chains of every payload type the engine parses with random bodies, in clear
(message 1) and inside correctly encrypted and hashed Informationals.

Invariants:
* no exception escapes `receive_datagram` / `get_timer`;
* a first message that is refused creates no SA (also not one dropped because
  it is no message 1: no SA payload, or the E flag set);
* an established SA is untouched (peer address, state, liveness, DPD,
  children) by anything the engine refuses, and it survives everything,
  when the junk comes from an attacker's address.
"""

from __future__ import annotations

import functools

from hypothesis import HealthCheck, assume, given, settings, strategies as st

from responder.ikev1.enums import ExchangeType, IdType, NotifyType, PayloadType, ProtocolId
from responder.ikev1.events import Phase1Established
from responder.ikev1.message import Message
from responder.ikev1.payloads import (
    Delete,
    Identification,
    Notification,
    PAYLOAD_CLASSES,
    UnknownPayload,
    serialize_payloads,
)
from responder.ikev1.policy import Identity, PresharedKey, ResponderPolicy

from clients.ikev1_initiator.pair import CLIENT, PSK, SERVER, Pair, make_pair
from tests.unit.test_hostile_cve import raw, refusals, snapshot

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ATTACKER = ("203.0.113.7", 4500)
MM, AM, QM, INFO = (ExchangeType.IDENTITY_PROTECTION, ExchangeType.AGGRESSIVE,
                    ExchangeType.QUICK_MODE, ExchangeType.INFORMATIONAL)
#: every payload type with a parser (PAYLOAD_CLASSES), plus the SA's inner
#: ones and a few unassigned numbers
PAYLOAD_NUMBERS = sorted(int(t) for t in PAYLOAD_CLASSES) + [2, 3, 0, 33, 200, 255]


# ------------------------------------------------------------- recordings
def _strip(data: bytes) -> bytes:
    return data[4:] if data[:4] == bytes(4) else data


@functools.lru_cache(maxsize=None)
def recorded() -> dict[str, bytes]:
    """Datagrams of one MM+QM+DPD login and one AM login (marker stripped)."""
    out = {}
    pair = make_pair(seed=11)
    i = pair.initiator
    out["mm1"] = i.main_mode_1()
    [reply] = pair.send(out["mm1"])
    i.handle_main_mode_2(reply)
    out["mm3"] = i.main_mode_3()
    [reply] = pair.send(out["mm3"])
    i.handle_main_mode_4(reply)
    out["mm5"] = i.main_mode_5(initial_contact=True)
    [reply] = pair.send(out["mm5"])
    i.handle_main_mode_6(reply)
    run, out["qm1"] = i.quick_mode_1()
    [reply] = pair.send(out["qm1"])
    i.handle_quick_mode_2(run, reply)
    out["qm3"] = i.quick_mode_3(run)
    pair.send(out["qm3"])
    out["info"] = i.r_u_there(1)
    am = make_pair(ResponderPolicy(psks=(PresharedKey(PSK, identity=Identity(IdType.KEY_ID,
                                                                           "vpngroup")),)),
                   seed=12, initiator_kwargs=dict(identity=Identification.key_id("vpngroup")))
    out["am1"] = am.initiator.aggressive_1()
    [reply] = am.send(out["am1"])
    am.initiator.handle_aggressive_2(reply)
    out["am3"] = am.initiator.aggressive_3(encrypted=True)
    return out


def established() -> Pair:
    pair = make_pair(seed=21)
    pair.main_mode(float_to=None)
    pair.quick_mode()
    pair.advance(1.0)
    pair.collect()
    return pair


# -------------------------------------------------------------- mutations
def payload_offsets(data: bytes) -> list[int]:
    """Offsets of the generic payload headers of a cleartext message."""
    offsets, pos, np = [], 28, data[16] if len(data) > 16 else 0
    while np and pos + 4 <= len(data) and len(offsets) < 64:
        offsets.append(pos)
        np = data[pos]
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if length < 4:
            break
        pos += length
    return offsets


def _put(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value):]


def mutate_once(draw, data: bytes, cookies: list[bytes]) -> bytes:
    kind = draw(st.sampled_from([
        "truncate", "extend", "header_length", "payload_length", "next_payload",
        "drop_payload", "duplicate_payload", "flags", "message_id", "cookie", "version",
        "exchange", "bitflip", "bytes"]))
    n = len(data)
    if kind == "truncate":
        return data[:draw(st.integers(0, max(n - 1, 0)))]
    if kind == "extend":
        return data + draw(st.binary(min_size=1, max_size=64))
    if n < 28:
        return data + bytes(28 - n)
    if kind == "header_length":
        value = draw(st.one_of(st.integers(0, 0xFFFFFFFF), st.integers(max(n - 8, 0), n + 8)))
        return _put(data, 24, value.to_bytes(4, "big"))
    offsets = payload_offsets(data)
    if kind == "payload_length" and offsets:
        at = draw(st.sampled_from(offsets))
        value = draw(st.one_of(st.integers(0, 0xFFFF), st.integers(0, 8)))
        return _put(data, at + 2, value.to_bytes(2, "big"))
    if kind == "next_payload":
        at = draw(st.sampled_from([16] + offsets))
        return _put(data, at, bytes([draw(st.sampled_from(PAYLOAD_NUMBERS))]))
    if kind in ("drop_payload", "duplicate_payload") and offsets:
        index = draw(st.integers(0, len(offsets) - 1))
        start = offsets[index]
        end = offsets[index + 1] if index + 1 < len(offsets) else n
        if kind == "drop_payload":
            return data[:start] + data[end:]
        return data[:end] + data[start:end] + data[end:]
    if kind == "flags":
        return _put(data, 19, bytes([draw(st.integers(0, 255))]))
    if kind == "message_id":
        value = draw(st.sampled_from([0, 1, 0xFFFFFFFF]) | st.integers(0, 0xFFFFFFFF))
        return _put(data, 20, value.to_bytes(4, "big"))
    if kind == "cookie":
        which = draw(st.sampled_from(["i", "r", "both"]))
        value = draw(st.sampled_from(cookies + [bytes(8), b"\xff" * 8]) | st.binary(min_size=8, max_size=8))
        if which == "i":
            return _put(data, 0, value)
        if which == "r":
            return _put(data, 8, value)
        return _put(data, 0, value + value)
    if kind == "version":
        return _put(data, 17, bytes([draw(st.integers(0, 255))]))
    if kind == "exchange":
        return _put(data, 18, bytes([draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 32, 34, 255]))]))
    if kind == "bitflip":
        bit = draw(st.integers(0, n * 8 - 1))
        return _put(data, bit // 8, bytes([data[bit // 8] ^ (1 << (bit % 8))]))
    at = draw(st.integers(0, n - 1))
    return _put(data, at, draw(st.binary(min_size=1, max_size=min(16, n - at))))


def mutants(data: bytes, cookies: list[bytes]):
    @st.composite
    def strategy(draw):
        out = data
        for _ in range(draw(st.integers(1, 3))):
            out = mutate_once(draw, out, cookies)
        return out
    return strategy()


# ----------------------------------------------------------- the engines
class FirstMessages:
    """One responder for all examples; SAs a mutant legitimately opens are
    removed after each example."""

    def __init__(self) -> None:
        self.pair = make_pair(seed=31)
        self.r = self.pair.responder

    def feed(self, data: bytes) -> list[bytes]:
        r = self.r
        before_sas, refused = set(r._by_id), refusals(r)
        replies = self.pair.send(data)
        r.get_timer()
        opened = [s for s in r._by_id if s not in before_sas]
        phase1_reply = any(_is_phase1_reply(x) for x in replies)
        if not phase1_reply:
            assert not opened, f"refused first message left SA(s) {opened}"
        if refusals(r) > refused and not phase1_reply:
            assert len(replies) <= 1
        for sa_id in opened:
            r.delete_phase1(sa_id, self.pair.now)
        self.pair.collect()
        assert r.sa_count == len(before_sas)
        return replies


def _is_phase1_reply(data: bytes) -> bool:
    try:
        message = Message.parse(data)
    except Exception:
        return False
    return message.header.exchange_type in (MM, AM) and bool(message.payloads)


class Established:
    def __init__(self) -> None:
        self.pair = established()
        self.r = self.pair.responder
        self.sa_id = self.pair.of_type(Phase1Established)[0].sa_id
        i = self.pair.initiator
        self.cookies = [i.cky_i, i.cky_r]
        #: correctly keyed messages of this SA, built but never sent
        self.own = {"info": i.r_u_there(99), "qm1": i.quick_mode_1(message_id=0x13572468)[1]}

    def feed(self, data: bytes) -> None:
        r = self.r
        before = snapshot(r)[self.sa_id]
        self.pair.send(data, remote=ATTACKER)
        r.get_timer()
        sa = r.sa(self.sa_id)
        assert sa is not None and sa.established, "junk removed the established SA"
        # recordings of another SA (other keys): nothing here can authenticate
        assert snapshot(r)[self.sa_id] == before, "unauthenticated junk changed the SA"
        assert sa.remote == CLIENT and sa.local == SERVER
        self.pair.collect()


_first = functools.lru_cache(maxsize=None)(FirstMessages)
_established = functools.lru_cache(maxsize=None)(Established)


# -------------------------------------------------------------- properties
@SETTINGS
@given(st.data())
def test_mutated_main_mode_1(data):
    rec = recorded()
    mutant = data.draw(mutants(rec["mm1"], [rec["mm1"][:8]]))
    assume(mutant != rec["mm1"])
    _first().feed(mutant)


@SETTINGS
@given(st.data())
def test_mutated_aggressive_mode_1(data):
    rec = recorded()
    mutant = data.draw(mutants(rec["am1"], [rec["am1"][:8]]))
    assume(mutant != rec["am1"])
    _first().feed(mutant)


@SETTINGS
@given(st.data())
def test_mutated_phase1_followups_as_first_messages(data):
    """MM3 / MM5 / AM3 / QM / Informational thrown at a responder that has
    never seen their SA (zero or unknown responder cookie)."""
    rec = recorded()
    name = data.draw(st.sampled_from(["mm3", "mm5", "am3", "qm1", "qm3", "info"]))
    base = _put(rec[name], 8, bytes(8)) if data.draw(st.booleans()) else rec[name]
    _first().feed(data.draw(mutants(base, [])))


@settings(max_examples=500, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_mutated_messages_never_touch_an_established_sa(data):
    rec = recorded()
    engine = _established()
    name = data.draw(st.sampled_from(["mm1", "mm3", "mm5", "am1", "am3", "qm1", "qm3", "info"]))
    # put each recording on the established SA's cookies (a recording of
    # another SA), then mutate
    base = _put(rec[name], 0, engine.cookies[0] + engine.cookies[1])
    if data.draw(st.booleans()):
        base = _put(base, 8, bytes(8)) if name in ("mm1", "am1") else base
    engine.feed(data.draw(mutants(base, engine.cookies)))


def _random_payload(draw):
    number = draw(st.sampled_from(PAYLOAD_NUMBERS))
    body = draw(st.binary(max_size=80))
    return UnknownPayload(number, body)


@SETTINGS
@given(st.data())
def test_random_payload_chains_in_first_messages(data):
    """Every payload type the engine parses, random bodies, in MM1 / AM1."""
    payloads = [_random_payload(data.draw) for _ in range(data.draw(st.integers(1, 6)))]
    exchange = data.draw(st.sampled_from([MM, AM, INFO]))
    first, body = serialize_payloads(payloads)
    datagram = raw(data.draw(st.binary(min_size=8, max_size=8)), bytes(8), exchange, [],
                   body=body, first=first)
    _first().feed(datagram)


@SETTINGS
@given(st.data())
def test_random_authenticated_informationals(data):
    """Correctly encrypted and hashed Informationals with random Notifies,
    Deletes of SPIs we do not have and other payload types: never an
    exception, the SA and its child stay (only an ISAKMP delete of its own
    cookies, which is not generated, may remove it)."""
    engine = _established()
    i = engine.pair.initiator
    items = []
    for _ in range(data.draw(st.integers(1, 5))):
        kind = data.draw(st.sampled_from(["notify", "delete", "other"]))
        if kind == "notify":
            items.append(Notification(
                data.draw(st.sampled_from([NotifyType.R_U_THERE, NotifyType.R_U_THERE_ACK,
                                           NotifyType.INITIAL_CONTACT, 14, 24, 0, 65535])
                          | st.integers(0, 65535)),
                protocol_id=data.draw(st.sampled_from([0, 1, 3, 4, 255])),
                spi=data.draw(st.sampled_from([b"", i.cky_i + i.cky_r]) | st.binary(max_size=20)),
                data=data.draw(st.binary(max_size=12))))
        elif kind == "delete":
            size = data.draw(st.sampled_from([4, 8, 16]))
            spis = data.draw(st.lists(st.binary(min_size=size, max_size=size), min_size=0,
                                      max_size=4))
            if not spis:
                spis = [bytes(size)]
            assume(all(s != i.cky_i + i.cky_r for s in spis))
            items.append(Delete(data.draw(st.sampled_from([ProtocolId.ISAKMP, ProtocolId.IPSEC_ESP,
                                                           ProtocolId.IPSEC_AH, 0, 99])), spis))
        else:
            items.append(_random_payload(data.draw))
    r = engine.r
    children = sorted(r.sa(engine.sa_id).children)
    mid = data.draw(st.integers(1, 0xFFFFFFFF))
    engine.pair.send(i.informational(items, message_id=mid))
    r.get_timer()
    engine.pair.collect()
    sa = r.sa(engine.sa_id)
    assert sa is not None and sa.established
    assert sorted(sa.children) == children


@SETTINGS
@given(st.data())
def test_mutated_own_messages_refused_change_nothing(data):
    """Mutants of this SA's own, correctly keyed R-U-THERE and Quick Mode 1
    (never sent as such), from an attacker's address: whatever the engine
    refuses changes nothing on the SA."""
    engine = _established()
    name = data.draw(st.sampled_from(["info", "qm1"]))
    base = engine.own[name]
    mutant = data.draw(mutants(base, engine.cookies))
    assume(mutant != base)
    r = engine.r
    before, refused = snapshot(r)[engine.sa_id], refusals(r)
    engine.pair.send(mutant, remote=ATTACKER)
    r.get_timer()
    engine.pair.collect()
    sa = r.sa(engine.sa_id)
    assert sa is not None and sa.established
    if refusals(r) > refused:
        assert snapshot(r)[engine.sa_id] == before, "refused mutant changed the SA"
