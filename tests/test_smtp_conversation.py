"""The SMTP conversation: who may write to which alias, and what the server says.

Each rule of the spec's "SMTP conversation" section is one test, driven
over a real socket: aiosmtplib where a well-behaved client would send the
same, and a raw asyncio stream where a client library would refuse (or
politely fix) the input. Every refusal is checked by its code and its
enhanced status, not just by being a failure.
"""

from __future__ import annotations

import asyncio
import json

import aiosmtplib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aliasing.codec import Party
from tests.conftest import ALIAS_DOMAIN, compose, open_conversation, run_cli, send

STAFF_EMAIL = "staff@sellershop.example"
STRANGER = "mallory@elsewhere.example"


async def client(port: int) -> aiosmtplib.SMTP:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=10,
                           local_hostname="client.test")
    await smtp.connect()
    await smtp.ehlo()
    return smtp


async def reply_to(awaitable) -> tuple[int, str]:
    """The (code, text) the server gave, whether aiosmtplib calls it success or not."""
    try:
        response = await awaitable
    except aiosmtplib.SMTPResponseException as exc:
        return exc.code, exc.message
    return response.code, response.message


async def rcpt_reply(port: int, mail_from: str, rcpt: str) -> tuple[int, str]:
    smtp = await client(port)
    try:
        code, text = await reply_to(smtp.mail(mail_from))
        assert code == 250, text
        return await reply_to(smtp.rcpt(rcpt))
    finally:
        smtp.close()


async def data_reply(port: int, mail_from: str, rcpt: str, data: bytes) -> tuple[int, str]:
    """MAIL and RCPT must pass; returns the reply to the message itself."""
    smtp = await client(port)
    try:
        assert (await reply_to(smtp.mail(mail_from)))[0] == 250
        code, text = await reply_to(smtp.rcpt(rcpt))
        assert code == 250, text
        return await reply_to(smtp.data(data))
    finally:
        smtp.close()


def listed(config_path) -> list[dict]:
    code, out = run_cli(config_path, "message", "list")
    assert code == 0
    return [json.loads(line) for line in out.splitlines()]


class RawSession:
    """A bare SMTP client: sends exactly the bytes it is given."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> RawSession:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        session = cls(reader, writer)
        code, _ = await session.reply()
        assert code == 220
        return session

    async def reply(self) -> tuple[int, list[str]]:
        lines = []
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), 10)).decode()
            assert line, "connection closed"
            lines.append(line[4:].rstrip("\r\n"))
            if line[3:4] != "-":
                return int(line[:3]), lines

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()


# --- recipients ---------------------------------------------------------------

async def test_rcpt_outside_alias_domain_is_relaying_denied(relay):
    conv = open_conversation(relay.config_path)
    code, text = await rcpt_reply(relay.server.port, conv.buyer_email, "friend@elsewhere.example")
    assert (code, text.split()[0]) == (550, "5.7.1")
    assert "relaying denied" in text.lower()


async def test_rcpt_unknown_alias_is_refused(relay):
    open_conversation(relay.config_path)
    valid_but_unused = relay.keyring.encode(987654, Party.SELLER)
    code, text = await rcpt_reply(relay.server.port, "jane.buyer@buyermail.example",
                                  f"{valid_but_unused}@{ALIAS_DOMAIN}")
    assert (code, text.split()[0]) == (550, "5.1.1")


@pytest.mark.parametrize("local", ["0123456789abcdef", "not-an-alias", "0123456789abcde", "postmaster"])
async def test_rcpt_forged_alias_is_refused(relay, local):
    conv = open_conversation(relay.config_path)
    code, text = await rcpt_reply(relay.server.port, conv.buyer_email, f"{local}@{ALIAS_DOMAIN}")
    assert (code, text.split()[0]) == (550, "5.1.1")


async def test_alias_with_one_changed_digit_is_refused(relay):
    conv = open_conversation(relay.config_path)
    local = conv.seller_alias.split("@")[0]
    flipped = local[:-1] + ("0" if local[-1] != "0" else "1")
    code, text = await rcpt_reply(relay.server.port, conv.buyer_email, f"{flipped}@{ALIAS_DOMAIN}")
    assert (code, text.split()[0]) == (550, "5.1.1")


async def test_alias_matches_case_insensitively(relay, sink):
    conv = open_conversation(relay.config_path)
    shouted = conv.seller_alias.upper()
    data = compose(sender=conv.buyer_email, to=shouted)
    errors, response = await send(relay.server.port, conv.buyer_email.upper(), [shouted], data)
    assert errors == {} and response.startswith("2.0.0")
    await sink.handler.wait_for(2)
    [delivered] = sink.handler.to(conv.seller_email)
    assert delivered.message["From"].addresses[0].addr_spec == conv.buyer_alias


# --- senders ------------------------------------------------------------------

async def test_envelope_sender_outside_conversation_is_refused(relay):
    conv = open_conversation(relay.config_path)
    code, text = await rcpt_reply(relay.server.port, STRANGER, conv.seller_alias)
    assert (code, text.split()[0]) == (550, "5.7.1")
    assert "not part of this conversation" in text


async def test_party_cannot_write_to_its_own_alias(relay):
    conv = open_conversation(relay.config_path)
    code, text = await rcpt_reply(relay.server.port, conv.buyer_email, conv.buyer_alias)
    assert (code, text.split()[0]) == (550, "5.7.1")
    code, text = await rcpt_reply(relay.server.port, conv.seller_email, conv.seller_alias)
    assert (code, text.split()[0]) == (550, "5.7.1")


async def test_seller_alternate_address_allowed_until_disabled(relay, sink):
    conv = open_conversation(relay.config_path)
    code, _ = run_cli(relay.config_path, "seller", "address", "add", "S1", STAFF_EMAIL)
    assert code == 0
    data = compose(sender=f"Staff <{STAFF_EMAIL}>", to=conv.buyer_alias,
                   subject=f"Your order {conv.order_id}", body=f"Shipped today. {STAFF_EMAIL}\n")
    errors, _ = await send(relay.server.port, STAFF_EMAIL, [conv.buyer_alias], data)
    assert errors == {}
    [delivered] = await sink.handler.wait_for(1)
    assert delivered.rcpt_tos == [conv.buyer_email]
    assert b"staff" not in delivered.data.lower() and b"sellershop" not in delivered.data.lower()
    assert delivered.message["From"].addresses[0].addr_spec == conv.seller_alias

    code, _ = run_cli(relay.config_path, "seller", "address", "disable", "S1", STAFF_EMAIL)
    assert code == 0
    code, text = await rcpt_reply(relay.server.port, STAFF_EMAIL, conv.buyer_alias)
    assert (code, text.split()[0]) == (550, "5.7.1")
    assert "not part of this conversation" in text

    code, _ = run_cli(relay.config_path, "seller", "address", "enable", "S1", STAFF_EMAIL)
    assert code == 0
    code, text = await rcpt_reply(relay.server.port, STAFF_EMAIL, conv.buyer_alias)
    assert code == 250, text


async def test_header_from_outside_conversation_is_refused_at_data(relay, sink):
    conv = open_conversation(relay.config_path)
    data = compose(sender=f"Mallory <{STRANGER}>", to=conv.seller_alias)
    code, text = await data_reply(relay.server.port, conv.buyer_email, conv.seller_alias, data)
    assert (code, text.split()[0]) == (550, "5.7.1")
    assert "not part of this conversation" in text
    [row] = listed(relay.config_path)
    assert (row["status"], row["direction"]) == ("rejected", "buyer_to_seller")
    assert sink.handler.messages == []


async def test_header_from_disabled_alternate_is_refused_at_data(relay):
    conv = open_conversation(relay.config_path)
    assert run_cli(relay.config_path, "seller", "address", "add", "S1", STAFF_EMAIL)[0] == 0
    assert run_cli(relay.config_path, "seller", "address", "disable", "S1", STAFF_EMAIL)[0] == 0
    data = compose(sender=STAFF_EMAIL, to=conv.buyer_alias, subject=f"Order {conv.order_id}")
    code, text = await data_reply(relay.server.port, conv.seller_email, conv.buyer_alias, data)
    assert (code, text.split()[0]) == (550, "5.7.1")


@pytest.mark.parametrize("from_header", [
    "Jane Buyer <jane.buyer@buyermail.example>, Mallory <mallory@elsewhere.example>",
    "jane.buyer@buyermail.example, jane.buyer@buyermail.example",
    "Friends: jane.buyer@buyermail.example, mallory@elsewhere.example;",
])
async def test_header_from_with_two_addresses_is_refused(relay, from_header):
    conv = open_conversation(relay.config_path)
    data = compose(sender=conv.buyer_email, to=conv.seller_alias)
    data = data.replace(f"From: {conv.buyer_email}".encode(), f"From: {from_header}".encode(), 1)
    assert from_header.encode() in data
    code, text = await data_reply(relay.server.port, conv.buyer_email, conv.seller_alias, data)
    assert (code, text.split()[0]) == (550, "5.7.1")


async def test_header_from_missing_is_refused(relay):
    conv = open_conversation(relay.config_path)
    data = b"To: " + conv.seller_alias.encode() + b"\r\nSubject: hello\r\n\r\nno author\r\n"
    code, text = await data_reply(relay.server.port, conv.buyer_email, conv.seller_alias, data)
    assert (code, text.split()[0]) == (550, "5.7.1")


async def test_header_from_matches_case_insensitively(relay, sink):
    conv = open_conversation(relay.config_path)
    data = compose(sender=f"Jane <{conv.buyer_email.upper()}>", to=conv.seller_alias)
    code, text = await data_reply(relay.server.port, conv.buyer_email, conv.seller_alias, data)
    assert code == 250, text
    await sink.handler.wait_for(2)
    assert b"buyermail" not in sink.handler.to(conv.seller_email)[0].data.lower()


async def test_null_sender_to_alias_is_refused(relay):
    conv = open_conversation(relay.config_path)
    for alias in (conv.seller_alias, conv.buyer_alias):
        code, text = await rcpt_reply(relay.server.port, "", alias)
        assert (code, text.split()[0]) == (550, "5.7.1")


# --- one conversation per transaction ----------------------------------------

async def test_second_thread_in_one_transaction_is_deferred(relay, sink):
    first = open_conversation(relay.config_path, order_id="112-1111111-1111111")
    second = open_conversation(relay.config_path, order_id="112-2222222-2222222")
    data = compose(sender=first.buyer_email, to=f"{first.seller_alias}, {second.seller_alias}",
                   subject="Two orders")
    errors, _ = await send(relay.server.port, first.buyer_email, [first.seller_alias, second.seller_alias], data)
    assert list(errors) == [second.seller_alias]
    code, text = errors[second.seller_alias]
    assert (code, text.split()[0]) == (452, "4.5.3")

    errors, _ = await send(relay.server.port, first.buyer_email, [second.seller_alias], data)
    assert errors == {}
    await sink.handler.wait_for(4)  # two messages, two acknowledgments
    to_seller = sink.handler.to(first.seller_email)
    subjects = sorted(m.message["Subject"] for m in to_seller)
    assert subjects == [f"Two orders (Order {first.order_id})", f"Two orders (Order {second.order_id})"]
    senders = {m.message["From"].addresses[0].addr_spec for m in to_seller}
    assert senders == {first.buyer_alias, second.buyer_alias}


async def test_other_party_alias_of_same_thread_is_deferred(relay):
    conv = open_conversation(relay.config_path)
    smtp = await client(relay.server.port)
    try:
        assert (await reply_to(smtp.mail(conv.buyer_email)))[0] == 250
        assert (await reply_to(smtp.rcpt(conv.seller_alias)))[0] == 250
        code, text = await reply_to(smtp.rcpt(conv.buyer_alias))
        assert (code, text.split()[0]) == (452, "4.5.3")
    finally:
        smtp.close()


# --- extensions and size ------------------------------------------------------

async def test_ehlo_advertises_extensions(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port, smtp_extra="max_message_bytes = 300000")
    assert app.config.smtp.max_message_bytes == 300000
    smtp = await client(app.server.port)
    try:
        extensions = smtp.esmtp_extensions
    finally:
        smtp.close()
    assert extensions["size"] == "300000"
    for keyword in ("8bitmime", "smtputf8", "pipelining"):
        assert keyword in extensions, extensions


async def test_default_size_fits_ten_mib_of_base64(relay):
    smtp = await client(relay.server.port)
    try:
        size = int(smtp.esmtp_extensions["size"])
    finally:
        smtp.close()
    assert size == relay.config.smtp.max_message_bytes
    assert size >= 10 * 1024 * 1024 * 4 // 3 + 64 * 1024


async def test_mail_size_over_limit_is_refused(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port, smtp_extra="max_message_bytes = 4096")
    conv = open_conversation(app.config_path)
    session = await RawSession.open(app.server.port)
    try:
        await session.send(b"EHLO client.test\r\n")
        assert (await session.reply())[0] == 250
        await session.send(f"MAIL FROM:<{conv.buyer_email}> SIZE=4097\r\n".encode())
        code, lines = await session.reply()
        assert (code, lines[0].split()[0]) == (552, "5.3.4")
        await session.send(f"MAIL FROM:<{conv.buyer_email}> SIZE=4096\r\n".encode())
        assert (await session.reply())[0] == 250
    finally:
        await session.close()


async def test_data_over_limit_is_refused_and_not_delivered(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port, smtp_extra="max_message_bytes = 4096")
    conv = open_conversation(app.config_path)
    big = compose(sender=conv.buyer_email, to=conv.seller_alias, subject="big",
                  body="0123456789abcdef " * 400 + "\n")
    assert len(big) > 4096
    code, text = await data_reply(app.server.port, conv.buyer_email, conv.seller_alias, big)
    assert (code, text.split()[0]) == (552, "5.3.4")
    [refused] = listed(app.config_path)  # logged, without its bytes
    assert (refused["status"], refused["rule"]) == ("rejected", "size")

    small = compose(sender=conv.buyer_email, to=conv.seller_alias, subject="small")
    code, text = await data_reply(app.server.port, conv.buyer_email, conv.seller_alias, small)
    assert code == 250, text
    await sink.handler.wait_for(2)
    [delivered] = sink.handler.to(conv.seller_email)
    assert delivered.message["Subject"].startswith("small")
    assert [r["subject"] for r in listed(app.config_path)] == ["small", None]


# --- loops --------------------------------------------------------------------

def with_received(data: bytes, hops: int) -> bytes:
    trace = b"".join(b"Received: from hop%d.example by hop%d.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                     % (i, i + 1) for i in range(hops))
    return trace + data


async def test_more_than_fifty_received_headers_is_a_loop(relay, sink):
    conv = open_conversation(relay.config_path)
    data = with_received(compose(sender=conv.buyer_email, to=conv.seller_alias), 51)
    code, text = await data_reply(relay.server.port, conv.buyer_email, conv.seller_alias, data)
    assert (code, text.split()[0]) == (554, "5.4.6")
    [row] = listed(relay.config_path)
    assert (row["status"], row["rule"]) == ("rejected", "loop")
    assert sink.handler.messages == []


async def test_fifty_received_headers_pass(relay, sink):
    conv = open_conversation(relay.config_path)
    data = with_received(compose(sender=conv.buyer_email, to=conv.seller_alias), 50)
    code, text = await data_reply(relay.server.port, conv.buyer_email, conv.seller_alias, data)
    assert code == 250, text
    await sink.handler.wait_for(2)
    [delivered] = sink.handler.to(conv.seller_email)
    assert delivered.message.get_all("Received") is None


# --- pipelining ---------------------------------------------------------------

async def test_pipelined_commands(relay, sink):
    conv = open_conversation(relay.config_path)
    session = await RawSession.open(relay.server.port)
    try:
        await session.send(b"EHLO client.test\r\n"
                           + f"MAIL FROM:<{conv.buyer_email}>\r\n".encode()
                           + f"RCPT TO:<{conv.seller_alias}>\r\n".encode()
                           + b"DATA\r\n")
        code, lines = await session.reply()
        assert code == 250 and "PIPELINING" in lines
        assert (await session.reply())[0] == 250
        assert (await session.reply())[0] == 250
        assert (await session.reply())[0] == 354
        body = compose(sender=conv.buyer_email, to=conv.seller_alias, subject="pipelined")
        await session.send(body + b".\r\nNOOP\r\nQUIT\r\n")
        code, lines = await session.reply()
        assert (code, lines[0].split()[0]) == (250, "2.0.0")
        assert (await session.reply())[0] == 250
        assert (await session.reply())[0] == 221
    finally:
        await session.close()
    await sink.handler.wait_for(2)
    [delivered] = sink.handler.to(conv.seller_email)
    assert delivered.message["Subject"] == f"pipelined (Order {conv.order_id})"


async def test_pipelined_transactions_get_one_verdict_each(relay, sink):
    conv = open_conversation(relay.config_path)
    session = await RawSession.open(relay.server.port)
    try:
        await session.send(b"EHLO client.test\r\n")
        assert (await session.reply())[0] == 250
        await session.send(f"MAIL FROM:<{STRANGER}>\r\nRCPT TO:<{conv.seller_alias}>\r\nRSET\r\n"
                           f"MAIL FROM:<{conv.buyer_email}>\r\nRCPT TO:<{conv.seller_alias}>\r\n"
                           "DATA\r\n".encode())
        replies = [await session.reply() for _ in range(6)]
        assert [code for code, _ in replies] == [250, 550, 250, 250, 250, 354]
        await session.send(compose(sender=conv.buyer_email, to=conv.seller_alias) + b".\r\n")
        assert (await session.reply())[0] == 250
    finally:
        await session.close()
    await sink.handler.wait_for(2)
    assert len(sink.handler.to(conv.seller_email)) == 1


# --- bad input never breaks the session ---------------------------------------

_HEADER_NAMES = ["Subject", "Content-Type", "Content-Transfer-Encoding", "In-Reply-To", "References",
                 "Reply-To", "Cc", "Received", "Auto-Submitted", "Message-ID", "Content-Disposition",
                 "MIME-Version", "Date"]
_FROM_LINES = [b"", b"From: jane.buyer@buyermail.example\r\n", b"From: =?utf-8?q?Jane?= <jane.buyer@buyermail.example>\r\n",
               b"From: Shop One <owner@sellershop.example>\r\n"]
# Pieces of MIME structure, so that the rewrite meets broken multiparts too.
_MIME_PIECES = [b"--B\r\n", b"--B--\r\n", b"\r\n", b"Content-Type: message/rfc822\r\n",
                b"Content-Type: multipart/alternative; boundary=B\r\n", b"Content-Transfer-Encoding: base64\r\n",
                b"Content-Type: text/plain; charset=utf-16\r\n", b"Content-Disposition: attachment; filename=a@b\r\n",
                b"From: =?utf-8?b?amFuZQ==?=x\r\n", b"jane.buyer@buyermail.example", b"\xff\xfe", b"hello",
                # hostile ones: unknown charsets, broken transfer encodings, NUL, encoded line breaks
                b"Content-Type: text/plain; charset=x-bogus\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
                b"=ZZ=\r\n", b"!!!=\r\n", b"\x00", b"Subject: =?bogus?Q?a=0D=0ABcc:_x@y.example?=\r\n",
                # HTML and files, for the content rules (plain text, phishing, seller HTML, attachments)
                b"Content-Type: text/html; charset=utf-8\r\n", b"Content-Type: multipart/related; boundary=B\r\n",
                b"<a href='https://x.example.com/login'>Sign in</a>", b"<p style='color:red'><o:p>", b"<!--[if mso]>",
                b"<img src=cid:a>", b"<ul><li>", b"</table>", b"&#x0;&nbsp;",
                b"Content-Type: application/pdf; name=a.pdf\r\n", b"Content-Disposition: inline; filename=b.doc\r\n",
                b"%PDF-1.4 /Encrypt", b"MZ", b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"UEsDBA==\r\n"]
_TOP_TYPES = [b"Content-Type: multipart/mixed; boundary=B\r\n", b"Content-Type: multipart/related; boundary=B\r\n",
              b"Content-Type: multipart/alternative; boundary=B\r\n", b"Content-Type: text/html\r\n"]
_ANSWERS = {250, 500, 550, 552, 554}  # 451 would mean the relay broke on this input


@st.composite
def fuzz_messages(draw) -> bytes:
    from_line = draw(st.sampled_from(_FROM_LINES))
    headers = draw(st.lists(st.tuples(st.sampled_from(_HEADER_NAMES),
                                      st.binary(max_size=80).filter(lambda b: b"\n" not in b and b"\r" not in b)),
                            max_size=5))
    head = b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers)
    if draw(st.booleans()):
        head += draw(st.sampled_from(_TOP_TYPES))
    body = draw(st.one_of(st.binary(max_size=600), st.lists(st.sampled_from(_MIME_PIECES), max_size=30).map(b"".join)))
    return from_line + head + draw(st.sampled_from([b"\r\n", b""])) + body


@pytest.mark.parametrize("direction", ["buyer_to_seller", "seller_to_buyer"])
async def test_arbitrary_data_gets_an_answer_and_the_session_lives(relay, direction):
    """Any DATA from an authorized sender: a definite answer, never 451, and NOOP still works."""
    conv = open_conversation(relay.config_path)
    author, alias = ((conv.buyer_email, conv.seller_alias) if direction == "buyer_to_seller"
                     else (conv.seller_email, conv.buyer_alias))
    loop = asyncio.get_running_loop()
    smtp = await client(relay.server.port)
    seen: list[int] = []

    async def one(data: bytes) -> None:
        await smtp.rset()
        await smtp.mail(author)
        await smtp.rcpt(alias)
        code, text = await reply_to(smtp.data(data))
        assert code in _ANSWERS, (code, text, data)
        seen.append(code)
        assert (await smtp.noop()).code == 250

    @settings(max_examples=30, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(fuzz_messages())
    def check(data: bytes) -> None:
        asyncio.run_coroutine_threadsafe(one(data), loop).result(timeout=30)

    try:
        # hypothesis drives from a thread; the SMTP client and the relay stay on this loop.
        await asyncio.to_thread(check)
    finally:
        smtp.close()
    assert len(seen) >= 30
