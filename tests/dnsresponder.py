"""A small authoritative DNS responder on loopback, for tests.

Built on dnspython's message API over a real UDP socket. Records are set
with `add(name, rdtype, text, ttl)`; a name with no records at all gets
NXDOMAIN, a known name without the asked type gets an empty NOERROR
answer, and names listed in `timeouts` get no answer at all (a resolver
timeout). `queries` counts what was asked, so tests can see caching.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class DnsResponder(asyncio.DatagramProtocol):
    def __init__(self):
        self.records: dict[tuple[str, str], list[tuple[str, int]]] = {}
        self.timeouts: set[str] = set()
        self.queries: Counter = Counter()
        self.transport = None
        self.port = 0

    def add(self, name: str, rdtype: str, text: str, ttl: int = 300) -> None:
        self.records.setdefault((_norm(name), rdtype.upper()), []).append((text, ttl))

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        self.port = self.transport.get_extra_info("sockname")[1]

    def stop(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return
        question = query.question[0]
        name = _norm(question.name.to_text())
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries[(name, rdtype)] += 1
        if name in self.timeouts:
            return
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        entries = self.records.get((name, rdtype))
        if entries:
            rrset = dns.rrset.RRset(question.name, dns.rdataclass.IN, question.rdtype)
            for text, ttl in entries:
                rrset.add(dns.rdata.from_text(dns.rdataclass.IN, question.rdtype, text), ttl)
            response.answer.append(rrset)
        elif not any(key[0] == name for key in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        self.transport.sendto(response.to_wire(), addr)


def _norm(name: str) -> str:
    return name.lower().rstrip(".")
