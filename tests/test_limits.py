"""`[limits]`: rate limits, connections, recipients, header size, line length and slow sessions.

Every limit is driven over a real socket against a running relay. The
rate limits count accepted messages in the database, so the last test
runs two relay processes on one database and checks that together they
accept exactly the limit.
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.conftest import ORDER_ID, compose, open_conversation, run_cli, sql, wait_until, write_config
from tests.test_smtp_conversation import RawSession, client, data_reply, listed, reply_to


def limits(**values) -> str:
    return "\n[limits]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())


async def send_one(port: int, sender: str, alias: str,
                   subject: str = f"Hello, about order {ORDER_ID}") -> tuple[int, str]:
    """The reply to RCPT if it refused, else the reply to the message."""
    smtp = await client(port)
    try:
        assert (await reply_to(smtp.mail(sender)))[0] == 250
        code, text = await reply_to(smtp.rcpt(alias))
        if code != 250:
            return code, text
        return await reply_to(smtp.data(compose(sender=sender, to=alias, subject=subject)))
    finally:
        smtp.close()


# --- rate limits --------------------------------------------------------------

async def test_per_thread_limit_counts_accepted_messages_only(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port, extra=limits(per_thread_per_hour=2))
    conv = open_conversation(app.config_path)
    refused = compose(sender="Mallory <mallory@elsewhere.example>", to=conv.seller_alias)
    code, _ = await data_reply(app.server.port, conv.buyer_email, conv.seller_alias, refused)
    assert code == 550  # refused at DATA: does not count
    assert (await send_one(app.server.port, conv.buyer_email, conv.seller_alias))[0] == 250
    assert (await send_one(app.server.port, conv.seller_email, conv.buyer_alias))[0] == 250
    code, text = await send_one(app.server.port, conv.buyer_email, conv.seller_alias)
    assert (code, text.split()[0]) == (451, "4.7.1") and "conversation" in text
    other = open_conversation(app.config_path, order_id="112-7654321-7654321")
    assert (await send_one(app.server.port, other.buyer_email, other.seller_alias))[0] == 250


async def test_per_sender_limit_spans_threads(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port, extra=limits(per_sender_per_hour=2))
    first = open_conversation(app.config_path)
    second = open_conversation(app.config_path, order_id="112-7654321-7654321",
                               buyer_email="other.buyer@buyermail.example")
    assert (await send_one(app.server.port, first.seller_email, first.buyer_alias))[0] == 250
    assert (await send_one(app.server.port, second.seller_email, second.buyer_alias,
                           subject=f"About order {second.order_id}"))[0] == 250
    code, text = await send_one(app.server.port, first.seller_email, first.buyer_alias)
    assert (code, text.split()[0]) == (451, "4.7.1") and "sender" in text
    # The buyer is another sender: not limited.
    assert (await send_one(app.server.port, first.buyer_email, first.seller_alias))[0] == 250
    # Only keyed hashes are stored, never the address.
    rows = sql(app.config_path, "SELECT kind, key_hash FROM accept_events")
    assert {kind for kind, _ in rows} == {"sender", "ip"}
    assert all(len(key) == 64 and "@" not in key for _, key in rows)


async def test_per_ip_limit(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port, extra=limits(per_ip_per_minute=2))
    conv = open_conversation(app.config_path)
    assert (await send_one(app.server.port, conv.buyer_email, conv.seller_alias))[0] == 250
    assert (await send_one(app.server.port, conv.seller_email, conv.buyer_alias))[0] == 250
    code, text = await send_one(app.server.port, conv.buyer_email, conv.seller_alias)
    assert (code, text.split()[0]) == (451, "4.7.1") and "network" in text
    # An hour-old event from this address is pruned and no longer counts.
    sql(app.config_path, "UPDATE accept_events SET at = datetime('now', '-2 hours')")
    assert (await send_one(app.server.port, conv.buyer_email, conv.seller_alias))[0] == 250
    assert sql(app.config_path, "SELECT count(*) FROM accept_events WHERE at < datetime('now', '-1 hour')") == [(0,)]


async def test_the_limit_is_checked_again_when_the_message_is_committed(relay_factory, sink):
    """Two sessions pass RCPT together; only one of their messages fits the limit."""
    app = await relay_factory(smarthost_port=sink.port, extra=limits(per_thread_per_hour=1))
    conv = open_conversation(app.config_path)
    sessions = [await client(app.server.port) for _ in range(2)]
    try:
        for smtp in sessions:
            assert (await reply_to(smtp.mail(conv.buyer_email)))[0] == 250
            assert (await reply_to(smtp.rcpt(conv.seller_alias)))[0] == 250
        data = compose(sender=conv.buyer_email, to=conv.seller_alias)
        answers = await asyncio.gather(*(reply_to(smtp.data(data)) for smtp in sessions))
    finally:
        for smtp in sessions:
            smtp.close()
    assert sorted(code for code, _ in answers) == [250, 451]
    assert len(listed(app.config_path)) == 1  # the deferred one was never stored
    await sink.handler.wait_for(2)  # the message and the buyer's acknowledgment
    assert len(sink.handler.to(conv.seller_email)) == 1


async def test_two_processes_share_the_counts(tmp_path, relays, sink):
    path = write_config(tmp_path, smarthost_port=sink.port, smtp_extra="processes = 2",
                        extra=limits(per_thread_per_hour=5))
    assert run_cli(path, "init")[0] == 0
    conv = open_conversation(path)
    relay = await relays(path)
    answers = await asyncio.gather(*(send_one(relay.port, conv.buyer_email, conv.seller_alias, f"n{i}")
                                     for i in range(12)))
    codes = sorted(code for code, _ in answers)
    assert codes == [250] * 5 + [451] * 7, answers
    await wait_until(lambda: len(sink.handler.to(conv.seller_email)) == 5)
    assert await relay.stop(signal.SIGTERM) == 0
    assert len(sink.handler.to(conv.seller_email)) == 5


# --- connections and recipients -------------------------------------------------

async def test_connections_over_the_limit_get_421_and_are_closed(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port, extra=limits(max_connections=2))
    held = [await RawSession.open(app.server.port) for _ in range(2)]
    reader, writer = await asyncio.open_connection("127.0.0.1", app.server.port)
    line = await asyncio.wait_for(reader.readline(), 10)
    assert line.startswith(b"421 4.7.0 ")
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed
    writer.close()
    await held[0].close()
    await wait_until(lambda: len(app.server.sessions) < 2)
    again = await RawSession.open(app.server.port)  # asserts the 220
    for session in (held[1], again):
        await session.close()


async def test_recipients_over_max_recipients_are_deferred(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port, extra=limits(max_recipients=1))
    conv = open_conversation(app.config_path)
    smtp = await client(app.server.port)
    try:
        assert (await reply_to(smtp.mail(conv.buyer_email)))[0] == 250
        assert (await reply_to(smtp.rcpt(conv.seller_alias)))[0] == 250
        code, text = await reply_to(smtp.rcpt(conv.seller_alias.upper()))
        assert (code, text.split()[0]) == (452, "4.5.3")
        code, _ = await reply_to(smtp.data(compose(sender=conv.buyer_email, to=conv.seller_alias)))
        assert code == 250
    finally:
        smtp.close()


# --- header size and line length ------------------------------------------------

async def test_a_header_over_max_header_bytes_is_refused(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port, extra=limits(max_header_bytes=2048))
    conv = open_conversation(app.config_path)
    padding = {f"X-Pad-{i}": "x" * 70 for i in range(30)}
    big = compose(sender=conv.buyer_email, to=conv.seller_alias, headers=padding)
    code, text = await data_reply(app.server.port, conv.buyer_email, conv.seller_alias, big)
    assert (code, text.split()[0]) == (552, "5.3.4") and "header" in text
    [row] = listed(app.config_path)
    assert (row["status"], row["rule"]) == ("rejected", "header-size")
    small = compose(sender=conv.buyer_email, to=conv.seller_alias, headers={"X-Pad": "x" * 70})
    assert (await data_reply(app.server.port, conv.buyer_email, conv.seller_alias, small))[0] == 250


@pytest.mark.parametrize("length, code", [(998, 250), (999, 500), (5000, 500)])
async def test_lines_longer_than_998_characters_are_refused(relay_factory, sink, length, code):
    app = await relay_factory(smarthost_port=sink.port)
    conv = open_conversation(app.config_path)
    head = compose(sender=conv.buyer_email, to=conv.seller_alias, body="short\n")
    data = head + b"x" * length + b"\r\nend\r\n"
    got, text = await data_reply(app.server.port, conv.buyer_email, conv.seller_alias, data)
    assert got == code, text
    if code == 500:
        assert text.split()[0] == "5.5.2" and "998" in text


# --- idle and slow sessions -----------------------------------------------------

async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), 30)


async def test_an_idle_client_gets_421_and_is_closed(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port, smtp_extra="timeout = 0.5")
    reader, writer = await asyncio.open_connection("127.0.0.1", app.server.port)
    assert (await reader.readline()).startswith(b"220 ")
    writer.write(b"EHLO client.test\r\n")
    rest = await read_until_closed(reader)
    assert rest.splitlines()[-1].startswith(b"421 4.4.2 ")
    writer.close()


async def trickle(writer: asyncio.StreamWriter, data: bytes, pause: float) -> None:
    try:
        while True:
            for byte in data:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(pause)
    except (ConnectionError, RuntimeError):
        return


async def test_a_client_trickling_commands_is_cut_off_by_the_session_limit(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port, smtp_extra="timeout = 5",
                              extra=limits(session_timeout=1.5))
    reader, writer = await asyncio.open_connection("127.0.0.1", app.server.port)
    assert (await reader.readline()).startswith(b"220 ")
    slow = asyncio.create_task(trickle(writer, b"NOOP\r\n", 0.05))  # never idle for 5 s
    try:
        rest = await read_until_closed(reader)
    finally:
        slow.cancel()
        writer.close()
    assert rest.splitlines()[-1].startswith(b"421 4.4.2 "), rest
    assert b"Session time limit" in rest
    assert rest.count(b"250 ") >= 1  # it was served until then


async def test_a_client_trickling_data_is_cut_off(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port, smtp_extra="timeout = 1")
    conv = open_conversation(app.config_path)
    reader, writer = await asyncio.open_connection("127.0.0.1", app.server.port)
    assert (await reader.readline()).startswith(b"220 ")
    writer.write(f"HELO c\r\nMAIL FROM:<{conv.buyer_email}>\r\nRCPT TO:<{conv.seller_alias}>\r\nDATA\r\n".encode())
    slow = asyncio.create_task(trickle(writer, b"Subject: slow\r\n", 0.1))
    try:
        rest = await read_until_closed(reader)
    finally:
        slow.cancel()
        writer.close()
    lines = rest.splitlines()
    assert lines[-2].startswith(b"354") and lines[-1].startswith(b"421 4.4.2 "), rest
    assert sql(app.config_path, "SELECT count(*) FROM messages") == [(0,)]
