"""DKIM: the relay's signing key, its DNS record, and the signature on what leaves.

Every message the relay delivers (conversation messages, acknowledgments,
DSNs, bounce notices) is signed for the alias domain with dkimpy:
rsa-sha256, relaxed/relaxed canonicalization, over the headers of
`SIGNED_HEADERS` that the message has (From always).

The key file is the relay's own small format: a comment line naming the
selector the key is published under, then the RSA-2048 private key in PEM,
so that one file (replaced atomically) switches key and selector together:

    # DKIM signing key; publish it with 'relay keys dkim'
    # selector: relay
    -----BEGIN RSA PRIVATE KEY-----
    ...

`ensure_key_file(path, selector)` creates it (mode 0600) when it is
missing; `load_key(path)` reads it back, refusing a file that others may
read; `dns_record(key, domain)` is the zone-file line to publish;
`rotate(path, base_selector, today)` writes a new key under a new,
date-based selector (`<base>-YYYYMMDD`, then `-2`, `-3` the same day).

`Signer.sign(data)` returns the message with its DKIM-Signature on top.
dkimpy computes RSA in pure Python (about 5 ms a message) and hashes the
body in regular expressions (about 120 ms for 5 MB), so signing runs in a
worker thread, never on the event loop. The signer notices when the key
file has been replaced (rotation) and signs with the new key from then on;
if the new file cannot be read, it logs that and keeps the key it has.

Problems with the file raise `KeyFileError` (from `relay.keyfiles`) with a
one-line reason.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from relay.dkim_rsa import use_openssl_for
from relay.keyfiles import KeyFileError, create_private, read_private, replace_private

log = logging.getLogger(__name__)

KEY_BITS = 2048
SIGNED_HEADERS = ("from", "to", "subject", "date", "message-id", "in-reply-to", "references",
                  "mime-version", "content-type", "content-transfer-encoding", "auto-submitted",
                  "x-relay-warning")
_SELECTOR_LINE = re.compile(r"^#\s*selector:\s*(\S+)\s*$", re.MULTILINE)
_TXT_CHUNK = 255


@dataclass(frozen=True)
class DkimKey:
    selector: str
    private_pem: bytes

    def public_base64(self) -> str:
        key = serialization.load_pem_private_key(self.private_pem, password=None)
        der = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(der).decode("ascii")


def ensure_key_file(path: Path, selector: str) -> bool:
    """Create `path` with a new key under `selector` unless it exists. True if created."""
    return create_private(path, new_key_file_text(selector).decode("ascii"))


def load_key(path: Path) -> DkimKey:
    text = read_private(path)  # refuses a missing file, or one open to others
    found = _SELECTOR_LINE.search(text)
    start = text.find("-----BEGIN")
    if found is None or start < 0:
        raise KeyFileError(f"DKIM key file {path}: expected a '# selector: NAME' line and a PEM key")
    pem = text[start:].encode("ascii")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise KeyFileError(f"DKIM key file {path}: the PEM key cannot be read") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 1024:
        raise KeyFileError(f"DKIM key file {path}: expected an RSA key of at least 1024 bits")
    return DkimKey(found.group(1).lower(), pem)


def rotate(path: Path, base_selector: str, today: date) -> DkimKey:
    """Replace the key with a new one under a new selector; the old key is gone."""
    current = load_key(path)
    selector = next_selector(current.selector, base_selector, today)
    replace_private(path, new_key_file_text(selector).decode("ascii"))
    return load_key(path)


def next_selector(current: str, base: str, today: date) -> str:
    """`<base>-YYYYMMDD`; a second rotation the same day counts on: `-2`, `-3`..."""
    stem = f"{base}-{today:%Y%m%d}"
    if current == stem:
        return f"{stem}-2"
    if current.startswith(stem + "-") and current[len(stem) + 1:].isdigit():
        return f"{stem}-{int(current[len(stem) + 1:]) + 1}"
    return stem


def dns_record(key: DkimKey, domain: str) -> str:
    """`<selector>._domainkey.<domain>. IN TXT "v=DKIM1; k=rsa; p=..."`, strings of at most 255."""
    value = f"v=DKIM1; k=rsa; p={key.public_base64()}"
    chunks = [value[i:i + _TXT_CHUNK] for i in range(0, len(value), _TXT_CHUNK)]
    quoted = " ".join(f'"{chunk}"' for chunk in chunks)
    return f"{key.selector}._domainkey.{domain}. IN TXT {quoted}"


class Signer:
    """Signs for one domain with the key in one file, following rotations of that file."""

    def __init__(self, path: Path, domain: str):
        self.path = path
        self.domain = domain.encode("ascii")
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        self.key = load_key(path)
        use_openssl_for(self.key.private_pem)

    async def sign(self, data: bytes) -> bytes:
        return await asyncio.to_thread(self.sign_now, data)

    def sign_now(self, data: bytes) -> bytes:
        """Blocking: the signature header followed by `data`."""
        key = self._current_key()
        signer = dkim.DKIM(data, signature_algorithm=b"rsa-sha256", linesep=b"\r\n")
        present = {name.lower() for name, _value in signer.headers}
        headers = [h.encode("ascii") for h in SIGNED_HEADERS if h.encode("ascii") in present]
        signature = signer.sign(key.selector.encode("ascii"), self.domain, key.private_pem,
                                canonicalize=(b"relaxed", b"relaxed"), include_headers=headers)
        return signature + data

    def _current_key(self) -> DkimKey:
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return self.key
        with self._lock:
            if stamp != self._stamp:
                try:
                    self.key = load_key(self.path)
                    use_openssl_for(self.key.private_pem)
                    log.info("DKIM key file %s changed: signing with selector %s now",
                             self.path, self.key.selector)
                except KeyFileError as exc:
                    log.error("%s; still signing with selector %s", exc, self.key.selector)
                self._stamp = stamp
        return self.key

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size


def new_key_file_text(selector: str) -> bytes:
    """The content of a key file with a new RSA key under `selector`."""
    return _file_text(selector, _new_private_pem())


def _new_private_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _file_text(selector: str, pem: bytes) -> bytes:
    return (b"# DKIM signing key; publish it with 'relay keys dkim'\n"
            + f"# selector: {selector}\n".encode("ascii") + pem)
