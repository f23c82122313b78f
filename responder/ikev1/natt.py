"""NAT traversal for IKEv1: RFC 3947 and draft-ietf-ipsec-nat-t-ike-00..03.

* Version: both sides send the NAT-T vendor IDs they support; the responder
  answers with the best one the peer sent (RFC 3947 preferred, then the
  newest draft) and that choice fixes the NAT-D payload number (20 vs 130)
  and the UDP-encapsulated mode values (3/4 vs 61443/61444).
* NAT-D (RFC 3947 §3.2): HASH(CKY-I | CKY-R | IP | Port) with the negotiated
  hash (the bare hash, not the PRF). The first NAT-D a sender includes is the
  address of the *receiver* as the sender sees it, the following ones its
  own addresses. A mismatch on our address means we are behind a NAT; no
  match among the peer's means the peer is.
* Port float (RFC 3947 §4): once a NAT is detected the initiator moves to
  UDP 4500 (MM msg 5 / AM msg 3); the responder follows the peer to the new
  address/port. The port-4500 framing (Non-ESP marker, keepalives) is the
  codec's `natt_framing` module.
* force_encap (strongSwan's encap=yes): our own NAT-D is replaced by a random
  hash so the peer believes we are behind a NAT and both ends encapsulate.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Callable, Sequence

from .crypto.prf import HashFunction
from .enums import EncapsulationMode, PayloadType
from .vendor_ids import NattVersion

__all__ = [
    "IKE_PORT",
    "NATT_PORT",
    "NatStatus",
    "natd_hash",
    "build_natd_hashes",
    "detect_nat",
    "natd_payload_type",
    "accepted_encapsulation_modes",
    "uses_marker",
    "floats_to_4500",
]

IKE_PORT = 500
NATT_PORT = 4500


def floats_to_4500(version: NattVersion | None) -> bool:
    """Drafts 00/01 kept IKE on port 500 (no Non-ESP marker yet)."""
    return version is not None and version not in (NattVersion.DRAFT_00, NattVersion.DRAFT_01)


@dataclass(frozen=True)
class NatStatus:
    local_behind_nat: bool
    peer_behind_nat: bool
    faked: bool = False

    @property
    def any(self) -> bool:
        return self.local_behind_nat or self.peer_behind_nat


def natd_payload_type(version: NattVersion) -> PayloadType:
    return PayloadType.NAT_D if version.is_rfc else PayloadType.NAT_D_DRAFT


def _ip_port_bytes(address: tuple[str, int]) -> bytes:
    ip, port = address
    return ipaddress.ip_address(ip).packed + port.to_bytes(2, "big")


def natd_hash(hash_alg: HashFunction, cky_i: bytes, cky_r: bytes,
              address: tuple[str, int]) -> bytes:
    """HASH(CKY-I | CKY-R | IP | Port), RFC 3947 §3.2."""
    return hash_alg.hash(cky_i + cky_r + _ip_port_bytes(address))


def build_natd_hashes(hash_alg: HashFunction, cky_i: bytes, cky_r: bytes, *,
                      local: tuple[str, int], remote: tuple[str, int],
                      force_encap: bool = False,
                      rng: Callable[[int], bytes] | None = None) -> list[bytes]:
    """Our NAT-D hashes in wire order: the peer's address first, then ours.

    With `force_encap` our own hash is random, so the peer sees a NAT on our
    side (what strongSwan does for encap=yes); this is an explicit option.
    """
    remote_hash = natd_hash(hash_alg, cky_i, cky_r, remote)
    if force_encap:
        if rng is None:
            raise ValueError("force_encap needs a random source")
        local_hash = rng(hash_alg.digest_size)
    else:
        local_hash = natd_hash(hash_alg, cky_i, cky_r, local)
    return [remote_hash, local_hash]


def detect_nat(hash_alg: HashFunction, cky_i: bytes, cky_r: bytes,
               received: Sequence[bytes], *, local: tuple[str, int],
               remote: tuple[str, int], force_encap: bool = False) -> NatStatus:
    """Compare the peer's NAT-D payloads with what we see (RFC 3947 §3.2).

    `received[0]` is the peer's view of our address; the rest are its own.
    """
    if not received:
        return NatStatus(False, False, faked=force_encap)
    local_ok = received[0] == natd_hash(hash_alg, cky_i, cky_r, local)
    peer_hash = natd_hash(hash_alg, cky_i, cky_r, remote)
    peer_ok = any(h == peer_hash for h in received[1:])
    return NatStatus(local_behind_nat=not local_ok or force_encap,
                     peer_behind_nat=not peer_ok, faked=force_encap)


_RFC_UDP_MODES = (EncapsulationMode.UDP_TUNNEL, EncapsulationMode.UDP_TRANSPORT)
_DRAFT_UDP_MODES = (EncapsulationMode.UDP_TUNNEL_DRAFT, EncapsulationMode.UDP_TRANSPORT_DRAFT)


def accepted_encapsulation_modes(version: NattVersion | None, nat: NatStatus | None,
                                 *, allow_transport: bool = False) -> tuple[int, ...]:
    """Encapsulation modes a Quick Mode proposal may use on this phase 1.

    Plain tunnel always (a peer without NAT may not encapsulate). With NAT-T:
    RFC 3947 uses 3/4; the drafts use 61443/61444, but vpnc proposes 3 even
    when only drafts are agreed, so the RFC values are accepted there too
    (strongSwan answers with what was proposed).
    """
    modes: list[int] = [EncapsulationMode.TUNNEL]
    if allow_transport:
        modes.append(EncapsulationMode.TRANSPORT)
    if version is not None and (nat is None or nat.any):
        modes += [EncapsulationMode.UDP_TUNNEL]
        if allow_transport:
            modes.append(EncapsulationMode.UDP_TRANSPORT)
        if not version.is_rfc:
            modes.append(EncapsulationMode.UDP_TUNNEL_DRAFT)
            if allow_transport:
                modes.append(EncapsulationMode.UDP_TRANSPORT_DRAFT)
    return tuple(int(m) for m in modes)


def uses_marker(local: tuple[str, int]) -> bool:
    """IKE sent from or received on a port other than 500 carries the
    Non-ESP marker (RFC 3948 §2.2; framing itself lives in natt_framing)."""
    return local[1] != IKE_PORT
