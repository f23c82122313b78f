"""Shared pieces for the Transaction (Xauth / Mode-Config) tests: a client side
for the in-memory initiator, and phase 1 set-up with the task registered.

(Named test_* to stay inside the Transaction test files; it holds no tests.)
"""

from __future__ import annotations

from dataclasses import dataclass

from responder.ikev1.crypto.phase2 import informational_hash
from responder.ikev1.enums import CfgType, ConfigAttribute, ExchangeType, IdType
from responder.ikev1.events import Phase1Established
from responder.ikev1.exchanges.common import bytes_after_first_payload
from responder.ikev1.exchanges.transaction import TransactionPolicy, TransactionTask
from responder.ikev1.message import Message, parse_header
from responder.ikev1.modecfg import ModeConfig
from responder.ikev1.payloads import AttributePayload, DataAttribute, Delete, Hash, serialize_payloads
from responder.ikev1.policy import Identity, PresharedKey, ResponderPolicy

from clients.ikev1_initiator.pair import PSK, Pair, make_pair

A = ConfigAttribute

#: what the reference gateway hands out (summary.md), plus a second WINS
#: and a netmask so that every attribute has a value
SUBSCRIBER = ModeConfig(
    "10.99.0.2", "255.255.255.255",
    dns=["10.50.0.53", "10.50.0.54"], wins=["10.50.0.137", "10.50.0.138"],
    split_include=["10.50.0.0/24"], default_domain="example.test",
    banner="strongSwan reference gateway ss-gw")

#: strongSwan 5.9 client's Mode-Config REQUEST (ss-main.decoded.txt)
STRONGSWAN_REQUEST = [A.INTERNAL_IP4_ADDRESS, A.INTERNAL_IP4_DNS]


def vpnc_request() -> list[DataAttribute]:
    """vpnc 0.5.3's Mode-Config REQUEST, exactly as captured (vpnc-aggr frame 8)."""
    tlv = DataAttribute.tlv
    return [
        tlv(A.INTERNAL_IP4_ADDRESS, b""), tlv(A.INTERNAL_IP4_NETMASK, b""),
        tlv(A.INTERNAL_IP4_DNS, b""), tlv(A.INTERNAL_IP4_NBNS, b""),
        tlv(A.UNITY_DEF_DOMAIN, b""),
        tlv(A.UNITY_FW_TYPE, bytes.fromhex("800100018002000180030002")),
        tlv(A.UNITY_PFS, b""), tlv(A.UNITY_BANNER, b""), tlv(A.UNITY_SAVE_PASSWD, b""),
        tlv(A.UNITY_SPLIT_INCLUDE, b""), tlv(A.UNITY_SPLIT_DNS_NAME, b""),
        tlv(A.UNITY_DDNS_HOSTNAME, b"vm"),
        tlv(A.APPLICATION_VERSION, b"Cisco Systems VPN Client 0.5.3+git20220927-1:Linux"),
    ]


@dataclass
class Received:
    message_id: int
    payload: AttributePayload

    @property
    def cfg_type(self):
        return self.payload.cfg_type

    @property
    def types(self) -> list[int]:
        return [a.attr_type for a in self.payload.attributes]


class Client:
    """The client side of Transaction exchanges, on the pair's initiator."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.i = pair.initiator

    def read(self, data: bytes) -> Received:
        """Decrypt one Transaction message from the responder; check HASH(1)."""
        message, plain = self.i.decrypt(data)
        assert message.header.exchange_type == ExchangeType.TRANSACTION
        mid = message.header.message_id
        rest = bytes_after_first_payload(message.header.next_payload, plain)
        assert message.payloads[0].data == informational_hash(
            self.i.keys.prf, self.i.keys.skeyid_a, mid, rest), "HASH(1) mismatch"
        [payload] = message.payloads_of(AttributePayload)
        return Received(mid, payload)

    def build(self, message_id: int, cfg_type: int, identifier: int,
              attributes: list[DataAttribute]) -> bytes:
        payloads = [AttributePayload(cfg_type, identifier, attributes)]
        _, chain = serialize_payloads(payloads)
        digest = informational_hash(self.i.keys.prf, self.i.keys.skeyid_a, message_id, chain)
        return self.i._encrypted(ExchangeType.TRANSACTION, [Hash(digest), *payloads], message_id)

    def answer(self, request: Received, cfg_type: int, attributes: list[DataAttribute]) -> list[bytes]:
        return self.pair.send(self.build(request.message_id, cfg_type,
                                         request.payload.identifier, attributes))

    def credentials(self, request: Received, user: bytes, password: bytes) -> list[bytes]:
        return self.answer(request, CfgType.REPLY, [
            DataAttribute.tlv(A.XAUTH_USER_NAME, user),
            DataAttribute.tlv(A.XAUTH_USER_PASSWORD, password)])

    def ack(self, request: Received) -> list[bytes]:
        """strongSwan's ACK: XAUTH_STATUS as an empty variable attribute."""
        attributes = [DataAttribute.tlv(A.XAUTH_STATUS, b"")] \
            if A.XAUTH_STATUS in request.types else []
        return self.answer(request, CfgType.ACK, attributes)

    def modecfg_request(self, attributes: list[DataAttribute], *, message_id: int = 0x1f48fd3e,
                        identifier: int = 20) -> list[bytes]:
        return self.pair.send(self.build(message_id, CfgType.REQUEST, identifier, attributes))

    def read_delete(self, data: bytes) -> Delete:
        return self.i.read_informational(data).first(Delete)


def exchange_of(data: bytes) -> int:
    return parse_header(data).exchange_type


@dataclass
class Setup:
    pair: Pair
    task: TransactionTask
    client: Client
    sa_id: str

    def ctx(self):
        return self.task.context(self.pair.now)

    def grant(self, granted: bool = True, message: str | None = None) -> list[bytes]:
        assert self.task.xauth_result(self.ctx(), self.sa_id, granted, message)
        return self.pair.collect()

    def set_config(self, config: ModeConfig = SUBSCRIBER) -> list[bytes]:
        assert self.task.set_config(self.ctx(), self.sa_id, config)
        return self.pair.collect()

    def events(self, cls):
        return self.pair.of_type(cls)

    def feed_deletions(self) -> None:
        """What the daemon does with Phase1Deleted."""
        from responder.ikev1.events import Phase1Deleted

        for event in self.pair.of_type(Phase1Deleted):
            self.task.phase1_deleted(self.ctx(), event.sa_id, event.reason)
        self.pair.collect()


def start(policy: TransactionPolicy | None = None, *, exchange: str = "main",
          require_transaction: bool = True, **pair_kwargs) -> tuple[Setup, list[bytes]]:
    """Phase 1 in memory with the task registered; returns the Transaction
    datagrams the responder sent right after phase 1 (phase 1 reply first
    handled by the initiator, whatever the order on the wire)."""
    # Aggressive Mode needs a key bound to the initiator's IDii (its address)
    client_id = Identity(IdType.IPV4_ADDR, "198.18.1.2")
    engine_policy = ResponderPolicy(psks=(PresharedKey(PSK), PresharedKey(PSK, identity=client_id)),
                                    require_transaction=require_transaction)
    pair = make_pair(engine_policy, **pair_kwargs)
    task = TransactionTask.attach(pair.responder, policy)
    i = pair.initiator
    if exchange == "main":
        [reply] = pair.send(i.main_mode_1())
        i.handle_main_mode_2(reply)
        [reply] = pair.send(i.main_mode_3())
        i.handle_main_mode_4(reply)
        pair.float(4500)
        out = pair.send(i.main_mode_5())
        [mm6] = [d for d in out if exchange_of(d) == ExchangeType.IDENTITY_PROTECTION]
        i.handle_main_mode_6(mm6)
    else:
        [reply] = pair.send(i.aggressive_1())
        i.handle_aggressive_2(reply)
        pair.float(4500)
        out = pair.send(i.aggressive_3())
    transaction = [d for d in out if exchange_of(d) == ExchangeType.TRANSACTION]
    [established] = pair.of_type(Phase1Established)
    return Setup(pair, task, Client(pair), established.sa_id), transaction


def logged_in(policy: TransactionPolicy | None = None, **kwargs) -> Setup:
    """Phase 1 + Xauth granted and acknowledged."""
    setup, [request] = start(policy, **kwargs)
    client = setup.client
    client.credentials(client.read(request), b"bob", b"bob-pw")
    [status] = setup.grant()
    client.ack(client.read(status))
    return setup


__all__ = ["SUBSCRIBER", "STRONGSWAN_REQUEST", "vpnc_request", "Client", "Setup", "start",
           "logged_in", "exchange_of", "Message", "A"]
