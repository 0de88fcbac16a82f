"""Rule `links`: web addresses of every kind are refused, email addresses and look-alikes are not."""

from __future__ import annotations

import aiosmtplib
import pytest

from policy.datafiles import DataFiles
from policy.rules.links import Links
from policy.verdicts import Pass, Refuse
from relay import replies
from tests.conftest import ORDER_ID, compose, open_conversation, send, sql, unsealed, wait_until
from tests.policy_helpers import BUYER_CTX, SELLER_CTX, parsed


@pytest.fixture(scope="module")
def rule():
    return Links(DataFiles())


@pytest.mark.parametrize("text", [
    "Details: https://www.example.com/care?x=1",
    "see HTTP://EXAMPLE.ORG",
    "hxxps://evil.example.net/login",
    "ftp://files.example.com/manual.pdf",
    "go to www.sellershop.example/mugs",
    "our site sellershop.com has more",
    "order at Shop-One.co.uk today",
    "EXAMPLE.COM",
    "see marketplace.example/dp/B000TEST01",
    "visit example dot com",
    "visit example [.] com",
    "visit example[dot]net",
    "visit example (dot) de",
    "visit example{.}fr",
    "请访问 example点com",
    "tienda . com",
    "bücher-shop.de hat mehr",
    "ｗｗｗ．ｓｈｏｐ－ｏｎｅ．ｊｐ",
])
def test_web_addresses_in_text_are_refused(rule, text):
    verdict = rule.check(parsed(f"Hi Jane,\n\n{text}\n\nShop One"), SELLER_CTX)
    assert isinstance(verdict, Refuse), text
    assert verdict.reply == replies.R550_LINK and verdict.excerpt


@pytest.mark.parametrize("text", [
    "write to care@sellershop.example or jane.doe+shop@example.com",
    "mailto:care@sellershop.example",
    "the invoice is invoice.pdf and the label label.png, photo.zip, notes.md",
    "e.g. the blue one, i.e. the bigger one",
    "Mr.Smith packed it at 10.30, total 12.50 EUR, version 2.1.3",
    f"order {ORDER_ID}, tracking 1Z999AA10123456784",
    "It arrived today.Best regards",
    "Shop One Ltd. & Co.KG",
    "a polka dot design, a red dot sale sticker",
    "ca. 0.5 kg, z.B. morgen, No.5",
    "谢谢。我们会尽快发货。",
])
def test_look_alikes_are_not_links(rule, text):
    assert rule.check(parsed(f"Hi Jane,\n\n{text}\n\nShop One"), SELLER_CTX) == Pass(), text


@pytest.mark.parametrize("html", [
    '<p>Hi</p><a href="https://example.com">our shop</a>',
    '<p>Hi</p><a href="shop/page.html">relative</a>',
    '<p>Hi</p><a href="javascript:alert(1)">x</a>',
    '<form action="https://forms.example.org/x"><input name="a"></form>',
    '<img src="https://t.example.net/pixel.gif" width="1" height="1">',
    '<img src="//cdn.example.net/logo.png">',
    '<img srcset="cid:a.png 1x, https://cdn.example.net/logo@2x.png 2x">',
    '<table background="http://cdn.example.net/bg.jpg"><tr><td>x</td></tr></table>',
    '<div style="background:url(&quot;https://cdn.example.net/bg.jpg&quot;)">x</div>',
    '<style>@import url(https://cdn.example.net/x.css);</style><p>x</p>',
    '<a href="https://shop.example.com/"><img src="cid:logo.png"></a>',
])
def test_links_and_remote_images_in_html_are_refused(rule, html):
    verdict = rule.check(parsed(html=f"<html><body>{html}</body></html>"), SELLER_CTX)
    assert isinstance(verdict, Refuse), html


def test_outlook_namespaces_cid_images_mailto_and_fragments_are_not_links(rule):
    html = ('<html xmlns:o="urn:schemas-microsoft-com:office:office" xmlns="http://www.w3.org/TR/REC-html40">'
            '<head><style>v\\:* {behavior:url(#default#VML);}</style></head><body>'
            '<p class=MsoNormal>Hi <a name="_MailEndCompose"></a><a href="#top">top</a></p>'
            '<img src="cid:image001.png@01DB8C2A.5E3F1B20"><img src="data:image/png;base64,iVBORw0KGgo=">'
            '<a href="mailto:care@sellershop.example">care@sellershop.example</a> <a href="tel:+441234567">call</a>'
            '</body></html>')
    assert rule.check(parsed(html=html), SELLER_CTX) == Pass()


def test_a_link_only_in_quoted_history_does_not_count(rule):
    text = "Hi Jane,\n\nno, sorry.\n\nOn Sun, 2 Mar 2025, Jane <a@b.example> wrote:\n> see www.example.com\n"
    html = ('<div dir="ltr">no, sorry.</div><div class="gmail_quote"><blockquote class="gmail_quote">'
            '<a href="https://www.example.com">www.example.com</a></blockquote></div>')
    assert rule.check(parsed(text, html=html), SELLER_CTX) == Pass()


def test_allowed_domains_and_their_subdomains_pass(rule):
    allowing = Links(DataFiles(), ("ups.com",))
    for text in ("Track it at https://www.ups.com/track?tracknum=1Z999", "ups.com/track", "wwwapps.ups.com"):
        assert allowing.check(parsed(text), SELLER_CTX) == Pass(), text
    assert isinstance(allowing.check(parsed("https://ups.com.evil.example.net/"), SELLER_CTX), Refuse)
    assert isinstance(allowing.check(parsed("Track at https://www.dhl.de/x"), SELLER_CTX), Refuse)
    html = '<a href="https://www.ups.com/track?n=1">track</a>'
    assert allowing.check(parsed(html=html), SELLER_CTX) == Pass()


def test_the_subject_counts_unless_a_reply_repeats_the_buyers(rule):
    assert isinstance(rule.check(parsed("Hi", subject=f"Order {ORDER_ID} - see shop-one.com"), SELLER_CTX), Refuse)
    assert rule.check(parsed("Hi", subject="Re: Is shop-one.com your site?"), SELLER_CTX) == Pass()
    assert rule.check(parsed("Hi", subject="AW: Gehört shop-one.com zu Ihnen?"), SELLER_CTX) == Pass()


def test_a_replacement_list_in_data_dir_is_used(tmp_path):
    (tmp_path / "link_not_domains.txt").write_text("# our brand is not a domain\nmug.shop\n")
    rule = Links(DataFiles(tmp_path))
    assert rule.check(parsed("The mug.shop edition"), SELLER_CTX) == Pass()
    # The file replaces the shipped list: its abbreviations are gone.
    assert isinstance(rule.check(parsed("photo.zip"), SELLER_CTX), Refuse)


def test_buyer_messages_are_not_this_rules_business(rule):
    assert rule.directions == frozenset({SELLER_CTX.direction})
    assert BUYER_CTX.direction not in rule.directions


async def test_over_smtp_refusal_names_what_is_not_allowed_and_allow_list_lets_a_carrier_through(
        relay_factory, sink, tmp_path):
    app = await relay_factory(smarthost_port=sink.port,
                              extra='\n[policy]\nlink_allow_domains = ["ups.com"]\n')
    conv = open_conversation(app.config_path)
    bad = compose(sender=conv.seller_email, to=conv.buyer_alias, subject=f"Order {ORDER_ID}",
                  body="Hi Jane, more mugs on https://shop-one-mugs.com/ - Shop One\n")
    with pytest.raises(aiosmtplib.SMTPDataError) as caught:
        await send(app.server.port, conv.seller_email, [conv.buyer_alias], bad)
    assert caught.value.code == 550 and caught.value.message.startswith("5.7.1")
    assert "Links to websites are not allowed" in caught.value.message
    assert "shop-one-mugs" not in caught.value.message  # details go to the log only
    assert sql(app.config_path, "SELECT status, rule FROM messages") == [("rejected", "links")]
    assert unsealed(app.config_path, "messages.excerpt",
                    "SELECT excerpt, key_id FROM messages") == ["https://shop-one-mugs.com/"]
    good = compose(sender=conv.seller_email, to=conv.buyer_alias, subject=f"Order {ORDER_ID}",
                   body="Hi Jane, tracking: https://www.ups.com/track?tracknum=1Z999AA10123456784\n")
    await send(app.server.port, conv.seller_email, [conv.buyer_alias], good)
    await wait_until(lambda: sink.handler.to(conv.buyer_email))


def test_links_mail_programs_add_on_their_own_do_not_count(rule):
    text = "Hi Jane, shipped today.\n\nGet Outlook for iOS<https://aka.ms/o0ukef>\n"
    html = '<div>Hi Jane, shipped today.</div><div>Get <a href="https://aka.ms/o0ukef">Outlook for iOS</a></div>'
    assert rule.check(parsed(text, html=html), SELLER_CTX) == Pass()
    assert isinstance(rule.check(parsed("see https://aka.ms/other-page"), SELLER_CTX), Refuse)
