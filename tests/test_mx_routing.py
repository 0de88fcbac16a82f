"""mx mode against a real DNS responder on loopback.

Every exchange resolves to a loopback address, and `mx_port` points at the
sink's port, so "the buyer's mail server" is the sink. A second sink on
127.0.0.2 (same port) tells which exchange the relay chose; 127.0.0.3 has
nobody listening.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager

import pytest
from aiosmtpd.smtp import SMTP as AioSMTP

from relay import config as config_mod
from relay.app import App
from tests.conftest import SinkHandler, compose, open_conversation, run_cli, send, sql, unsealed, wait_until, write_config

BUYER_DOMAIN = "buyermail.example"
SELLER_DOMAIN = "sellershop.example"


async def seller_writes(app, conv) -> None:
    data = compose(sender=f"Shop One <{conv.seller_email}>", to=conv.buyer_alias,
                   subject=f"Your order {conv.order_id}", body="It ships today.\n")
    await send(app.server.port, conv.seller_email, [conv.buyer_alias], data)


def statuses(app) -> list[str]:
    code, out = run_cli(app.config_path, "message", "list")
    assert code == 0
    return [json.loads(line)["status"] for line in out.splitlines()]


def seller_mail_server(dns) -> None:
    """Where DSNs to the seller go: an MX pointing at the sink."""
    dns.add(SELLER_DOMAIN, "MX", f"10 mx.{SELLER_DOMAIN}.")
    dns.add(f"mx.{SELLER_DOMAIN}", "A", "127.0.0.1")


async def expect_bounce(app, sink, conv, status: str) -> None:
    [dsn] = await sink.handler.wait_for(1)
    assert dsn.rcpt_tos == [conv.seller_email] and dsn.mail_from in ("", "<>")
    assert dsn.message.get_content_type() == "multipart/report"
    text = dsn.data.decode()
    assert f"Final-Recipient: rfc822; {conv.buyer_alias}" in text
    assert f"Status: {status}" in text
    assert conv.buyer_email not in text
    assert statuses(app) == ["bounced"]


@pytest.mark.parametrize("records", [
    # an MX record naming a host with an address
    [(BUYER_DOMAIN, "MX", f"10 mx1.{BUYER_DOMAIN}."), (f"mx1.{BUYER_DOMAIN}", "A", "127.0.0.1")],
    # no MX: the domain's own address (RFC 5321 section 5.1)
    [(BUYER_DOMAIN, "A", "127.0.0.1")],
], ids=["mx", "a-fallback"])
async def test_delivery_finds_the_mail_server(relay_factory, sink, dns_server, records):
    for name, rdtype, text in records:
        dns_server.add(name, rdtype, text)
    app = await relay_factory(dns_port=dns_server.port, mx_port=sink.port)
    conv = open_conversation(app.config_path)
    await seller_writes(app, conv)
    [got] = await sink.handler.wait_for(1)
    assert got.rcpt_tos == [conv.buyer_email]
    assert dns_server.queries[(BUYER_DOMAIN, "MX")] >= 1
    await wait_until(lambda: statuses(app) == ["delivered"])


async def test_lowest_preference_wins(relay_factory, sink, dns_server):
    primary = SinkHandler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: AioSMTP(primary, hostname="primary.test", loop=loop),
                                      "127.0.0.2", sink.port)
    try:
        dns_server.add(BUYER_DOMAIN, "MX", f"20 backup.{BUYER_DOMAIN}.")
        dns_server.add(BUYER_DOMAIN, "MX", f"10 primary.{BUYER_DOMAIN}.")
        dns_server.add(f"backup.{BUYER_DOMAIN}", "A", "127.0.0.1")
        dns_server.add(f"primary.{BUYER_DOMAIN}", "A", "127.0.0.2")
        app = await relay_factory(dns_port=dns_server.port, mx_port=sink.port)
        conv = open_conversation(app.config_path)
        # The responder shuffles the records it returns: several messages, several draws.
        for _ in range(6):
            await seller_writes(app, conv)
        got = await primary.wait_for(6)
        assert all(m.rcpt_tos == [conv.buyer_email] for m in got)
        await wait_until(lambda: statuses(app) == ["delivered"] * 6)
        assert sink.handler.messages == []
    finally:
        server.close()


async def test_unreachable_preferred_exchange_falls_through(relay_factory, sink, dns_server):
    dns_server.add(BUYER_DOMAIN, "MX", f"10 dead.{BUYER_DOMAIN}.")
    dns_server.add(BUYER_DOMAIN, "MX", f"20 backup.{BUYER_DOMAIN}.")
    dns_server.add(f"dead.{BUYER_DOMAIN}", "A", "127.0.0.3")  # nothing listens there
    dns_server.add(f"backup.{BUYER_DOMAIN}", "A", "127.0.0.1")
    app = await relay_factory(dns_port=dns_server.port, mx_port=sink.port)
    conv = open_conversation(app.config_path)
    await seller_writes(app, conv)
    [got] = await sink.handler.wait_for(1)
    assert got.rcpt_tos == [conv.buyer_email]
    assert dns_server.queries[(f"dead.{BUYER_DOMAIN}", "A")] >= 1
    await wait_until(lambda: statuses(app) == ["delivered"])
    [(attempts,)] = sql(app.config_path, "SELECT attempts FROM queue")
    assert attempts == 1  # one attempt, two hops: not a retry


async def test_null_mx_bounces(relay_factory, sink, dns_server):
    dns_server.add(BUYER_DOMAIN, "MX", "0 .")
    dns_server.add(BUYER_DOMAIN, "A", "127.0.0.1")  # must not be used as a fallback
    seller_mail_server(dns_server)
    app = await relay_factory(dns_port=dns_server.port, mx_port=sink.port)
    conv = open_conversation(app.config_path)
    await seller_writes(app, conv)
    await expect_bounce(app, sink, conv, "5.1.10")
    assert sink.handler.to(conv.buyer_email) == []


async def test_nonexistent_domain_bounces(relay_factory, sink, dns_server):
    seller_mail_server(dns_server)
    app = await relay_factory(dns_port=dns_server.port, mx_port=sink.port)
    conv = open_conversation(app.config_path)
    await seller_writes(app, conv)
    await expect_bounce(app, sink, conv, "5.1.2")
    [(attempts,)] = sql(app.config_path, "SELECT attempts FROM queue q JOIN messages m "
                                         "ON m.id = q.message_id WHERE m.kind = 'conversation'")
    assert attempts == 1


@asynccontextmanager
async def quick_dns_relay(folder, sink, dns_server):
    """A relay whose resolver gives up after 0.3 s, so a DNS timeout costs little."""
    path = write_config(folder, dns_port=dns_server.port, mx_port=sink.port)
    path.write_text(path.read_text().replace("[dns]\n", "[dns]\ntimeout = 0.3\n"))
    app = App.build(config_mod.load(path))
    app.config_path = path
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


def deferred_twice(path):
    """The entry's state once it has failed at least twice and waits: (state, attempts, error)."""
    def check():
        rows = sql(path, "SELECT state, attempts FROM queue")
        if rows[0][0] != "deferred" or rows[0][1] < 2:
            return None
        [error] = unsealed(path, "queue.last_error", "SELECT last_error, key_id FROM queue")
        return (*rows[0], error)
    return check


@pytest.mark.parametrize("silent", [BUYER_DOMAIN, f"mx1.{BUYER_DOMAIN}"])
async def test_dns_timeout_defers_then_delivers(tmp_path, sink, dns_server, silent):
    """Whether the MX lookup or the exchange's address lookup times out: try again later."""
    dns_server.add(BUYER_DOMAIN, "MX", f"10 mx1.{BUYER_DOMAIN}.")
    dns_server.timeouts.add(silent)
    async with quick_dns_relay(tmp_path, sink, dns_server) as app:
        conv = open_conversation(app.config_path)
        await seller_writes(app, conv)
        _state, _attempts, error = await wait_until(deferred_twice(app.config_path))
        assert "found yet" in error or "DNS" in error
        assert statuses(app) == ["deferred"]
        assert sql(app.config_path, "SELECT count(*) FROM messages WHERE kind = 'dsn'") == [(0,)]
        dns_server.timeouts.clear()  # the resolver answers again: the retry gets through
        dns_server.add(f"mx1.{BUYER_DOMAIN}", "A", "127.0.0.1")
        [got] = await sink.handler.wait_for(1)
        assert got.rcpt_tos == [conv.buyer_email]
        await wait_until(lambda: statuses(app) == ["delivered"])


async def test_domain_without_any_mail_server_bounces(relay_factory, sink, dns_server):
    dns_server.add(BUYER_DOMAIN, "TXT", '"v=spf1 -all"')  # exists, but no MX, AAAA or A
    seller_mail_server(dns_server)
    app = await relay_factory(dns_port=dns_server.port, mx_port=sink.port)
    conv = open_conversation(app.config_path)
    await seller_writes(app, conv)
    await expect_bounce(app, sink, conv, "5.4.4")
