"""What attackers send, thrown at a running relay.

Every case ends with a clear SMTP answer (or a one-line CLI error), the
relay still serves a normal message afterwards, no session hangs (every
read has a timeout), and every message answered 250 reaches the mailbox
(`sink`) and the log. Most cases run against the relay in the test's
event loop; `test_a_relay_process_survives_the_lot` throws the worst of
them at `relay serve` in a child process, where a crash would end it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import compose, open_conversation, run_cli, sql, wait_until, write_config
from tests.test_smtp_conversation import RawSession, data_reply, listed

ATTACKER = "mallory@elsewhere.example"


async def still_serves(port: int, conv, subject: str = "still here") -> None:
    """A normal message is accepted after whatever came before."""
    data = compose(sender=conv.buyer_email, to=conv.seller_alias, subject=subject)
    code, text = await data_reply(port, conv.buyer_email, conv.seller_alias, data)
    assert code == 250, text


async def every_250_delivered(sink, config_path, accepted: int) -> None:
    """The log holds `accepted` queued messages and the mailbox gets each of them."""
    rows = [r for r in listed(config_path) if r["status"] != "rejected"]
    assert len(rows) == accepted
    # Each buyer message also brings its sender an acknowledgment.
    await wait_until(lambda: sql(config_path, "SELECT count(*) FROM queue WHERE state != 'delivered'") == [(0,)])


async def transaction(session: RawSession, conv) -> None:
    await session.send(b"EHLO attacker.test\r\n")
    assert (await session.reply())[0] == 250
    await session.send(f"MAIL FROM:<{conv.buyer_email}>\r\nRCPT TO:<{conv.seller_alias}>\r\nDATA\r\n".encode())
    assert [(await session.reply())[0] for _ in range(3)] == [250, 250, 354]


# --- SMTP smuggling -------------------------------------------------------------

SMUGGLING_ENDS = [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r", b"\r\n\x00.\r\n", b"\n..\n"]


@pytest.mark.parametrize("fake_end", SMUGGLING_ENDS, ids=repr)
async def test_smuggled_end_of_data_never_splits_a_message(relay, conv, sink, fake_end):
    session = await RawSession.open(relay.server.port)
    try:
        await transaction(session, conv)
        smuggled = (f"MAIL FROM:<{conv.seller_email}>\r\nRCPT TO:<{conv.buyer_alias}>\r\nDATA\r\n"
                    f"From: {conv.seller_email}\r\nSubject: SMUGGLED\r\n\r\nsmuggled text\r\n").encode()
        head = compose(sender=conv.buyer_email, to=conv.seller_alias, subject="carrier", body="first part\n")
        await session.send(head + b"before" + fake_end + smuggled + b".\r\n")
        code, lines = await session.reply()
        assert code in (250, 500, 550, 554), lines
        await session.send(b"NOOP\r\n")  # nothing of the smuggled text is read as a command
        assert (await session.reply())[0] == 250
    finally:
        await session.close()
    accepted = 1 if code == 250 else 0
    await still_serves(relay.server.port, conv)
    await every_250_delivered(sink, relay.config_path, accepted + 1)
    assert not any(m.message["Subject"] == "SMUGGLED" for m in sink.handler.messages)
    # The buyer gets the acknowledgments of the buyer's own messages, nothing more.
    assert len(sink.handler.to(conv.buyer_email)) == accepted + 1
    if accepted:
        [carrier] = [m for m in sink.handler.to(conv.seller_email) if "carrier" in m.message["Subject"]]
        assert b"smuggled text" in carrier.data  # the smuggled part stayed inside the one message


# --- CR/LF injection --------------------------------------------------------------

INJECTIONS = ["Shop\r\nBcc: victim@evil.example", "Shop\nX-Injected: 1", "Shop\rX: 1", "Shop\u2028X: 1",
              "Shop\x85X: 1", "Shop\x00"]
ADDRESS_INJECTIONS = ["owner@shop.example\r\nBcc: victim@evil.example", "owner@shop.example\n",
                      "owner@shop.example\rX", "owner\r\n@shop.example", "owner@shop.example%0d%0aBcc:x@y.example"]


def cli_commands() -> list[list[str]]:
    thread = ["thread", "open", "--seller", "S1", "--buyer-email", "jane@buyer.example", "--buyer-name", "Jane",
              "--order", "112-1111111-1111111", "--asin", "B000TEST01"]

    def with_arg(base: list[str], flag: str, value: str) -> list[str]:
        out = list(base)
        out[out.index(flag) + 1] = value
        return out
    commands = []
    for bad in INJECTIONS:
        commands.append(["seller", "add", "S2", "--email", "two@shop.example", "--name", bad])
        commands.append(with_arg(thread, "--buyer-name", bad))
        commands.append(["seller", "add", bad.replace("Shop", "S3"), "--email", "x@shop.example", "--name", "x"])
    for bad in ADDRESS_INJECTIONS:
        commands.append(["seller", "add", "S2", "--email", bad, "--name", "Two"])
        commands.append(with_arg(thread, "--buyer-email", bad))
        commands.append(["seller", "address", "add", "S1", bad])
    for bad in ["112-1111111-1111111\r\nX: 1", "112-1111111-1111111\n"]:
        commands.append(with_arg(thread, "--order", bad))
    for bad in ["B000TEST01\r\nX: 1", "B000TEST01\n"]:
        commands.append(with_arg(thread, "--asin", bad))
    return commands


@pytest.fixture(scope="module")
def cli_relay(tmp_path_factory):
    path = write_config(tmp_path_factory.mktemp("cli"))
    assert run_cli(path, "init")[0] == 0
    assert run_cli(path, "seller", "add", "S1", "--email", "owner@shop.example", "--name", "Shop One")[0] == 0
    return path


def test_cr_lf_in_any_cli_field_is_refused_with_one_line(cli_relay):
    """Every field, every line-break spelling: exit 2, one stderr line, nothing stored."""
    before = sql(cli_relay, "SELECT (SELECT count(*) FROM sellers), (SELECT count(*) FROM seller_addresses),"
                            " (SELECT count(*) FROM threads)")
    script = ("import json, sys\nfrom relay.cli import main\n"
              "for args in json.load(sys.stdin):\n"
              "    code = main(['--config', sys.argv[1], *args])\n"
              "    print(code, file=sys.stderr)\n"
              "    print('--', file=sys.stderr)\n")
    commands = cli_commands()
    done = subprocess.run([sys.executable, "-c", script, str(cli_relay)], input=json.dumps(commands),
                          capture_output=True, text=True, timeout=120)
    assert done.stdout == ""
    outputs = done.stderr.split("--\n")[:-1]
    assert len(outputs) == len(commands), done.stderr[-2000:]
    for args, output in zip(commands, outputs):
        *messages, code = output.rstrip("\n").split("\n")
        assert code == "2", (args, output)
        assert len(messages) == 1 and messages[0].startswith("relay: error: "), (args, output)
        assert "Traceback" not in output
    after = sql(cli_relay, "SELECT (SELECT count(*) FROM sellers), (SELECT count(*) FROM seller_addresses),"
                           " (SELECT count(*) FROM threads)")
    assert after == before


_BREAKS = st.sampled_from(["\r", "\n", "\r\n", "\x00", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029"])


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["--name", "--email"]), before=st.text("abc.", min_size=1, max_size=8),
       brk=_BREAKS, after=st.text("XBcc: @example.", max_size=20))
def test_any_line_break_anywhere_in_a_seller_field_is_refused(cli_relay, field, before, brk, after):
    values = {"--name": "Shop Two", "--email": "two@shop.example"}
    values[field] = (before + brk + after) if field == "--name" else f"two{before}{brk}{after}@shop.example"
    code, out = run_cli(cli_relay, "seller", "add", "S9", "--email", values["--email"], "--name", values["--name"])
    assert (code, out) == (2, "")


def _encoded(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


@pytest.mark.parametrize("header, value", [
    ("Subject", _encoded("Hi\r\nBcc: victim@evil.example\r\nX-Injected: 1")),
    ("Subject", "=?utf-8?q?Hi=0D=0ABcc:_victim@evil.example=0D=0AX-Injected:_1?="),
    ("Subject", "Hi\r\n Bcc: victim@evil.example"),  # folded: one header, not two
    ("From", f'{_encoded("Jane" + chr(13) + chr(10) + "Bcc: victim@evil.example")} <jane.buyer@buyermail.example>'),
    ("Reply-To", f'{_encoded("x" + chr(10) + "X-Injected: 1")} <jane.buyer@buyermail.example>'),
    ("In-Reply-To", "<a@b>\r\nX-Injected: 1".replace("\r\n", "\r\n ")),
])
async def test_encoded_line_breaks_in_headers_create_no_header(relay, conv, sink, header, value):
    raw = (f"From: jane.buyer@buyermail.example\r\nTo: {conv.seller_alias}\r\n"
           f"Message-ID: <inj@buyermail.example>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n").encode()
    if header == "From":
        raw = raw.replace(b"From: jane.buyer@buyermail.example\r\n", b"")
    raw += f"{header}: {value}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nHello\r\n".encode()
    if header != "Subject":
        raw = b"Subject: injected\r\n" + raw
    code, text = await data_reply(relay.server.port, conv.buyer_email, conv.seller_alias, raw)
    assert code in (250, 550, 554), text
    if code != 250:
        return
    await sink.handler.wait_for(2)
    [delivered] = sink.handler.to(conv.seller_email)
    head = delivered.data.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0].lower() for line in head.split(b"\r\n") if line and line[:1] not in b" \t"]
    assert b"bcc" not in names and b"x-injected" not in names, head
    assert b"buyermail.example" not in delivered.data  # and no real address leaked
    assert all(b"\r" not in line and b"\n" not in line for line in head.split(b"\r\n"))
    assert b"\n" not in head.replace(b"\r\n", b"")  # no bare line breaks in the header


# --- MIME bombs -----------------------------------------------------------------

def nested(depth: int, sender: str, to: str) -> bytes:
    head = f"From: {sender}\r\nTo: {to}\r\nSubject: deep\r\nMIME-Version: 1.0\r\n".encode()
    opens = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(depth))
    closes = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    return head + opens + b"Content-Type: text/plain\r\n\r\nhello\r\n" + closes


def many_parts(count: int, sender: str, to: str) -> bytes:
    head = (f"From: {sender}\r\nTo: {to}\r\nSubject: many\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=B\r\n\r\n").encode()
    return head + b"--B\r\nContent-Type: text/plain\r\n\r\nx\r\n" * count + b"--B--\r\n"


@pytest.mark.parametrize("bomb, code", [
    (lambda s, t: nested(50, s, t), 250),
    (lambda s, t: nested(1000, s, t), 554),
    (lambda s, t: nested(20000, s, t), 554),
    (lambda s, t: many_parts(500, s, t), 250),
    (lambda s, t: many_parts(10000, s, t), 554),
    (lambda s, t: many_parts(300000, s, t), 554),   # some 11 MB of empty parts
], ids=["nested-50", "nested-1000", "nested-20000", "parts-500", "parts-10000", "parts-300000"])
async def test_deep_and_enormous_multiparts_get_an_answer(relay, conv, sink, bomb, code):
    data = bomb(conv.buyer_email, conv.seller_alias)
    got, text = await data_reply(relay.server.port, conv.buyer_email, conv.seller_alias, data)
    assert got == code, text
    if code == 554:
        assert text.split()[0] == "5.6.0" and ("nested" in text or "parts" in text)
        [row] = listed(relay.config_path)
        assert (row["status"], row["rule"]) == ("rejected", "mime-structure")
    await still_serves(relay.server.port, conv)
    await every_250_delivered(sink, relay.config_path, 2 if code == 250 else 1)


# --- bad encodings, NUL, 8-bit ----------------------------------------------------

BAD_ENCODINGS = [
    b"Subject: =?bogus?Q?hello?=\r\n\r\nbody\r\n",
    b"Subject: =?utf-8?B?!!!not base64?=\r\n\r\nbody\r\n",
    b"Subject: =?utf-8?Q?=ZZ=?=\r\n\r\nbody\r\n",
    b"Subject: caf\xe9 cr\xe8me\r\n\r\n8-bit header without SMTPUTF8\r\n",
    b"Subject: \xff\xfe\xfd\r\nX-Other: \xc3\x28\r\n\r\nbroken utf-8\r\n",
    b"Subject: nul\x00byte\r\n\r\nbody with \x00 NUL\r\n",
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n\r\nhello\r\n",
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"aGVsbG8=====!!!!@@@\r\n",
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
    b"\r\nbroken =Z1 =\r\n=E\r\n",
    b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n",
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\nx\r\n----\r\n",
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\nno boundary at all\r\n",
    b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-7\r\n\r\n+ADw-script+AD4-\r\n",
    b"MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\nFrom: \x00\r\nContent-Type: multipart/mixed; "
    b"boundary=X\r\n\r\n--X\r\n",
    b"Content-Type: text/plain; charset*=utf-8''%ff%fe\r\nContent-Disposition: attachment; filename*=bogus''%00\r\n"
    b"\r\nx\r\n",
]


@pytest.mark.parametrize("tail", BAD_ENCODINGS, ids=range(len(BAD_ENCODINGS)))
async def test_bad_charsets_encodings_nul_and_8bit_get_a_definite_answer(relay, conv, sink, tail):
    data = f"From: {conv.buyer_email}\r\nTo: {conv.seller_alias}\r\n".encode() + tail
    code, text = await data_reply(relay.server.port, conv.buyer_email, conv.seller_alias, data)
    assert code in (250, 550, 554), text  # 451 would mean the relay broke on it
    await still_serves(relay.server.port, conv)
    await every_250_delivered(sink, relay.config_path, 2 if code == 250 else 1)


# --- the SMTP conversation itself ---------------------------------------------------

async def test_overlong_lines_in_commands_and_data(relay, conv):
    session = await RawSession.open(relay.server.port)
    try:
        await session.send(b"EHLO " + b"a" * 100_000 + b"\r\n")
        code, lines = await session.reply()
        assert code == 500 and "too long" in lines[0]
        await session.send(b"MAIL FROM:<" + b"a" * 2000 + b"@x.example>\r\n")
        assert (await session.reply())[0] in (500, 553)
        await transaction(session, conv)
        await session.send(b"Subject: x\r\n\r\n" + b"y" * 1_000_000 + b"\r\n.\r\n")
        code, lines = await session.reply()
        assert (code, lines[0].split()[0]) == (500, "5.5.2")
        await session.send(b"NOOP\r\n")
        assert (await session.reply())[0] == 250
    finally:
        await session.close()
    await still_serves(relay.server.port, conv)


async def test_many_recipients_each_get_an_answer(relay, conv, sink):
    rcpts = [conv.seller_alias] * 30 + [f"{i:016x}@{conv.seller_alias.split('@')[1]}" for i in range(200)]
    rcpts += ["victim@elsewhere.example"] * 50 + ["<>", "not an address"]
    session = await RawSession.open(relay.server.port)
    try:
        await session.send(b"EHLO attacker.test\r\n")
        assert (await session.reply())[0] == 250
        await session.send(f"MAIL FROM:<{conv.buyer_email}>\r\n".encode()
                           + b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in rcpts) + b"DATA\r\n")
        assert (await session.reply())[0] == 250
        codes = [(await session.reply())[0] for _ in rcpts]
        # The alias repeated is one recipient (delivered once, below); nothing else is accepted.
        assert codes[:30] == [250] * 30
        assert set(codes[30:]) <= {452, 550, 553, 501}, codes
        assert (await session.reply())[0] == 354
        await session.send(compose(sender=conv.buyer_email, to=conv.seller_alias, subject="many") + b".\r\n")
        assert (await session.reply())[0] == 250
    finally:
        await session.close()
    await every_250_delivered(sink, relay.config_path, 1)
    assert len(sink.handler.to(conv.seller_email)) == 1


async def test_pipelined_garbage_gets_answers_then_a_goodbye(relay, conv):
    garbage = [b"\x00\x01\x02", b"\xff\xfe HELO", b"GET / HTTP/1.1", b"MAIL FROM:", b"RCPT TO:<>", b"DATA",
               b"BDAT 10 LAST", b"AUTH PLAIN AGFiYwBkZWY=", b"STARTTLS", b"VRFY root", b"EXPN staff", b"\r",
               b"\t", b"HELO", b"QUITX", b"." * 600] * 10
    session = await RawSession.open(relay.server.port)
    answers: list[int] = []
    try:
        await session.send(b"".join(g + b"\r\n" for g in garbage))
        while True:
            try:
                code, _ = await session.reply()
            except AssertionError:  # the relay closed the session
                break
            answers.append(code)
            if code in (421, 502, 221):
                break
    finally:
        await session.close()
    assert answers and all(400 <= c < 600 or c in (250, 252) for c in answers), answers
    await still_serves(relay.server.port, conv)


async def test_a_slow_writer_within_the_limits_is_served(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port, smtp_extra="timeout = 5")
    conv = open_conversation(app.config_path)
    session = await RawSession.open(app.server.port)
    try:
        await transaction(session, conv)
        data = compose(sender=conv.buyer_email, to=conv.seller_alias, subject="slow") + b".\r\n"
        for start in range(0, len(data), 40):
            await session.send(data[start:start + 40])
            await asyncio.sleep(0.01)
        assert (await session.reply())[0] == 250
    finally:
        await session.close()
    await every_250_delivered(sink, app.config_path, 1)


# --- hypothesis: whole sessions of hostile bytes ----------------------------------

_PIECES = [b"EHLO x\r\n", b"HELO x\r\n", b"MAIL FROM:<{buyer}>\r\n", b"RCPT TO:<{alias}>\r\n", b"DATA\r\n",
           b"RSET\r\n", b"NOOP\r\n", b"\r\n.\r\n", b".\r\n", b"\n.\n", b"\r\n", b"\n", b"\r", b"\x00",
           b"From: {buyer}\r\n", b"Subject: =?x?q?y?=\r\n", b"\xff\xfe", b"A" * 1200, b"MAIL FROM:<>\r\n",
           b"RCPT TO:<x@elsewhere.example>\r\n", b"STARTTLS\r\n", b"BDAT 5\r\n"]


@st.composite
def hostile_sessions(draw) -> bytes:
    return b"".join(draw(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=40)))


async def test_hostile_sessions_never_break_the_relay(relay, conv, sink):
    """Any byte stream from a client: the relay answers, or closes, and stays healthy."""
    loop = asyncio.get_running_loop()
    port = relay.server.port
    accepted: list[int] = []

    async def one(stream: bytes) -> None:
        stream = stream.replace(b"{buyer}", conv.buyer_email.encode()).replace(b"{alias}", conv.seller_alias.encode())
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"220")
            writer.write(stream + b"\r\n.\r\nQUIT\r\n")
            await writer.drain()
            answers = await asyncio.wait_for(reader.read(), 20)  # the relay ends the session: no hang
        finally:
            writer.close()
        for line in answers.split(b"\r\n"):
            if line:
                assert line[:3].isdigit() and not line.startswith(b"451"), answers
        accepted.append(answers.count(b"250 2.0.0 Message accepted"))

    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(hostile_sessions())
    def check(stream: bytes) -> None:
        asyncio.run_coroutine_threadsafe(one(stream), loop).result(timeout=40)

    await asyncio.to_thread(check)
    await still_serves(port, conv)
    await every_250_delivered(sink, relay.config_path, sum(accepted) + 1)


# --- a relay process -----------------------------------------------------------------

async def test_a_relay_process_survives_the_lot(tmp_path, relays, sink):
    path = write_config(tmp_path, smarthost_port=sink.port)
    assert run_cli(path, "init")[0] == 0
    conv = open_conversation(path)
    relay = await relays(path)
    bombs = [nested(5000, conv.buyer_email, conv.seller_alias), many_parts(200000, conv.buyer_email, conv.seller_alias),
             compose(sender=conv.buyer_email, to=conv.seller_alias) + b"x\n.\nMAIL FROM:<a@b.example>\r\n"]
    results = await asyncio.gather(*(data_reply(relay.port, conv.buyer_email, conv.seller_alias, b) for b in bombs))
    assert [code for code, _ in results] == [554, 554, 250]
    session = await RawSession.open(relay.port)
    await session.send(b"\x00\xff garbage\r\n" * 50 + b"EHLO " + b"x" * 50_000 + b"\r\n")
    await session.close()
    await still_serves(relay.port, conv)
    assert relay.proc.returncode is None
    await every_250_delivered(sink, path, 2)
    assert await relay.stop(signal.SIGTERM) == 0
    assert "Traceback" not in relay.log()
