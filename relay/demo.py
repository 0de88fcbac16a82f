"""`relay demo`: a buyer and a seller write to each other through the relay.

`run_demo()` works in a temporary folder: it writes a config, starts the
real relay (smarthost mode) and an aiosmtpd mailbox on free loopback ports,
adds a seller, opens a thread, sends a buyer message and the seller's reply
through real SMTP, and prints each as its recipient's mailbox got it.
Nothing leaves loopback. Returns 0, or 1 with one line on stderr when a
message does not arrive in time; the folder is removed either way.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import sys
import tempfile
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import aiosmtplib
from aiosmtpd.smtp import SMTP

from aliasing.addresses import parse_address
from relay import config as config_mod
from relay.app import App
from storage import directory

BUYER = ("Jane Buyer", "jane@buyer-mail.example")
SELLER = ("Acme Shop", "orders@acme-shop.example")
ORDER_ID = "112-1234567-1234567"
WAIT_SECONDS = 20

CONFIG = """\
[smtp]
host = "127.0.0.1"
port = 0
hostname = "relay.demo.example"
shutdown_grace = 2

[aliases]
domain = "marketplace.example"
key_file = "alias.keys"

[storage]
url = "sqlite:///relay.db"

[delivery]
mode = "smarthost"
smarthost = "127.0.0.1:{sink_port}"
retry_schedule = [1]
poll_interval = 0.2

[dns]
nameservers = ["127.0.0.1:53"]  # unused in smarthost mode; loopback all the same

[auth]
# The demo's made-up domains publish no SPF, DKIM or DMARC records, and the
# demo reaches no DNS: sender authentication is off here (see README, [auth]).
mode = "off"
"""


class Mailbox:
    """Every party's mailbox at once: keeps what the relay delivers."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []
        self.arrived = asyncio.Event()

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        self.arrived.set()
        return "250 2.0.0 stored"

    async def conversation_mail_for(self, address: str) -> EmailMessage:
        """The first message from the other party (not a notice) delivered to `address`."""
        async def first() -> EmailMessage:
            while True:
                for mail_from, rcpts, data in self.received:
                    if address in rcpts and mail_from not in ("", "<>"):  # notices use a null sender
                        return email.message_from_bytes(data, policy=email.policy.default)
                self.arrived.clear()
                await self.arrived.wait()
        return await asyncio.wait_for(first(), WAIT_SECONDS)


def compose(sender: tuple[str, str], to: str, subject: str, body: str, in_reply_to: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = f"{sender[0]} <{sender[1]}>", to, subject
    msg["Message-ID"] = make_msgid(domain=parse_address(sender[1]).domain)
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    msg.set_content(body)
    return msg.as_bytes(policy=email.policy.SMTP)


def show(title: str, msg: EmailMessage) -> None:
    print(f"\n{title}\n" + "-" * len(title))
    print("".join(f"  {name}: {msg[name]}\n" for name in ("From", "To", "Subject", "Message-ID")))
    for line in msg.get_body(preferencelist=("plain",)).get_content().rstrip().splitlines():
        print(f"  | {line}")


async def run_demo() -> int:
    with tempfile.TemporaryDirectory(prefix="relay-demo-") as tmp:
        loop = asyncio.get_running_loop()
        mailbox = Mailbox()
        sink = await loop.create_server(lambda: SMTP(mailbox, hostname="mailbox.demo.example", loop=loop),
                                        "127.0.0.1", 0)
        try:
            path = Path(tmp) / "relay.toml"
            path.write_text(CONFIG.format(sink_port=sink.sockets[0].getsockname()[1]))
            app = App.build(config_mod.load(path))
            try:
                await app.start()
                return await _conversation(app, mailbox)
            finally:
                await app.stop()
        except asyncio.TimeoutError:
            print(f"relay demo: a message did not arrive within {WAIT_SECONDS} s", file=sys.stderr)
            return 1
        except aiosmtplib.SMTPException as exc:
            print(f"relay demo: the relay refused a message: {exc}", file=sys.stderr)
            return 1
        finally:
            sink.close()
            await sink.wait_closed()


async def _conversation(app: App, mailbox: Mailbox) -> int:
    await app.db.write(lambda c: directory.add_seller(c, app.sealer, "acme", parse_address(SELLER[1]), SELLER[0]))
    thread = await app.db.write(lambda c: directory.open_thread(
        c, app.keyring, app.sealer, seller_id="acme", buyer_email=parse_address(BUYER[1]), buyer_name=BUYER[0],
        order_id=ORDER_ID, asins=[], fulfillment="mfn"))
    domain = app.config.aliases.domain
    buyer_alias, seller_alias = f"{thread.buyer_alias}@{domain}", f"{thread.seller_alias}@{domain}"
    print(f"Marketplace Relay demo: order {ORDER_ID}, one thread, two aliases.\n")
    print(f"  Buyer   {BUYER[0]:<11} real address {BUYER[1]:<26} alias {buyer_alias}")
    print(f"  Seller  {SELLER[0]:<11} real address {SELLER[1]:<26} alias {seller_alias}")
    print("\nEach side writes to the other's alias from its own mail program; the relay\n"
          "swaps real addresses for aliases, so neither ever learns the other's.")

    async def smtp(sender: tuple[str, str], to: str, data: bytes) -> None:
        await aiosmtplib.send(data, sender=sender[1], recipients=[to], hostname="127.0.0.1",
                              port=app.server.port, start_tls=False, timeout=WAIT_SECONDS)

    await smtp(BUYER, seller_alias, compose(
        BUYER, seller_alias, "Where is my parcel?",
        f"Hello,\nmy order has not arrived yet. You can reach me at {BUYER[1]}.\n\nJane"))
    to_seller = await mailbox.conversation_mail_for(SELLER[1])
    show(f"What the seller receives at {SELLER[1]} (the buyer's address is hidden):", to_seller)

    await smtp(SELLER, buyer_alias, compose(
        SELLER, buyer_alias, f"Re: {to_seller['Subject']}",
        f"Dear Jane,\nyour parcel left today. Questions? Write to {SELLER[1]}.\n\nAcme Shop",
        in_reply_to=to_seller["Message-ID"]))
    to_buyer = await mailbox.conversation_mail_for(BUYER[1])
    show(f"What the buyer receives at {BUYER[1]} (the seller's address is hidden):", to_buyer)
    print("\nBoth bodies named a real address; the relay replaced each with its alias.")
    return 0
