"""The accounting fast path encodes and verifies exactly as pyrad does."""
from pyrad import packet as rpacket

from responder.aaa.radius import (AttributeEncoder, accounting_request, load_dictionary,
                                  verify_accounting_response)

SECRET = b"testing123"
DICT = load_dictionary()
ATTRIBUTES = {
    "Acct-Status-Type": 2, "Acct-Session-Id": "0:3-1a2b", "User-Name": "user026",
    "Acct-Authentic": 1, "NAS-IP-Address": "192.0.2.1", "NAS-Identifier": "dynipsec",
    "Framed-IP-Address": "10.99.0.7", "Class": b"\x01profile", "Acct-Session-Time": 12,
    "Acct-Input-Octets": 4096, "Acct-Input-Gigawords": 1, "Acct-Terminate-Cause": 1,
    "Acct-Delay-Time": 0,
}


def pyrad_request(ident: int) -> rpacket.AcctPacket:
    request = rpacket.AcctPacket(code=rpacket.AccountingRequest, id=ident, secret=SECRET, dict=DICT)
    for name, value in ATTRIBUTES.items():
        request[name] = value
    return request


def test_request_bytes_are_pyrads_twice_over():
    encoder = AttributeEncoder(DICT)
    expected = pyrad_request(77).RequestPacket()
    assert accounting_request(77, encoder.encode(ATTRIBUTES), SECRET) == expected
    assert accounting_request(77, encoder.encode(ATTRIBUTES), SECRET) == expected  # cached


def test_a_genuine_response_verifies_and_forgeries_do_not():
    request = pyrad_request(9)
    raw = request.RequestPacket()
    reply = request.CreateReply().ReplyPacket()
    assert verify_accounting_response(raw, reply, SECRET, DICT) == reply
    assert verify_accounting_response(raw, reply, b"wrong", DICT) is None
    assert verify_accounting_response(raw, reply[:1] + b"\x0a" + reply[2:], SECRET, DICT) is None
    tampered = bytearray(reply)
    tampered[0] = rpacket.AccessAccept
    assert verify_accounting_response(raw, bytes(tampered), SECRET, DICT) is None
    assert verify_accounting_response(raw, reply + b"\x01", SECRET, DICT) == reply  # padding


def test_a_response_with_a_bad_message_authenticator_is_refused():
    request = pyrad_request(5)
    raw = request.RequestPacket()
    reply = request.CreateReply()
    reply.add_message_authenticator()
    good = reply.ReplyPacket()
    assert verify_accounting_response(raw, good, SECRET, DICT) is not None
    at = good.index(bytes([80, 18]))
    bad = good[:at + 2] + bytes(16) + good[at + 18:]
    assert verify_accounting_response(raw, bad, SECRET, DICT) is None


def test_malformed_attributes_are_refused():
    request = pyrad_request(5)
    raw = request.RequestPacket()
    reply = request.CreateReply()
    reply["Reply-Message"] = "ok"
    good = reply.ReplyPacket()
    broken = good[:21] + b"\x01" + good[22:]  # attribute length 1
    assert verify_accounting_response(raw, broken, SECRET, DICT) is None
