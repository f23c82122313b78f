from responder.ikev1.events import Phase1Established, Phase2Established
from responder.ikev1.vendor_ids import DPD, NATT_RFC3947, XAUTH

from tests.helpers.ikev1_pair import make_pair


def test_main_mode_psk_to_completion():
    pair = make_pair()
    pair.main_mode()
    [est] = pair.of_type(Phase1Established)
    assert est.dynamic and est.xauth_required and est.exchange == "main"
    assert est.identity.value == "198.18.1.2"
    assert est.peer == ("198.18.1.2", 4500)
    assert set(pair.initiator.responder_vids) >= {XAUTH.data, DPD.data, NATT_RFC3947.data}


def test_quick_mode_after_main_mode():
    pair = make_pair()
    pair.main_mode()
    run = pair.quick_mode()
    [child] = pair.of_type(Phase2Established)
    assert child.inbound.spi == run.responder_spi
    assert child.outbound.spi == run.spi
    assert child.inbound.encryption_key == run.keys.outbound.encryption_key
    assert child.outbound.integrity_key == run.keys.inbound.integrity_key
