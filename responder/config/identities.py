"""IKE identities as operators write them: ``keyid:vr1``, ``fqdn:vpn.example``,
``ufqdn:alice@example.net``, ``ip:198.18.1.7`` and (profile patterns only) ``dn:CN=...``.

Two uses with different rules:

* **exact identities** (pre-shared keys, IKE policy rules): the engine compares them
  with :meth:`responder.ikev1.policy.Identity.matches`, so no wildcards and no DN
  (certificates are a later step: a DN identity could never arrive with a PSK);
* **patterns** (tunnel profiles): ``*`` and ``?`` wildcards in text values, a network
  for ``ip:`` (``ip:198.18.0.0/16``), any type including DN.
"""
from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass

from responder.config.algorithms import suggest
from responder.ikev1.enums import IdType
from responder.ikev1.policy import Identity

#: prefix -> canonical kind; aliases are the words other products use
_KIND_ALIASES = {
    "keyid": "keyid", "key-id": "keyid", "group": "keyid",
    "fqdn": "fqdn",
    "ufqdn": "ufqdn", "userfqdn": "ufqdn", "user-fqdn": "ufqdn", "email": "ufqdn",
    "ip": "ip", "address": "ip",
    "dn": "dn",
}
_TEXT_ID_TYPES = {"keyid": IdType.KEY_ID, "fqdn": IdType.FQDN, "ufqdn": IdType.USER_FQDN}
_WILDCARDS = frozenset("*?[")


@dataclass(frozen=True)
class IdentitySpec:
    """A parsed identity or identity pattern (``kind`` is canonical: keyid, fqdn,
    ufqdn, ip, dn)."""

    kind: str
    value: str

    @property
    def is_pattern(self) -> bool:
        if self.kind == "ip":
            return "/" in self.value
        return any(c in _WILDCARDS for c in self.value)

    def to_identity(self) -> Identity:
        """The engine's exact identity; only for specs parsed with ``exact=True``."""
        if self.kind == "ip":
            address = ipaddress.ip_address(self.value)
            id_type = IdType.IPV4_ADDR if address.version == 4 else IdType.IPV6_ADDR
            return Identity(int(id_type), str(address))
        if self.kind not in _TEXT_ID_TYPES:
            raise ValueError(f"{self} has no exact IKE identity")
        return Identity(int(_TEXT_ID_TYPES[self.kind]), self.value)

    def matches(self, identity: Identity) -> bool:
        """Pattern match against what the peer sent (FQDNs case-insensitively, key ids
        exactly, like the engine)."""
        if self.kind == "ip":
            if identity.id_type not in (IdType.IPV4_ADDR, IdType.IPV6_ADDR):
                return False
            network = ipaddress.ip_network(self.value, strict=False)
            address = ipaddress.ip_address(identity.value)
            return address.version == network.version and address in network
        if self.kind == "dn":
            return False  # DER DNs arrive with certificates, which are a later step
        if identity.id_type != _TEXT_ID_TYPES[self.kind]:
            return False
        if self.kind == "keyid":
            return fnmatch.fnmatchcase(identity.value, self.value)
        return fnmatch.fnmatchcase(identity.value.lower(), self.value.lower())

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


def _check_ip(value: str, exact: bool) -> str:
    try:
        if exact:
            return str(ipaddress.ip_address(value))
        if "/" in value:
            return str(ipaddress.ip_network(value, strict=True))
        return str(ipaddress.ip_address(value))
    except ValueError:
        wanted = "an address" if exact else "an address or network"
        raise ValueError(f"identity 'ip:{value}' needs {wanted}") from None


def parse_identity(text: str, *, exact: bool) -> IdentitySpec:
    """``kind:value`` -> :class:`IdentitySpec`; ValueError with a readable message."""
    kind_text, sep, value = text.partition(":")
    kinds = sorted(set(_KIND_ALIASES.values()))
    if not sep:
        raise ValueError(f"identity {text!r} needs a type prefix ({', '.join(k + ':' for k in kinds)})")
    kind = _KIND_ALIASES.get(kind_text.strip().lower())
    if kind is None:
        raise ValueError(f"unknown identity type {kind_text!r} in {text!r}"
                         f"{suggest(kind_text.lower(), kinds)} (known: {', '.join(kinds)})")
    value = value.strip()
    if not value:
        raise ValueError(f"identity {text!r} has an empty value")
    if kind == "ip":
        return IdentitySpec(kind, _check_ip(value, exact))
    spec = IdentitySpec(kind, value)
    if exact and kind == "dn":
        raise ValueError(f"identity {text!r}: DN identities need certificates; "
                         "pre-shared keys and IKE policy rules take keyid, fqdn, ufqdn or ip")
    if exact and spec.is_pattern:
        raise ValueError(f"identity {text!r}: wildcards are only allowed in tunnel profile "
                         "patterns (keys and rules match one identity exactly)")
    return spec
