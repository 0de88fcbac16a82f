"""VERP: each delivery's own bounce address, and returned mail matched to its message.

A message goes out, the sink side later sends a bounce (RFC 3464 report or
plain text) with the null sender to the envelope sender it saw, and the
original sender gets a notice that names the recipient by alias only.
"""

from __future__ import annotations

import re
from datetime import timedelta
from email.message import EmailMessage, Message
import email.policy

import aiosmtplib
import pytest

from aliasing.verp import VerpCodec
from storage import bounces as store
from storage import queue
from storage.db import Database, upgrade
from storage.messages import NewDelivery, NewMessage, log_message
from storage.sealing import Sealer, ensure_storage_key_file
from tests.conftest import (ALIAS_DOMAIN, compose, dkim_verifies, open_conversation, publish_dkim,
                            send, sql, wait_until)

VERP = re.compile(r"^bounces\+[0-9a-f]{16}@" + re.escape(ALIAS_DOMAIN) + "$")
# What the recipient's side of a bounce says, none of which may reach the sender.
SECRETS = ("jane.buyer", "buyermail", "192.0.2.7", "mx2", "unknown in local recipient table",
           "disabled account of")


def rfc3464_bounce(verp: str, recipient: str, status: str = "5.1.1", action: str = "failed") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Mail Delivery System <MAILER-DAEMON@mx.buyermail.example>"
    msg["To"] = verp
    msg["Subject"] = "Undelivered Mail Returned to Sender"
    msg.set_content(f"This is the mail system at host mx.buyermail.example.\n\n<{recipient}>: host "
                    f"mx2.buyermail.example[192.0.2.7] said: 550 {status} <{recipient}>: Recipient "
                    "address rejected: User unknown in local recipient table\n")
    msg.make_mixed()
    msg.set_type("multipart/report")
    msg.set_param("report-type", "delivery-status")
    per_message, per_recipient = Message(), Message()
    per_message["Reporting-MTA"] = "dns; mx.buyermail.example"
    per_recipient["Final-Recipient"] = f"rfc822; {recipient}"
    per_recipient["Action"] = action
    per_recipient["Status"] = status
    per_recipient["Remote-MTA"] = "dns; mx2.buyermail.example [192.0.2.7]"
    per_recipient["Diagnostic-Code"] = "smtp; 550 User unknown in local recipient table"
    part = EmailMessage()
    part["Content-Type"] = "message/delivery-status"
    part.set_payload([per_message, per_recipient])
    msg.attach(part)
    return msg.as_bytes(policy=email.policy.SMTP)


def plain_bounce(verp: str, recipient: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "MAILER-DAEMON@mx.buyermail.example"
    msg["To"] = verp
    msg["Subject"] = "failure notice"
    msg.set_content("Hi. This is the qmail-send program at mx.buyermail.example.\n"
                    "I'm afraid I wasn't able to deliver your message to the following addresses.\n\n"
                    f"<{recipient}>:\n192.0.2.7 does not like recipient.\nRemote host said: 550 5.2.1 "
                    f"The disabled account of {recipient} cannot receive mail (mx2)\n")
    return msg.as_bytes(policy=email.policy.SMTP)


async def deliver_one(app, sink, conv) -> tuple[str, int]:
    """The seller writes to the buyer; returns the envelope sender the buyer's server saw."""
    await send(app.server.port, conv.seller_email, [conv.buyer_alias],
               compose(sender=conv.seller_email, to=conv.buyer_alias, subject=f"Order {conv.order_id}",
                       body="Your parcel ships today.\n"))
    received = (await sink.handler.wait_for(1))[0]
    message_id = sql(conv.config_path, "SELECT id FROM messages WHERE kind = 'conversation'")[0][0]
    await wait_until(lambda: sql(conv.config_path, "SELECT status FROM messages WHERE id = ?",
                                 message_id)[0][0] == "delivered")
    return received.mail_from, message_id


async def return_it(port: int, verp: str, data: bytes):
    """Send with the null sender (MAIL FROM:<>), as bounces come."""
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=30)
    await client.connect()
    try:
        return await client.sendmail("", [verp], data)
    finally:
        client.close()


@pytest.mark.parametrize("kind", ["rfc3464", "plain"])
async def test_a_bounce_marks_the_message_and_tells_the_sender_by_alias_only(relay_factory, sink,
                                                                             dns_server, kind):
    app = await relay_factory(smarthost_port=sink.port)
    conv = open_conversation(app.config_path)
    await publish_dkim(app.config_path, dns_server)
    verp, message_id = await deliver_one(app, sink, conv)
    assert VERP.match(verp), verp
    data = (rfc3464_bounce(verp, conv.buyer_email) if kind == "rfc3464"
            else plain_bounce(verp, conv.buyer_email))
    errors, response = await return_it(app.server.port, verp, data)
    assert not errors and response.startswith("2.0.0")

    notice = (await sink.handler.wait_for(2))[1]
    assert notice.rcpt_tos == [conv.seller_email] and notice.mail_from in ("", "<>")
    text = notice.data.decode()
    status = "5.1.1" if kind == "rfc3464" else "5.2.1"
    assert conv.buyer_alias in text and status in text
    for secret in SECRETS:
        assert secret not in text.lower(), secret
    assert await dkim_verifies(notice.data, dns_server)
    assert sql(app.config_path, "SELECT status FROM messages WHERE id = ?", message_id) == [("bounced",)]
    events = [r[0] for r in sql(app.config_path, "SELECT status FROM message_events WHERE message_id = ? "
                                                 "ORDER BY id", message_id)]
    assert events[-1] == "bounced" and "delivered" in events
    kinds = sql(app.config_path, "SELECT kind, status FROM messages WHERE id > ? ORDER BY id", message_id)
    assert kinds == [("bounce", "received"), ("dsn", "delivered")] or kinds[:2] == [("bounce", "received"),
                                                                                  ("dsn", "queued")]


async def test_a_second_bounce_sends_no_second_notice(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port)
    conv = open_conversation(app.config_path)
    verp, message_id = await deliver_one(app, sink, conv)
    await return_it(app.server.port, verp, rfc3464_bounce(verp, conv.buyer_email))
    await sink.handler.wait_for(2)
    await return_it(app.server.port, verp, plain_bounce(verp, conv.buyer_email))
    count = lambda: sql(app.config_path, "SELECT count(*) FROM messages WHERE kind = 'bounce'")[0][0]
    await wait_until(lambda: count() == 2)
    assert sql(app.config_path, "SELECT count(*) FROM messages WHERE kind = 'dsn'") == [(1,)]


async def test_delay_warnings_and_auto_replies_are_logged_but_change_nothing(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port)
    conv = open_conversation(app.config_path)
    verp, message_id = await deliver_one(app, sink, conv)
    await return_it(app.server.port, verp, rfc3464_bounce(verp, conv.buyer_email, "4.4.1", "delayed"))
    reply = compose(sender=conv.buyer_email, to=verp, subject="Out of office",
                    headers={"Auto-Submitted": "auto-replied"})
    await send(app.server.port, conv.buyer_email, [verp], reply)
    assert sql(app.config_path, "SELECT count(*) FROM messages WHERE kind = 'bounce'") == [(2,)]
    assert sql(app.config_path, "SELECT status FROM messages WHERE id = ?", message_id) == [("delivered",)]
    assert sql(app.config_path, "SELECT count(*) FROM messages WHERE kind = 'dsn'") == [(0,)]


async def test_unknown_and_forged_bounce_addresses_are_refused(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port)
    conv = open_conversation(app.config_path)
    await send(app.server.port, conv.buyer_email, [conv.seller_alias],
               compose(sender=conv.buyer_email, to=conv.seller_alias))
    received = await sink.handler.wait_for(2)
    verp = next(m.mail_from for m in received if VERP.match(m.mail_from))
    token = verp.split("+", 1)[1].split("@")[0]
    forged = verp.replace(token, token[:-1] + ("0" if token[-1] != "0" else "1"))
    codec = VerpCodec(app.keyring, ALIAS_DOMAIN)
    ack_entry = sql(app.config_path, "SELECT q.id FROM queue q JOIN messages m ON m.id = q.message_id "
                                     "WHERE m.kind = 'notice'")[0][0]
    for address in (forged, f"bounces@{ALIAS_DOMAIN}", f"bounces+zz@{ALIAS_DOMAIN}",
                    codec.address(99999), codec.address(ack_entry)):
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as caught:
            await return_it(app.server.port, address, rfc3464_bounce(address, conv.buyer_email))
        refused = caught.value.recipients[0]
        assert (refused.code, refused.message.split()[0]) == (550, "5.1.1"), address


async def test_one_report_per_transaction(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port)
    conv = open_conversation(app.config_path)
    verp, _ = await deliver_one(app, sink, conv)
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=app.server.port, start_tls=False)
    await client.connect()
    try:
        await client.mail("")
        assert (await client.rcpt(verp)).code == 250
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as caught:
            await client.rcpt(conv.buyer_alias)
        assert caught.value.code == 452
    finally:
        client.close()


def test_verp_tokens_round_trip_survive_alias_key_rotation_and_resist_forgery(tmp_path):
    from aliasing.keys import add_key, ensure_key_file, load_key_ring
    path = tmp_path / "alias.keys"
    ensure_key_file(path)
    old = VerpCodec(load_key_ring(path), ALIAS_DOMAIN)
    address = old.address(4242)
    local = address.split("@")[0]
    assert VERP.match(address) and old.decode(local) == 4242
    assert old.address(4243) != address and old.decode(local.upper()) == 4242
    add_key(path)
    new = VerpCodec(load_key_ring(path), ALIAS_DOMAIN)
    assert new.decode(local) == 4242                    # made under the old key, still known
    assert new.address(4242) != address                 # new tokens use the new key
    token = local.split("+")[1]
    forged = [f"bounces+{token[::-1]}", f"bounces+{'0' * 16}", "bounces", f"bounce+{token}",
              f"bounces+{token}0", f"{token}"]
    assert all(new.decode(f) is None for f in forged)


@pytest.mark.parametrize(("data", "mail_from", "failed", "status"), [
    (rfc3464_bounce("b@x.example", "r@y.example", "5.7.1"), "", True, "5.7.1"),
    (rfc3464_bounce("b@x.example", "r@y.example", "5.1.1 evil text <a@b.example>"), "", True, "5.1.1"),
    (rfc3464_bounce("b@x.example", "r@y.example", "9.9.9"), "", True, "5.0.0"),
    (rfc3464_bounce("b@x.example", "r@y.example", "4.4.1", "delayed"), "", False, ""),
    (rfc3464_bounce("b@x.example", "r@y.example", "2.0.0", "delivered"), "", False, ""),
    (plain_bounce("b@x.example", "r@y.example"), "", True, "5.2.1"),
    (b"From: MAILER-DAEMON@mx.y.example\r\nSubject: Returned mail: see transcript\r\n\r\n"
     b"550 Requested action not taken: mailbox unavailable\r\n", "", True, "5.0.0"),
    (b"From: MAILER-DAEMON@mx.y.example\r\nSubject: Warning: message delayed\r\n\r\n"
     b"Still trying; 4.4.7 no answer from host\r\n", "", False, ""),
    (b"From: r@y.example\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\n"
     b"I am away until Monday.\r\n", "r@y.example", False, ""),
    (b"From: r@y.example\r\nSubject: hello\r\n\r\nJust a note.\r\n", "r@y.example", False, ""),
])
def test_reading_reports(data, mail_from, failed, status):
    from policy.parsed import ParsedMessage
    from relay.bounces import read_report
    report = read_report(ParsedMessage.from_bytes(data), mail_from)
    assert (report.failed, report.status) == (failed, status), report


def test_a_returned_message_stays_bounced_when_an_attempt_in_flight_finishes_later(tmp_path):
    """Returned mail can arrive while a worker holds the entry (a retry in flight):
    the worker's later outcome must not turn the message back into `delivered`."""
    ensure_storage_key_file(tmp_path / "storage.keys")
    sealer = Sealer(tmp_path / "storage.keys")
    db = Database.open(f"sqlite:///{tmp_path / 'relay.db'}")
    try:
        upgrade(db.write_engine)
        message = NewMessage(kind="conversation", mail_from="owner@sellershop.example", rcpt_to=["x"],
                             original=b"Subject: s\r\n\r\nbody\r\n", delivered=b"Subject: s\r\n\r\nbody\r\n",
                             status="queued", deliveries=[NewDelivery(f"bounces@{ALIAS_DOMAIN}",
                                                                      "jane.buyer@buyermail.example",
                                                                      f"b@{ALIAS_DOMAIN}")])
        message_id = db.write_sync(lambda c: log_message(c, message, sealer))
        [entry] = db.write_sync(lambda c: queue.claim(c, "worker-1", timedelta(minutes=5), 10, sealer))
        target = db.write_sync(lambda c: store.load_target(c, sealer, entry.id))
        assert target is not None and target.recipient == "jane.buyer@buyermail.example"
        assert db.write_sync(lambda c: store.mark_bounced(c, sealer, target, "returned (5.1.1)"))
        assert db.write_sync(lambda c: queue.finish(c, entry.id, "worker-1", "delivered", sealer=sealer,
                                                    key_id=entry.key_id, message_id=message_id))
        with db.write_engine.connect() as conn:
            status = conn.exec_driver_sql("SELECT status FROM messages WHERE id = ?", (message_id,)).scalar()
        assert status == "bounced"
    finally:
        db.close()
