"""Key export for debugging: Wireshark's IKEv1 decryption table.

Wireshark (Preferences > Protocols > ISAKMP > IKEv1 Decryption Table, file
``ikev1_decryption_table`` in the profile) holds one ``icookie,enckey`` line
per ISAKMP SA: initiator cookie and phase 1 encryption key in lowercase hex,
unquoted, as the reference run wrote them.  Opt-in only: this is a secret.
"""
from __future__ import annotations


def wireshark_ikev1_decryption_line(icookie: bytes, encryption_key: bytes) -> str:
    """One line (no newline) of Wireshark's IKEv1 decryption table."""
    if len(icookie) != 8:
        raise ValueError("the initiator cookie is 8 bytes")
    return f"{icookie.hex()},{encryption_key.hex()}"
