"""The plain-text rule over real SMTP: what a seller receives from a buyer.

Plain mail passes untouched (the body arrives byte for byte). Anything
else arrives as text/plain; charset=utf-8, from the sender's own text
alternative where there is one, else from the HTML; allowed attachments
follow the text in a multipart/mixed, and inline images, HTML and every
other part are gone.
"""

from __future__ import annotations

import json
from email.message import MIMEPart

import pytest

from tests import filesamples as files
from tests.conftest import Conversation, compose, run_cli, send
from tests.mailsamples import apple_mail_html, as_bytes, gmail_html, html_message, inline, outlook_html, with_files


async def deliver(relay, sink, conv: Conversation, data: bytes):
    errors, response = await send(relay.server.port, conv.buyer_email, [conv.seller_alias], data)
    assert errors == {} and response.startswith("2.0.0")
    await sink.handler.wait_for(2)
    [delivered] = sink.handler.to(conv.seller_email)
    return delivered


def text_of(part) -> str:
    return part.get_content().replace("\r\n", "\n")


def leaf_types(message) -> list[str]:
    return [p.get_content_type() for p in message.walk() if not p.is_multipart()]


async def test_plain_message_passes_byte_for_byte(relay, sink, conv):
    body = "Hello,\n\nwhere is my parcel? The tracking number is 1Z999AA10123456784.\n\nJane\n"
    data = compose(sender=conv.buyer_email, to=conv.seller_alias, body=body)
    delivered = await deliver(relay, sink, conv, data)
    assert delivered.data.partition(b"\r\n\r\n")[2] == data.partition(b"\r\n\r\n")[2]
    code, out = run_cli(relay.config_path, "message", "list")
    assert json.loads(out.splitlines()[0])["warning"] is None


async def test_the_senders_text_alternative_is_preferred(relay, sink, conv):
    plain = "Hello,\n\nIs the blue mug dishwasher safe?\n\nJane\n"
    html = gmail_html(["Hello,", "", "Is the <b>blue</b> mug dishwasher safe?", "", "Jane"])
    delivered = await deliver(relay, sink, conv, as_bytes(html_message(conv.buyer_email, conv.seller_alias,
                                                                      "Mug", html, plain=plain)))
    msg = delivered.message
    assert msg.get_content_type() == "text/plain" and msg.get_content_charset() == "utf-8"
    assert text_of(msg) == plain


@pytest.mark.parametrize("style", ["gmail", "outlook", "apple"])
async def test_html_only_mail_becomes_readable_text(relay, sink, conv, style):
    lines = ["Hello,", "", "The handle of my mug came off. See <a href=\"https://img.example.net/1\">my photo</a>.",
             "", "Jane"]
    maker = {"gmail": gmail_html, "outlook": outlook_html, "apple": apple_mail_html}[style]
    html = maker(lines)
    delivered = await deliver(relay, sink, conv, as_bytes(html_message(conv.buyer_email, conv.seller_alias,
                                                                      "Broken", html)))
    msg = delivered.message
    assert leaf_types(msg) == ["text/plain"] and msg.get_content_charset() == "utf-8"
    text = text_of(msg)
    assert "The handle of my mug came off. See my photo." in text
    assert "Is the blue mug still available?" in text  # the quoted history stays
    for gone in ("https://", "img.example", "<", "mso-", "font-family"):
        assert gone not in text


async def test_lists_and_paragraphs_survive_the_conversion(relay, sink, conv):
    html = ("<p>Two problems:</p><ol><li>the lid is cracked</li><li>one cup is missing</li></ol>"
            "<p>Can you help?<br>Jane</p>")
    delivered = await deliver(relay, sink, conv, as_bytes(html_message(conv.buyer_email, conv.seller_alias,
                                                                      "Problems", html)))
    assert text_of(delivered.message) == ("Two problems:\n\n1. the lid is cracked\n2. one cup is missing\n\n"
                                          "Can you help?\nJane\n")


async def test_allowed_attachments_stay_after_the_text_and_inline_images_go(relay, sink, conv):
    html = '<div>Photo of the damage attached.<img src="cid:logo1"></div>'
    msg = html_message(conv.buyer_email, conv.seller_alias, "Damage", html, plain="Photo of the damage attached.\n")
    inline(msg, files.png(), "logo1")
    with_files(msg, [("damage.jpg", files.jpeg(), "image/jpeg"), ("receipt.pdf", files.pdf(), "application/pdf")])
    delivered = await deliver(relay, sink, conv, as_bytes(msg))
    out = delivered.message
    assert out.get_content_type() == "multipart/mixed"
    assert leaf_types(out) == ["text/plain", "image/jpeg", "application/pdf"]
    parts = [p for p in out.walk() if not p.is_multipart()]
    assert text_of(parts[0]) == "Photo of the damage attached.\n"
    assert parts[1].get_filename() == "damage.jpg" and parts[1].get_content() == files.jpeg()
    assert parts[2].get_filename() == "receipt.pdf" and parts[2].get_content() == files.pdf()
    assert b"image001.png" not in delivered.data and b"cid:" not in delivered.data


async def test_apple_mail_attachment_inside_the_html_alternative_is_kept(relay, sink, conv):
    """Apple Mail puts a photo shown in the text into the HTML alternative, between two HTML parts."""
    msg = html_message(conv.buyer_email, conv.seller_alias, "Photo", "<div>Here it is:</div>",
                       plain="Here it is:\n\nThanks\n")
    html_part = msg.get_body(preferencelist=("html",))
    html_part.make_mixed()
    html_part.add_attachment(files.jpeg(), maintype="image", subtype="jpeg", filename="IMG_2041.jpg",
                             disposition="inline")
    html_part.add_attachment("<div>Thanks</div>", subtype="html", disposition="inline")
    delivered = await deliver(relay, sink, conv, as_bytes(msg))
    assert leaf_types(delivered.message) == ["text/plain", "image/jpeg"]
    assert text_of(delivered.message.get_body(preferencelist=("plain",))) == "Here it is:\n\nThanks\n"


async def test_everything_else_is_removed(relay, sink, conv):
    msg = html_message(conv.buyer_email, conv.seller_alias, "Misc", "<p>See the invite.</p>", plain="See the invite.\n")
    msg.add_attachment(html_message(conv.buyer_email, conv.seller_alias, "inner", "<p>forwarded</p>"))
    calendar = MIMEPart()
    calendar.set_content("BEGIN:VCALENDAR\nEND:VCALENDAR\n", subtype="calendar")
    msg.attach(calendar)
    signature = MIMEPart()
    signature.set_content(b"0\x82\x01", maintype="application", subtype="pkcs7-signature", filename="smime.p7s")
    msg.attach(signature)
    delivered = await deliver(relay, sink, conv, as_bytes(msg))
    assert leaf_types(delivered.message) == ["text/plain"]
    assert text_of(delivered.message) == "See the invite.\n"
    assert b"forwarded" not in delivered.data and b"VCALENDAR" not in delivered.data
