"""Hostile Quick Mode input: junk never uses up a message ID nor a reply-cache
slot; only a verified msg 1 does."""

from responder.ikev1.enums import ExchangeType, HeaderFlag, PayloadType
from responder.ikev1.events import Phase2Established
from responder.ikev1.ike_sa import MAX_CACHED_REPLIES
from responder.ikev1.message import Header, serialize_with_body

from clients.ikev1_initiator.pair import make_pair


def junk_quick_mode(pair, message_id: int, fill: int = 0) -> bytes:
    i = pair.initiator
    header = Header(i.cky_i, i.cky_r, ExchangeType.QUICK_MODE, HeaderFlag.ENCRYPTION, message_id)
    return serialize_with_body(header, PayloadType.HASH, bytes([fill]) * 64)


def established():
    pair = make_pair()
    pair.main_mode()
    return pair


def test_junk_with_a_message_id_does_not_block_the_real_quick_mode():
    pair = established()
    i = pair.initiator
    run, data = i.quick_mode_1(message_id=0x4242)
    assert len(pair.send(junk_quick_mode(pair, 0x4242))) <= 1  # a refusal at most
    [reply] = pair.send(data)
    i.handle_quick_mode_2(run, reply)
    assert pair.send(i.quick_mode_3(run)) == []
    assert len(pair.of_type(Phase2Established)) == 1


def test_junk_does_not_push_real_replies_out_of_the_cache():
    pair = established()
    i = pair.initiator
    run, data = i.quick_mode_1()
    [reply] = pair.send(data)
    for n in range(MAX_CACHED_REPLIES + 2):
        assert len(pair.send(junk_quick_mode(pair, 0x5000 + n, fill=n))) <= 1
    # the peer lost msg 2 and retransmits msg 1: same answer, from the cache
    assert pair.send(data) == [reply]
    assert pair.responder.stats["retransmit_answered"] == 1
