"""Inbound STARTTLS: `[smtp] tls_cert`, `tls_key` and `require_tls`.

The certificate is made in the test with `cryptography` (self-signed, for
127.0.0.1), and the client is aiosmtplib verifying it against that
certificate as its only CA: a real TLS handshake on loopback.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import aiosmtplib
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from relay import config as config_mod
from relay.app import App
from relay.config import ConfigError
from tests.conftest import compose, open_conversation, run_cli, write_config
from tests.test_smtp_conversation import RawSession, listed, reply_to


def make_certificate(folder: Path, name: str = "relay") -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("relay.test"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def tls_keys(cert: Path, key: Path, require: bool = False) -> str:
    # Relative to the config file, as a user writes them.
    return f'tls_cert = "{cert.name}"\ntls_key = "{key.name}"\nrequire_tls = {str(require).lower()}'


@pytest.fixture
def certificate(tmp_path) -> tuple[Path, Path]:
    return make_certificate(tmp_path)


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


async def test_mail_over_starttls_is_delivered(relay_factory, sink, certificate):
    app = await relay_factory(smarthost_port=sink.port, smtp_extra=tls_keys(*certificate))
    conv = open_conversation(app.config_path)
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=app.server.port, start_tls=True,
                           tls_context=trusting(certificate[0]), timeout=10)
    await smtp.connect()
    try:
        assert smtp.transport.get_extra_info("cipher") is not None  # the session is encrypted
        errors, _ = await smtp.sendmail(conv.buyer_email, [conv.seller_alias],
                                        compose(sender=conv.buyer_email, to=conv.seller_alias, subject="over TLS"))
        assert errors == {}
    finally:
        await smtp.quit()
    await sink.handler.wait_for(2)
    [delivered] = sink.handler.to(conv.seller_email)
    assert delivered.message["Subject"].startswith("over TLS")


async def test_a_client_that_does_not_trust_the_certificate_fails_the_handshake(relay_factory, sink, certificate,
                                                                                   tmp_path):
    app = await relay_factory(smarthost_port=sink.port, smtp_extra=tls_keys(*certificate))
    other_cert, _ = make_certificate(tmp_path, "other")
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=app.server.port, start_tls=True,
                           tls_context=trusting(other_cert), timeout=10)
    with pytest.raises((aiosmtplib.SMTPException, ssl.SSLError)):
        await smtp.connect()
    smtp.close()
    # The relay goes on serving clients that trust it.
    good = aiosmtplib.SMTP(hostname="127.0.0.1", port=app.server.port, start_tls=True,
                           tls_context=trusting(certificate[0]), timeout=10)
    await good.connect()
    assert (await good.noop()).code == 250
    good.close()


async def test_without_certificate_starttls_is_not_offered(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port)
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=app.server.port, start_tls=False, timeout=10)
    await smtp.connect()
    await smtp.ehlo()
    assert "starttls" not in smtp.esmtp_extensions
    smtp.close()


async def test_require_tls_refuses_mail_before_starttls(relay_factory, sink, certificate):
    app = await relay_factory(smarthost_port=sink.port, smtp_extra=tls_keys(*certificate, require=True))
    conv = open_conversation(app.config_path)
    session = await RawSession.open(app.server.port)
    try:
        await session.send(b"EHLO client.test\r\n")
        code, lines = await session.reply()
        assert code == 250 and "STARTTLS" in lines
        await session.send(f"MAIL FROM:<{conv.buyer_email}>\r\n".encode())
        code, lines = await session.reply()
        assert code == 530
        assert lines[0] == "5.7.0 Must issue a STARTTLS command first"
    finally:
        await session.close()
    assert listed(app.config_path) == []

    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=app.server.port, start_tls=True,
                           tls_context=trusting(certificate[0]), timeout=10)
    await smtp.connect()
    try:
        assert (await reply_to(smtp.mail(conv.buyer_email)))[0] == 250
        assert (await reply_to(smtp.rcpt(conv.seller_alias)))[0] == 250
        code, _ = await reply_to(smtp.data(compose(sender=conv.buyer_email, to=conv.seller_alias)))
        assert code == 250
    finally:
        smtp.close()


@pytest.mark.parametrize("smtp_extra, says", [
    ('tls_cert = "relay.crt"', "[smtp] tls_cert and tls_key"),
    ('tls_key = "relay.key"', "[smtp] tls_cert and tls_key"),
    ("require_tls = true", "[smtp] require_tls"),
    ('require_tls = "yes"', "[smtp] require_tls"),
    ("tls_cert = 5\ntls_key = 6", "[smtp] tls_cert"),
])
def test_bad_tls_settings_are_one_line_config_errors(tmp_path, smtp_extra, says):
    path = write_config(tmp_path, smtp_extra=smtp_extra)
    with pytest.raises(ConfigError) as caught:
        config_mod.load(path)
    assert says in str(caught.value) and "\n" not in str(caught.value)


def _swap_keys(cert: Path, key: Path, tmp_path: Path) -> None:
    _other_cert, other_key = make_certificate(tmp_path, "other")
    key.write_bytes(other_key.read_bytes())


def _encrypt_key(cert: Path, key: Path, tmp_path: Path) -> None:
    private = serialization.load_pem_private_key(key.read_bytes(), None)
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.BestAvailableEncryption(b"secret")))


@pytest.mark.parametrize("spoil, says", [
    (lambda cert, key, tmp: cert.unlink(), "cannot read"),
    (lambda cert, key, tmp: (key.unlink(), key.mkdir()), "cannot read"),
    (lambda cert, key, tmp: cert.write_text("not a certificate\n"), "PEM"),
    (_swap_keys, "does not match"),
    (_encrypt_key, "encrypted"),
])
def test_an_unusable_certificate_or_key_stops_serve_with_one_line(tmp_path, certificate, capsys, spoil, says):
    path = write_config(tmp_path, smtp_extra=tls_keys(*certificate))
    spoil(*certificate, tmp_path)
    with pytest.raises(ConfigError) as caught:
        App.build(config_mod.load(path))
    assert says in str(caught.value) and "\n" not in str(caught.value)
    code, _ = run_cli(path, "serve")
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err and "Traceback" not in err


def test_with_several_processes_a_bad_certificate_is_one_line_before_forking(tmp_path, certificate, capsys):
    path = write_config(tmp_path, smtp_extra=tls_keys(*certificate) + "\nprocesses = 2")
    certificate[0].unlink()
    code, _ = run_cli(path, "serve")
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "[smtp] tls_cert" in err and "cannot read" in err, err
