"""Who really sent it: SPF, DKIM and DMARC at a running relay, with a real DNS exchange.

The relay asks the loopback responder (`dns_server`), which by default
lets 127.0.0.0/8 send for every domain (`LOOPBACK_SPF`); each test replaces
that for the seller's domain with the records it is about. DKIM keys are
made with `cryptography` and messages signed with dkimpy, as a sender's
mail server would.
"""

from __future__ import annotations

import base64
import json

import aiosmtplib
import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from relay.config import ConfigError, load
from tests.conftest import compose, open_conversation, run_cli, send, sql, write_config

SELLER_DOMAIN = "sellershop.example"


@pytest.fixture(scope="module")
def keys():
    """Two RSA keys: the seller's published one, and one nobody published."""
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)]


def private_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def key_record(key) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def sign(data: bytes, key, domain: str = SELLER_DOMAIN, selector: str = "s1") -> bytes:
    header = dkim.sign(data, selector.encode(), domain.encode(), private_pem(key),
                       include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return header + data


def publish_key(dns, key, domain: str = SELLER_DOMAIN, selector: str = "s1") -> None:
    dns.add(f"{selector}._domainkey.{domain}", "TXT", key_record(key))


@pytest.fixture
async def setup(relay_factory, sink, dns_server):
    """A relay in strict mode (or as `extra` says), its conversation, and the DNS it asks."""
    async def make(extra: str = "", dns_extra: str = ""):
        app = await relay_factory(smarthost_port=sink.port, dns_port=dns_server.port, extra=extra,
                                  dns_extra=dns_extra)
        return app, open_conversation(app.config_path)
    return make


def seller_message(conv, body: str = "It ships today.\n", headers: dict | None = None) -> bytes:
    return compose(sender=f"Shop One <{conv.seller_email}>", to=conv.buyer_alias,
                   subject=f"Your order {conv.order_id}", body=body, headers=headers)


async def attempt(app, conv, data: bytes) -> tuple[int, str]:
    """Send as the seller; the relay's answer to DATA as (code, text)."""
    try:
        _, response = await send(app.server.port, conv.seller_email, [conv.buyer_alias], data)
        return 250, response
    except aiosmtplib.SMTPResponseException as exc:
        return exc.code, exc.message


def logged(app) -> list[dict]:
    code, out = run_cli(app.config_path, "message", "list")
    assert code == 0
    return [json.loads(line) for line in out.splitlines()]


def auth_of(app) -> dict:
    [entry] = logged(app)
    return entry["auth"]


async def test_spf_pass_is_accepted_and_results_stay_in_the_log(setup, sink):
    app, conv = await setup()
    forged = {"Authentication-Results": f"{SELLER_DOMAIN}; spf=pass; dkim=pass; dmarc=pass"}
    code, _ = await attempt(app, conv, seller_message(conv, headers=forged))
    assert code == 250
    assert auth_of(app) == {"spf": "pass", "dkim": "none", "dmarc": "none"}
    [(header,)] = sql(app.config_path, "SELECT auth_results FROM messages")
    assert header == (f"Authentication-Results: relay.test; spf=pass smtp.mailfrom={SELLER_DOMAIN}; "
                      f"dkim=none; dmarc=none header.from={SELLER_DOMAIN}")
    [delivered] = await sink.handler.wait_for(1)
    assert "Authentication-Results" not in delivered.message  # neither ours nor the sender's


@pytest.mark.parametrize(("record", "status", "words"), [
    ("v=spf1 -all", "5.7.23", "SPF fail"),
    ("v=spf1 ~all", "5.7.1", "SPF softfail"),
    ("v=spf1 ?all", "5.7.1", "SPF neutral"),
    ("not an spf record", "5.7.1", "SPF none"),
], ids=["fail", "softfail", "neutral", "none"])
async def test_spf_without_pass_is_refused_for_a_domain_without_dmarc(setup, dns_server, record, status, words):
    dns_server.add(SELLER_DOMAIN, "TXT", record)
    app, conv = await setup()
    code, text = await attempt(app, conv, seller_message(conv))
    assert (code, text.split()[0]) == (550, status)
    assert words in text and "DKIM none" in text
    assert SELLER_DOMAIN not in text and "127.0.0.1" not in text and conv.seller_email not in text
    [entry] = logged(app)
    assert entry["status"] == "rejected" and entry["rule"] == "auth"
    assert entry["auth"] == {"spf": words.split()[1], "dkim": "none", "dmarc": "none"}


async def test_dkim_pass_authenticates_without_spf(setup, dns_server, keys, sink):
    dns_server.add(SELLER_DOMAIN, "TXT", "v=spf1 ~all")
    publish_key(dns_server, keys[0])
    app, conv = await setup()
    code, _ = await attempt(app, conv, sign(seller_message(conv), keys[0]))
    assert code == 250
    assert auth_of(app) == {"spf": "softfail", "dkim": "pass", "dmarc": "none"}
    [delivered] = await sink.handler.wait_for(1)
    # The sender's signature would not survive the rewrite: it is dropped, and
    # the only signature left is the relay's own.
    signatures = [" ".join(str(s).split()) for s in delivered.message.get_all("DKIM-Signature")]
    assert len(signatures) == 1 and "d=marketplace.example;" in signatures[0]


@pytest.mark.parametrize(("published", "result"), [(True, "fail"), (False, "permerror")],
                         ids=["wrong-key", "no-key"])
async def test_dkim_that_does_not_verify_is_refused(setup, dns_server, keys, published, result):
    dns_server.add(SELLER_DOMAIN, "TXT", "v=spf1 ~all")
    if published:
        publish_key(dns_server, keys[0])
    app, conv = await setup()
    code, text = await attempt(app, conv, sign(seller_message(conv), keys[1]))
    assert (code, text.split()[0]) == (550, "5.7.1")
    assert f"DKIM {result}" in text
    assert auth_of(app) == {"spf": "softfail", "dkim": result, "dmarc": "none"}


@pytest.mark.parametrize("signature", [
    "garbage",
    "v=1; a=rsa-sha256; d=; s=; b=; bh=",
    "v=1; a=rsa-sha256; d=sellershop.example; s=s1; h=from; bh=!!; b=%%",
    "v=1; a=rsa-sha256; d=sellershop.example; s=s1\x00; h=from; bh=AAAA; b=AAAA",
], ids=["garbage", "empty-tags", "bad-base64", "nul"])
async def test_a_broken_signature_is_a_permerror_not_a_crash(setup, signature):
    app, conv = await setup()
    code, _ = await attempt(app, conv, seller_message(conv, headers={"DKIM-Signature": signature}))
    assert code == 250  # SPF passes and aligns; the broken signature proves nothing
    assert auth_of(app) == {"spf": "pass", "dkim": "permerror", "dmarc": "none"}


async def test_replayed_signature_with_a_changed_body_fails(setup, dns_server, keys):
    dns_server.add(SELLER_DOMAIN, "TXT", "v=spf1 ~all")
    dns_server.add(f"_dmarc.{SELLER_DOMAIN}", "TXT", "v=DMARC1; p=reject")
    publish_key(dns_server, keys[0])
    app, conv = await setup()
    genuine = sign(seller_message(conv, body="It ships today.\n"), keys[0])
    replayed = genuine.replace(b"It ships today.", b"Pay me outside!")
    code, text = await attempt(app, conv, replayed)
    assert (code, text.split()[0]) == (550, "5.7.1")
    assert "DMARC fail" in text and "DKIM fail" in text
    assert auth_of(app) == {"spf": "softfail", "dkim": "fail", "dmarc": "fail"}


async def test_dmarc_pass_through_aligned_spf(setup, dns_server):
    dns_server.add(f"_dmarc.{SELLER_DOMAIN}", "TXT", "v=DMARC1; p=reject")
    app, conv = await setup()
    code, _ = await attempt(app, conv, seller_message(conv))
    assert code == 250
    assert auth_of(app) == {"spf": "pass", "dkim": "none", "dmarc": "pass"}


@pytest.mark.parametrize(("spf", "status"), [("v=spf1 ~all", "5.7.1"), ("v=spf1 -all", "5.7.23")])
async def test_dmarc_fail_is_refused_even_with_p_none(setup, dns_server, spf, status):
    dns_server.add(SELLER_DOMAIN, "TXT", spf)
    dns_server.add(f"_dmarc.{SELLER_DOMAIN}", "TXT", "v=DMARC1; p=none")
    app, conv = await setup()
    code, text = await attempt(app, conv, seller_message(conv))
    assert (code, text.split()[0]) == (550, status)
    assert "DMARC fail" in text
    assert auth_of(app)["dmarc"] == "fail"


@pytest.mark.parametrize(("signer", "adkim", "accepted"), [
    ("elsewhere.example", "r", False),        # a valid signature, but of another domain
    (f"mail.{SELLER_DOMAIN}", "r", True),     # same organizational domain: relaxed alignment
    (f"mail.{SELLER_DOMAIN}", "s", False),    # strict alignment wants the From domain itself
], ids=["other-domain", "subdomain-relaxed", "subdomain-strict"])
async def test_dkim_alignment(setup, dns_server, keys, signer, adkim, accepted):
    dns_server.add(SELLER_DOMAIN, "TXT", "v=spf1 ~all")
    dns_server.add(f"_dmarc.{SELLER_DOMAIN}", "TXT", f"v=DMARC1; p=reject; adkim={adkim}")
    publish_key(dns_server, keys[0], domain=signer)
    app, conv = await setup()
    code, text = await attempt(app, conv, sign(seller_message(conv), keys[0], domain=signer))
    assert auth_of(app) == {"spf": "softfail", "dkim": "pass", "dmarc": "pass" if accepted else "fail"}
    if accepted:
        assert code == 250
    else:
        assert (code, text.split()[0]) == (550, "5.7.1") and "DMARC fail" in text
        assert signer not in text


async def test_unaligned_dkim_is_no_proof_without_dmarc(setup, dns_server, keys):
    dns_server.add(SELLER_DOMAIN, "TXT", "v=spf1 ~all")
    publish_key(dns_server, keys[0], domain="elsewhere.example")
    app, conv = await setup()
    code, text = await attempt(app, conv, sign(seller_message(conv), keys[0], domain="elsewhere.example"))
    assert (code, text.split()[0]) == (550, "5.7.1")
    assert "neither SPF nor DKIM passed" in text


RELAXED = '\n[auth]\nmode = "relaxed"\n'


@pytest.mark.parametrize(("extra", "spf", "dmarc", "expected"), [
    (RELAXED, "v=spf1 ~all", None, 250),
    (RELAXED, "not an spf record", None, 250),
    (RELAXED, "v=spf1 -all", None, 550),
    (RELAXED, "v=spf1 ~all", "v=DMARC1; p=reject", 550),
    (f'\n[auth]\nrelaxed_domains = ["{SELLER_DOMAIN}"]\n', "v=spf1 ~all", None, 250),
    ('\n[auth]\nrelaxed_domains = ["buyermail.example"]\n', "v=spf1 ~all", None, 550),
], ids=["relaxed-softfail", "relaxed-none", "relaxed-spf-fail", "relaxed-dmarc-fail",
        "listed-domain", "other-domain-listed"])
async def test_relaxed_mode_and_relaxed_domains(setup, dns_server, extra, spf, dmarc, expected):
    dns_server.add(SELLER_DOMAIN, "TXT", spf)
    if dmarc:
        dns_server.add(f"_dmarc.{SELLER_DOMAIN}", "TXT", dmarc)
    app, conv = await setup(extra=extra)
    code, _ = await attempt(app, conv, seller_message(conv))
    assert code == expected


async def test_dns_timeout_is_a_temporary_refusal(setup, dns_server):
    dns_server.timeouts.add(SELLER_DOMAIN)
    app, conv = await setup(dns_extra="timeout = 0.2")
    code, text = await attempt(app, conv, seller_message(conv))
    assert (code, text.split()[0]) == (451, "4.7.0")
    assert "SPF temperror" in text
    [entry] = logged(app)
    assert entry["status"] == "rejected"
    assert entry["auth"] == {"spf": "temperror", "dkim": "none", "dmarc": "none"}


async def test_answers_are_cached_as_their_ttl_allows(setup, dns_server, keys):
    publish_key(dns_server, keys[0])
    app, conv = await setup()
    for n in range(3):
        data = sign(seller_message(conv, body=f"Update {n}\n"), keys[0])
        assert (await attempt(app, conv, data))[0] == 250
    assert [e["auth"]["dkim"] for e in logged(app)] == ["pass"] * 3
    assert dns_server.queries[(SELLER_DOMAIN, "TXT")] == 1
    assert dns_server.queries[(f"s1._domainkey.{SELLER_DOMAIN}", "TXT")] == 1
    assert dns_server.queries[(f"_dmarc.{SELLER_DOMAIN}", "TXT")] == 1  # "no record" is cached too


async def test_mode_off_checks_nothing(setup, dns_server):
    dns_server.add(SELLER_DOMAIN, "TXT", "v=spf1 -all")
    app, conv = await setup(extra='\n[auth]\nmode = "off"\n')
    code, _ = await attempt(app, conv, seller_message(conv))
    assert code == 250
    assert auth_of(app) == {"spf": "none", "dkim": "none", "dmarc": "none"}
    assert dns_server.queries[(SELLER_DOMAIN, "TXT")] == 0


async def test_message_list_shows_auth_for_accepted_and_refused(setup, dns_server):
    dns_server.add("buyermail.example", "TXT", "v=spf1 -all")
    app, conv = await setup()
    assert (await attempt(app, conv, seller_message(conv)))[0] == 250
    buyer_mail = compose(sender=conv.buyer_email, to=conv.seller_alias, body="Where is it?\n")
    with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
        await send(app.server.port, conv.buyer_email, [conv.seller_alias], buyer_mail)
    assert refused.value.code == 550
    buyer, seller = logged(app)
    assert (buyer["direction"], buyer["status"]) == ("buyer_to_seller", "rejected")
    assert buyer["auth"] == {"spf": "fail", "dkim": "none", "dmarc": "none"}
    assert seller["status"] != "rejected"
    assert seller["auth"] == {"spf": "pass", "dkim": "none", "dmarc": "none"}


@pytest.mark.parametrize(("text", "key"), [
    ('mode = "loose"', "[auth] mode"),
    ('relaxed_domains = "one.example"', "[auth] relaxed_domains"),
    ('relaxed_domains = ["not a domain"]', "[auth] relaxed_domains"),
    ('strictness = 1', "[auth] strictness"),
])
def test_bad_auth_config_names_the_key(tmp_path, text, key):
    path = write_config(tmp_path, extra=f"\n[auth]\n{text}\n")
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert key in str(caught.value)
