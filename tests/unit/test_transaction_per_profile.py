"""Transaction task: per-SA (tunnel profile) settings and the final Xauth refusal.

* `configure(..., answer_unrequested=...)`: a pull REQUEST is answered with exactly what
  was asked (the default) or with everything we have (what strongSwan's
  gateway does; the lab turns it on per profile: `mode_config.send_unrequested`);
* `configure(..., max_attempts=, xauth_timeout=)`: the profile's Xauth settings win over
  the worker-wide policy;
* `xauth_result(..., granted=False, final=True)`: STATUS=FAIL at once, no re-prompt
  (license refused after AAA granted), then Delete after the client's ACK.
"""
from __future__ import annotations

from responder.ikev1.enums import CfgType, ExchangeType, ProtocolId, XauthStatus
from responder.ikev1.events import Phase1Deleted
from responder.ikev1.exchanges.transaction import TransactionPolicy
from responder.ikev1.payloads import DataAttribute
from responder.ikev1.transaction_events import XauthCredentials, XauthFailed

from tests.unit.test_transaction_support import (A, STRONGSWAN_REQUEST, SUBSCRIBER, exchange_of,
                                                 logged_in, start)

ALL_ANSWERED = {A.INTERNAL_IP4_ADDRESS, A.INTERNAL_IP4_NETMASK, A.INTERNAL_IP4_DNS,
                A.INTERNAL_IP4_NBNS, A.UNITY_SPLIT_INCLUDE, A.UNITY_DEF_DOMAIN, A.UNITY_BANNER}


def _pull_strongswan(setup) -> list[int]:
    """strongSwan 5.9's REQUEST (address + DNS), then the configuration: our REPLY's types."""
    client = setup.client
    assert client.modecfg_request([DataAttribute.tlv(t, b"") for t in STRONGSWAN_REQUEST]) == []
    [reply] = setup.set_config(SUBSCRIBER)
    received = client.read(reply)
    assert received.cfg_type == CfgType.REPLY
    return received.types


def test_strict_pull_answers_only_what_strongswan_asked():
    """The worker's default (send_unrequested false): address and both DNS, no more."""
    setup = logged_in(TransactionPolicy(answer_unrequested=False))
    types = _pull_strongswan(setup)
    assert set(types) == set(STRONGSWAN_REQUEST)
    assert types.count(A.INTERNAL_IP4_DNS) == 2
    assert A.INTERNAL_IP4_NBNS not in types and A.INTERNAL_IP4_NETMASK not in types


def test_profile_send_unrequested_answers_everything():
    """A profile with mode_config.send_unrequested: netmask, WINS, split, domain, banner
    reach a strongSwan client that asked for address and DNS only."""
    setup = logged_in(TransactionPolicy(answer_unrequested=False))
    assert setup.task.configure(setup.ctx(), setup.sa_id, answer_unrequested=True)
    types = _pull_strongswan(setup)
    assert ALL_ANSWERED <= set(types)
    assert types.count(A.INTERNAL_IP4_NBNS) == 2


def test_profile_can_also_turn_it_off_against_the_policy():
    setup = logged_in(TransactionPolicy(answer_unrequested=True))
    assert setup.task.configure(setup.ctx(), setup.sa_id, answer_unrequested=False)
    assert set(_pull_strongswan(setup)) == set(STRONGSWAN_REQUEST)


def test_profile_max_attempts_overrides_the_policy():
    setup, [request] = start(TransactionPolicy(xauth_max_attempts=5))
    assert setup.task.configure(setup.ctx(), setup.sa_id, max_attempts=1)
    client = setup.client
    client.credentials(client.read(request), b"bob", b"wrong")
    [status] = setup.grant(False)
    assert client.read(status).payload.attributes == [
        DataAttribute.tv(A.XAUTH_STATUS, XauthStatus.FAIL)]
    assert setup.events(XauthFailed) == [XauthFailed(setup.sa_id, "bob", "denied")]


def test_profile_xauth_timeout_rearms_the_pending_request():
    setup, [request] = start(TransactionPolicy(xauth_timeout=60))
    assert setup.task.configure(setup.ctx(), setup.sa_id, xauth_timeout=3)
    setup.pair.advance(3.5)
    [deleted] = setup.events(Phase1Deleted)
    assert deleted.reason == "transaction-timeout"
    assert setup.pair.responder.sa_count == 0


def test_configure_unknown_sa_is_false():
    setup, _ = start()
    assert not setup.task.configure(setup.ctx(), "no-such-sa", max_attempts=2)


def test_final_refusal_fails_at_once_then_deletes_after_ack():
    """A license refusal after AAA granted: no re-prompt although attempts are left;
    STATUS=FAIL, XauthFailed with the caller's reason, Delete once ACKed."""
    setup, [request] = start(TransactionPolicy(xauth_max_attempts=3))
    client = setup.client
    client.credentials(client.read(request), b"bob", b"bob-pw")
    assert setup.events(XauthCredentials)[-1].attempt == 1
    assert setup.task.xauth_result(setup.ctx(), setup.sa_id, False, "no license",
                                   final=True, reason="license-refused")
    [status] = setup.pair.collect()
    received = client.read(status)
    assert received.cfg_type == CfgType.SET
    assert received.types == [A.XAUTH_STATUS, A.XAUTH_MESSAGE]
    assert received.payload.attributes[0] == DataAttribute.tv(A.XAUTH_STATUS, XauthStatus.FAIL)
    assert setup.events(XauthFailed) == [XauthFailed(setup.sa_id, "bob", "license-refused")]
    out = client.ack(received)
    assert [exchange_of(d) for d in out] == [ExchangeType.INFORMATIONAL]
    assert client.read_delete(out[0]).protocol_id == ProtocolId.ISAKMP
    assert setup.events(Phase1Deleted)[0].reason == "xauth-failed"
    assert setup.pair.responder.sa_count == 0
