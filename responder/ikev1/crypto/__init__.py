"""IKEv1 crypto layer: pure functions and small classes, bytes in, bytes out.

Implementations keyed by the IANA numbers an IKEv1 SA / transform carries; which
algorithms exist, with their numbers and sizes, is the algorithm registry
(``responder.ikev1.algorithms``), read by the first two and by Quick Mode keying:

* :data:`HASH_ALGORITHMS` / :func:`hash_algorithm` - hash and HMAC PRF (:class:`HashFunction`)
* :data:`CIPHER_ALGORITHMS` / :func:`cipher_algorithm` - phase 1 CBC ciphers
* :data:`DH_GROUPS` / :func:`dh_group` - MODP 1, 2, 5, 14, 15, 16, ECP 19, 20
* :class:`NegotiatedEspTransform` - what Quick Mode KEYMAT feeds

Phase 1: :class:`Phase1Keys` (SKEYID*, cipher key, HASH_I/HASH_R).
IVs and bodies: :class:`IVStore`, :class:`MessageCipher`.
After phase 1: ``quick_mode_hash1/2/3``, :func:`informational_hash`,
:func:`derive_esp_keys`.  Errors carry their Notify type (:mod:`.errors`).
"""
from .cipher import CIPHER_ALGORITHMS, CipherAlgorithm, cipher_algorithm, pad
from .dh import DH_GROUPS, DHGroup, DHKeyPair, EcpGroup, ModpGroup, Rng, dh_group
from .errors import (
    AuthenticationFailed,
    CiphertextMalformed,
    CryptoError,
    InvalidHash,
    InvalidKeyInformation,
    UnsupportedAlgorithm,
)
from .export import wireshark_ikev1_decryption_line
from .iv import PHASE1_MESSAGE_ID, IVStore, MessageCipher, message_id_bytes
from .phase1 import (
    Phase1Keys,
    encryption_key_from_skeyid_e,
    hash_i,
    hash_r,
    initial_phase1_iv,
    skeyid_pre_shared_key,
)
from .phase2 import (
    PROTO_IPSEC_AH,
    PROTO_IPSEC_ESP,
    ChildSaKeys,
    EspKeys,
    NegotiatedEspTransform,
    derive_esp_keys,
    informational_hash,
    keymat,
    quick_mode_hash1,
    quick_mode_hash2,
    quick_mode_hash3,
    verify_hash,
)
from .prf import HASH_ALGORITHMS, HashFunction, appendix_b_expand, hash_algorithm, prf_plus

__all__ = [
    "AuthenticationFailed",
    "CIPHER_ALGORITHMS",
    "ChildSaKeys",
    "CipherAlgorithm",
    "CiphertextMalformed",
    "CryptoError",
    "DHGroup",
    "DHKeyPair",
    "DH_GROUPS",
    "EcpGroup",
    "EspKeys",
    "HASH_ALGORITHMS",
    "HashFunction",
    "IVStore",
    "InvalidHash",
    "InvalidKeyInformation",
    "MessageCipher",
    "ModpGroup",
    "NegotiatedEspTransform",
    "PHASE1_MESSAGE_ID",
    "PROTO_IPSEC_AH",
    "PROTO_IPSEC_ESP",
    "Phase1Keys",
    "Rng",
    "UnsupportedAlgorithm",
    "appendix_b_expand",
    "cipher_algorithm",
    "derive_esp_keys",
    "dh_group",
    "encryption_key_from_skeyid_e",
    "hash_algorithm",
    "hash_i",
    "hash_r",
    "informational_hash",
    "initial_phase1_iv",
    "keymat",
    "message_id_bytes",
    "pad",
    "prf_plus",
    "quick_mode_hash1",
    "quick_mode_hash2",
    "quick_mode_hash3",
    "skeyid_pre_shared_key",
    "verify_hash",
    "wireshark_ikev1_decryption_line",
]
