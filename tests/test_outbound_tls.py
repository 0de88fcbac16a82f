"""Outbound STARTTLS: verified where it can be, required where configured.

The recipients' mail server is an aiosmtpd sink offering STARTTLS with a
certificate for `mx.tls.example`, issued by a CA this test makes with
`cryptography`; DNS (the loopback responder) points both parties' domains
at it. The relay trusts that CA only through `[delivery] tls_ca_file`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP as AioSMTP
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from relay import config as config_mod
from tests.conftest import SinkHandler, compose, open_conversation, send, unsealed, wait_until

MX = "mx.tls.example"


@dataclass
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_pki(folder: Path, host: str = MX) -> Pki:
    now = datetime.now(timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Test CA")).issuer_name(_name("Test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(_name(host)).issuer_name(ca.subject)
            .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pki = Pki(folder / "ca.pem", folder / "leaf.pem", folder / "leaf.key")
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM,
                                                    serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    return pki


class TlsSinkHandler(SinkHandler):
    """Records whether each message came over TLS."""

    def __init__(self):
        super().__init__()
        self.encrypted: list[bool] = []

    async def handle_DATA(self, server, session, envelope):
        self.encrypted.append(session.ssl is not None)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
async def tls_sink(tmp_path):
    servers = []

    async def start(pki: Pki | None):
        handler = TlsSinkHandler()
        context = None
        if pki is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(pki.cert_file, pki.key_file)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: AioSMTP(handler, hostname=MX, tls_context=context, require_starttls=False, loop=loop),
            "127.0.0.1", 0)
        servers.append(server)
        return handler, server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()


async def start_relay(relay_factory, dns_server, port: int, delivery: str = ""):
    for domain in ("sellershop.example", "buyermail.example"):
        dns_server.add(domain, "MX", f"10 {MX}.")
    dns_server.add(MX, "A", "127.0.0.1")
    return await relay_factory(dns_port=dns_server.port, mx_port=port, extra=delivery)


def _delivery_keys(pki: Pki | None, required: bool) -> str:
    lines = []
    if pki is not None:
        lines.append(f'tls_ca_file = "{pki.ca_file}"')
    if required:
        lines.append('require_tls_domains = ["buyermail.example"]')
    return "\n".join(lines) + "\n"


async def seller_writes(app, conv):
    await send(app.server.port, conv.seller_email, [conv.buyer_alias],
               compose(sender=conv.seller_email, to=conv.buyer_alias, subject=f"Order {conv.order_id}"))


async def test_tls_is_used_and_verified(relay_factory, dns_server, tls_sink, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="relay.delivery")
    pki = make_pki(tmp_path)
    handler, port = await tls_sink(pki)
    app = await start_relay(relay_factory, dns_server, port, _delivery_keys(pki, required=True))
    conv = open_conversation(app.config_path)
    await seller_writes(app, conv)
    await handler.wait_for(1)
    assert handler.encrypted == [True]
    assert any("TLS verified" in r.getMessage() for r in caplog.records)


async def test_unverified_certificate_still_encrypts_for_other_domains(relay_factory, dns_server, tls_sink,
                                                                       tmp_path, caplog):
    pki = make_pki(tmp_path)
    handler, port = await tls_sink(pki)
    app = await start_relay(relay_factory, dns_server, port)  # the test CA is not trusted
    conv = open_conversation(app.config_path)
    await seller_writes(app, conv)
    await handler.wait_for(1)
    assert handler.encrypted == [True]
    assert any("did not verify" in r.getMessage() and "without verification" in r.getMessage()
               for r in caplog.records)


async def test_required_domain_without_starttls_is_deferred(relay_factory, dns_server, tls_sink, tmp_path):
    handler, port = await tls_sink(None)
    app = await start_relay(relay_factory, dns_server, port,
                            _delivery_keys(make_pki(tmp_path), required=True))
    conv = open_conversation(app.config_path)
    await seller_writes(app, conv)
    rows = await wait_until(lambda: unsealed(app.config_path, "queue.last_error",
                                             "SELECT last_error, key_id FROM queue WHERE state = 'deferred'"))
    assert "TLS required for buyermail.example" in rows[0] and "STARTTLS" in rows[0]
    assert handler.messages == []


async def test_required_domain_with_a_bad_certificate_is_deferred(relay_factory, dns_server, tls_sink,
                                                                  tmp_path):
    handler, port = await tls_sink(make_pki(tmp_path))
    app = await start_relay(relay_factory, dns_server, port, _delivery_keys(None, required=True))
    conv = open_conversation(app.config_path)
    await seller_writes(app, conv)
    rows = await wait_until(lambda: unsealed(app.config_path, "queue.last_error",
                                             "SELECT last_error, key_id FROM queue WHERE state = 'deferred'"))
    assert "TLS required for buyermail.example" in rows[0] and "did not verify" in rows[0]
    assert handler.messages == []


async def test_plain_text_to_a_server_without_starttls_for_other_domains(relay_factory, dns_server,
                                                                         tls_sink):
    handler, port = await tls_sink(None)
    app = await start_relay(relay_factory, dns_server, port)
    conv = open_conversation(app.config_path)
    await seller_writes(app, conv)
    await handler.wait_for(1)
    assert handler.encrypted == [False]


def test_tls_config_values(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "relay.toml").write_text('[delivery]\ntls_ca_file = "ca.pem"\n'
                                         'require_tls_domains = ["Bank.Example", "b.example"]\n')
    d = config_mod.load(tmp_path / "relay.toml").delivery
    assert d.tls_ca_file == tmp_path / "ca.pem"
    assert d.require_tls_domains == ("bank.example", "b.example")
