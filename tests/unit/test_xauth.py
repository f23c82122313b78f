"""Xauth (xauth-06, generic) as the edge device, on the real engine in memory."""

import logging

import pytest

from responder.ikev1.enums import AuthMethod, CfgType, ExchangeType, ProtocolId, XauthStatus
from responder.ikev1.events import Phase1Deleted
from responder.ikev1.exchanges.transaction import TransactionPolicy
from responder.ikev1.payloads import AttributePayload, DataAttribute
from responder.ikev1.transaction_events import (
    XauthCredentials,
    XauthFailed,
    XauthSucceeded,
)
from responder.ikev1.vendor_ids import NATT_RFC3947, XAUTH
from responder.ikev1.xauth import InvalidXauthReply, parse_reply, request_attributes, strip_one_nul

from clients.ikev1_initiator.stepwise import ike_transform
from tests.unit.test_transaction_support import A, exchange_of, start


# ------------------------------------------------------------------ codec
def test_request_is_exactly_user_name_and_password_like_strongswan():
    assert request_attributes() == [DataAttribute.tlv(A.XAUTH_USER_NAME, b""),
                                    DataAttribute.tlv(A.XAUTH_USER_PASSWORD, b"")]


@pytest.mark.parametrize("raw, expected", [
    (b"alice-pw\x00", b"alice-pw"),  # the NUL-terminated quirk
    (b"alice-pw\x00\x00", b"alice-pw\x00"),  # only ONE NUL goes
    (b"alice-pw", b"alice-pw"),
    (b"", b""),
])
def test_strip_one_nul(raw, expected):
    assert strip_one_nul(raw) == expected


def reply(*attributes):
    return AttributePayload(CfgType.REPLY, 0, list(attributes))


@pytest.mark.parametrize("payload", [
    reply(DataAttribute.tlv(A.XAUTH_USER_NAME, b"bob")),  # no password
    reply(DataAttribute.tlv(A.XAUTH_USER_PASSWORD, b"pw")),  # no user
    reply(DataAttribute.tv(A.XAUTH_USER_NAME, 7), DataAttribute.tlv(A.XAUTH_USER_PASSWORD, b"x")),
    reply(DataAttribute.tlv(A.XAUTH_USER_NAME, b""), DataAttribute.tlv(A.XAUTH_USER_PASSWORD, b"x")),
    reply(DataAttribute.tlv(A.XAUTH_USER_NAME, b"\xff\xfe"),
          DataAttribute.tlv(A.XAUTH_USER_PASSWORD, b"x")),
    reply(DataAttribute.tv(A.XAUTH_TYPE, 1), DataAttribute.tlv(A.XAUTH_USER_NAME, b"bob"),
          DataAttribute.tlv(A.XAUTH_USER_PASSWORD, b"x")),  # RADIUS-CHAP: not generic
    AttributePayload(CfgType.ACK, 0, []),
])
def test_unusable_replies_raise_the_codec_error(payload):
    with pytest.raises(InvalidXauthReply) as err:
        parse_reply(payload)
    assert err.value.notify_type.name == "PAYLOAD_MALFORMED"


def test_reply_with_generic_type_and_nul_terminated_strings():
    parsed = parse_reply(reply(DataAttribute.tv(A.XAUTH_TYPE, 0),
                               DataAttribute.tlv(A.XAUTH_USER_NAME, b"bob\x00"),
                               DataAttribute.tlv(A.XAUTH_USER_PASSWORD, b"bob-pw\x00")))
    assert (parsed.username, parsed.password) == ("bob", b"bob-pw")
    assert "bob-pw" not in repr(parsed)


# ------------------------------------------------------------------ flows
@pytest.mark.parametrize("exchange", ["main", "aggressive"])
def test_request_right_after_phase1_then_credentials_event(exchange, caplog):
    setup, [request] = start(exchange=exchange)
    received = setup.client.read(request)
    assert received.cfg_type == CfgType.REQUEST
    assert received.types == [A.XAUTH_USER_NAME, A.XAUTH_USER_PASSWORD]
    assert all(a.value == b"" for a in received.payload.attributes)
    with caplog.at_level(logging.DEBUG):
        assert setup.client.credentials(received, b"alice", b"alice-pw\x00") == []
    [creds] = setup.events(XauthCredentials)
    assert (creds.sa_id, creds.username, creds.password, creds.attempt) == \
        (setup.sa_id, "alice", b"alice-pw", 1)
    assert "alice-pw" not in repr(creds) and "alice-pw" not in caplog.text
    assert setup.task.state(setup.sa_id) == ("checking", "waiting")


def test_request_retransmitted_until_answered():
    setup, [request] = start()
    again = setup.pair.advance(4.5)
    assert again == [request]  # the same bytes, by the engine's retransmit timer
    setup.client.credentials(setup.client.read(request), b"bob", b"bob-pw")
    later = setup.pair.advance(50)  # (AAA has 60 s)
    assert ExchangeType.TRANSACTION not in [exchange_of(d) for d in later]


def test_grant_sends_status_ok_and_ack_gives_success():
    setup, [request] = start()
    client = setup.client
    client.credentials(client.read(request), b"bob", b"bob-pw")
    [status] = setup.grant()
    received = client.read(status)
    assert received.cfg_type == CfgType.SET
    assert received.payload.attributes == [DataAttribute.tv(A.XAUTH_STATUS, XauthStatus.OK)]
    assert not setup.events(XauthSucceeded)
    assert client.ack(received) == []
    assert setup.events(XauthSucceeded) == [XauthSucceeded(setup.sa_id, "bob")]
    assert setup.task.state(setup.sa_id) == ("succeeded", "waiting")


def test_status_set_retransmitted_until_ack():
    setup, [request] = start()
    setup.client.credentials(setup.client.read(request), b"bob", b"bob-pw")
    [status] = setup.grant()
    assert setup.pair.advance(4.5) == [status]


def test_denied_twice_then_granted_reprompts_with_message():
    setup, [request] = start()
    client = setup.client
    received = client.read(request)
    message_ids = {received.message_id}
    for attempt in (1, 2):
        client.credentials(received, b"bob", b"wrong")
        assert setup.events(XauthCredentials)[-1].attempt == attempt
        [request] = setup.grant(False, "authentication failed")
        received = client.read(request)
        assert received.cfg_type == CfgType.REQUEST
        assert received.types == [A.XAUTH_USER_NAME, A.XAUTH_USER_PASSWORD, A.XAUTH_MESSAGE]
        assert received.payload.attributes[2].value == b"authentication failed"
        assert received.message_id not in message_ids  # each attempt on a fresh M-ID
        message_ids.add(received.message_id)
    client.credentials(received, b"bob", b"bob-pw")
    assert setup.events(XauthCredentials)[-1].attempt == 3
    [status] = setup.grant()
    client.ack(client.read(status))
    assert setup.events(XauthSucceeded) and not setup.events(XauthFailed)


def test_denied_max_times_sends_status_fail_and_deletes_sa():
    setup, [request] = start(TransactionPolicy(xauth_max_attempts=2))
    client = setup.client
    client.credentials(client.read(request), b"bob", b"wrong")
    [request] = setup.grant(False)
    client.credentials(client.read(request), b"bob", b"wrong")
    [status] = setup.grant(False)
    received = client.read(status)
    assert received.payload.attributes == [DataAttribute.tv(A.XAUTH_STATUS, XauthStatus.FAIL)]
    assert setup.events(XauthFailed) == [XauthFailed(setup.sa_id, "bob", "denied")]
    out = client.ack(received)
    assert [exchange_of(d) for d in out] == [ExchangeType.INFORMATIONAL]
    delete = client.read_delete(out[0])
    assert delete.protocol_id == ProtocolId.ISAKMP
    assert delete.spis == [client.i.cky_i + client.i.cky_r]
    assert setup.events(Phase1Deleted)[0].reason == "xauth-failed"
    assert setup.pair.responder.sa_count == 0
    setup.feed_deletions()
    assert len(setup.events(XauthFailed)) == 1  # not reported twice


def test_status_fail_without_ack_still_deletes_after_linger():
    setup, [request] = start(TransactionPolicy(xauth_max_attempts=1, failure_linger=3))
    setup.client.credentials(setup.client.read(request), b"bob", b"wrong")
    [status] = setup.grant(False)
    out = setup.pair.advance(3.5)
    assert [exchange_of(d) for d in out] == [ExchangeType.INFORMATIONAL]
    assert setup.events(Phase1Deleted)[0].reason == "transaction-timeout"


def test_client_never_answers_times_out():
    setup, [request] = start(TransactionPolicy(xauth_timeout=30))
    out = setup.pair.advance(31)
    transaction = [d for d in out if exchange_of(d) == ExchangeType.TRANSACTION]
    assert transaction and set(transaction) == {request}  # retransmissions of the same bytes
    assert exchange_of(out[-1]) == ExchangeType.INFORMATIONAL  # then the Delete
    assert setup.events(Phase1Deleted)[0].reason == "transaction-timeout"
    setup.feed_deletions()
    assert setup.events(XauthFailed) == [XauthFailed(setup.sa_id, None, "timeout")]
    assert setup.task.state(setup.sa_id) is None


def test_retransmissions_exhausted_is_a_timeout_too():
    # with a long Xauth timeout, the engine's retransmit budget ends it first
    # (a peer without the DPD vendor ID, so DPD does not end it earlier)
    setup, [request] = start(TransactionPolicy(xauth_timeout=10_000), initiator_kwargs=dict(
        vendor_ids=(XAUTH.data, NATT_RFC3947.data)))
    setup.pair.advance(5_000)
    assert setup.events(Phase1Deleted)[0].reason == "retransmit-timeout"
    setup.feed_deletions()
    assert setup.events(XauthFailed)[0].reason == "timeout"


def test_aaa_never_answers_times_out():
    setup, [request] = start(TransactionPolicy(aaa_timeout=20))
    setup.client.credentials(setup.client.read(request), b"bob", b"bob-pw")
    setup.pair.advance(21)
    assert setup.events(Phase1Deleted)[0].reason == "transaction-timeout"
    setup.feed_deletions()
    assert setup.events(XauthFailed) == [XauthFailed(setup.sa_id, "bob", "timeout")]
    # the daemon's late answer is refused, nothing sent
    assert not setup.task.xauth_result(setup.ctx(), setup.sa_id, True)
    assert setup.pair.collect() == []


@pytest.mark.parametrize("attributes", [
    [DataAttribute.tlv(A.XAUTH_USER_NAME, b"bob")],
    [DataAttribute.tv(A.XAUTH_STATUS, 1)],
    [],
])
def test_garbage_reply_is_a_failed_attempt(attributes):
    setup, [request] = start(TransactionPolicy(xauth_max_attempts=2))
    client = setup.client
    [again] = client.answer(client.read(request), CfgType.REPLY, attributes)
    again = client.read(again)  # re-prompted at once, no AAA round
    assert again.cfg_type == CfgType.REQUEST
    assert not setup.events(XauthCredentials)
    assert setup.task.stats["xauth_invalid_reply"] == 1
    [status] = client.answer(again, CfgType.REPLY, attributes)
    assert client.read(status).payload.attributes[0].value == XauthStatus.FAIL
    assert setup.events(XauthFailed)[0].reason == "invalid-reply"


def test_plain_psk_with_xauth_vid_runs_xauth_by_policy():
    plain = dict(initiator_kwargs=dict(transforms=[ike_transform(auth=AuthMethod.PRE_SHARED_KEY)]))
    setup, [request] = start(**plain)
    assert setup.client.read(request).types == [A.XAUTH_USER_NAME, A.XAUTH_USER_PASSWORD]
    setup, out = start(TransactionPolicy(xauth_with_plain_psk=False), **plain)
    assert out == [] and setup.task.state(setup.sa_id) == ("succeeded", "waiting")


def test_xauth_result_for_unknown_or_wrong_state_is_refused():
    setup, [request] = start()
    ctx = setup.ctx()
    assert not setup.task.xauth_result(ctx, "ike999", True)
    assert not setup.task.xauth_result(ctx, setup.sa_id, True)  # no REPLY yet
    assert setup.pair.collect() == []
    assert setup.task.stats["late_aaa_result"] == 2
