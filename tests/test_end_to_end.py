"""A buyer writes, the seller replies: both only ever see aliases."""

from __future__ import annotations

import email.message
import email.policy
import hashlib
import json
import os

from relay.intake import OFF_LOOP_BYTES
from tests.conftest import compose, open_conversation, run_cli, send


async def test_buyer_message_reaches_seller_masked(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port)
    conv = open_conversation(app.config_path)
    data = compose(sender=f"Jane Buyer <{conv.buyer_email}>", to=conv.seller_alias)
    await send(app.server.port, conv.buyer_email, [conv.seller_alias], data)
    received = await sink.handler.wait_for(2)  # the message and the buyer's acknowledgment
    to_seller = sink.handler.to(conv.seller_email)
    assert len(to_seller) == 1
    delivered = to_seller[0]
    assert conv.buyer_email.encode() not in delivered.data.lower()
    msg = delivered.message
    assert msg["From"].addresses[0].addr_spec == conv.buyer_alias
    assert msg["From"].addresses[0].display_name == "Jane Buyer via Marketplace"
    assert conv.order_id in msg["Subject"]
    ack = sink.handler.to(conv.buyer_email)
    assert len(ack) == 1 and ack[0].mail_from in ("", "<>")
    assert ack[0].message["Auto-Submitted"] == "auto-replied"
    assert conv.seller_email.encode() not in ack[0].data
    assert len(received) == 2


async def test_seller_reply_reaches_buyer_masked(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port)
    conv = open_conversation(app.config_path)
    body = (f"Dear Jane,\nyour order {conv.order_id} ships today.\n\n"
            f"On Mon, Jane Buyer <{conv.buyer_email}> wrote:\n> where is it?\n"
            f"Write to me at {conv.seller_email.upper()} any time.\n")
    data = compose(sender=f"Shop One <{conv.seller_email}>", to=conv.buyer_alias,
                   subject=f"Re: your order {conv.order_id}", body=body,
                   headers={"Received": "from laptop.sellershop.example ([10.0.0.7])",
                            "X-Originating-IP": "[203.0.113.9]",
                            "Reply-To": conv.seller_email})
    await send(app.server.port, conv.seller_email, [conv.buyer_alias], data)
    [delivered] = await sink.handler.wait_for(1)
    assert delivered.rcpt_tos == [conv.buyer_email]
    raw = delivered.data.lower()
    for secret in (conv.seller_email, conv.buyer_email, "sellershop", "203.0.113.9", "10.0.0.7"):
        assert secret.encode() not in raw, secret
    msg = delivered.message
    assert msg["From"].addresses[0].addr_spec == conv.seller_alias
    assert msg["Reply-To"] is None
    text = msg.get_content()
    assert conv.buyer_alias in text and conv.seller_alias in text
    code, out = run_cli(app.config_path, "message", "list")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["direction"] for r in rows] == ["seller_to_buyer"]


async def test_display_names_with_specials_and_non_ascii_stay_one_address(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port)
    name = 'Müller, "Best" Shop (DE)'
    code, _ = run_cli(app.config_path, "seller", "add", "S9", "--email", "info@mueller.example", "--name", name)
    assert code == 0
    conv = open_conversation(app.config_path, seller_id="S9", seller_email="info@mueller.example")
    data = compose(sender=f"{conv.seller_email}", to=conv.buyer_alias, subject=f"Order {conv.order_id}")
    await send(app.server.port, conv.seller_email, [conv.buyer_alias], data)
    [delivered] = await sink.handler.wait_for(1)
    [author] = delivered.message["From"].addresses
    assert (author.display_name, author.addr_spec) == (f"{name} via Marketplace", conv.seller_alias)


async def test_a_message_over_the_thread_threshold_arrives_whole(relay_factory, sink):
    """Past OFF_LOOP_BYTES the intake parses and rewrites in a thread; nothing may change for it."""
    app = await relay_factory(smarthost_port=sink.port)
    conv = open_conversation(app.config_path)
    msg = email.message.EmailMessage()
    msg["From"] = conv.seller_email
    msg["To"] = conv.buyer_alias
    msg["Subject"] = f"Invoice for order {conv.order_id}"
    msg.set_content(f"Please find the invoice attached. Questions: {conv.seller_email}\n")
    pdf = b"%PDF-1.4\n" + os.urandom(OFF_LOOP_BYTES)
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="invoice.pdf")
    data = msg.as_bytes(policy=email.policy.SMTP)
    assert len(data) > OFF_LOOP_BYTES
    await send(app.server.port, conv.seller_email, [conv.buyer_alias], data)
    [delivered] = await sink.handler.wait_for(1)
    received = delivered.message
    [attachment] = list(received.iter_attachments())
    assert hashlib.sha256(attachment.get_content()).digest() == hashlib.sha256(pdf).digest()
    assert conv.seller_email.encode() not in delivered.data
    assert conv.seller_alias in received.get_body(("plain",)).get_content()
    code, out = run_cli(app.config_path, "message", "list", "--with-attachments")
    assert code == 0 and json.loads(out)["attachments"] == 1
