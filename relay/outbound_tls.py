"""Outbound TLS: opening a delivery connection, encrypted where it can be.

`TlsPolicy.open(hop, domain)` connects to one mail server and, when the
server offers STARTTLS, encrypts the session, verifying the certificate
against the trusted CAs (the system's, plus `[delivery] tls_ca_file`) and
the name of the mail server (the MX name, or the smarthost's name). It
returns the connected client and how the session is protected (`TLS_*`),
or a `TlsFailure` to be treated as a temporary failure.

Two levels, as Postfix names them:

- **may** (every domain not listed): opportunistic. A server without
  STARTTLS gets the message in plain text. A certificate that does not
  verify (self-signed, expired, wrong name) still gets an encrypted
  session: the relay connects again and encrypts without verification,
  and logs that the certificate was not verified. An encrypted session
  protects against passive eavesdropping even so, and refusing it would
  only push the mail to plain text.
- **verify** (`[delivery] require_tls_domains`): TLS with a verified
  certificate, or nothing. No STARTTLS, a certificate that does not
  verify, or a failed handshake is a temporary failure with a
  `last_error` that says so: the entry is deferred and bounces after
  `max_age` like any other temporary failure.

A handshake that fails for another reason than the certificate is a
temporary failure at both levels (the message is never sent over a
session that broke during negotiation).

MTA-STS (RFC 8461) is not implemented: it needs an HTTPS policy fetch
and cache that no well-kept Python library offers as a client component;
`require_tls_domains` covers the domains that matter to an operator.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib

log = logging.getLogger(__name__)

TLS_NONE = "none"
TLS_UNVERIFIED = "unverified"
TLS_VERIFIED = "verified"


@dataclass(frozen=True)
class TlsFailure:
    """The connection could not be opened as the policy demands; retry later."""

    error: str


class _CertificateRejected(Exception):
    pass


class TlsPolicy:
    def __init__(self, local_hostname: str, timeout: float, ca_file: Path | None = None,
                 required_domains: tuple[str, ...] = ()):
        self.local_hostname = local_hostname
        self.timeout = timeout
        self.required_domains = frozenset(d.lower() for d in required_domains)
        self.ca_file = ca_file
        self._contexts: tuple[ssl.SSLContext, ssl.SSLContext] | None = None

    def required(self, domain: str) -> bool:
        return domain.lower() in self.required_domains

    async def open(self, host: str, port: int, name: str,
                   domain: str) -> tuple[aiosmtplib.SMTP, str] | TlsFailure:
        """Connect to `host:port` (the server `name`) for mail to `domain`."""
        required = self.required(domain)
        try:
            verifying, encrypting = await self._tls_contexts()
            client = await self._connect(host, port)
            try:
                return client, await self._secure(client, name, verifying)
            except _CertificateRejected as exc:
                client.close()
                if required:
                    return TlsFailure(f"TLS required for {domain}: the certificate of {name} "
                                      f"did not verify ({exc})")
                log.warning("TLS certificate of %s (%s) did not verify (%s); "
                            "encrypting without verification", name, host, exc)
            client = await self._connect(host, port)
            return client, await self._secure(client, name, encrypting)
        except _NoStartTls:
            if required:
                client.close()
                return TlsFailure(f"TLS required for {domain}, but {name} does not offer STARTTLS")
            return client, TLS_NONE
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError, _CertificateRejected) as exc:
            return TlsFailure(f"{exc.__class__.__name__}: {exc}")

    async def _tls_contexts(self) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        """Built once, on first use, in a thread: loading the system's CAs takes tens of ms."""
        if self._contexts is None:
            self._contexts = await asyncio.to_thread(self._build_contexts)
        return self._contexts

    def _build_contexts(self) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        verifying = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if self.ca_file is not None:
            verifying.load_verify_locations(cafile=str(self.ca_file))
        encrypting = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        encrypting.check_hostname = False
        encrypting.verify_mode = ssl.CERT_NONE
        return verifying, encrypting

    async def _connect(self, host: str, port: int) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(hostname=host, port=port, local_hostname=self.local_hostname,
                                 timeout=self.timeout, start_tls=False)
        await client.connect()
        return client

    async def _secure(self, client: aiosmtplib.SMTP, name: str, context: ssl.SSLContext) -> str:
        try:
            await client.ehlo()
            if not client.supports_extension("starttls"):
                raise _NoStartTls()
            await client.starttls(server_hostname=name, tls_context=context)
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            verify_error = _verification_error(exc)
            if verify_error is None:
                client.close()
                raise
            raise _CertificateRejected(verify_error) from None
        return TLS_UNVERIFIED if context.verify_mode == ssl.CERT_NONE else TLS_VERIFIED


class _NoStartTls(Exception):
    pass


def _verification_error(exc: BaseException) -> str | None:
    """The certificate problem behind `exc`, if a failed verification caused it."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or str(seen)
        seen = seen.__cause__ or seen.__context__
    return None
