"""Buffer, registries and error plumbing of the ISAKMP codec."""

from __future__ import annotations

import pytest

from responder.ikev1.buffer import Buffer
from responder.ikev1.enums import (
    AuthMethod,
    EncryptionAlgorithm,
    EspTransformId,
    ExchangeType,
    NotifyType,
    PayloadType,
    ProtocolId,
    UnknownValue,
    lookup,
    transform_id_registry,
)
from responder.ikev1.errors import (
    CodecError,
    DecodeError,
    EncodeError,
    InvalidPayloadType,
    LocalProtocolError,
    PayloadMalformed,
    ProtocolError,
    RemoteProtocolError,
)


def test_buffer_pull_push_pairs_round_trip():
    out = Buffer()
    out.push_uint8(0xAB)
    out.push_uint16(0x1234)
    out.push_uint32(0xDEADBEEF)
    out.push_uint64(0x0102030405060708)
    out.push_bytes(b"xyz")
    data = bytes(out)
    assert data.hex() == "ab1234deadbeef0102030405060708" + b"xyz".hex()

    buf = Buffer(data)
    assert buf.pull_uint8() == 0xAB
    assert buf.pull_uint16() == 0x1234
    assert buf.pull_uint32() == 0xDEADBEEF
    assert buf.pull_uint64() == 0x0102030405060708
    assert buf.remaining == 3
    assert buf.pull_rest() == b"xyz"
    assert buf.eof()


@pytest.mark.parametrize("method", ["pull_uint8", "pull_uint16", "pull_uint32", "pull_uint64"])
def test_buffer_short_read_raises_decode_error_with_offset(method):
    buf = Buffer(b"")
    with pytest.raises(DecodeError) as info:
        getattr(buf, method)()
    assert info.value.offset == 0
    assert info.value.notify_type is NotifyType.PAYLOAD_MALFORMED


def test_buffer_short_pull_bytes_reports_position():
    buf = Buffer(b"\x01\x02\x03")
    buf.pull_uint16()
    with pytest.raises(DecodeError) as info:
        buf.pull_bytes(2)
    assert info.value.offset == 2
    assert "at offset 2" in str(info.value)


def test_buffer_push_out_of_range_is_a_local_error():
    with pytest.raises(EncodeError) as info:
        Buffer().push_uint8(256)
    assert isinstance(info.value, LocalProtocolError)
    assert not info.value.notify_peer
    with pytest.raises(EncodeError):
        Buffer().push_uint16(-1)


def test_lookup_known_and_unknown_values():
    assert lookup(EncryptionAlgorithm, 7) is EncryptionAlgorithm.AES_CBC
    unknown = lookup(EncryptionAlgorithm, 0)
    assert isinstance(unknown, UnknownValue)
    assert unknown == 0 and unknown.name == "UNKNOWN_0"
    assert str(unknown) == "EncryptionAlgorithm(0)"
    assert "EncryptionAlgorithm" in repr(unknown)


def test_registries_carry_the_values_real_peers_use():
    assert ExchangeType.MAIN_MODE is ExchangeType.IDENTITY_PROTECTION
    assert ExchangeType.TRANSACTION == 6 and ExchangeType.QUICK_MODE == 32
    assert PayloadType.NAT_D_DRAFT == 130 and PayloadType.FRAGMENT == 132
    assert AuthMethod.XAUTH_INIT_PSK == 65001
    assert NotifyType.R_U_THERE == 36136 and NotifyType.INITIAL_CONTACT == 24578
    assert NotifyType.PAYLOAD_MALFORMED.is_error and not NotifyType.R_U_THERE.is_error
    assert transform_id_registry(ProtocolId.IPSEC_ESP) is EspTransformId
    assert transform_id_registry(99) is None


def test_error_hierarchy_keeps_peer_and_local_faults_apart():
    assert issubclass(CodecError, RemoteProtocolError)
    assert issubclass(DecodeError, CodecError)
    assert issubclass(EncodeError, LocalProtocolError)
    assert not issubclass(EncodeError, RemoteProtocolError)
    err = InvalidPayloadType("bad", offset=3)
    assert err.notify_type is NotifyType.INVALID_PAYLOAD_TYPE
    assert isinstance(err, ProtocolError)
    generic = RemoteProtocolError(NotifyType.NO_PROPOSAL_CHOSEN, "none fits", spi=b"\x01" * 4)
    assert generic.spi == b"\x01" * 4 and "NO_PROPOSAL_CHOSEN" in str(generic)
    malformed = PayloadMalformed("x")
    malformed.add_context("SA payload #1")
    assert str(malformed).startswith("SA payload #1: x")
