"""The phishing rule over real SMTP: warnings on what passes for the marketplace or pushes links.

A labelled message is still delivered: the seller's copy carries
`X-Relay-Warning: <word>` and the warning as its first paragraph (after
the plain-text conversion and the privacy rewrite), and `message list`
shows the word. Near misses (a tracking number, the marketplace named in
plain text, an ordinary HTML question) arrive without either.
"""

from __future__ import annotations

import json

import pytest

from policy.datafiles import DataFiles
from policy.parsed import ParsedMessage
from policy.rule import Context, Direction
from policy.rules.phishing import Phishing
from policy.verdicts import Pass, Warn
from policy.warning_texts import warning_paragraph
from tests.conftest import Conversation, compose, run_cli, send
from tests.mailsamples import as_bytes, gmail_html, html_message, outlook_html


def listed(relay) -> list[dict]:
    code, out = run_cli(relay.config_path, "message", "list")
    assert code == 0
    return [json.loads(line) for line in out.splitlines()]


async def deliver(relay, sink, conv: Conversation, data: bytes):
    errors, response = await send(relay.server.port, conv.buyer_email, [conv.seller_alias], data)
    assert errors == {} and response.startswith("2.0.0")
    await sink.handler.wait_for(2)
    [delivered] = sink.handler.to(conv.seller_email)
    return delivered


def html_from_buyer(conv: Conversation, html: str, display: str | None = "Jane Buyer", plain: str | None = None) -> bytes:
    return as_bytes(html_message(conv.buyer_email, conv.seller_alias, "About my order", html, plain=plain,
                                 display=display))


IMPERSONATION = {
    "display-name": ("Marketplace Seller Support",
                     "<p>Hello, we noticed a problem with your listing. Please reply with your details.</p>"),
    "lookalike-domain": ("Jane Buyer",
                         '<p>Your payout is waiting at <a href="https://rnarketp1ace-payouts.example.com/p">'
                         "the payout page</a>.</p>"),
    "account-phrase": ("Jane Buyer",
                       "<p>Dear seller, <b>your account will be suspended</b> within 24 hours unless you act.</p>"),
    "verify-account": ("Jane Buyer", "<div>Please verify your account today.</div>"),
    "login-link": ("Jane Buyer", '<p>Review the case: <a href="https://cases.example.net/c/881">Sign in</a></p>'),
    "password-field": ("Jane Buyer", '<form action="https://x.example.net"><input type="password" name="p"></form>'
                                     "<p>Confirm to keep selling.</p>"),
    "german": ("Jane Buyer", "<p>Ihr Konto wird gesperrt, wenn Sie nicht antworten.</p>"),
    "chinese": ("Jane Buyer", "<p>您的账户将被暂停，请立即处理。</p>"),
}


@pytest.mark.parametrize("case", list(IMPERSONATION), ids=list(IMPERSONATION))
async def test_impersonation_is_delivered_with_warning(relay, sink, conv, case):
    display, html = IMPERSONATION[case]
    delivered = await deliver(relay, sink, conv, html_from_buyer(conv, html, display=display))
    msg = delivered.message
    assert msg["X-Relay-Warning"] == "impersonation"
    assert msg.get_content_type() == "text/plain"
    text = msg.get_content().replace("\r\n", "\n")
    assert text.startswith(warning_paragraph("impersonation", "Marketplace") + "\n\n")
    assert listed(relay)[0]["warning"] == "impersonation"


URGING = {
    "plain-click": "Hi, please click the link below to see the damage:\nhttps://imgshare.example.net/a/8812\n",
    "plain-paste": "Could you copy and paste this into your browser? photos-of-my-parcel.com/jane\n",
    "plain-visit": "Please visit my website www.janes-reviews.net for the details.\n",
    "plain-german": "Bitte klicken Sie hier: https://bilder.example.net/x\n",
}


@pytest.mark.parametrize("case", list(URGING), ids=list(URGING))
async def test_plain_text_that_urges_a_link_is_labelled_links(relay, sink, conv, case):
    data = compose(sender=conv.buyer_email, to=conv.seller_alias, body=URGING[case])
    delivered = await deliver(relay, sink, conv, data)
    assert delivered.message["X-Relay-Warning"] == "links"
    text = delivered.message.get_content().replace("\r\n", "\n")
    assert text.startswith(warning_paragraph("links", "Marketplace") + "\n\n")
    assert text.endswith(URGING[case])
    assert listed(relay)[0]["warning"] == "links"


async def test_html_that_urges_a_link_is_labelled_links_and_loses_the_target(relay, sink, conv):
    html = '<div dir="ltr">Photos of the damage: <a href="https://imgshare.example.net/a/1">click here</a></div>'
    delivered = await deliver(relay, sink, conv, html_from_buyer(conv, html))
    assert delivered.message["X-Relay-Warning"] == "links"
    text = delivered.message.get_content().replace("\r\n", "\n")
    assert "imgshare" not in text and text.endswith("Photos of the damage: click here\n")


async def test_impersonation_wins_over_links(relay, sink, conv):
    html = ('<p>Your account will be suspended. Click the link below:</p>'
            '<p><a href="https://marketplace-verify.example.com/login">Log in</a></p>')
    delivered = await deliver(relay, sink, conv, html_from_buyer(conv, html, display="Marketplace"))
    assert delivered.message["X-Relay-Warning"] == "impersonation"
    assert listed(relay)[0]["warning"] == "impersonation"


NEAR_MISSES = {
    "tracking-number": compose(sender="{buyer}", to="{alias}",
                               body="Hi, the carrier says 1Z999AA10123456784 was delivered but I have nothing.\n"),
    "marketplace-named-in-plain-text": compose(
        sender="{buyer}", to="{alias}",
        body="I bought this on Marketplace last week. Please verify your stock before you ship, and log in "
             "to your account if you need my order details.\n"),
    "clicked-a-link-earlier": compose(sender="{buyer}", to="{alias}",
                                      body="I tried to click the link in your last mail but nothing happened.\n"),
    "tracking-link-pasted": compose(sender="{buyer}", to="{alias}",
                                    body="Tracking: https://carrier.example.net/t?n=1Z999AA10123456784\n"),
}


@pytest.mark.parametrize("case", list(NEAR_MISSES), ids=list(NEAR_MISSES))
async def test_near_misses_get_no_warning(relay, sink, conv, case):
    data = NEAR_MISSES[case].replace(b"{buyer}", conv.buyer_email.encode()).replace(b"{alias}", conv.seller_alias.encode())
    delivered = await deliver(relay, sink, conv, data)
    assert delivered.message["X-Relay-Warning"] is None
    assert not delivered.message.get_content().startswith("WARNING")
    assert listed(relay)[0]["warning"] is None


@pytest.mark.parametrize("style", ["gmail", "outlook"])
async def test_ordinary_html_question_mentioning_the_marketplace_gets_no_warning(relay, sink, conv, style):
    lines = ["Hello,", "", "I ordered the blue mug on Marketplace. Is it dishwasher safe?", "", "Thanks, Jane"]
    html = gmail_html(lines) if style == "gmail" else outlook_html(lines)
    delivered = await deliver(relay, sink, conv, html_from_buyer(conv, html))
    assert delivered.message["X-Relay-Warning"] is None
    assert listed(relay)[0]["warning"] is None


async def test_a_forged_warning_header_does_not_survive(relay, sink, conv):
    data = compose(sender=conv.buyer_email, to=conv.seller_alias, body="Where is my parcel?\n",
                   headers={"X-Relay-Warning": "none"})
    delivered = await deliver(relay, sink, conv, data)
    assert delivered.message.get_all("X-Relay-Warning") is None


def test_an_operators_phrase_list_replaces_the_shipped_one(tmp_path):
    data = compose(sender="jane.buyer@buyermail.example", to="x@marketplace.example",
                   body="Bitte schauen Sie sich das an: https://bilder.example.net/x\n")
    ctx = Context(Direction.BUYER_TO_SELLER, "112-1234567-1234567", "Marketplace", "marketplace.example")
    assert Phishing().check(ParsedMessage.from_bytes(data), ctx) == Pass()
    (tmp_path / "phishing_links.txt").write_text("# ours\nschauen sie sich das an\n", encoding="utf-8")
    verdict = Phishing(files=DataFiles(tmp_path)).check(ParsedMessage.from_bytes(data), ctx)
    assert isinstance(verdict, Warn) and verdict.word == "links"
