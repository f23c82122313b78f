"""Informational exchange: Delete both ways, DPD (RFC 3706), notifies."""

from responder.ikev1.enums import NotifyType, ProtocolId
from responder.ikev1.events import (
    InitialContact,
    PeerDead,
    Phase1Deleted,
    Phase1Established,
    Phase2Deleted,
    Phase2Established,
)
from responder.ikev1.payloads import Delete, Notification
from responder.ikev1.policy import DpdPolicy, PresharedKey, ResponderPolicy
from responder.ikev1.vendor_ids import NATT_RFC3947, XAUTH

from clients.ikev1_initiator.pair import PSK, make_pair

VPNC_IDS = None


def up(policy=None, **kwargs):
    pair = make_pair(policy, **kwargs)
    pair.main_mode()
    pair.quick_mode()
    return pair


def sa_id(pair):
    return pair.of_type(Phase1Established)[0].sa_id


def test_peer_deletes_esp_then_isakmp_like_vpnc():
    pair = up()
    run_spi = pair.of_type(Phase2Established)[0]
    i = pair.initiator
    # vpnc lists both SPIs of the pair in one Delete
    assert pair.send(i.delete_esp([run_spi.outbound.spi, run_spi.inbound.spi])) == []
    [deleted] = pair.of_type(Phase2Deleted)
    assert deleted.reason == "peer-delete"
    assert pair.send(i.delete_phase1()) == []
    [gone] = pair.of_type(Phase1Deleted)
    assert gone.reason == "peer-delete"
    assert pair.responder.sa_count == 0


def test_local_delete_sends_esp_then_isakmp_delete():
    pair = up()
    child = pair.of_type(Phase2Established)[0]
    pair.responder.delete_phase1(sa_id(pair), pair.now)
    esp, isakmp = pair.collect()
    i = pair.initiator
    d1 = i.read_informational(esp).first(Delete)
    d2 = i.read_informational(isakmp).first(Delete)
    assert d1.protocol_id == ProtocolId.IPSEC_ESP and d1.spis == [child.inbound.spi]
    assert d2.protocol_id == ProtocolId.ISAKMP and d2.spis == [i.cky_i + i.cky_r]
    assert [e.reason for e in pair.of_type(Phase2Deleted)] == ["phase1-deleted"]
    assert pair.of_type(Phase1Deleted)[0].reason == "local-delete"


def test_local_phase2_delete():
    pair = up()
    child = pair.of_type(Phase2Established)[0]
    pair.responder.delete_phase2(child.sa_id, child.child_id, pair.now)
    [datagram] = pair.collect()
    assert pair.initiator.read_informational(datagram).first(Delete).spis == [child.inbound.spi]
    assert pair.responder.sa(child.sa_id).children == {}


def test_r_u_there_is_answered_with_ack_echoing_the_sequence():
    pair = up()
    [ack] = pair.send(pair.initiator.r_u_there(0x7822919D))
    notify = pair.initiator.read_informational(ack).first(Notification)
    assert notify.notify_type == NotifyType.R_U_THERE_ACK
    assert notify.data == (0x7822919D).to_bytes(4, "big")
    assert notify.spi == pair.initiator.cky_i + pair.initiator.cky_r


def test_r_u_there_not_answered_without_dpd_vid():
    pair = make_pair(initiator_kwargs=dict(vendor_ids=(XAUTH.data, NATT_RFC3947.data)))
    pair.main_mode()
    assert pair.send(pair.initiator.r_u_there(5)) == []


def test_dpd_probes_then_declares_peer_dead():
    policy = ResponderPolicy(psks=(PresharedKey(PSK),), dpd=DpdPolicy(interval=10, timeout=30))
    pair = up(policy)
    assert pair.advance(9.9) == []
    [probe] = pair.advance(0.2)
    first = pair.initiator.read_informational(probe).first(Notification)
    assert first.notify_type == NotifyType.R_U_THERE
    [probe2] = pair.advance(10)
    second = pair.initiator.read_informational(probe2).first(Notification)
    assert int.from_bytes(second.data, "big") == int.from_bytes(first.data, "big") + 1
    pair.advance(10)
    [dead] = pair.of_type(PeerDead)
    assert dead.sa_id == sa_id(pair)
    assert pair.of_type(Phase1Deleted)[0].reason == "dpd"
    assert pair.of_type(Phase2Deleted)
    assert pair.responder.sa_count == 0


def test_dpd_ack_keeps_the_peer_alive():
    policy = ResponderPolicy(psks=(PresharedKey(PSK),), dpd=DpdPolicy(interval=10, timeout=30))
    pair = up(policy)
    i = pair.initiator
    for _ in range(5):
        [probe] = pair.advance(10.5)
        notify = i.read_informational(probe).first(Notification)
        ack = i.informational([Notification(NotifyType.R_U_THERE_ACK, spi=notify.spi,
                                            data=notify.data)])
        assert pair.send(ack) == []
    assert not pair.of_type(PeerDead)
    assert pair.responder.sa_count == 1


def test_data_path_activity_postpones_dpd():
    policy = ResponderPolicy(psks=(PresharedKey(PSK),), dpd=DpdPolicy(interval=10, timeout=30))
    pair = up(policy)
    for _ in range(6):
        pair.advance(8)
        pair.responder.note_peer_activity(sa_id(pair), pair.now)
    assert pair.collect() == [] and not pair.of_type(PeerDead)


def test_initial_contact_informational():
    pair = up()
    i = pair.initiator
    pair.send(i.informational([Notification(NotifyType.INITIAL_CONTACT, spi=i.cky_i + i.cky_r)]))
    assert pair.of_type(InitialContact)


def test_informational_with_bad_hash_is_dropped():
    pair = up()
    data = pair.initiator.delete_phase1()
    assert pair.send(data[:-1] + bytes([data[-1] ^ 0x55])) == []
    assert pair.responder.sa_count == 1
    assert not pair.of_type(Phase1Deleted)


def test_the_dpd_table_decides_what_traffic_does_to_a_probe(monkeypatch):
    """DPD_TABLE is the behaviour: with a row in which traffic leaves the SA probing,
    traffic no longer forgets the outstanding R-U-THERE."""
    from responder.ikev1.exchanges import informational
    from responder.ikev1.exchanges.common import StateTable
    from responder.ikev1.ike_sa import IkeSa

    def probing_sa() -> IkeSa:
        sa = IkeSa("ike1", bytes(8), bytes(8), ("192.0.2.1", 500), ("198.18.1.2", 500),
                   "main", "established", 0.0, 0.0)
        sa.dpd_outstanding, sa.dpd_sent_at = 7, 5.0
        return sa

    sa = probing_sa()
    informational.note_traffic(sa, 6.0)
    assert (sa.dpd_outstanding, sa.dpd_sent_at, sa.last_activity) == (None, None, 6.0)
    rows = dict(informational.DPD_TABLE.transitions)
    rows[("probing", "traffic")] = "probing"
    monkeypatch.setattr(informational, "DPD_TABLE", StateTable("dpd", rows))
    sa = probing_sa()
    informational.note_traffic(sa, 6.0)
    assert (sa.dpd_outstanding, sa.dpd_sent_at, sa.last_activity) == (7, 5.0, 6.0)
