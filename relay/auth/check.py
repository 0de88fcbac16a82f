"""Who really sent it: SPF, DKIM and DMARC for every message at DATA.

`Authenticator.authenticate(request)` runs the three checks at once on the
asyncio resolver and returns `AuthResults`, which the intake logs with
every message, accepted or refused. `AuthCheck` is the sender check of
`relay.stages` that turns them into a refusal or lets the message on.

The rule (`decide`): the header From (already known to be a participant)
is a claim, accepted only when it is authenticated:

- the From domain publishes DMARC (at its own name or its organizational
  domain): DMARC must pass, i.e. SPF passed for an aligned MAIL FROM domain
  or a DKIM signature of an aligned domain passed (the record's `aspf` and
  `adkim`; its `p=` does not soften this);
- it publishes none: SPF must pass for a MAIL FROM domain in the From
  domain's organizational domain, or a DKIM signature of such a domain
  must pass.

`[auth] mode = "relaxed"` (for every domain), or a From domain listed in
`relaxed_domains` (or below one), also accepts a domain without DMARC
whose SPF is pass (unaligned), neutral, softfail or none and whose DKIM is
none or pass (unaligned). It still refuses a DMARC fail, an SPF fail, an
SPF permerror and a DKIM signature that fails. `mode = "off"` checks
nothing and records every result as none.

Refusals: an SPF fail is 550 5.7.23, any other failure 550 5.7.1; their
text says which of SPF, DKIM and DMARC failed and names no host or
address. When the claim is not proven and a check ended in temperror (DNS
timeout or server failure, or all checks of the message together took
longer than `deadline`), the answer is 451 4.7.0: a retry may pass.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aliasing.addresses import try_parse
from aliasing.codec import Party
from policy.parsed import ParsedMessage
from relay import replies
from relay.auth import dmarc
from relay.auth.dkim_check import DkimVerifier
from relay.auth.lookup import AuthDns, DnsTempError
from relay.auth.results import AuthResults
from relay.auth.spf import SpfEvaluator, SpfResult
from relay.replies import Reply
from relay.stages import StageRefusal
from storage.directory import ThreadInfo

MODES = ("strict", "relaxed", "off")
RELAXED_SPF = {"pass", "neutral", "softfail", "none"}
RELAXED_DKIM = {"pass", "none"}


@dataclass(frozen=True)
class AuthSettings:
    mode: str = "strict"
    relaxed_domains: tuple[str, ...] = ()
    deadline: float = 20.0   # seconds for all checks of one message; then every result is temperror

    def relaxed_for(self, domain: str) -> bool:
        domain = domain.lower()
        return self.mode == "relaxed" or any(domain == d or domain.endswith("." + d)
                                             for d in self.relaxed_domains)


@dataclass(frozen=True)
class AuthRequest:
    peer_ip: str | None
    helo: str | None
    mail_from: str          # "" for the null sender
    raw: bytes
    from_domain: str | None  # the header From's domain, when it names exactly one address


def header_from_domain(parsed: ParsedMessage) -> str | None:
    try:
        header = parsed.message.get("From")
        addresses = list(header.addresses) if header is not None else []
    except Exception:  # a From header the parser cannot read at all
        return None
    author = try_parse(addresses[0].addr_spec) if len(addresses) == 1 else None
    return author.domain if author is not None else None


class Authenticator:
    def __init__(self, settings: AuthSettings, dns: AuthDns, orgs: dmarc.OrgDomains):
        self.settings = settings
        self.dns = dns
        self.orgs = orgs
        self.spf = SpfEvaluator(dns)
        self.dkim = DkimVerifier(dns)

    async def authenticate(self, request: AuthRequest) -> AuthResults:
        if self.settings.mode == "off":
            return AuthResults.not_checked(request.from_domain)
        try:
            async with asyncio.timeout(self.settings.deadline):
                spf, signatures, (policy, policy_temp) = await asyncio.gather(
                    self._spf(request), self.dkim.verify(request.raw), self._policy(request.from_domain))
        except TimeoutError:  # a chain of slow lookups: the sender may try again
            return AuthResults(SpfResult("temperror", "", "checks took too long"), (), "temperror",
                               request.from_domain)
        from_domain = request.from_domain
        if from_domain is None:
            return AuthResults(spf, tuple(signatures), "permerror", None)
        if policy_temp:
            verdict = "temperror"
            authenticated = False
        elif policy is not None:
            aligned = dmarc.alignment(self.orgs, from_domain, spf, signatures, policy.aspf, policy.adkim)
            verdict = dmarc.evaluate(policy, aligned, spf, signatures)
            authenticated = verdict == "pass"
        else:
            aligned = dmarc.alignment(self.orgs, from_domain, spf, signatures)
            verdict, authenticated = "none", aligned.spf or aligned.dkim
        return AuthResults(spf, tuple(signatures), verdict, from_domain, policy, authenticated)

    async def _spf(self, request: AuthRequest) -> SpfResult:
        sender = try_parse(request.mail_from) if request.mail_from else None
        if request.peer_ip is None:
            return SpfResult("none", sender.domain if sender else "", "no client address")
        if sender is not None:
            return await self.spf.check_host(request.peer_ip, sender.domain, sender.local, request.helo or "")
        if request.helo:  # the null sender: SPF checks postmaster@<HELO name> (RFC 7208 2.4)
            return await self.spf.check_host(request.peer_ip, request.helo, "postmaster", request.helo)
        return SpfResult("none", "", "no sender identity")

    async def _policy(self, from_domain: str | None) -> tuple[dmarc.DmarcPolicy | None, bool]:
        if from_domain is None:
            return None, False
        try:
            return await dmarc.find_policy(self.dns, self.orgs, from_domain), False
        except DnsTempError:
            return None, True


def decide(results: AuthResults, settings: AuthSettings) -> tuple[Reply, str] | None:
    """None to accept; else the reply and its text (see the module docstring)."""
    if not results.evaluated or results.authenticated:
        return None
    spf, dkim, verdict = results.spf.result, results.dkim, results.dmarc
    if verdict == "fail":
        reply = replies.R550_SPF_FAIL if spf == "fail" else replies.R550_AUTH_FAILED
        return reply, (f"Sender authentication failed: DMARC fail (SPF {spf}, DKIM {dkim}): "
                       "the From address is not proven by its domain")
    if "temperror" in (spf, dkim, verdict):
        return replies.R451_AUTH_TEMPORARY, (
            f"Sender authentication could not be completed (SPF {spf}, DKIM {dkim}, DMARC {verdict}): "
            "try again later")
    if spf == "fail":
        return replies.R550_SPF_FAIL, (f"Sender authentication failed: SPF fail (DKIM {dkim}, DMARC {verdict}): "
                                       "the sending server may not send for the sender's domain")
    if settings.relaxed_for(results.from_domain or "") and spf in RELAXED_SPF and dkim in RELAXED_DKIM:
        return None
    return replies.R550_AUTH_FAILED, (
        f"Sender authentication failed: neither SPF nor DKIM passed for the From domain (SPF {spf}, "
        f"DKIM {dkim}), which publishes no DMARC policy")


class AuthCheck:
    """The `relay.stages` sender check that applies `decide` to a message's results."""

    def __init__(self, settings: AuthSettings):
        self.settings = settings

    async def check(self, parsed: ParsedMessage, mail_from: str, thread: ThreadInfo, party: Party,
                    auth: AuthResults) -> StageRefusal | None:
        decision = decide(auth, self.settings)
        if decision is None:
            return None
        reply, text = decision
        s = auth.summary()
        return StageRefusal("auth", reply.with_text(text),
                            f"not authenticated: spf={s['spf']} dkim={s['dkim']} dmarc={s['dmarc']}")
