"""Delivery outcomes over real SMTP: retry on 4xx, bounce with a DSN on 5xx or max_age.

The mailbox here is a real aiosmtpd server that can answer per recipient,
so a test can fail the conversation message and accept the DSN (or the
other way round). What the relay did is read back from its own SQLite file
and from `relay message list`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import pytest
from aiosmtpd.smtp import SMTP as AioSMTP

from relay.notices import scrub_diagnostic
from tests.conftest import (ALIAS_DOMAIN, Received, SinkHandler, compose, open_conversation, run_cli, unsealed,
                            send, sql, wait_until)

TRY_LATER = "451 4.3.0 try later"


@dataclass
class Mailbox(SinkHandler):
    """A sink that can fail chosen recipients: a few times (`fail_next`) or always."""

    fail_next: dict[str, list[str]] = field(default_factory=dict)
    fail_always: dict[str, str] = field(default_factory=dict)
    refused: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):
        for rcpt in envelope.rcpt_tos:
            reply = self.fail_always.get(rcpt.lower()) or (self.fail_next.get(rcpt.lower()) or [None]).pop(0)
            if reply:
                self.refused.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                             envelope.original_content))
                return reply
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
async def mailbox():
    handler = Mailbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: AioSMTP(handler, hostname="mx.test", loop=loop),
                                      "127.0.0.1", 0)
    handler.port = server.sockets[0].getsockname()[1]
    yield handler
    server.close()


async def seller_writes(app, conv, subject: str = "Your order") -> None:
    """A seller reply: one conversation message to the buyer, no acknowledgment."""
    data = compose(sender=f"Shop One <{conv.seller_email}>", to=conv.buyer_alias,
                   subject=f"{subject} {conv.order_id}", body="It ships today.\n")
    await send(app.server.port, conv.seller_email, [conv.buyer_alias], data)


async def buyer_writes(app, conv) -> None:
    data = compose(sender=f"Jane Buyer <{conv.buyer_email}>", to=conv.seller_alias)
    await send(app.server.port, conv.buyer_email, [conv.seller_alias], data)


def listed(app) -> list[dict]:
    code, out = run_cli(app.config_path, "message", "list")
    assert code == 0
    return [json.loads(line) for line in out.splitlines()]


def status_history(app, kind: str = "conversation") -> list[str]:
    return [s for (s,) in sql(app.config_path, "SELECT e.status FROM message_events e JOIN messages m "
                              "ON m.id = e.message_id WHERE m.kind = ? ORDER BY e.id", kind)]


def queue_states(app, kind: str) -> list[str]:
    return [s for (s,) in sql(app.config_path, "SELECT q.state FROM queue q JOIN messages m "
                              "ON m.id = q.message_id WHERE m.kind = ? ORDER BY q.id", kind)]


def check_dsn(dsn: Received, *, to: str, alias: str, status: str, secrets: list[str]) -> None:
    """What every DSN must be: strict, RFC 3464, and naming the recipient only by alias."""
    assert dsn.mail_from in ("", "<>")
    assert dsn.rcpt_tos == [to]
    msg = dsn.message
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["From"].addresses[0].addr_spec == f"MAILER-DAEMON@{ALIAS_DOMAIN}"
    assert msg["Auto-Submitted"] == "auto-replied"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts[:2] == ["text/plain", "message/delivery-status"]
    # Search the raw bytes and every part decoded (quoted-printable can split a word).
    text = dsn.data.decode("utf-8", "replace") + "".join(
        p.get_content() if p.get_content_maintype() == "text" else str(p) for p in msg.walk()
        if not p.is_multipart())
    assert f"Final-Recipient: rfc822; {alias}" in text
    assert "Action: failed" in text
    assert f"Status: {status}" in text
    for secret in secrets:
        assert secret.lower() not in text.lower(), secret


async def test_4xx_is_retried_and_delivered_once(relay_factory, mailbox):
    app = await relay_factory(smarthost_port=mailbox.port)
    conv = open_conversation(app.config_path)
    mailbox.fail_always[conv.buyer_email] = TRY_LATER  # until the test has seen it deferred twice
    await seller_writes(app, conv)
    await wait_until(lambda: [r["status"] for r in listed(app)] == ["deferred"])
    await wait_until(lambda: len(mailbox.refused) >= 2)
    del mailbox.fail_always[conv.buyer_email]
    await mailbox.wait_for(1)
    await wait_until(lambda: queue_states(app, "conversation") == ["delivered"])
    assert [r["status"] for r in listed(app)] == ["delivered"]
    assert len(mailbox.messages) == 1
    assert mailbox.messages[0].rcpt_tos == [conv.buyer_email]
    failures = len(mailbox.refused)
    assert status_history(app) == ["queued"] + ["deferred"] * failures + ["delivered"]
    assert sql(app.config_path, "SELECT attempts FROM queue") == [(failures + 1,)]
    assert status_history(app, "dsn") == []


@pytest.mark.parametrize("direction", ["seller_to_buyer", "buyer_to_seller"])
async def test_5xx_bounces_with_a_masked_dsn(relay_factory, mailbox, direction):
    app = await relay_factory(smarthost_port=mailbox.port)
    conv = open_conversation(app.config_path)
    if direction == "seller_to_buyer":
        sender, recipient, alias, write = conv.seller_email, conv.buyer_email, conv.buyer_alias, seller_writes
    else:
        sender, recipient, alias, write = conv.buyer_email, conv.seller_email, conv.seller_alias, buyer_writes
    mailbox.fail_always[recipient] = (f"550 5.1.1 <{recipient}> unknown user at "
                                      f"mx.real-host.example [192.0.2.1]")
    await write(app, conv)
    await wait_until(lambda: [m for m in mailbox.messages if m.mail_from in ("", "<>")
                              and m.message["Subject"].startswith("Undelivered")])
    dsns = [m for m in mailbox.to(sender) if m.message.get_content_type() == "multipart/report"]
    assert len(dsns) == 1
    check_dsn(dsns[0], to=sender, alias=alias, status="5.1.1",
              secrets=[recipient, recipient.split("@")[1], "real-host", "192.0.2.1"])
    assert mailbox.to(recipient) == []
    assert [r["status"] for r in listed(app)] == ["bounced"]
    assert "bounced" in status_history(app)


async def test_a_failing_dsn_is_not_bounced_again(relay_factory, mailbox):
    app = await relay_factory(smarthost_port=mailbox.port)
    conv = open_conversation(app.config_path)
    mailbox.fail_always[conv.buyer_email] = "550 5.1.1 unknown user"
    mailbox.fail_always[conv.seller_email] = "550 5.1.1 unknown user"
    await seller_writes(app, conv)
    await wait_until(lambda: queue_states(app, "dsn") == ["bounced"])
    assert queue_states(app, "conversation") == ["bounced"]
    # Bouncing the DSN would have queued a second one in the same transaction.
    assert queue_states(app, "dsn") == ["bounced"]
    assert unsealed(app.config_path, "messages.rcpt_to",
                    "SELECT rcpt_to, key_id FROM messages WHERE kind = 'dsn'") == [json.dumps([conv.seller_email])]
    assert mailbox.messages == []
    assert len(mailbox.refused) == 2


async def test_a_failing_acknowledgment_causes_no_dsn(relay_factory, mailbox):
    app = await relay_factory(smarthost_port=mailbox.port)
    conv = open_conversation(app.config_path)
    mailbox.fail_always[conv.buyer_email] = "550 5.1.1 unknown user"
    await buyer_writes(app, conv)
    await wait_until(lambda: queue_states(app, "notice") == ["bounced"])
    await wait_until(lambda: queue_states(app, "conversation") == ["delivered"])
    assert queue_states(app, "dsn") == []
    assert [m.rcpt_tos for m in mailbox.messages] == [[conv.seller_email]]
    assert [r["status"] for r in listed(app)] == ["delivered"]


async def test_max_age_bounces_with_a_dsn(relay_factory, mailbox):
    app = await relay_factory(smarthost_port=mailbox.port, max_age=3)
    conv = open_conversation(app.config_path)
    mailbox.fail_always[conv.buyer_email] = TRY_LATER
    await seller_writes(app, conv)
    [dsn] = await mailbox.wait_for(1)
    check_dsn(dsn, to=conv.seller_email, alias=conv.buyer_alias, status="4.4.7",
              secrets=[conv.buyer_email, "buyermail"])
    assert [r["status"] for r in listed(app)] == ["bounced"]
    history = status_history(app)
    assert history[0] == "queued" and history[-1] == "bounced" and "deferred" in history
    [(attempts, state)] = sql(app.config_path, "SELECT attempts, state FROM queue q JOIN messages m "
                                               "ON m.id = q.message_id WHERE m.kind = 'conversation'")
    assert state == "bounced" and attempts >= 3  # tries at 0, 1, 2 and the deadline at 3 s
    assert len(mailbox.refused) == attempts


async def test_worker_outlives_a_database_error(relay_factory, mailbox):
    """The queue table vanishes for a moment (a real SQLite error): delivery resumes after."""
    app = await relay_factory(smarthost_port=mailbox.port)
    conv = open_conversation(app.config_path)
    await asyncio.sleep(0.6)  # the worker is in its loop
    sql(app.config_path, "ALTER TABLE queue RENAME TO queue_away")
    await asyncio.sleep(1.5)  # the worker polls every 0.5 s and fails each time
    sql(app.config_path, "ALTER TABLE queue_away RENAME TO queue")
    await seller_writes(app, conv)
    [got] = await mailbox.wait_for(1)
    assert got.rcpt_tos == [conv.buyer_email]


REAL = "jbuyer7@buyermail.example"
ALIAS = f"45470d19bfaf0abe@{ALIAS_DOMAIN}"


@pytest.mark.parametrize("remote", [
    f"550 5.1.1 <{REAL}>: Recipient address rejected: User unknown in virtual mailbox table",
    f"550 5.1.1 <{REAL.upper()}>... User unknown",
    "550 5.1.1 jbuyer7... User unknown",                       # sendmail names the mailbox alone
    "550 5.2.1 mailbox JBuyer7 is disabled",
    "550 5.1.1 unknown user at mx.buyermail.example [192.0.2.1]",
    "550 5.1.1 unknown user at mail2.buyermail.example [IPv6:2001:db8::25]",
    "550 5.1.1 host 2001:db8:0:1::25 said: no such user",
    "550 5.7.1 <other.person@buyermail.example> forwarding loop",
    "550-5.1.1 The account does not exist.\r\n550 5.1.1 https://support.buyermail.example/ x7si mx.buyermail.example",
])
def test_dsn_reason_keeps_nothing_of_the_real_recipient(remote):
    reason = scrub_diagnostic(remote, {REAL: ALIAS})
    for secret in ("jbuyer7", "buyermail", "192.0.2.1", "2001:db8", "other.person"):
        assert secret not in reason.lower(), (secret, reason)
    assert reason.startswith("550")
