"""A small authoritative DNS responder on loopback, for tests.

Built on dnspython's message API over a real UDP socket. Records are set
with `add(name, rdtype, text, ttl)`; a name with no records at all gets
NXDOMAIN, a known name without the asked type gets an empty NOERROR
answer, and names listed in `timeouts` get no answer at all (a resolver
timeout). Negative answers carry an SOA record, so resolvers may cache
them. `queries` counts what was asked, so tests can see caching.

`fallback_txt`, when set, is a wildcard default: the TXT answer for every
name without TXT records of its own, except names with a label that starts
with "_" (DMARC records, DKIM keys) and names in `timeouts`. The test
fixtures set it to an SPF record that lets loopback send for any domain.

`start()` serves on the running event loop; `start_thread()` serves from
a thread of its own, for relays in child processes and for configs written
before any event loop runs.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

NEGATIVE_SOA = "ns.test. hostmaster.test. 1 300 300 300 60"


class DnsResponder(asyncio.DatagramProtocol):
    def __init__(self, fallback_txt: str | None = None):
        self.records: dict[tuple[str, str], list[tuple[str, int]]] = {}
        self.timeouts: set[str] = set()
        self.queries: Counter = Counter()
        self.fallback_txt = txt_value(fallback_txt) if fallback_txt else None
        self.transport = None
        self.port = 0
        self._sock: socket.socket | None = None

    def add(self, name: str, rdtype: str, text: str, ttl: int = 300) -> None:
        """`text` in zone-file form; a TXT value not in quotes is quoted (and split at 255)."""
        if rdtype.upper() == "TXT":
            text = txt_value(text)
        self.records.setdefault((_norm(name), rdtype.upper()), []).append((text, ttl))

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        self.port = self.transport.get_extra_info("sockname")[1]

    def start_thread(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._serve, name="dns-responder", daemon=True).start()

    def _serve(self) -> None:
        sock = self._sock
        while True:
            try:
                data, addr = sock.recvfrom(65535)
            except OSError:  # closed by stop()
                return
            reply = self.answer(data)
            if reply is not None:
                sock.sendto(reply, addr)

    def stop(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self._sock is not None:
            self._sock.close()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        reply = self.answer(data)
        if reply is not None:
            self.transport.sendto(reply, addr)

    def answer(self, data: bytes) -> bytes | None:
        """The reply to one query, or None for no reply at all."""
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return None
        question = query.question[0]
        name = _norm(question.name.to_text())
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries[(name, rdtype)] += 1
        if name in self.timeouts:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        entries = self.records.get((name, rdtype))
        if not entries and rdtype == "TXT" and self.fallback_txt and "._" not in f".{name}":
            entries = [(self.fallback_txt, 300)]
        if entries:
            rrset = dns.rrset.RRset(question.name, dns.rdataclass.IN, question.rdtype)
            for text, ttl in entries:
                rrset.add(dns.rdata.from_text(dns.rdataclass.IN, question.rdtype, text), ttl)
            response.answer.append(rrset)
        else:
            if not any(key[0] == name for key in self.records):
                response.set_rcode(dns.rcode.NXDOMAIN)
            soa = dns.rrset.from_text(question.name.parent() if len(question.name) > 1 else question.name,
                                      60, "IN", "SOA", NEGATIVE_SOA)
            response.authority.append(soa)
        return response.to_wire()


def txt_value(text: str) -> str:
    if text.startswith('"'):
        return text
    return " ".join(f'"{text[i:i + 255]}"' for i in range(0, max(len(text), 1), 255))


def _norm(name: str) -> str:
    return name.lower().rstrip(".")
