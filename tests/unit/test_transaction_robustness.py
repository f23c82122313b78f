"""Unexpected Transaction messages: ignored and counted, never a crash."""

import random

from responder.ikev1.crypto.phase2 import informational_hash
from responder.ikev1.enums import AuthMethod, CfgType, ExchangeType
from responder.ikev1.exchanges.transaction import TransactionTask
from responder.ikev1.payloads import AttributePayload, DataAttribute, Hash, serialize_payloads
from responder.ikev1.policy import ResponderPolicy, Selector, StaticTunnel
from responder.ikev1.transaction_events import XauthCredentials, XauthFailed
from responder.ikev1.vendor_ids import DPD

from clients.ikev1_initiator.stepwise import ike_transform
from clients.ikev1_initiator.pair import PSK, make_pair
from tests.unit.test_transaction_support import A, Client, start


def user_and_password():
    return [DataAttribute.tlv(A.XAUTH_USER_NAME, b"bob"),
            DataAttribute.tlv(A.XAUTH_USER_PASSWORD, b"pw")]


def test_wrong_cfg_type_on_our_message_id_is_ignored():
    setup, [request] = start()
    received = setup.client.read(request)
    assert setup.client.answer(received, CfgType.ACK, user_and_password()) == []
    assert setup.task.stats["ignored_wrong_cfg_type"] == 1
    assert setup.task.state(setup.sa_id) == ("requested", "waiting")
    assert not setup.events(XauthCredentials)


def test_wrong_identifier_is_ignored():
    setup, [request] = start()
    received = setup.client.read(request)
    data = setup.client.build(received.message_id, CfgType.REPLY,
                              (received.payload.identifier + 1) & 0xFFFF, user_and_password())
    assert setup.pair.send(data) == []
    assert setup.task.stats["ignored_wrong_identifier"] == 1
    assert not setup.events(XauthCredentials)


def test_unknown_message_id_is_ignored():
    setup, [request] = start()
    setup.client.read(request)
    for cfg_type in (CfgType.REPLY, CfgType.ACK, CfgType.SET):
        data = setup.client.build(0x5000 + cfg_type, cfg_type, 0, user_and_password())
        assert setup.pair.send(data) == []
    # a client-initiated Xauth REQUEST is not supported either
    assert setup.pair.send(setup.client.build(0x6000, CfgType.REQUEST, 0, user_and_password())) == []
    assert setup.task.stats["ignored_unexpected_message_id"] == 4
    assert setup.task.state(setup.sa_id) == ("requested", "waiting")


def test_not_exactly_one_attribute_payload_is_ignored():
    setup, [request] = start()
    received = setup.client.read(request)
    i = setup.client.i
    payloads = [AttributePayload(CfgType.REPLY, received.payload.identifier, user_and_password())] * 2
    _, chain = serialize_payloads(payloads)
    digest = informational_hash(i.keys.prf, i.keys.skeyid_a, received.message_id, chain)
    data = i._encrypted(ExchangeType.TRANSACTION, [Hash(digest), *payloads], received.message_id)
    assert setup.pair.send(data) == []
    assert setup.task.stats["ignored_payloads"] == 1


def test_bad_hash_is_refused_at_the_engine_boundary():
    setup, [request] = start()
    received = setup.client.read(request)
    i = setup.client.i
    payloads = [AttributePayload(CfgType.REPLY, received.payload.identifier, user_and_password())]
    data = i._encrypted(ExchangeType.TRANSACTION, [Hash(bytes(20)), *payloads],
                        received.message_id)
    setup.pair.send(data)
    assert setup.pair.responder.stats["error_INVALID_HASH_INFORMATION"] == 1
    assert not setup.events(XauthCredentials)


def test_transaction_on_a_static_sa_is_ignored():
    static = StaticTunnel("site-a", peer="198.18.1.2", secret=PSK,
                          local_selector=Selector.parse("10.50.0.0/24"),
                          remote_selector=Selector.parse("192.168.7.0/24"))
    pair = make_pair(ResponderPolicy(static_tunnels=(static,)), initiator_kwargs=dict(
        vendor_ids=(DPD.data,), transforms=[ike_transform(auth=AuthMethod.PRE_SHARED_KEY)]))
    task = TransactionTask.attach(pair.responder)
    pair.main_mode(float_to=None)  # one MM6, no Xauth REQUEST: not dynamic
    data = Client(pair).build(0x77, CfgType.REQUEST, 0, [DataAttribute.tlv(A.INTERNAL_IP4_ADDRESS, b"")])
    assert pair.send(data) == []
    assert task.stats["ignored_no_session"] == 1


def test_random_replies_never_crash():
    rng = random.Random(7)
    types = [int(t) for t in A] + [0, 1234, 0x7FFF]
    for round_ in range(30):
        setup, [request] = start(seed=round_ + 10)
        received = setup.client.read(request)
        attributes = []
        for _ in range(rng.randrange(5)):
            attr_type = rng.choice(types)
            if rng.random() < 0.3:
                attributes.append(DataAttribute.tv(attr_type, rng.randrange(65536)))
            else:
                attributes.append(DataAttribute.tlv(attr_type, rng.randbytes(rng.randrange(20))))
        setup.client.answer(received, CfgType.REPLY, attributes)
        credentials = setup.events(XauthCredentials)
        state = setup.task.state(setup.sa_id)
        assert (credentials and state[0] == "checking") or \
            (not credentials and state[0] == "requested")
        assert not setup.events(XauthFailed)
