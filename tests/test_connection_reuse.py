"""Deliveries to one server reuse an idle connection, and survive its loss.

The mailbox here counts its SMTP sessions (one EHLO each) and can drop a
connection just as the relay starts its next transaction on it.
"""

from __future__ import annotations

import asyncio

from aiosmtpd.smtp import SMTP as AioSMTP

from tests.conftest import SinkHandler, compose, open_conversation, send, sql


class CountingHandler(SinkHandler):
    def __init__(self):
        super().__init__()
        self.sessions = 0
        self.drop_at_next_mail = False

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.drop_at_next_mail:  # gone just as the kept connection is used again
            self.drop_at_next_mail = False
            server.transport.abort()
            return "421 4.3.2 closing"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.sessions += 1
        session.host_name = hostname
        return responses


async def counting_sink():
    handler = CountingHandler()
    protocols: list[AioSMTP] = []
    loop = asyncio.get_running_loop()

    def factory():
        protocol = AioSMTP(handler, hostname="sink.test", data_size_limit=None, loop=loop)
        protocols.append(protocol)
        return protocol

    server = await loop.create_server(factory, "127.0.0.1", 0)
    return handler, protocols, server


async def seller_writes(app, conv, subject: str) -> None:
    data = compose(sender=conv.seller_email, to=conv.buyer_alias, subject=f"{subject} {conv.order_id}")
    await send(app.server.port, conv.seller_email, [conv.buyer_alias], data)


async def test_consecutive_deliveries_share_one_connection(relay_factory):
    handler, _protocols, server = await counting_sink()
    try:
        app = await relay_factory(smarthost_port=server.sockets[0].getsockname()[1])
        conv = open_conversation(app.config_path)
        for n in range(3):
            await seller_writes(app, conv, f"update {n}")
            await handler.wait_for(n + 1)
        assert handler.sessions == 1
    finally:
        server.close()


async def test_a_connection_the_server_closed_is_replaced(relay_factory):
    handler, _protocols, server = await counting_sink()
    try:
        app = await relay_factory(smarthost_port=server.sockets[0].getsockname()[1])
        conv = open_conversation(app.config_path)
        await seller_writes(app, conv, "first")
        await handler.wait_for(1)
        handler.drop_at_next_mail = True
        await seller_writes(app, conv, "second")
        await handler.wait_for(2)
        assert [m.message["Subject"].split()[0] for m in handler.messages] == ["first", "second"]
        assert handler.sessions == 2
        await asyncio.sleep(0.5)  # nothing arrives twice
        assert len(handler.messages) == 2
        # Replaced at once, not retried later: no deferral was ever logged.
        assert sql(app.config_path, "SELECT count(*) FROM message_events WHERE status = 'deferred'") == [(0,)]
    finally:
        server.close()
