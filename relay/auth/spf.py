"""SPF (RFC 7208): may this IP address send mail for this domain?

`SpfEvaluator(dns).check_host(ip, domain, local, helo)` runs the RFC's
check_host() on the asyncio resolver and returns an `SpfResult` whose
`result` is one of the RFC 8601 words: pass, fail, softfail, neutral,
none, temperror, permerror.

What is implemented: the mechanisms all, include, a, mx, ptr, ip4, ip6 and
exists with their qualifiers (+ - ~ ?) and dual CIDR lengths, the
redirect modifier (exp= is accepted and ignored: its text would only be
for the sender), the macros of section 7 (s l o d i p v h, with digits,
reversal, delimiters and the %% %_ %- escapes), the limit of 10 terms that
cause DNS lookups (include, a, mx, ptr, exists, redirect), of 10 names per
mx or ptr, and of 2 void lookups. A domain without an SPF record is
`none`; two records, a syntax error or a broken limit is `permerror`;
a DNS timeout or server failure is `temperror`.

It is written here, compact, because pyspf only looks up DNS through a
blocking, module-wide hook, and every lookup of the relay must run on the
event loop with the relay's own nameservers and cache.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import quote

from relay.auth.lookup import AuthDns, DnsTempError

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
MECHANISMS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}
LOOKUP_TERMS = {"include", "a", "mx", "ptr", "exists"}
MAX_LOOKUPS = 10
MAX_VOID_LOOKUPS = 2
MAX_NAMES = 10  # per mx or ptr mechanism

_TERM = re.compile(r"^([+\-~?]?)([A-Za-z][A-Za-z0-9_.\-]*)(?::([^/]*))?((?:/\d+)?(?://\d+)?)$")
_IP_TERM = re.compile(r"^[+\-~?]?ip[46]:", re.IGNORECASE)
_MODIFIER = re.compile(r"^([A-Za-z][A-Za-z0-9_.\-]*)=(.*)$")
_MACRO = re.compile(r"%(?:\{([slodiphcrtvSLODIPHCRTV])(\d*)(r?)([.\-+,/_=]*)\}|(.)|$)")


@dataclass(frozen=True)
class SpfResult:
    result: str
    domain: str          # the domain checked (MAIL FROM's, or the HELO name)
    reason: str = ""     # the term that matched, or what went wrong (for the log)


class SpfError(Exception):
    def __init__(self, result: str, reason: str):
        super().__init__(reason)
        self.result = result


@dataclass(frozen=True)
class Term:
    qualifier: str
    name: str
    domain_spec: str | None    # for ip4 and ip6: the network
    cidr4: int | None = None
    cidr6: int | None = None


@dataclass
class Record:
    terms: list[Term] = field(default_factory=list)
    redirect: str | None = None


@dataclass
class _Check:
    """One check_host() run: the client, the sender, and the lookups spent so far."""

    ip: IP
    local: str           # the sender's local part ("postmaster" for a HELO check)
    sender_domain: str
    helo: str
    lookups: int = 0
    voids: int = 0

    def spend_lookup(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise SpfError("permerror", f"more than {MAX_LOOKUPS} DNS-querying terms")

    def void(self, found: list) -> list:
        if not found:
            self.voids += 1
            if self.voids > MAX_VOID_LOOKUPS:
                raise SpfError("permerror", f"more than {MAX_VOID_LOOKUPS} void lookups")
        return found


def client_ip(text: str) -> IP:
    """The client's address; an IPv4-mapped IPv6 address counts as IPv4 (RFC 7208 5)."""
    ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_record(text: str) -> Record:
    """The terms of an SPF record ("v=spf1 ..."); raises SpfError(permerror) on bad syntax."""
    record = Record()
    seen: set[str] = set()
    for word in text.split(" ")[1:]:
        if not word:
            continue
        modifier = _MODIFIER.match(word)
        if modifier:
            name, value = modifier.group(1).lower(), modifier.group(2)
            if name in seen and name in ("redirect", "exp"):
                raise SpfError("permerror", f"{name}= given twice")
            seen.add(name)
            if name == "redirect":
                record.redirect = value
            continue  # exp= and unknown modifiers are ignored (RFC 7208 6)
        record.terms.append(_parse_mechanism(word))
    return record


def _parse_mechanism(word: str) -> Term:
    if _IP_TERM.match(word):
        return _parse_ip(word)
    m = _TERM.match(word)
    if not m or m.group(2).lower() not in MECHANISMS:
        raise SpfError("permerror", f"unknown or malformed term {word!r}")
    qualifier, name, spec, cidr = m.group(1) or "+", m.group(2).lower(), m.group(3), m.group(4)
    if name in ("include", "exists") and not spec:
        raise SpfError("permerror", f"{name} needs a domain")
    if (name in ("all", "include", "exists", "ptr") and cidr) or (name == "all" and spec is not None):
        raise SpfError("permerror", f"malformed term {word!r}")
    if spec == "":
        raise SpfError("permerror", f"empty domain in {word!r}")
    cidr4, cidr6 = _dual_cidr(cidr, word)
    return Term(qualifier, name, spec, cidr4, cidr6)


def _dual_cidr(text: str, word: str) -> tuple[int | None, int | None]:
    if not text:
        return None, None
    v4, _, v6 = text.partition("//")
    cidr4 = int(v4[1:]) if v4 else None
    cidr6 = int(v6) if v6 else None
    if (cidr4 is not None and cidr4 > 32) or (cidr6 is not None and cidr6 > 128):
        raise SpfError("permerror", f"CIDR length out of range in {word!r}")
    return cidr4, cidr6


def _parse_ip(word: str) -> Term:
    qualifier = word[0] if word[0] in QUALIFIERS else "+"
    body = word[1:] if word[0] in QUALIFIERS else word
    name, _, value = body.partition(":")
    name = name.lower()
    address, slash, length = value.partition("/")
    try:
        network = ipaddress.ip_network(f"{address}/{length}" if slash else address, strict=False)
    except ValueError:
        raise SpfError("permerror", f"malformed {name} network {value!r}") from None
    if network.version != (4 if name == "ip4" else 6) or slash and not length.isdigit():
        raise SpfError("permerror", f"malformed {name} network {value!r}")
    return Term(qualifier, name, str(network))


def expand(spec: str, check: _Check, domain: str) -> str:
    """Macro expansion of a domain-spec (RFC 7208 7), cut to 253 characters."""
    def one(m: re.Match) -> str:
        if m.group(1) is None:
            escapes = {"%": "%", "_": " ", "-": "%20"}
            if m.group(5) not in escapes:
                raise SpfError("permerror", "malformed macro")
            return escapes[m.group(5)]
        letter, digits, reverse, delimiters = m.groups()[:4]
        value = _macro_value(letter.lower(), check, domain)
        parts = re.split("[" + re.escape(delimiters or ".") + "]", value)
        if reverse:
            parts.reverse()
        if digits:
            if int(digits) == 0:
                raise SpfError("permerror", "macro with zero labels")
            parts = parts[-int(digits):]
        text = ".".join(parts)
        return quote(text, safe="") if letter.isupper() else text

    expanded = _MACRO.sub(one, spec) if "%" in spec else spec
    while len(expanded) > 253 and "." in expanded:
        expanded = expanded.split(".", 1)[1]
    return expanded.rstrip(".")


def _macro_value(letter: str, check: _Check, domain: str) -> str:
    ip = check.ip
    if letter == "i":
        if ip.version == 4:
            return str(ip)
        return ".".join(ip.exploded.replace(":", ""))
    return {
        "s": f"{check.local}@{check.sender_domain}", "l": check.local, "o": check.sender_domain,
        "d": domain, "h": check.helo,
        "v": "in-addr" if ip.version == 4 else "ip6", "p": "unknown",
        "c": str(ip), "r": "unknown", "t": "0",
    }[letter]


def valid_domain(domain: str) -> bool:
    labels = domain.rstrip(".").split(".")
    return (len(labels) > 1 and len(domain) <= 253
            and all(0 < len(label) <= 63 for label in labels))


class SpfEvaluator:
    def __init__(self, dns: AuthDns):
        self.dns = dns

    async def check_host(self, ip: str, domain: str, local: str = "postmaster", helo: str = "") -> SpfResult:
        """check_host() for `local`@`domain` (MAIL FROM, or postmaster@ the HELO name)."""
        domain = domain.lower().rstrip(".")
        try:
            check = _Check(client_ip(ip), local or "postmaster", domain, helo)
        except ValueError:
            return SpfResult("none", domain, "no usable client address")
        if not valid_domain(domain):
            return SpfResult("none", domain, "not a fully qualified domain")
        try:
            result, reason = await self._evaluate(check, domain)
        except SpfError as exc:
            return SpfResult(exc.result, domain, str(exc))
        except DnsTempError as exc:
            return SpfResult("temperror", domain, str(exc))
        return SpfResult(result, domain, reason)

    async def _record(self, domain: str) -> Record | None:
        records = [t for t in await self.dns.txt(domain)
                   if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]
        if len(records) > 1:
            raise SpfError("permerror", "more than one SPF record")
        return parse_record(records[0]) if records else None

    async def _evaluate(self, check: _Check, domain: str) -> tuple[str, str]:
        record = await self._record(domain)
        if record is None:
            return "none", "no SPF record"
        for term in record.terms:
            if term.name in LOOKUP_TERMS:
                check.spend_lookup()
            if await self._matches(check, term, domain):
                spec = f":{term.domain_spec}" if term.domain_spec else ""
                return QUALIFIERS[term.qualifier], f"{term.qualifier}{term.name}{spec}"
        if record.redirect is not None:
            check.spend_lookup()
            target = expand(record.redirect, check, domain)
            if not valid_domain(target):
                raise SpfError("permerror", "redirect to an invalid domain")
            result, reason = await self._evaluate(check, target)
            if result == "none":
                raise SpfError("permerror", "redirect to a domain without an SPF record")
            return result, reason
        return "neutral", "no term matched"

    async def _matches(self, check: _Check, term: Term, domain: str) -> bool:
        ip = check.ip
        if term.name == "all":
            return True
        if term.name in ("ip4", "ip6"):
            network = ipaddress.ip_network(term.domain_spec)
            return network.version == ip.version and ip in network
        target = expand(term.domain_spec, check, domain) if term.domain_spec else domain
        if term.name == "include":
            return await self._include(check, target)
        if term.name == "exists":
            return bool(check.void(await self.dns.addresses(target, 4)))
        if term.name == "a":
            return self._in_any(ip, check.void(await self.dns.addresses(target, ip.version)), term)
        if term.name == "mx":
            return await self._mx(check, target, term)
        return await self._ptr(check, target)

    async def _include(self, check: _Check, target: str) -> bool:
        if not valid_domain(target):
            raise SpfError("permerror", "include of an invalid domain")
        result, _ = await self._evaluate(check, target)
        if result == "none":
            raise SpfError("permerror", "include of a domain without an SPF record")
        return result == "pass"

    async def _mx(self, check: _Check, target: str, term: Term) -> bool:
        exchanges = check.void(await self.dns.mx(target))
        if len(exchanges) > MAX_NAMES:
            raise SpfError("permerror", f"more than {MAX_NAMES} MX names")
        for name in exchanges:
            if self._in_any(check.ip, await self.dns.addresses(name, check.ip.version), term):
                return True
        return False

    async def _ptr(self, check: _Check, target: str) -> bool:
        """Validated reverse names that end in `target`; DNS errors here are no match (RFC 7208 5.5)."""
        target = target.lower()
        try:
            names = (await self.dns.ptr(check.ip))[:MAX_NAMES]
            for name in names:
                if name.lower() == target or name.lower().endswith("." + target):
                    if str(check.ip) in await self.dns.addresses(name, check.ip.version):
                        return True
        except DnsTempError:
            return False
        return False

    @staticmethod
    def _in_any(ip: IP, addresses: list[str], term: Term) -> bool:
        length = term.cidr4 if ip.version == 4 else term.cidr6
        for address in addresses:
            prefix = length if length is not None else ip.max_prefixlen
            if ip in ipaddress.ip_network(f"{address}/{prefix}", strict=False):
                return True
        return False
