"""DMARC (RFC 7489): does an SPF or DKIM pass speak for the header From domain?

`find_policy(dns, orgs, from_domain)` looks for the domain's record at
`_dmarc.<from domain>`, and when there is none, at `_dmarc.<organizational
domain>`; it returns a `DmarcPolicy` or None (no usable record: none at
either place, more than one, or one without a valid `p=`). A DNS timeout
raises `DnsTempError`.

`evaluate(policy, ...)` is the verdict: `pass` when SPF passed for a
domain aligned with the From domain or a DKIM signature of an aligned
domain passed, `fail` otherwise, `temperror` when a check that could still
pass could not be completed, `none` without a policy. Alignment is relaxed
(same organizational domain) or strict (the same domain), per `aspf` and
`adkim`. `OrgDomains` finds organizational domains with the public suffix
list that the `publicsuffixlist` package ships (no network).
"""

from __future__ import annotations

from dataclasses import dataclass

from publicsuffixlist import PublicSuffixList

from relay.auth.dkim_check import DkimSignature
from relay.auth.lookup import AuthDns
from relay.auth.spf import SpfResult

POLICIES = ("none", "quarantine", "reject")


class OrgDomains:
    """Organizational domains (RFC 7489 3.2); the list is parsed once, when built."""

    def __init__(self) -> None:
        self.psl = PublicSuffixList()

    def of(self, domain: str) -> str:
        domain = domain.lower().rstrip(".")
        return self.psl.privatesuffix(domain) or domain

    def aligned(self, domain: str, from_domain: str, mode: str) -> bool:
        domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
        if mode == "s":
            return domain == from_domain
        return self.of(domain) == self.of(from_domain)


@dataclass(frozen=True)
class DmarcPolicy:
    domain: str          # where the record was found
    p: str
    sp: str
    adkim: str = "r"
    aspf: str = "r"

    def applied(self, from_domain: str) -> str:
        """p= for the domain itself; sp= when the record came from the organizational domain."""
        return self.p if from_domain.lower() == self.domain else self.sp


def parse_record(text: str) -> dict[str, str] | None:
    """The tags of a DMARC record, or None if it is not one (it must start with v=DMARC1)."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags.setdefault(key.strip().lower(), value.strip())
        elif part.strip():
            return None
    if text.split(";", 1)[0].replace(" ", "") != "v=DMARC1":
        return None
    return tags


def _policy(tags: dict[str, str], domain: str) -> DmarcPolicy | None:
    p = tags.get("p", "").lower()
    if p not in POLICIES:
        return None
    sp = tags.get("sp", p).lower()
    adkim, aspf = tags.get("adkim", "r").lower(), tags.get("aspf", "r").lower()
    return DmarcPolicy(domain, p, sp if sp in POLICIES else p,
                       adkim if adkim in ("r", "s") else "r", aspf if aspf in ("r", "s") else "r")


async def _lookup(dns: AuthDns, domain: str) -> DmarcPolicy | None:
    found = [tags for tags in map(parse_record, await dns.txt(f"_dmarc.{domain}")) if tags is not None]
    if len(found) != 1:  # none, or more than one: no policy (RFC 7489 6.6.3)
        return None
    return _policy(found[0], domain)


async def find_policy(dns: AuthDns, orgs: OrgDomains, from_domain: str) -> DmarcPolicy | None:
    from_domain = from_domain.lower().rstrip(".")
    policy = await _lookup(dns, from_domain)
    org = orgs.of(from_domain)
    if policy is None and org != from_domain:
        policy = await _lookup(dns, org)
    return policy


@dataclass(frozen=True)
class Alignment:
    spf: bool    # SPF passed for a domain aligned with the From domain
    dkim: bool   # a signature of an aligned domain passed


def alignment(orgs: OrgDomains, from_domain: str, spf: SpfResult, signatures: list[DkimSignature],
              aspf: str = "r", adkim: str = "r") -> Alignment:
    return Alignment(
        spf=spf.result == "pass" and orgs.aligned(spf.domain, from_domain, aspf),
        dkim=any(s.result == "pass" and s.domain and orgs.aligned(s.domain, from_domain, adkim)
                 for s in signatures))


def evaluate(policy: DmarcPolicy | None, aligned: Alignment, spf: SpfResult,
             signatures: list[DkimSignature]) -> str:
    if policy is None:
        return "none"
    if aligned.spf or aligned.dkim:
        return "pass"
    if spf.result == "temperror" or any(s.result == "temperror" for s in signatures):
        return "temperror"
    return "fail"
