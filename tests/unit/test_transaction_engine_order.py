"""Engine-level behaviour of the Transaction task: wire order and retransmissions."""
from __future__ import annotations

from responder.ikev1.enums import CfgType, ExchangeType
from responder.ikev1.payloads import DataAttribute
from tests.unit.test_transaction_support import STRONGSWAN_REQUEST, exchange_of, logged_in


def test_main_mode_6_goes_out_before_the_xauth_request():
    """A REQUEST that overtakes MM6 reaches a client without the phase 1 IV yet."""
    from clients.ikev1_initiator.pair import make_pair
    from responder.ikev1.exchanges.transaction import TransactionTask
    from responder.ikev1.policy import PresharedKey, ResponderPolicy
    from tests.unit.test_transaction_support import PSK

    pair = make_pair(ResponderPolicy(psks=(PresharedKey(PSK),), require_transaction=True))
    TransactionTask.attach(pair.responder)
    i = pair.initiator
    [reply] = pair.send(i.main_mode_1())
    i.handle_main_mode_2(reply)
    [reply] = pair.send(i.main_mode_3())
    i.handle_main_mode_4(reply)
    pair.float(4500)
    out = pair.send(i.main_mode_5())
    assert [exchange_of(d) for d in out] == [ExchangeType.IDENTITY_PROTECTION,
                                             ExchangeType.TRANSACTION]


def test_retransmitted_modecfg_request_gets_the_same_reply_again():
    setup = logged_in()
    setup.set_config()
    asked = [DataAttribute.tlv(t, b"") for t in STRONGSWAN_REQUEST]
    request = setup.client.build(0x1f48fd3e, CfgType.REQUEST, 20, asked)
    first = setup.pair.send(request)
    again = setup.pair.send(request)
    assert first and again == first
