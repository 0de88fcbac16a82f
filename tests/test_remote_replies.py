"""Whatever bytes a receiving server answers with, the sender gets a clean DSN.

The receiving server here is a few lines of asyncio speaking just enough
SMTP: it refuses the buyer's address with a reply of undecodable bytes, a
NUL and a malformed status code, as broken or hostile servers do, and
takes anything else (the DSN to the seller) into `received`.
"""

from __future__ import annotations

import asyncio
import email
import email.policy

from tests.conftest import compose, open_conversation, send, wait_until

BAD_REPLY = b"550 5.\xff.1 <jane.buyer@buyermail.example> \xfe\x00 no such user\r\n"


async def broken_server(refuse: bytes, received: list[bytes]) -> asyncio.Server:
    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 broken.test ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"RCPT" and refuse in line.lower():
                writer.write(BAD_REPLY)
            elif verb == b"DATA":
                writer.write(b"354 go on\r\n")
                await writer.drain()
                received.append(await reader.readuntil(b"\r\n.\r\n"))
                writer.write(b"250 stored\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 broken.test\r\n")
            await writer.drain()
        writer.close()

    return await asyncio.start_server(session, "127.0.0.1", 0)


async def test_an_undecodable_refusal_still_bounces_cleanly(relay_factory):
    received: list[bytes] = []
    server = await broken_server(b"buyermail", received)
    try:
        app = await relay_factory(smarthost_port=server.sockets[0].getsockname()[1])
        conv = open_conversation(app.config_path)
        data = compose(sender=conv.seller_email, to=conv.buyer_alias, subject=f"Order {conv.order_id}")
        await send(app.server.port, conv.seller_email, [conv.buyer_alias], data)
        await wait_until(lambda: received)
    finally:
        server.close()
    [dsn_bytes] = received
    dsn = email.message_from_bytes(dsn_bytes, policy=email.policy.default)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_payload()[1].get_payload()[1]["Status"] == "5.0.0"  # the malformed one is not echoed
    assert b"buyermail" not in dsn_bytes and b"\xff" not in dsn_bytes and b"\x00" not in dsn_bytes
