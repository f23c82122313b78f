"""Proposal strings as operators write them (strongSwan style) -> algorithm numbers.

Phase 1: ``aes256-sha1-modp1024`` is one encryption, one hash and one DH group; like
strongSwan, several of a kind may be listed (``aes256-aes128-sha256-sha1-modp2048``) and
the proposal stands for every combination. Phase 2: ``aes256-sha1``, ``3des-md5``,
``aes128gcm16`` (combined mode: no integrity token).

Every token comes from the algorithm registry (``responder.ikev1.algorithms``), which
keying, proposal matching and the ESP data path read too, so a configuration that passes
``check`` never proposes something the engine cannot do. Errors are plain
``ValueError`` with a message that lists the known tokens; the schema turns them into one
line with the key path.
"""
from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass

from responder.ikev1 import algorithms as registry

# -- phase 1 tokens -----------------------------------------------------------------------
#: token -> (IKE encryption algorithm, Key Length attribute in bits or None)
IKE_ENCRYPTION: dict[str, tuple[int, int | None]] = {
    token: (cipher.ike_number, cipher.key_length_value(bits))
    for token, (cipher, bits) in registry.CIPHER_TOKENS.items() if cipher.ike_number is not None
}
IKE_HASH: dict[str, int] = {
    token: h.ike_number for token, h in registry.HASH_TOKENS.items() if h.ike_number is not None
}
DH_GROUP: dict[str, int] = {token: g.number for token, g in registry.GROUP_TOKENS.items()}
AUTH_METHODS: dict[str, int] = {token: m for token, m in registry.AUTH_METHOD_TOKENS.items()}

# -- phase 2 tokens -----------------------------------------------------------------------
#: token -> (ESP transform id, Key Length attribute in bits or None, combined mode?)
ESP_CIPHER: dict[str, tuple[int, int | None, bool]] = {
    token: (cipher.esp_transform_id, cipher.key_length_value(bits), cipher.aead)
    for token, (cipher, bits) in registry.CIPHER_TOKENS.items()
    if cipher.esp_transform_id is not None
}
ESP_INTEGRITY: dict[str, int] = {
    token: h.esp_auth_id for token, h in registry.HASH_TOKENS.items()
    if h.esp_auth_id is not None
}

#: Weak but sometimes needed for old clients: allowed, warned about.
WEAK_TOKENS = frozenset(
    [t for c in registry.CIPHERS if c.weak for t in c.tokens]
    + [t for h in registry.HASHES if h.weak for t in h.tokens]
    + [g.token for g in registry.GROUPS if g.weak])


@dataclass(frozen=True)
class IkeProposal:
    """One phase 1 combination: what a transform payload would carry."""

    encryption: int
    key_length: int | None
    hash: int
    group: int


@dataclass(frozen=True)
class EspProposal:
    """One phase 2 transform; ``integrity`` is None for combined-mode ciphers."""

    cipher: int
    key_length: int | None
    integrity: int | None


def suggest(word: str, candidates: list[str] | tuple[str, ...]) -> str:
    """' (did you mean 'x'?)' or '' -- cheap typo help for unknown names."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _tokens(text: str) -> list[str]:
    tokens = [t.strip().lower() for t in text.split("-")]
    if not text.strip() or any(not t for t in tokens):
        raise ValueError(f"{text!r} is not a proposal (expected tokens joined by '-')")
    return tokens


def known_ike_tokens() -> str:
    return (f"encryption: {', '.join(IKE_ENCRYPTION)}; hash: {', '.join(IKE_HASH)}; "
            f"group: {', '.join(DH_GROUP)}")


def parse_ike_proposal(text: str) -> list[IkeProposal]:
    """``aes256-sha1-modp1024`` -> every (encryption, hash, group) it stands for."""
    encryptions, hashes, groups = [], [], []
    for token in _tokens(text):
        if token in IKE_ENCRYPTION:
            encryptions.append(IKE_ENCRYPTION[token])
        elif token in IKE_HASH:
            hashes.append(IKE_HASH[token])
        elif token in DH_GROUP:
            groups.append(DH_GROUP[token])
        else:
            everything = [*IKE_ENCRYPTION, *IKE_HASH, *DH_GROUP]
            raise ValueError(f"unknown token {token!r} in IKE proposal {text!r}"
                             f"{suggest(token, everything)} (known {known_ike_tokens()})")
    missing = [kind for kind, found in (("encryption", encryptions), ("hash", hashes),
                                         ("DH group", groups)) if not found]
    if missing:
        raise ValueError(f"IKE proposal {text!r} names no {' and no '.join(missing)} "
                         f"(known {known_ike_tokens()})")
    return [IkeProposal(enc, keylen, hash_, group)
            for (enc, keylen), hash_, group in itertools.product(encryptions, hashes, groups)]


def known_esp_transforms() -> list[str]:
    """One canonical spelling per ESP transform of the registry, for error messages:
    in the registry's cipher order, weak integrity algorithms last."""
    def display_order(suite: tuple) -> tuple[int, int, bool]:
        cipher, bits, integrity = suite
        return registry.CIPHERS.index(cipher), bits, integrity is not None and integrity.weak
    return [_canonical_esp_name(*suite) for suite in sorted(registry.esp_suites(), key=display_order)]


def _canonical_esp_name(cipher: registry.CipherEntry, key_bits: int,
                        integrity: registry.HashEntry | None) -> str:
    cipher_token = next(t for t, bits in cipher.tokens.items() if bits == key_bits)
    return cipher_token if integrity is None else f"{cipher_token}-{integrity.tokens[0]}"


def _unknown_esp(text: str) -> ValueError:
    known = known_esp_transforms()
    return ValueError(f"unknown ESP transform {text!r}{suggest(text.lower(), known)} "
                      f"(known: {', '.join(known)})")


def parse_esp_transform(text: str) -> EspProposal:
    """``aes256-sha1`` / ``3des-md5`` / ``aes128gcm16`` -> one ESP transform."""
    tokens = [t.strip().lower() for t in text.split("-")]
    if not 1 <= len(tokens) <= 2 or tokens[0] not in ESP_CIPHER:
        raise _unknown_esp(text)
    cipher, key_length, combined = ESP_CIPHER[tokens[0]]
    if combined:
        if len(tokens) != 1:
            raise ValueError(f"ESP transform {text!r}: {tokens[0]} is combined mode (AEAD) "
                             "and takes no integrity algorithm")
        return EspProposal(cipher, key_length, None)
    if len(tokens) != 2 or tokens[1] not in ESP_INTEGRITY:
        raise _unknown_esp(text)
    return EspProposal(cipher, key_length, ESP_INTEGRITY[tokens[1]])


def parse_dh_group(text: str) -> int | None:
    """PFS group: ``none`` or a group name (``modp1024``)."""
    token = text.strip().lower()
    if token in ("none", "no", "off"):
        return None
    if token not in DH_GROUP:
        raise ValueError(f"unknown DH group {text!r}{suggest(token, list(DH_GROUP))} "
                         f"(known: none, {', '.join(DH_GROUP)})")
    return DH_GROUP[token]


def parse_auth_method(text: str) -> int:
    token = text.strip().lower()
    if token not in AUTH_METHODS:
        raise ValueError(f"unknown authentication method {text!r}"
                         f"{suggest(token, list(AUTH_METHODS))} (known: {', '.join(AUTH_METHODS)})")
    return AUTH_METHODS[token]


def weak_tokens(text: str) -> list[str]:
    return [t for t in text.lower().split("-") if t in WEAK_TOKENS]
