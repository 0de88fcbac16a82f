"""DNS for the authentication checks: dnspython's asyncio resolver, cached.

`AuthDns(resolver)` asks the relay's `[dns]` nameservers and answers with
plain values: `txt(name)` the TXT records (each record's strings joined),
`addresses(name, version)` the A or AAAA addresses, `mx(name)` the mail
exchanges, `ptr(ip)` the reverse names. A name that does not exist and a
name without records of the type both give an empty list (a "void"
lookup, which SPF counts). A timeout, a server failure or a broken answer
raises `DnsTempError`: the checks turn it into `temperror`, never a pass.

Answers are kept in a `dns.resolver.LRUCache` on the resolver for as long
as their TTL allows (dnspython also keeps NXDOMAIN answers), so the many
messages of one correspondent cost one lookup per TTL.
"""

from __future__ import annotations

import ipaddress

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver
import dns.reversename

CACHE_ENTRIES = 10_000


class DnsTempError(Exception):
    """DNS gave no usable answer this time (timeout, SERVFAIL, broken reply)."""


class AuthDns:
    def __init__(self, resolver: dns.asyncresolver.Resolver):
        if resolver.cache is None:
            resolver.cache = dns.resolver.LRUCache(CACHE_ENTRIES)
        self.resolver = resolver

    async def _query(self, name: str | dns.name.Name, rdtype: str) -> list:
        try:
            qname = name if isinstance(name, dns.name.Name) else dns.name.from_text(name)
        except dns.exception.DNSException:  # a label too long, an empty label: no such name
            return []
        try:
            answer = await self.resolver.resolve(qname, rdtype, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:  # timeouts, SERVFAIL, malformed replies
            raise DnsTempError(f"{rdtype} lookup failed: {exc.__class__.__name__}") from None
        return list(answer.rrset) if answer.rrset is not None else []

    async def txt(self, name: str) -> list[str]:
        records = await self._query(name, "TXT")
        return [b"".join(r.strings).decode("utf-8", "replace") for r in records]

    async def addresses(self, name: str, version: int) -> list[str]:
        records = await self._query(name, "A" if version == 4 else "AAAA")
        return [r.address for r in records]

    async def mx(self, name: str) -> list[str]:
        records = await self._query(name, "MX")
        return [r.exchange.to_text(omit_final_dot=True) for r in records]

    async def ptr(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[str]:
        records = await self._query(dns.reversename.from_address(str(ip)), "PTR")
        return [r.target.to_text(omit_final_dot=True) for r in records]
