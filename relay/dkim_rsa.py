"""dkimpy's RSA signing step, done by OpenSSL.

dkimpy computes the RSA-2048 signature of every message with Python's own
big-number `pow`: about 6 ms a signature, more than all the rest of
relaying a 1 KB message. `use_openssl_for(key_pem)` hands that one step,
for the keys given, to `cryptography` (OpenSSL), which produces the very
same RSASSA-PKCS1-v1_5 bytes (the scheme is deterministic) in a fraction
of the time; dkimpy still canonicalizes, hashes and builds the header.

dkimpy looks the signing function up in its module at each signature, so
it is replaced there once, by a wrapper that signs with OpenSSL when it
knows the key (by its modulus) and with dkimpy's own code otherwise (an
unknown key, a digest other than SHA-256). Everything it changes is
inside that wrapper; verification is untouched.
"""

from __future__ import annotations

import threading

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

_SHA256_BYTES = 32
_lock = threading.Lock()


class _OpenSslSigner:
    def __init__(self, fallback):
        self.fallback = fallback
        self.keys: dict[int, rsa.RSAPrivateKey] = {}

    def __call__(self, digest_object, private_key):
        key = self.keys.get(private_key.get("modulus"))
        digest = digest_object.digest()
        if key is None or len(digest) != _SHA256_BYTES:
            return self.fallback(digest_object, private_key)
        return key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


def use_openssl_for(key_pem: bytes) -> None:
    """Sign with OpenSSL from now on for the RSA key in `key_pem`."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        return
    with _lock:
        signer = dkim.RSASSA_PKCS1_v1_5_sign
        if not isinstance(signer, _OpenSslSigner):
            signer = _OpenSslSigner(signer)
            dkim.RSASSA_PKCS1_v1_5_sign = signer
        signer.keys[key.private_numbers().public_numbers.n] = key
