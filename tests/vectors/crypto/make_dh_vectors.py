#!/usr/bin/env python3
"""Pin deterministic DH key pairs per group: dh_pinned.json.

    .venv/bin/python tests/vectors/crypto/make_dh_vectors.py

Private values come from SHA-256 in counter mode over a label, so anyone can
regenerate them.  MODP public values and shared secrets are computed here with
Python's own pow() - an implementation independent of OpenSSL - and ECP ones
with cryptography's derive_private_key / ECDH (the ECP arithmetic is pinned
separately by the RFC 5903 section 8 vectors in test_crypto_dh.py).
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from responder.ikev1.crypto.dh import DH_GROUPS, EcpGroup, ModpGroup  # noqa: E402

OUT = Path(__file__).resolve().parent / "dh_pinned.json"


def label_bytes(label: str, length: int) -> bytes:
    out, counter = b"", 0
    while len(out) < length:
        out += hashlib.sha256(f"{label}/{counter}".encode()).digest()
        counter += 1
    return out[:length]


def private_value(group_number: int, party: str, low: int, high: int) -> int:
    raw = int.from_bytes(label_bytes(f"dynipsec dh vector {group_number} {party}", 520), "big")
    return low + raw % (high - low + 1)


def modp_vector(group: ModpGroup) -> dict[str, str]:
    p, size = group.prime, group.public_size
    x = private_value(group.number, "a", 2, p - 2)
    y = private_value(group.number, "b", 2, p - 2)
    gx, gy = pow(2, x, p), pow(2, y, p)
    return {
        "private_a": f"{x:x}", "public_a": gx.to_bytes(size, "big").hex(),
        "private_b": f"{y:x}", "public_b": gy.to_bytes(size, "big").hex(),
        "shared": pow(gy, x, p).to_bytes(size, "big").hex(),
    }


def ecp_vector(group: EcpGroup) -> dict[str, str]:
    size = group.coordinate_size
    keys, result = {}, {}
    for party in ("a", "b"):
        d = private_value(group.number, party, 1, group.order - 1)
        keys[party] = ec.derive_private_key(d, group.curve)
        point = keys[party].public_key().public_numbers()
        result[f"private_{party}"] = f"{d:x}"
        result[f"public_{party}"] = (point.x.to_bytes(size, "big") + point.y.to_bytes(size, "big")).hex()
    result["shared"] = keys["a"].exchange(ec.ECDH(), keys["b"].public_key()).hex()
    return result


def main() -> None:
    vectors = {}
    for number, group in sorted(DH_GROUPS.items()):
        vector = modp_vector(group) if isinstance(group, ModpGroup) else ecp_vector(group)
        vectors[str(number)] = {"name": group.name, **vector}
    OUT.write_text(json.dumps(vectors, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
