"""The TLS context for inbound STARTTLS.

`server_context(cert, key)` loads the certificate chain and private key
named by `[smtp] tls_cert` and `tls_key` into an `ssl.SSLContext` for the
server side (TLS 1.2 or newer, no client certificates asked for). A file
that is missing or unreadable, not PEM, or a key that does not belong to
the certificate is a `ConfigError` with one line that names the key, so
`relay serve` stops at startup instead of failing the first STARTTLS.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from relay.config import ConfigError


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    for name, path in (("tls_cert", cert), ("tls_key", key)):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ConfigError(f"[smtp] {name}: cannot read {path}: {exc.strerror or exc}") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key), password=_no_password)
    except ssl.SSLError as exc:
        what = "the key does not match the certificate" if "KEY_VALUES_MISMATCH" in str(exc) \
            else f"not a PEM certificate and key ({exc.reason or exc})"
        raise ConfigError(f"[smtp] tls_cert/tls_key ({cert.name}, {key.name}): {what}") from None
    except _EncryptedKey:
        raise ConfigError(f"[smtp] tls_key {key.name}: the key is encrypted; "
                          "the relay needs it unencrypted (mode 0600)") from None
    return context


class _EncryptedKey(Exception):
    pass


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal and the relay hang.
    raise _EncryptedKey()
