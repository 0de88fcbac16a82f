"""SPF, DMARC discovery and the accept/refuse rule, as tables, against a real DNS responder.

Each SPF case is a record set served by the loopback responder, a client
address and the result check_host() must give. The macro table is the
worked example of RFC 7208 section 7.4.
"""

from __future__ import annotations

import pytest

from relay import replies
from relay.auth import dmarc
from relay.auth.check import Authenticator, AuthRequest, AuthSettings, decide
from relay.auth.dkim_check import DkimSignature
from relay.auth.lookup import AuthDns
from relay.auth.results import AuthResults
from relay.auth.spf import SpfError, SpfEvaluator, SpfResult, _Check, client_ip, expand
from relay.routing import make_resolver
from tests.dnsresponder import DnsResponder

RECORDS = [
    ("pass.example", "TXT", "v=spf1 ip4:192.0.2.0/24 -all"),
    ("soft.example", "TXT", "v=spf1 ~all"),
    ("neutral.example", "TXT", "v=spf1 ?all"),
    ("plain.example", "TXT", "v=spf1"),
    ("nospf.example", "TXT", "site-verification=abc"),
    ("two.example", "TXT", "v=spf1 -all"),
    ("two.example", "TXT", "v=spf1 +all"),
    ("syntax.example", "TXT", "v=spf1 frob:x.example -all"),
    ("badip.example", "TXT", "v=spf1 ip4:192.0.2.300 -all"),
    ("inc.example", "TXT", "v=spf1 include:pass.example -all"),
    ("incsoft.example", "TXT", "v=spf1 include:soft.example -all"),
    ("incnone.example", "TXT", "v=spf1 include:nospf.example -all"),
    ("a.example", "TXT", "v=spf1 a -all"),
    ("a.example", "A", "192.0.2.10"),
    ("a24.example", "TXT", "v=spf1 a:a.example/24 -all"),
    ("mx.example", "TXT", "v=spf1 mx -all"),
    ("mx.example", "MX", "10 mail.mx.example."),
    ("mail.mx.example", "A", "198.51.100.20"),
    ("mail.mx.example", "AAAA", "2001:db8::20"),
    ("ip6.example", "TXT", "v=spf1 ip6:2001:db8:1::/48 -all"),
    ("redirect.example", "TXT", "v=spf1 redirect=pass.example"),
    ("redirnone.example", "TXT", "v=spf1 redirect=nospf.example"),
    ("allfirst.example", "TXT", "v=spf1 -all redirect=neutral.example"),
    ("exists.example", "TXT", "v=spf1 exists:%{i}.allow.example -all"),
    ("192.0.2.7.allow.example", "A", "127.0.0.2"),
    ("macro.example", "TXT", "v=spf1 exists:%{l}.%{o}._spf.macro.example -all"),
    ("alice.macro.example._spf.macro.example", "A", "127.0.0.2"),
    ("ptr.example", "TXT", "v=spf1 ptr -all"),
    ("30.2.0.192.in-addr.arpa", "PTR", "host.ptr.example."),
    ("host.ptr.example", "A", "192.0.2.30"),
    ("loop.example", "TXT", "v=spf1 include:loop.example -all"),
    ("many.example", "TXT", "v=spf1 " + " ".join(["a:a.example"] * 11) + " -all"),
    ("ten.example", "TXT", "v=spf1 " + " ".join(["a:a.example"] * 9) + " ip4:203.0.113.9 -all"),
    ("void.example", "TXT", "v=spf1 a:v1.example a:v2.example a:v3.example -all"),
    ("twovoid.example", "TXT", "v=spf1 a:v1.example a:v2.example ~all"),
    ("inctimeout.example", "TXT", "v=spf1 include:slow.example -all"),
    ("qual.example", "TXT", "v=spf1 ~ip4:192.0.2.1 ?ip4:192.0.2.2 -ip4:192.0.2.3 +ip4:192.0.2.4 ~all"),
]

SPF_CASES = [
    # (domain, client ip, local part, expected result)
    ("pass.example", "192.0.2.5", "x", "pass"),
    ("pass.example", "198.51.100.1", "x", "fail"),
    ("pass.example", "::ffff:192.0.2.5", "x", "pass"),
    ("soft.example", "192.0.2.5", "x", "softfail"),
    ("neutral.example", "192.0.2.5", "x", "neutral"),
    ("plain.example", "192.0.2.5", "x", "neutral"),
    ("nospf.example", "192.0.2.5", "x", "none"),
    ("nxdomain.example", "192.0.2.5", "x", "none"),
    ("two.example", "192.0.2.5", "x", "permerror"),
    ("syntax.example", "192.0.2.5", "x", "permerror"),
    ("badip.example", "192.0.2.5", "x", "permerror"),
    ("inc.example", "192.0.2.5", "x", "pass"),
    ("inc.example", "198.51.100.1", "x", "fail"),
    ("incsoft.example", "192.0.2.5", "x", "fail"),       # include's softfail is "no match"
    ("incnone.example", "192.0.2.5", "x", "permerror"),
    ("a.example", "192.0.2.10", "x", "pass"),
    ("a.example", "192.0.2.11", "x", "fail"),
    ("a24.example", "192.0.2.99", "x", "pass"),
    ("mx.example", "198.51.100.20", "x", "pass"),
    ("mx.example", "2001:db8::20", "x", "pass"),
    ("mx.example", "198.51.100.21", "x", "fail"),
    ("ip6.example", "2001:db8:1::5", "x", "pass"),
    ("ip6.example", "2001:db8:2::5", "x", "fail"),
    ("ip6.example", "192.0.2.5", "x", "fail"),
    ("redirect.example", "192.0.2.5", "x", "pass"),
    ("redirect.example", "198.51.100.1", "x", "fail"),
    ("redirnone.example", "192.0.2.5", "x", "permerror"),
    ("allfirst.example", "192.0.2.5", "x", "fail"),      # redirect is ignored after "all"
    ("exists.example", "192.0.2.7", "x", "pass"),
    ("exists.example", "192.0.2.8", "x", "fail"),
    ("macro.example", "192.0.2.5", "alice", "pass"),
    ("macro.example", "192.0.2.5", "bob", "fail"),
    ("ptr.example", "192.0.2.30", "x", "pass"),
    ("ptr.example", "192.0.2.31", "x", "fail"),
    ("loop.example", "192.0.2.5", "x", "permerror"),     # more than 10 lookups
    ("many.example", "192.0.2.5", "x", "permerror"),
    ("ten.example", "203.0.113.9", "x", "pass"),         # 9 lookups are within the limit
    ("void.example", "192.0.2.5", "x", "permerror"),     # a third void lookup
    ("twovoid.example", "192.0.2.5", "x", "softfail"),   # two are allowed
    ("slow.example", "192.0.2.5", "x", "temperror"),
    ("inctimeout.example", "192.0.2.5", "x", "temperror"),
    ("qual.example", "192.0.2.1", "x", "softfail"),
    ("qual.example", "192.0.2.2", "x", "neutral"),
    ("qual.example", "192.0.2.3", "x", "fail"),
    ("qual.example", "192.0.2.4", "x", "pass"),
    ("not-a-domain", "192.0.2.5", "x", "none"),
]


@pytest.fixture
async def responder():
    server = DnsResponder()
    for name, rdtype, text in RECORDS:
        server.add(name, rdtype, text)
    server.timeouts.add("slow.example")
    await server.start()
    yield server
    server.stop()


def auth_dns(responder: DnsResponder) -> AuthDns:
    return AuthDns(make_resolver((("127.0.0.1", responder.port),), 0.2))


async def test_spf_table(responder):
    spf = SpfEvaluator(auth_dns(responder))
    got = [(domain, ip, local, (await spf.check_host(ip, domain, local)).result)
           for domain, ip, local, _ in SPF_CASES]
    assert got == SPF_CASES


async def test_spf_answers_are_cached_for_their_ttl(responder):
    spf = SpfEvaluator(auth_dns(responder))
    for _ in range(3):
        assert (await spf.check_host("192.0.2.5", "inc.example", "x")).result == "pass"
    assert responder.queries[("inc.example", "TXT")] == 1
    assert responder.queries[("pass.example", "TXT")] == 1


MACROS = [
    # RFC 7208 7.4: sender strong-bad@email.example.com, client 192.0.2.3
    ("%{s}", "strong-bad@email.example.com"),
    ("%{o}", "email.example.com"),
    ("%{d}", "email.example.com"),
    ("%{d4}", "email.example.com"),
    ("%{d3}", "email.example.com"),
    ("%{d2}", "example.com"),
    ("%{d1}", "com"),
    ("%{dr}", "com.example.email"),
    ("%{d2r}", "example.email"),
    ("%{l}", "strong-bad"),
    ("%{l-}", "strong.bad"),
    ("%{lr}", "strong-bad"),
    ("%{lr-}", "bad.strong"),
    ("%{l1r-}", "strong"),
    ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
    ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
    ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
    ("x%%y%_z%-w", "x%y z%20w"),
]


@pytest.mark.parametrize(("spec", "expected"), MACROS)
def test_macro_expansion(spec, expected):
    check = _Check(client_ip("192.0.2.3"), "strong-bad", "email.example.com", "mx.example.org")
    assert expand(spec, check, "email.example.com") == expected


def test_macro_expansion_of_ipv6():
    check = _Check(client_ip("2001:db8::cb01"), "a", "b.example", "")
    assert expand("%{ir}.%{v}._spf.%{d2}", check, "email.example.com") == (
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com")


@pytest.mark.parametrize("spec", ["%{x}", "%y", "abc%", "%{d0}"])
def test_bad_macros_are_permerrors(spec):
    check = _Check(client_ip("192.0.2.3"), "a", "b.example", "")
    with pytest.raises(SpfError) as caught:
        expand(spec, check, "b.example")
    assert caught.value.result == "permerror"


async def test_dmarc_policy_is_found_at_the_domain_or_its_organizational_domain(responder):
    responder.add("_dmarc.shop.example", "TXT", "v=DMARC1; p=reject; sp=quarantine; adkim=s")
    responder.add("_dmarc.sub.other.example", "TXT", "some unrelated text")
    responder.add("_dmarc.other.example", "TXT", "v=DMARC1; p=none")
    responder.add("_dmarc.double.example", "TXT", "v=DMARC1; p=reject")
    responder.add("_dmarc.double.example", "TXT", "v=DMARC1; p=none")
    responder.add("_dmarc.nop.example", "TXT", "v=DMARC1; rua=mailto:x@nop.example")
    dns, orgs = auth_dns(responder), dmarc.OrgDomains()
    own = await dmarc.find_policy(dns, orgs, "shop.example")
    assert (own.domain, own.p, own.adkim, own.aspf, own.applied("shop.example")) == (
        "shop.example", "reject", "s", "r", "reject")
    sub = await dmarc.find_policy(dns, orgs, "mail.shop.example")
    assert (sub.domain, sub.applied("mail.shop.example")) == ("shop.example", "quarantine")
    org = await dmarc.find_policy(dns, orgs, "sub.other.example")
    assert (org.domain, org.p) == ("other.example", "none")
    assert await dmarc.find_policy(dns, orgs, "double.example") is None
    assert await dmarc.find_policy(dns, orgs, "nop.example") is None
    assert await dmarc.find_policy(dns, orgs, "nothing.example") is None


def test_organizational_domains_use_the_public_suffix_list():
    orgs = dmarc.OrgDomains()
    assert orgs.of("mail.shop.example.co.uk") == "example.co.uk"
    assert orgs.of("a.b.sellershop.example") == "sellershop.example"
    assert orgs.aligned("mail.example.co.uk", "example.co.uk", "r")
    assert not orgs.aligned("mail.example.co.uk", "example.co.uk", "s")
    assert not orgs.aligned("one.co.uk", "two.co.uk", "r")


def results(spf: str, dkim: str | None, verdict: str, authenticated: bool = False) -> AuthResults:
    signatures = (DkimSignature("shop.example", "s1", dkim),) if dkim else ()
    return AuthResults(SpfResult(spf, "shop.example"), signatures, verdict, "shop.example",
                       authenticated=authenticated)


STRICT, RELAXED = AuthSettings(), AuthSettings(mode="relaxed")
DECISIONS = [
    # (results, settings, expected reply or None to accept)
    (results("pass", None, "pass", True), STRICT, None),
    (results("pass", None, "none", True), STRICT, None),
    (results("softfail", "pass", "none", True), STRICT, None),
    (results("softfail", None, "fail"), STRICT, replies.R550_AUTH_FAILED),
    (results("fail", None, "fail"), STRICT, replies.R550_SPF_FAIL),
    (results("fail", None, "none"), STRICT, replies.R550_SPF_FAIL),
    (results("softfail", None, "none"), STRICT, replies.R550_AUTH_FAILED),
    (results("neutral", None, "none"), STRICT, replies.R550_AUTH_FAILED),
    (results("none", None, "none"), STRICT, replies.R550_AUTH_FAILED),
    (results("temperror", None, "none"), STRICT, replies.R451_AUTH_TEMPORARY),
    (results("pass", None, "temperror"), STRICT, replies.R451_AUTH_TEMPORARY),
    (results("none", "temperror", "none"), STRICT, replies.R451_AUTH_TEMPORARY),
    (results("softfail", None, "none"), RELAXED, None),
    (results("none", None, "none"), RELAXED, None),
    (results("neutral", None, "none"), RELAXED, None),
    (results("fail", None, "none"), RELAXED, replies.R550_SPF_FAIL),
    (results("permerror", None, "none"), RELAXED, replies.R550_AUTH_FAILED),
    (results("none", "fail", "none"), RELAXED, replies.R550_AUTH_FAILED),
    (results("softfail", None, "fail"), RELAXED, replies.R550_AUTH_FAILED),
    (results("temperror", None, "none"), RELAXED, replies.R451_AUTH_TEMPORARY),
    (results("softfail", None, "none"), AuthSettings(relaxed_domains=("shop.example",)), None),
    (results("softfail", None, "none"), AuthSettings(relaxed_domains=("other.example",)),
     replies.R550_AUTH_FAILED),
]


@pytest.mark.parametrize(("found", "settings", "expected"), DECISIONS)
def test_decision_table(found, settings, expected):
    decision = decide(found, settings)
    if expected is None:
        assert decision is None
        return
    reply, text = decision
    assert (reply.code, reply.status) == (expected.code, expected.status)
    for word in ("SPF", "DKIM"):
        assert word in text
    assert "shop.example" not in text


def test_mode_off_records_none_and_decides_nothing():
    found = AuthResults.not_checked("shop.example")
    assert found.summary() == {"spf": "none", "dkim": "none", "dmarc": "none"}
    assert decide(found, AuthSettings(mode="off")) is None
    assert found.header("relay.test") == "Authentication-Results: relay.test; none"


async def test_checks_that_outlast_the_deadline_are_temperrors(responder):
    responder.add("chain.example", "TXT", "v=spf1 include:slow.example -all")
    authenticator = Authenticator(AuthSettings(deadline=0.05), auth_dns(responder), dmarc.OrgDomains())
    found = await authenticator.authenticate(
        AuthRequest("192.0.2.5", "mx.chain.example", "x@chain.example", b"From: x@chain.example\r\n\r\nHi\r\n",
                    "chain.example"))
    assert found.summary() == {"spf": "temperror", "dkim": "none", "dmarc": "temperror"}
    reply, _ = decide(found, AuthSettings())
    assert reply.code == 451
