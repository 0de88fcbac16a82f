"""Fixtures: the relay, a mailbox sink and a DNS responder, all real, on loopback.

Every fixture here is a factory or a running thing in the test's own event
loop: `sink` is an aiosmtpd server that stores what it receives (and can
be told to answer 4xx or 5xx), `relay_factory` writes a `relay.toml` into
the test's folder, builds the real `App` on an ephemeral port with a real
SQLite file, `relays` starts `relay serve` as a real child process, and
`dns_server` answers from records the test sets.

Every relay authenticates its senders (SPF, DKIM, DMARC) in strict mode,
as in production. So that mail sent from loopback is authentic by
default, every config points `[dns] nameservers` at a responder whose
wildcard default TXT record is `LOOPBACK_SPF` (an SPF pass for 127.0.0.0/8
for any domain): `default_dns()`, shared by the session and served from a
thread, unless the test passes its own `dns_server`, which has the same
default.
"""

from __future__ import annotations

import asyncio
import email
import os
import email.policy
import functools
import json
import socket
import sys
import textwrap
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP as AioSMTP

from relay import config as config_mod
from relay.app import App, open_sealer
from relay.cli import main as cli_main
from tests.dnsresponder import DnsResponder

ALIAS_DOMAIN = "marketplace.example"
SELLER_EMAIL = "owner@sellershop.example"
BUYER_EMAIL = "jane.buyer@buyermail.example"
ORDER_ID = "112-1234567-1234567"
LOOPBACK_SPF = "v=spf1 ip4:127.0.0.0/8 -all"


@dataclass
class CorpusTally:
    """Outcomes of `tests/test_corpus.py`, printed when the run ends."""

    false_refusals: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    total: int = 0

    def record(self, name: str, expected: str, refused: bool, got: str) -> None:
        self.total += 1
        if expected == "refuse" and not refused:
            self.missed.append(f"{name}: {got}")
        elif expected != "refuse" and refused:
            self.false_refusals.append(f"{name}: {got}")


CORPUS_TALLY = pytest.StashKey[CorpusTally]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tally = config.stash.get(CORPUS_TALLY, None)
    if tally is None:
        return
    terminalreporter.section("policy corpus")
    terminalreporter.write_line(f"{tally.total} messages: {len(tally.false_refusals)} false refusals, "
                                f"{len(tally.missed)} missed violations")
    for line in tally.false_refusals:
        terminalreporter.write_line(f"  false refusal: {line}")
    for line in tally.missed:
        terminalreporter.write_line(f"  missed: {line}")


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


@dataclass
class SinkHandler:
    """A mailbox: stores messages, or answers with queued failure replies."""

    messages: list[Received] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # replies to give before accepting
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_DATA(self, server, session, envelope):
        if self.failures:
            return self.failures.pop(0)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.original_content))
        self.arrived.set()
        return "250 2.0.0 stored"

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        async def enough():
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(enough(), timeout)
        return self.messages

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt_tos]


@dataclass
class Sink:
    handler: SinkHandler
    server: asyncio.Server
    port: int

    async def close(self):
        self.server.close()


async def start_sink(port: int = 0) -> Sink:
    handler = SinkHandler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: AioSMTP(handler, hostname="sink.test", enable_SMTPUTF8=True, data_size_limit=None,
                        loop=loop), "127.0.0.1", port)
    return Sink(handler, server, server.sockets[0].getsockname()[1])


@pytest.fixture
async def sink():
    s = await start_sink()
    yield s
    await s.close()


@functools.cache
def default_dns() -> DnsResponder:
    """The session's DNS responder: only the loopback SPF default, in a thread of its own."""
    responder = DnsResponder(fallback_txt=LOOPBACK_SPF)
    responder.start_thread()
    return responder


@pytest.fixture
async def dns_server():
    responder = DnsResponder(fallback_txt=LOOPBACK_SPF)
    await responder.start()
    yield responder
    responder.stop()


@functools.cache
def _dkim_key_file_text() -> bytes:
    """One DKIM key for the whole run: making an RSA key for every test relay is slow."""
    from relay import signing
    return signing.new_key_file_text("relay")


def write_config(folder: Path, *, smarthost_port: int | None = None, dns_port: int | None = None,
                 mx_port: int = 25, extra: str = "", retry: str = "[1, 1, 2]", max_age: float = 60,
                 smtp_extra: str = "", dns_extra: str = "", dkim_key: bool = True) -> Path:
    """`extra` is appended as whole sections; `smtp_extra` and `dns_extra` add keys to [smtp], [dns].

    `dkim_key` puts the run's shared DKIM key in place (else `init` makes one).
    """
    if dkim_key and not (folder / "keys" / "dkim.key").exists():
        (folder / "keys").mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / "keys" / "dkim.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(_dkim_key_file_text())
    delivery = (f'mode = "smarthost"\nsmarthost = "127.0.0.1:{smarthost_port}"'
                if smarthost_port else f'mode = "mx"\nmx_port = {mx_port}')
    dns = f'nameservers = ["127.0.0.1:{dns_port or default_dns().port}"]\n{dns_extra}'
    text = textwrap.dedent(f"""\
        [smtp]
        host = "127.0.0.1"
        port = 0
        hostname = "relay.test"
        shutdown_grace = 5
        {smtp_extra}

        [aliases]
        domain = "{ALIAS_DOMAIN}"
        key_file = "keys/alias.keys"

        [storage]
        url = "sqlite:///data/relay.db"

        [dkim]
        key_file = "keys/dkim.key"

        [dns]
        {dns}

        [marketplace]
        name = "Marketplace"
        notices_from = "no-reply@{ALIAS_DOMAIN}"
        """)
    text += f"\n[delivery]\n{delivery}\nretry_schedule = {retry}\nmax_age = {max_age}\npoll_interval = 0.5\n"
    text += extra
    path = folder / "relay.toml"
    path.write_text(text)
    return path


def run_cli(config_path: Path, *args: str) -> tuple[int, str]:
    out = StringIO()
    with redirect_stdout(out):
        code = cli_main(["--config", str(config_path), *args])
    return code, out.getvalue()


@dataclass
class Conversation:
    """A seller and a buyer with an open thread."""

    config_path: Path
    thread_id: int
    buyer_alias: str
    seller_alias: str
    order_id: str = ORDER_ID
    seller_email: str = SELLER_EMAIL
    buyer_email: str = BUYER_EMAIL


def open_conversation(config_path: Path, *, seller_id: str = "S1", order_id: str = ORDER_ID,
                      seller_email: str = SELLER_EMAIL, buyer_email: str = BUYER_EMAIL) -> Conversation:
    code, _ = run_cli(config_path, "seller", "add", seller_id, "--email", seller_email, "--name", "Shop One")
    assert code in (0, 1)  # 1: the seller exists already
    code, out = run_cli(config_path, "thread", "open", "--seller", seller_id, "--buyer-email", buyer_email,
                        "--buyer-name", "Jane Buyer", "--order", order_id, "--asin", "B000TEST01")
    assert code == 0, out
    t = json.loads(out)
    return Conversation(config_path, t["thread_id"], t["buyer_alias"], t["seller_alias"], order_id,
                        seller_email, buyer_email)


@pytest.fixture
async def relay_factory(tmp_path):
    apps: list[App] = []

    async def make(**kwargs) -> App:
        folder = kwargs.pop("folder", tmp_path)
        path = write_config(folder, **kwargs)
        app = App.build(config_mod.load(path))
        await app.start()
        app.config_path = path
        apps.append(app)
        return app

    yield make
    for app in apps:
        await app.stop()


@pytest.fixture
async def relay(relay_factory, sink):
    """A relay that delivers to `sink`, with the test settings and nothing else."""
    return await relay_factory(smarthost_port=sink.port)


@pytest.fixture
def conv(relay) -> Conversation:
    """A seller and a buyer with a thread open on `relay`."""
    return open_conversation(relay.config_path)


def compose(*, sender: str, to: str, subject: str = "Question about my order", body: str = "Hello,\nwhere is my parcel?\n",
            headers: dict[str, str] | None = None) -> bytes:
    msg = email.message.EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = email.utils.make_msgid(domain=sender.split("@")[-1].rstrip(">"))
    msg["Date"] = email.utils.formatdate()
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    return msg.as_bytes(policy=email.policy.SMTP)


async def send(port: int, mail_from: str, rcpts: list[str], data: bytes):
    """Send through real SMTP; returns (errors, response) or raises aiosmtplib errors."""
    return await aiosmtplib.send(data, sender=mail_from, recipients=rcpts, hostname="127.0.0.1",
                                 port=port, start_tls=False, timeout=30)


async def wait_until(check, timeout: float = 20.0, interval: float = 0.1):
    """Poll `check()` until it returns something truthy, and return that; fails on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {getattr(check, '__name__', check)}")
        await asyncio.sleep(interval)


def sql(config_path: Path, statement: str, *params) -> list[tuple]:
    """Run one statement on the relay's real SQLite file (written by `write_config`)."""
    import sqlite3
    conn = sqlite3.connect(config_path.parent / "data" / "relay.db", timeout=30)
    try:
        with conn:
            return conn.execute(statement, params).fetchall()
    finally:
        conn.close()


def unsealed(config_path: Path, column: str, statement: str, *params) -> list:
    """`sql` for one sealed column: `statement` selects (value, key_id); returns the opened texts."""
    sealer = open_sealer(config_mod.load(config_path))
    return [sealer.text(column, value, key_id) for value, key_id in sql(config_path, statement, *params)]
async def publish_dkim(config_path: Path, dns_server: DnsResponder) -> str:
    """Serve the record `relay keys dkim` prints from the loopback responder; returns the line."""
    code, line = run_cli(config_path, "keys", "dkim")
    assert code == 0, line
    name, _in, _txt, value = line.strip().split(" ", 3)
    dns_server.records.pop((name.lower().rstrip("."), "TXT"), None)
    dns_server.add(name, "TXT", value)
    return line


async def dkim_verifies(data: bytes, dns_server: DnsResponder) -> bool:
    """dkimpy's verdict on the top signature, with keys looked up in the loopback responder."""
    import dkim
    import dns.message
    import dns.query

    def dnsfunc(name: bytes, timeout: float = 5):
        query = dns.message.make_query(name.decode("ascii"), "TXT")
        answer = dns.query.udp(query, "127.0.0.1", port=dns_server.port, timeout=timeout)
        for rrset in answer.answer:
            for record in rrset:
                return b"".join(record.strings)
        return None
    # In a thread: the responder answers on this event loop.
    return await asyncio.to_thread(dkim.verify, data, dnsfunc=dnsfunc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RelayProcess:
    """`relay serve` in a child process; its log goes to a file next to the config."""

    def __init__(self, config_path: Path):
        self.config_path = config_path
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def start(self) -> RelayProcess:
        log = open(self.config_path.parent / "relay.log", "ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "relay", "--config", str(self.config_path), "serve",
            stdout=asyncio.subprocess.PIPE, stderr=log, cwd=self.config_path.parent)
        log.close()
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        assert line.startswith(b"relay: listening on "), line + self.log().encode()
        self.port = int(line.split()[3].rsplit(b":", 1)[1])
        return self

    def log(self) -> str:
        return (self.config_path.parent / "relay.log").read_text(errors="replace")

    async def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), 30)

    async def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def relays():
    started: list[RelayProcess] = []

    async def start(config_path: Path) -> RelayProcess:
        relay = RelayProcess(config_path)
        started.append(relay)
        return await relay.start()

    yield start
    for relay in started:
        await relay.ensure_stopped()
