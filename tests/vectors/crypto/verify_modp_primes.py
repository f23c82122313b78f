#!/usr/bin/env python3
"""Cross-check the MODP primes of responder/ikev1/crypto/dh.py against
independent local sources; exits non-zero on any disagreement.

    .venv/bin/python tests/vectors/crypto/verify_modp_primes.py

1. the defining formula p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) pi) + k)
   (RFC 2409 6.1/6.2, RFC 3526), with pi from Machin's formula in exact
   integer arithmetic, at two precisions (the floor must not depend on it);
2. OpenSSL's named groups ``modp_1536`` .. ``modp_4096`` (openssl genpkey);
3. the primes compiled into strongSwan's libstrongswan (big-endian bytes);
4. cryptography's DH parameter validation (rejects a non-prime p).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
warnings.filterwarnings("ignore", message="Diffie-Hellman over finite fields")

from cryptography.hazmat.primitives.asymmetric import dh  # noqa: E402
from cryptography.hazmat.primitives.serialization import load_pem_parameters  # noqa: E402

from responder.ikev1.crypto.dh import DH_GROUPS, ModpGroup  # noqa: E402

# k of each prime, RFC 2409 6.1/6.2 and RFC 3526 2-5 (n: k)
PI_OFFSETS = {768: 149686, 1024: 129093, 1536: 741804, 2048: 124476, 3072: 1690314, 4096: 240904}
LIBSTRONGSWAN = [Path("/usr/lib/ipsec/libstrongswan.so.0.0.0"), Path("/usr/lib/ipsec/libstrongswan.so")]


def _arctan_inverse(x: int, one: int) -> int:
    total = term = one // x
    n, sign = 1, -1
    while term:
        term //= x * x
        n += 2
        total += sign * (term // n)
        sign = -sign
    return total


def floor_pi_times_power_of_two(bits: int, guard: int = 64) -> int:
    """floor(2^bits * pi) by Machin: pi = 16 atan(1/5) - 4 atan(1/239)."""
    one = 1 << (bits + guard)
    return (4 * (4 * _arctan_inverse(5, one) - _arctan_inverse(239, one))) >> guard


def prime_from_formula(n: int, guard: int = 64) -> int:
    return 2**n - 2 ** (n - 64) - 1 + 2**64 * (floor_pi_times_power_of_two(n - 130, guard) + PI_OFFSETS[n])


def check(groups: list[ModpGroup]) -> list[str]:
    failures = []
    library = next((p.read_bytes() for p in LIBSTRONGSWAN if p.exists()), None)
    for group in groups:
        n, p = group.prime.bit_length(), group.prime
        report = [f"group {group.number:2} {group.name}:"]
        formula_ok = prime_from_formula(n) == p == prime_from_formula(n, guard=128)
        report.append(f"formula={'ok' if formula_ok else 'MISMATCH'}")
        failures += [] if formula_ok else [f"{group.name}: formula"]
        if library is not None:
            found = library.find(p.to_bytes(n // 8, "big")) >= 0
            report.append(f"libstrongswan={'ok' if found else 'MISSING'}")
            failures += [] if found else [f"{group.name}: libstrongswan"]
        if n >= 1536 and shutil.which("openssl"):
            pem = subprocess.run(
                ["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", f"group:modp_{n}"],
                capture_output=True, check=True,
            ).stdout
            same = load_pem_parameters(pem).parameter_numbers().p == p  # type: ignore[union-attr]
            report.append(f"openssl={'ok' if same else 'MISMATCH'}")
            failures += [] if same else [f"{group.name}: openssl"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dh.DHParameterNumbers(p, group.generator).parameters()  # raises if p is not prime
        report.append("cryptography-check=ok")
        print(" ".join(report))
    return failures


def main() -> int:
    groups = [g for g in DH_GROUPS.values() if isinstance(g, ModpGroup)]
    failures = check(groups)
    for failure in failures:
        print("FAILED:", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
