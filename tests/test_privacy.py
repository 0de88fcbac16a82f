"""The privacy rewrite, threading, subjects and acknowledgments, over real SMTP.

A message full of the sender's traces (addresses in every header a mail
program writes, a quoted reply, an HTML mailto link, a base64 text part,
a text attachment; an attached message in a test of its own) goes
through the relay; the test then searches what
the sink received (raw, lower-cased, and every body part decoded) for
each real address of both parties in its plain, `%40` and `&#64;`
spellings, and for the hosts and IPs of the sender's path.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import json
import re
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select

from storage.models import Message
from tests.conftest import ALIAS_DOMAIN, Conversation, Received, compose, open_conversation, run_cli, send

STAFF_EMAIL = "staff@sellershop.example"
_BASE64_LINE = re.compile(rb"^[A-Za-z0-9+/]+=*$")
SMTP = email.policy.SMTP


@pytest.fixture
def conv(relay) -> Conversation:
    conversation = open_conversation(relay.config_path)
    assert run_cli(relay.config_path, "seller", "address", "add", "S1", STAFF_EMAIL)[0] == 0
    return conversation


def listed(relay) -> list[dict]:
    code, out = run_cli(relay.config_path, "message", "list")
    assert code == 0
    return [json.loads(line) for line in out.splitlines()]


def spellings(address: str) -> list[str]:
    local, domain = address.split("@")
    return [address, f"{local}%40{domain}", f"{local}&#64;{domain}"]


def base64_blocks(data: bytes) -> list[bytes]:
    """Every run of lines that looks like base64, decoded, wherever it stands."""
    blocks, run = [], []
    for line in data.splitlines() + [b""]:
        if len(line) >= 8 and _BASE64_LINE.match(line):
            run.append(line)
            continue
        if not run:
            continue
        joined = b"".join(run)
        run = []
        try:
            blocks.append(base64.b64decode(joined + b"=" * (-len(joined) % 4)))
        except binascii.Error:  # a line of plain words that only looked like base64
            continue
    return blocks


def searchable(received: Received) -> list[str]:
    """The raw bytes, every header decoded, every leaf part decoded and every
    base64 block decoded, all lower-cased."""
    texts = [received.data.decode("utf-8", errors="replace")]
    texts.extend(b.decode("utf-8", errors="replace") for b in base64_blocks(received.data))
    for part in received.message.walk():
        texts.extend(f"{name}: {value}" for name, value in part.items())
        if part.preamble:
            texts.append(part.preamble)
        if part.epilogue:
            texts.append(part.epilogue)
        if not part.is_multipart():
            payload = part.get_payload(decode=True) or b""
            texts.append(payload.decode("utf-8", errors="replace"))
    return [t.lower() for t in texts]


def assert_no_trace(received: Received, secrets: list[str]) -> None:
    texts = searchable(received)
    for secret in secrets:
        leaks = [t[max(0, t.find(secret.lower()) - 60):t.find(secret.lower()) + 60]
                 for t in texts if secret.lower() in t]
        assert not leaks, f"{secret} leaked: {leaks[:3]}"


def attached_message(*, author: str, to: str, domain: str) -> EmailMessage:
    inner = EmailMessage()
    inner["Received"] = f"from laptop.{domain} ([10.9.8.7]) by mx.{domain}; Mon, 1 Jan 2024 09:00:00 +0000"
    inner["Return-Path"] = f"<{author}>"
    inner["From"] = f"Earlier Me <{author}>"
    inner["To"] = to
    inner["Subject"] = "the earlier message"
    inner["Message-ID"] = f"<earlier.1@{domain}>"
    inner["DKIM-Signature"] = f"v=1; a=rsa-sha256; d={domain}; i={author}; s=s1; b=AAAA"
    inner.set_content(f"Earlier I wrote from {author} to {to}.\n")
    return inner


def traced_message(*, author: str, author_name: str, to: str, subject: str, quoted: str,
                   mentioned: list[str], domain: str, message_id: str) -> bytes:
    """A message carrying the author's traces everywhere a mail program puts them."""
    named = ", ".join(mentioned)
    msg = EmailMessage()
    msg["Return-Path"] = f"<{author}>"
    msg["Received"] = f"from [10.1.2.3] (helo=laptop.{domain}) by mail.{domain} for <{author}>; Mon, 1 Jan 2024 10:00:00 +0000"
    msg["Received"] = f"from mail.{domain} ([198.51.100.23]) by mx.relay.test; Mon, 1 Jan 2024 10:00:01 +0000"
    msg["DKIM-Signature"] = f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; i={author}; s=sel; h=from:to; bh=AAAA; b=BBBB"
    msg["X-Originating-IP"] = "[198.51.100.23]"
    msg["Sender"] = f"{author_name} <{author}>"
    msg["From"] = f"{author_name} <{author}>"
    msg["To"] = to
    msg["Cc"] = f"Me <{author}>, {named}"
    msg["Reply-To"] = f"{author_name} <{author}>"
    msg["Disposition-Notification-To"] = author
    msg["X-Mailer"] = f"Mail for {domain}"
    msg["Thread-Topic"] = f"question from {author}"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg["Date"] = "Mon, 01 Jan 2024 10:00:00 +0000"
    text = (f"Hello,\n\nYou can reach me at {author.upper()} or {named}. Grüße, {author_name}.\n"
            + "A long line that quoted-printable will have to fold somewhere in the middle: " * 3
            + f"{author}\n\nOn Mon, 1 Jan 2024 at 09:00, Jane <{quoted}> wrote:\n> the earlier question\n")
    msg.set_content(text, cte="quoted-printable")
    html = (f'<p>Write to <a href="mailto:{author}">{author_name}</a>, or {author.replace("@", "&#64;")}'
            f' or {named}.</p><blockquote>On Mon, Jane &lt;{quoted}&gt; wrote:<br>earlier</blockquote>')
    msg.add_alternative(html, subtype="html")
    msg.make_mixed()
    msg.preamble = f"This is a multi-part message from {author}.\n"
    signature = EmailMessage()
    signature.set_content(f"-- \n{author_name}\n{author}\n{named}\n", cte="base64")
    msg.attach(signature)
    msg.add_attachment(f"Contact card\nName: {author_name}\nEmail: {author}\n",
                       filename="contact.txt")
    return msg.as_bytes(policy=SMTP)


def with_attached_message(*, author: str, to: str, quoted: str, subject: str, domain: str) -> bytes:
    """A short note with an earlier message attached (message/rfc822)."""
    msg = EmailMessage()
    msg["Received"] = f"from laptop.{domain} ([10.1.2.3]) by mail.{domain}; Mon, 1 Jan 2024 10:00:00 +0000"
    msg["From"] = author
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<with.attached@{domain}>"
    msg.set_content("See the message I attached.\n")
    msg.add_attachment(attached_message(author=author, to=quoted, domain=domain))
    return msg.as_bytes(policy=SMTP)


def check_headers(received: Received, *, sender_alias: str, recipient_alias: str, display: str) -> None:
    msg = received.message
    for name in ("Received", "Return-Path", "Sender", "X-Originating-IP", "Cc",
                 "Disposition-Notification-To", "X-Mailer"):
        assert msg[name] is None, name
    # The sender's DKIM signature goes; the only one left is the relay's own.
    signatures = [" ".join(str(s).split()) for s in msg.get_all("DKIM-Signature") or []]
    assert len(signatures) == 1 and f"d={ALIAS_DOMAIN};" in signatures[0], signatures
    assert msg["From"].addresses[0].addr_spec == sender_alias
    assert msg["From"].addresses[0].display_name == display
    assert [a.addr_spec for a in msg["To"].addresses] == [recipient_alias]
    assert msg["Reply-To"] is None or [a.addr_spec for a in msg["Reply-To"].addresses] == [sender_alias]
    assert msg["Message-ID"].endswith(f"@{ALIAS_DOMAIN}>")
    assert received.mail_from.endswith(f"@{ALIAS_DOMAIN}")


def body_texts(received: Received) -> str:
    return "\n".join(t for t in searchable(received)[1:])


async def test_buyer_message_carries_no_trace_of_the_buyer(relay, sink, conv):
    data = traced_message(author=conv.buyer_email, author_name="Jane Buyer", to=conv.seller_alias,
                          subject=f"Order {conv.order_id}", quoted=conv.buyer_email,
                          mentioned=[conv.seller_email, STAFF_EMAIL], domain="buyermail.example",
                          message_id="<first.1@buyermail.example>")
    errors, _ = await send(relay.server.port, conv.buyer_email, [conv.seller_alias], data)
    assert errors == {}
    await sink.handler.wait_for(2)
    [delivered] = sink.handler.to(conv.seller_email)
    assert delivered.rcpt_tos == [conv.seller_email]
    secrets = [*spellings(conv.buyer_email), *spellings(conv.seller_email), *spellings(STAFF_EMAIL),
               "buyermail.example", "10.1.2.3", "198.51.100.23", "10.9.8.7"]
    assert_no_trace(delivered, secrets)
    check_headers(delivered, sender_alias=conv.buyer_alias, recipient_alias=conv.seller_alias,
                  display="Jane Buyer via Marketplace")
    texts = body_texts(delivered)
    assert f"on mon, 1 jan 2024 at 09:00, jane <{conv.buyer_alias}> wrote:" in texts
    assert conv.seller_alias in texts  # the seller's own addresses, named by the seller's alias
    assert f"email: {conv.buyer_alias}" in texts  # the text attachment


async def test_seller_message_carries_no_trace_of_the_seller(relay, sink, conv):
    data = traced_message(author=STAFF_EMAIL, author_name="Sam Staff", to=conv.buyer_alias,
                          subject=f"Re: Order {conv.order_id}", quoted=conv.buyer_email,
                          mentioned=[conv.seller_email, conv.buyer_email], domain="sellershop.example",
                          message_id="<reply.1@sellershop.example>")
    errors, _ = await send(relay.server.port, STAFF_EMAIL, [conv.buyer_alias], data)
    assert errors == {}
    [delivered] = await sink.handler.wait_for(1)
    assert delivered.rcpt_tos == [conv.buyer_email]
    secrets = [*spellings(conv.buyer_email), *spellings(conv.seller_email), *spellings(STAFF_EMAIL),
               "sellershop.example", "10.1.2.3", "198.51.100.23", "10.9.8.7"]
    assert_no_trace(delivered, secrets)
    check_headers(delivered, sender_alias=conv.seller_alias, recipient_alias=conv.buyer_alias,
                  display="Shop One via Marketplace")
    texts = body_texts(delivered)
    assert f"jane <{conv.buyer_alias}> wrote:" in texts
    assert f"mailto:{conv.seller_alias}" in texts
    assert conv.seller_alias in texts and conv.buyer_alias in texts
    assert f"email: {conv.seller_alias}" in texts


@pytest.mark.parametrize("direction", ["buyer_to_seller", "seller_to_buyer"])
async def test_attached_message_carries_no_trace(relay, sink, conv, direction):
    if direction == "buyer_to_seller":
        author, alias, recipient, domain = conv.buyer_email, conv.seller_alias, conv.seller_email, "buyermail.example"
        quoted, author_alias, quoted_alias = conv.seller_email, conv.buyer_alias, conv.seller_alias
    else:
        author, alias, recipient, domain = STAFF_EMAIL, conv.buyer_alias, conv.buyer_email, "sellershop.example"
        quoted, author_alias, quoted_alias = conv.buyer_email, conv.seller_alias, conv.buyer_alias
    data = with_attached_message(author=author, to=alias, quoted=quoted, subject=f"Order {conv.order_id}",
                                 domain=domain)
    errors, _ = await send(relay.server.port, author, [alias], data)
    assert errors == {}
    await sink.handler.wait_for(2 if direction == "buyer_to_seller" else 1)
    [delivered] = sink.handler.to(recipient)
    assert_no_trace(delivered, [*spellings(conv.buyer_email), *spellings(conv.seller_email),
                                *spellings(STAFF_EMAIL), domain, "10.1.2.3", "10.9.8.7"])
    attached = [p for p in delivered.message.walk() if p.get_content_type() == "message/rfc822"]
    if direction == "buyer_to_seller":  # sellers get plain text: the plain-text rule removed it
        assert attached == [] and delivered.message.get_content_type() == "text/plain"
        return
    [inner_part] = attached
    inner = inner_part.get_payload()[0]
    assert inner["From"].addresses[0].addr_spec == author_alias
    assert inner["To"].addresses[0].addr_spec == quoted_alias
    assert inner["Subject"] == "the earlier message"
    for name in ("Received", "Return-Path", "Message-ID", "DKIM-Signature"):
        assert inner[name] is None, name
    assert inner.get_content().strip() == f"Earlier I wrote from {author_alias} to {quoted_alias}."


async def test_plain_message_keeps_its_text_and_loses_only_addresses(relay, sink, conv):
    body = f"Hi,\nmy mail is {conv.buyer_email} and the parcel is late.\n"
    data = compose(sender=conv.buyer_email, to=conv.seller_alias, subject=f"Late {conv.order_id}", body=body)
    await send(relay.server.port, conv.buyer_email, [conv.seller_alias], data)
    await sink.handler.wait_for(2)
    [delivered] = sink.handler.to(conv.seller_email)
    assert delivered.message.get_content().replace("\r\n", "\n") == f"Hi,\nmy mail is {conv.buyer_alias} and the parcel is late.\n"


# --- Message-ID and threading -------------------------------------------------

async def exchange(relay, sink, conv: Conversation, *, author: str, alias: str, message_id: str,
                   subject: str, headers: dict[str, str] | None = None) -> Received:
    """Send one message and return what its recipient got."""
    before = len(sink.handler.messages)
    msg = email.message_from_bytes(compose(sender=author, to=alias, subject=subject, headers=headers),
                                   policy=email.policy.default)
    msg.replace_header("Message-ID", message_id)
    data = msg.as_bytes(policy=SMTP)
    errors, _ = await send(relay.server.port, author, [alias], data)
    assert errors == {}
    buyer_writes = author == conv.buyer_email
    await sink.handler.wait_for(before + (2 if buyer_writes else 1))
    recipient = conv.seller_email if buyer_writes else conv.buyer_email
    return sink.handler.to(recipient)[-1]


async def test_message_id_is_the_relays_own(relay, sink, conv):
    got = await exchange(relay, sink, conv, author=conv.buyer_email, alias=conv.seller_alias,
                         message_id="<own.1@buyermail.example>", subject=f"Order {conv.order_id}")
    assert got.message.get_all("Message-ID") == [got.message["Message-ID"]]
    relay_id = got.message["Message-ID"]
    assert relay_id.startswith("<") and relay_id.endswith(f"@{ALIAS_DOMAIN}>")
    assert "own.1" not in relay_id
    again = await exchange(relay, sink, conv, author=conv.buyer_email, alias=conv.seller_alias,
                           message_id="<own.2@buyermail.example>", subject=f"Order {conv.order_id}")
    assert again.message["Message-ID"] not in (relay_id, "<own.2@buyermail.example>")


async def test_replies_thread_in_both_mailboxes(relay, sink, conv):
    subject = f"Order {conv.order_id}"
    x1 = "<x1@buyermail.example>"
    at_seller = await exchange(relay, sink, conv, author=conv.buyer_email, alias=conv.seller_alias,
                               message_id=x1, subject=subject)
    r1 = at_seller.message["Message-ID"]
    assert r1 != x1

    # The seller's mail program replies to the id it received.
    y1 = "<y1@sellershop.example>"
    at_buyer = await exchange(relay, sink, conv, author=conv.seller_email, alias=conv.buyer_alias,
                              message_id=y1, subject=f"Re: {subject}",
                              headers={"In-Reply-To": r1, "References": f"<stray@elsewhere.example> {r1}"})
    assert at_buyer.message["In-Reply-To"] == x1          # the buyer's own message, as sent
    assert at_buyer.message["References"].split() == [x1]  # the stray id is dropped
    r2 = at_buyer.message["Message-ID"]

    # The buyer answers that; their program cites the chain it knows.
    x2 = "<x2@buyermail.example>"
    at_seller = await exchange(relay, sink, conv, author=conv.buyer_email, alias=conv.seller_alias,
                               message_id=x2, subject=f"Re: {subject}",
                               headers={"In-Reply-To": r2, "References": f"{x1} {r2}"})
    assert at_seller.message["In-Reply-To"] == y1         # the seller's own reply, as sent
    assert at_seller.message["References"].split() == [r1, y1]
    assert b"buyermail" not in at_seller.data.lower()
    r3 = at_seller.message["Message-ID"]

    y2 = "<y2@sellershop.example>"
    at_buyer = await exchange(relay, sink, conv, author=conv.seller_email, alias=conv.buyer_alias,
                              message_id=y2, subject=f"Re: {subject}",
                              headers={"In-Reply-To": r3, "References": f"{r1} {y1} {r3}"})
    assert at_buyer.message["In-Reply-To"] == x2
    assert at_buyer.message["References"].split() == [x1, r2, x2]
    assert b"sellershop" not in at_buyer.data.lower()


async def test_unknown_references_are_dropped(relay, sink, conv):
    got = await exchange(relay, sink, conv, author=conv.buyer_email, alias=conv.seller_alias,
                         message_id="<x9@buyermail.example>", subject=f"Order {conv.order_id}",
                         headers={"In-Reply-To": "<old@buyermail.example>",
                                  "References": "<older@buyermail.example> <old@buyermail.example>"})
    assert got.message["In-Reply-To"] is None
    assert got.message["References"] is None
    assert b"buyermail" not in got.data.lower()


async def test_ids_of_another_thread_are_not_mapped(relay, sink, conv):
    other = open_conversation(relay.config_path, order_id="112-7654321-7654321")
    first = await exchange(relay, sink, other, author=other.buyer_email, alias=other.seller_alias,
                           message_id="<other.1@buyermail.example>", subject=f"Order {other.order_id}")
    foreign_relay_id = first.message["Message-ID"]
    got = await exchange(relay, sink, conv, author=conv.seller_email, alias=conv.buyer_alias,
                         message_id="<s.1@sellershop.example>", subject=f"Order {conv.order_id}",
                         headers={"In-Reply-To": foreign_relay_id, "References": foreign_relay_id})
    assert got.message["In-Reply-To"] is None and got.message["References"] is None


# --- subjects -----------------------------------------------------------------

async def test_buyer_subject_without_order_id_gets_it(relay, sink, conv):
    got = await exchange(relay, sink, conv, author=conv.buyer_email, alias=conv.seller_alias,
                         message_id="<s1@buyermail.example>", subject="Where is my parcel?")
    subject = got.message["Subject"]
    assert subject.startswith("Where is my parcel?") and conv.order_id in subject
    [row] = listed(relay)
    assert row["subject"] == "Where is my parcel?"  # the log keeps what the buyer wrote


async def test_buyer_subject_with_order_id_is_unchanged(relay, sink, conv):
    subject = f"Where is order {conv.order_id}? Grüße"
    got = await exchange(relay, sink, conv, author=conv.buyer_email, alias=conv.seller_alias,
                         message_id="<s2@buyermail.example>", subject=subject)
    assert got.message["Subject"] == subject


async def test_seller_subject_is_unchanged(relay, sink, conv):
    subject = f"Re: Order {conv.order_id} shipped"
    got = await exchange(relay, sink, conv, author=conv.seller_email, alias=conv.buyer_alias,
                         message_id="<s3@sellershop.example>", subject=subject)
    assert got.message["Subject"] == subject


# --- acknowledgments and auto-replies -----------------------------------------

async def notices(relay) -> int:
    return await relay.db.read(lambda c: c.execute(
        select(func.count()).select_from(Message).where(Message.kind == "notice")).scalar_one())


async def test_one_acknowledgment_per_buyer_message(relay, sink, conv):
    sent_ids = set()
    for n in (1, 2):
        data = compose(sender=conv.buyer_email, to=conv.seller_alias, subject=f"Question {n}")
        sent_ids.add(email.message_from_bytes(data, policy=email.policy.default)["Message-ID"])
        await send(relay.server.port, conv.buyer_email, [conv.seller_alias], data)
    assert await notices(relay) == 2  # committed with the message, before the 250
    await sink.handler.wait_for(4)
    acks = sink.handler.to(conv.buyer_email)
    assert len(acks) == 2
    for ack in acks:
        msg = ack.message
        assert ack.mail_from in ("", "<>")
        assert msg["From"].addresses[0].addr_spec == f"no-reply@{ALIAS_DOMAIN}"
        assert msg["From"].addresses[0].display_name == "Marketplace"
        assert msg["Auto-Submitted"] == "auto-replied"
        assert conv.order_id in msg["Subject"]
        assert_no_trace(ack, spellings(conv.seller_email) + spellings(STAFF_EMAIL))
    # Each answers the buyer's message as the buyer sent it, so it threads there.
    assert {ack.message["In-Reply-To"] for ack in acks} == sent_ids


async def test_seller_messages_get_no_acknowledgment(relay, sink, conv):
    data = compose(sender=conv.seller_email, to=conv.buyer_alias, subject=f"Order {conv.order_id}")
    await send(relay.server.port, conv.seller_email, [conv.buyer_alias], data)
    assert await notices(relay) == 0


@pytest.mark.parametrize(("subject", "headers"), [
    ("Re: your question", {"Auto-Submitted": "auto-replied"}),
    ("Out of Office: Re: your question", {}),
    ("Automatic reply: your question", {}),
    ("Re: your question", {"Precedence": "auto_reply"}),
], ids=["auto-submitted", "out-of-office", "automatic-reply", "precedence"])
async def test_auto_reply_is_delivered_unacknowledged_and_needs_no_response(relay, sink, conv, subject, headers):
    data = compose(sender=conv.buyer_email, to=conv.seller_alias, subject=subject, headers=headers)
    errors, _ = await send(relay.server.port, conv.buyer_email, [conv.seller_alias], data)
    assert errors == {}
    assert await notices(relay) == 0
    [row] = listed(relay)
    assert row["direction"] == "buyer_to_seller" and row["response_needed"] is False
    await sink.handler.wait_for(1)
    [delivered] = sink.handler.to(conv.seller_email)
    assert subject in delivered.message["Subject"]

    # A person's next message is acknowledged and needs a response: the rule is not "never".
    data = compose(sender=conv.buyer_email, to=conv.seller_alias, subject="A real question")
    await send(relay.server.port, conv.buyer_email, [conv.seller_alias], data)
    assert await notices(relay) == 1
    newest = listed(relay)[0]
    assert newest["subject"] == "A real question" and newest["response_needed"] is True
    await sink.handler.wait_for(3)
    assert len(sink.handler.to(conv.buyer_email)) == 1


# --- odd MIME that once let an address through --------------------------------

def odd_messages(conv: Conversation) -> dict[str, bytes]:
    who, to = conv.buyer_email.encode(), conv.seller_alias.encode()
    b64_inner = base64.b64encode(b"From: " + who + b"\r\nSubject: old\r\n\r\nwritten by " + who + b"\r\n")
    encoded_word = b"=?utf-8?b?" + base64.b64encode(who) + b"?="
    head = b"From: " + who + b"\r\nTo: " + to + b"\r\nSubject: Order " + conv.order_id.encode() + b"\r\n"
    mixed = head + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n"
    return {
        "multipart-without-boundaries": head + b"Content-Type: multipart/mixed; boundary=BB\r\n\r\n"
                                        b"reach me at " + who + b"\r\n",
        "base64-that-is-not": head + b"Content-Transfer-Encoding: base64\r\n\r\nreach me at " + who + b"\r\n",
        "unquoted-at-in-filename": mixed + b"--BB\r\nContent-Type: text/plain\r\n\r\nhello\r\n--BB\r\n"
                                   b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="
                                   + who + b".pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--BB--\r\n",
        "base64-attached-message": mixed + b"--BB\r\nContent-Type: text/plain\r\n\r\nsee below\r\n--BB\r\n"
                                   b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                                   + b64_inner + b"\r\n--BB--\r\n",
        "glued-encoded-word": mixed + b"--BB\r\nContent-Type: text/plain\r\nContent-Description: "
                              + encoded_word + b"x\r\n\r\nhello\r\n--BB--\r\n",
        "address-in-preamble": mixed + b"written by " + who + b"\r\n--BB\r\nContent-Type: text/plain\r\n\r\n"
                               b"hello\r\n--BB--\r\nepilogue by " + who + b"\r\n",
        "utf16-label-on-ascii": head + b"Content-Type: text/plain; charset=utf-16\r\n\r\nreach me at " + who + b"\r\n",
    }


@pytest.mark.parametrize("case", ["multipart-without-boundaries", "base64-that-is-not", "unquoted-at-in-filename",
                                  "base64-attached-message", "glued-encoded-word", "address-in-preamble",
                                  "utf16-label-on-ascii"])
async def test_odd_mime_carries_no_trace(relay, sink, conv, case):
    data = odd_messages(conv)[case]
    errors, response = await send(relay.server.port, conv.buyer_email, [conv.seller_alias], data)
    assert errors == {} and response.startswith("2.0.0")
    await sink.handler.wait_for(2)
    [delivered] = sink.handler.to(conv.seller_email)
    assert_no_trace(delivered, [*spellings(conv.buyer_email), "buyermail"])
    assert b"=?utf-8?b?" + base64.b64encode(conv.buyer_email.encode()) not in delivered.data
