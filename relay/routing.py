"""Where to deliver: MX lookup with the RFC 5321 fallback, or a smarthost.

`Router.route(domain)` returns the (address, port) pairs to try in order.
In mx mode it asks DNS for the domain's MX records (lowest preference
first, equal preferences shuffled), resolves each exchange's AAAA and A
records, and, when the domain has no MX records at all, uses the domain's
own addresses (RFC 5321 section 5.1). A null MX (RFC 7505), a domain that
does not exist, or mail servers that DNS says have no address are a
permanent failure; timeouts and server failures are temporary. In smarthost mode every domain goes to the one configured host.

All lookups use dnspython's asyncio resolver, pointed at `[dns]
nameservers` when they are configured.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver


class RouteError(Exception):
    def __init__(self, message: str, permanent: bool, status: str):
        super().__init__(message)
        self.permanent = permanent
        self.status = status


@dataclass(frozen=True)
class Hop:
    host: str       # what we connect to (an IP address, or the smarthost name)
    port: int
    name: str       # the exchange's name, for logs


def make_resolver(nameservers: tuple[tuple[str, int], ...], timeout: float) -> dns.asyncresolver.Resolver:
    if nameservers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in nameservers]
    else:
        try:
            resolver = dns.asyncresolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = ["127.0.0.1"]
    resolver.timeout = timeout
    resolver.lifetime = timeout * 2
    return resolver


class Router:
    def __init__(self, mode: str, resolver: dns.asyncresolver.Resolver, mx_port: int = 25,
                 smarthost: tuple[str, int] | None = None):
        self.mode = mode
        self.resolver = resolver
        self.mx_port = mx_port
        self.smarthost = smarthost

    async def route(self, domain: str) -> list[Hop]:
        if self.mode == "smarthost":
            assert self.smarthost is not None
            host, port = self.smarthost
            return [Hop(host, port, host)]
        exchanges = await self._exchanges(domain)
        hops: list[Hop] = []
        unsure = False
        for name in exchanges:
            addresses, complete = await self._addresses(name)
            unsure = unsure or not complete
            hops.extend(Hop(address, self.mx_port, name) for address in addresses)
        if hops:
            return hops
        if unsure:
            raise RouteError(f"no address found yet for the mail servers of {domain}", False, "4.4.3")
        raise RouteError(f"the mail servers of {domain} have no address", True, "5.4.4")

    async def _exchanges(self, domain: str) -> list[str]:
        try:
            answer = await self.resolver.resolve(domain, "MX")
        except dns.resolver.NXDOMAIN:
            raise RouteError(f"domain {domain} does not exist", True, "5.1.2") from None
        except dns.resolver.NoAnswer:
            return [domain]
        except dns.exception.DNSException as exc:  # timeouts, server failures, broken answers
            raise RouteError(f"DNS lookup of {domain} failed: {exc.__class__.__name__}", False, "4.4.3") from None
        records = sorted(answer, key=lambda r: (r.preference, random.random()))
        if len(records) == 1 and str(records[0].exchange) == ".":
            raise RouteError(f"domain {domain} accepts no mail (null MX)", True, "5.1.10")
        return [str(r.exchange).rstrip(".") for r in records if str(r.exchange) != "."]

    async def _addresses(self, name: str) -> tuple[list[str], bool]:
        """The exchange's addresses, and whether DNS answered every question."""
        found: list[str] = []
        complete = True
        for rdtype in ("AAAA", "A"):
            try:
                answer = await self.resolver.resolve(name, rdtype)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException:  # timeouts, server failures, broken answers
                complete = False
                continue
            found.extend(r.address for r in answer)
        return found, complete
