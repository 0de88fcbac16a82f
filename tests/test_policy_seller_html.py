"""The seller-HTML rule over real SMTP: what a buyer receives from a seller.

HTML that uses only allowed tags, attributes and CSS passes untouched;
anything else is removed by the sanitizer with the text kept, so the
replies of Outlook, Gmail and Apple Mail read the same (compared through
`html_to_text`). A message without a text/plain part gets one first.
Every seller message here carries the order ID and no links, as the
seller rules require.
"""

from __future__ import annotations

import pytest

from policy.htmltext import html_to_text
from tests import filesamples as files
from tests.conftest import Conversation, send
from tests.mailsamples import apple_mail_html, as_bytes, gmail_html, html_message, inline, outlook_html

LINES = ["Dear Jane,", "", "Your order 112-1234567-1234567 shipped today with <b>DHL</b>.",
         "Expected delivery: <i>Thursday</i>.", "", "Kind regards"]


async def deliver(relay, sink, conv: Conversation, data: bytes):
    errors, response = await send(relay.server.port, conv.seller_email, [conv.buyer_alias], data)
    assert errors == {} and response.startswith("2.0.0")
    await sink.handler.wait_for(1)
    [delivered] = sink.handler.to(conv.buyer_email)
    return delivered


def from_seller(conv: Conversation, html: str, plain: str | None = None):
    return html_message(conv.seller_email, conv.buyer_alias, f"Order {conv.order_id} shipped", html, plain=plain)


def html_of(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def plain_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


async def test_allowed_html_passes_untouched(relay, sink, conv):
    html = gmail_html(LINES)
    plain = "Dear Jane,\n\nYour order 112-1234567-1234567 shipped today.\n"
    delivered = await deliver(relay, sink, conv, as_bytes(from_seller(conv, html, plain)))
    assert html_of(delivered.message).replace("\r\n", "\n") == html
    assert plain_of(delivered.message) == plain


@pytest.mark.parametrize("style", ["outlook", "apple", "gmail-signature"])
async def test_mail_program_html_keeps_its_meaning(relay, sink, conv, style):
    if style == "outlook":
        html = outlook_html(LINES)
    elif style == "apple":
        html = apple_mail_html(LINES)
    else:
        html = gmail_html(LINES).replace('class="gmail_signature"', 'class="gmail_signature" data-smartmail="x"')
    plain = "Dear Jane,\n\nYour order 112-1234567-1234567 shipped today with DHL.\n"
    delivered = await deliver(relay, sink, conv, as_bytes(from_seller(conv, html, plain)))
    out = html_of(delivered.message)
    assert html_to_text(out) == html_to_text(html)
    assert "Your order 112-1234567-1234567 shipped today with <b>DHL</b>." in out
    for gone in ("<style", "mso-", "<o:p", "<!--", "-webkit", "data-smartmail", "xmlns"):
        assert gone not in out
    assert plain_of(delivered.message) == plain  # the seller's own alternative is kept as written


async def test_html_only_message_gets_a_text_alternative_first(relay, sink, conv):
    html = "<p>Dear Jane,</p><ul><li>1 blue mug</li><li>2 plates</li></ul><p>Order 112-1234567-1234567.</p>"
    delivered = await deliver(relay, sink, conv, as_bytes(from_seller(conv, html)))
    msg = delivered.message
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert plain_of(msg) == "Dear Jane,\n\n\u2022 1 blue mug\n\u2022 2 plates\n\nOrder 112-1234567-1234567.\n"
    assert html_of(msg).replace("\r\n", "\n") == html + "\n"


async def test_inline_image_through_cid_stays(relay, sink, conv):
    html = '<p>Order 112-1234567-1234567: your engraving proof.</p><p><img src="cid:proof1" alt="proof" width="200"></p>'
    msg = from_seller(conv, html, plain="Order 112-1234567-1234567: your engraving proof.\n")
    inline(msg, files.png(), "proof1")
    delivered = await deliver(relay, sink, conv, as_bytes(msg))
    out = delivered.message
    assert 'src="cid:proof1"' in html_of(out)
    [image] = [p for p in out.walk() if p.get_content_type() == "image/png"]
    assert image["Content-ID"] == "<proof1>" and image.get_content() == files.png()


async def test_html_and_inline_image_without_text_get_an_alternative_around_them(relay, sink, conv):
    html = '<p>Order 112-1234567-1234567: your engraving proof.</p><p><img src="cid:proof2"></p>'
    msg = from_seller(conv, html)
    inline(msg, files.png(), "proof2")
    delivered = await deliver(relay, sink, conv, as_bytes(msg))
    out = delivered.message
    assert out.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in out.iter_parts()] == ["text/plain", "multipart/related"]
    assert plain_of(out) == "Order 112-1234567-1234567: your engraving proof.\n"
    assert [p.get_content_type() for p in out.walk() if not p.is_multipart()] == ["text/plain", "text/html",
                                                                                  "image/png"]


@pytest.mark.parametrize(("html", "gone", "kept"), [
    ('<p onclick="steal()">Order 112-1234567-1234567</p>', "onclick", "<p>Order 112-1234567-1234567</p>"),
    ("<p>Order 112-1234567-1234567</p><script>steal()</script>", "steal", "<p>Order 112-1234567-1234567</p>"),
    ('<p>Order 112-1234567-1234567</p><iframe srcdoc="x"></iframe>', "iframe", "<p>Order 112-1234567-1234567</p>"),
    ('<p style="color:red;position:fixed">Order 112-1234567-1234567</p>', "position",
     '<p style="color:red">Order 112-1234567-1234567</p>'),
    ('<p>Order 112-1234567-1234567 <a href="tel:+4930123456">call us</a></p>', "tel:",
     "<p>Order 112-1234567-1234567 <a>call us</a></p>"),
    ('<p>Order 112-1234567-1234567 <a href="#top">top</a></p>', "#top", "<p>Order 112-1234567-1234567 <a>top</a></p>"),
    ('<p>Order 112-1234567-1234567</p><form><input name="card"><button>Pay</button></form>', "card",
     "<p>Order 112-1234567-1234567</p>"),
    ('<p>Order 112-1234567-1234567 <img src="data:image/png;base64,AAAA"></p>', "data:",
     "<p>Order 112-1234567-1234567 <img></p>"),
    ('<p>Order 112-1234567-1234567</p><!-- internal note: margin 40% -->', "internal note",
     "<p>Order 112-1234567-1234567</p>"),
], ids=["event-handler", "script", "iframe", "css-property", "phone-link", "relative-link", "form", "data-image",
        "comment"])
async def test_what_is_not_allowed_is_removed(relay, sink, conv, html, gone, kept):
    delivered = await deliver(relay, sink, conv,
                              as_bytes(from_seller(conv, html, plain="Order 112-1234567-1234567\n")))
    out = html_of(delivered.message)
    assert gone not in out
    assert kept in out


async def test_mailto_links_stay(relay, sink, conv):
    html = '<p>Order 112-1234567-1234567: write to <a href="mailto:help@sellershop.example">our help desk</a>.</p>'
    delivered = await deliver(relay, sink, conv, as_bytes(from_seller(conv, html, plain="Order 112-1234567-1234567\n")))
    out = html_of(delivered.message).replace("\r\n", "\n")
    assert out == html + "\n"  # nothing to remove: the message passed untouched
