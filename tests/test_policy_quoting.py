"""What the seller authored: quoted history of Gmail, Outlook, Apple Mail and Thunderbird is left out."""

from __future__ import annotations

import pytest

from policy.authored import authored, url_refs, visible_text
from policy.quoting import authored_html, authored_plain
from tests.policy_helpers import parsed


@pytest.mark.parametrize("text", [
    "Own words.\n\nOn Sun, 2 Mar 2025 at 18:02, Jane <a@b.example> wrote:\n> QUOTED\n> more QUOTED\n",
    "Own words.\n\nAm So., 2. März 2025 um 18:02 Uhr schrieb Jane <a@b.example>:\n> QUOTED\n",
    "Own words.\n\n-----Original Message-----\nFrom: Jane\nSent: Sunday\nTo: Shop\nSubject: x\n\nQUOTED\n",
    "Own words.\n\n________________________________\nFrom: Jane <a@b.example>\nSent: Sunday, March 2, 2025\n\nQUOTED\n",
    "Own words.\n\nVon: Jane <a@b.example>\nGesendet: Sonntag, 2. März 2025 18:02\nAn: Shop\n\nQUOTED\n",
    "Own words.\n\nDe : Jane\nEnvoyé : dimanche 2 mars 2025 18:02\nÀ : Shop\n\nQUOTED\n",
    "Own words.\n\n差出人: Jane\n送信日時: 2025年3月2日 18:02\n宛先: Shop\n\nQUOTED\n",
    "Own words.\n\n发件人: Jane\n发送时间: 2025年3月2日 18:02\n\nQUOTED\n",
    "Own words.\n\n2025年3月2日(日) 18:02 Jane <a@b.example>:\n> QUOTED\n",
])
def test_plain_text_quotes_are_left_out(text):
    own = authored_plain(text)
    assert "Own words." in own and "QUOTED" not in own


def test_interleaved_plain_reply_keeps_every_own_line():
    text = "Hi.\n\n> question one\nAnswer one.\n> question two\nAnswer two.\n"
    own = authored_plain(text)
    assert "Answer one." in own and "Answer two." in own and "question" not in own


def test_a_from_line_without_a_header_block_is_the_sellers():
    assert "From: our warehouse in Leeds" in authored_plain("From: our warehouse in Leeds, today.\nThanks\n")


@pytest.mark.parametrize("html", [
    '<div dir="ltr">OWN</div><div class="gmail_quote gmail_quote_container"><div class="gmail_attr">On x wrote:</div>'
    '<blockquote class="gmail_quote"><div>QUOTED <div>nested</div></div></blockquote></div><div>OWN2</div>',
    '<div>OWN</div><div><br><blockquote type="cite"><div>On 2 Mar, Jane wrote:</div><div>QUOTED</div></blockquote></div>'
    '<div>OWN2</div>',
    '<p>OWN</p><div class="moz-cite-prefix">Il 02/03/25 Jane ha scritto:</div><blockquote type="cite">QUOTED</blockquote>'
    '<p>OWN2</p>',
    "<p class=MsoNormal>OWN<o:p></o:p></p><p class=MsoNormal>OWN2</p><div style='border:none;border-top:solid #E1E1E1 1.0pt;"
    "padding:3.0pt 0cm 0cm 0cm'><p><b>From:</b> Jane</p></div><p class=MsoNormal>QUOTED</p>",
    '<div>OWN</div><div>OWN2</div><hr style="display:inline-block;width:98%" tabindex="-1"><div id="divRplyFwdMsg" dir="ltr">'
    '<b>From:</b> Jane</div><div>QUOTED</div>',
])
def test_html_quotes_are_left_out(html):
    text = visible_text(authored_html(html))
    assert "OWN" in text and "OWN2" in text and "QUOTED" not in text


def test_an_unclosed_quote_hides_the_rest_only():
    assert visible_text(authored_html('<p>OWN</p><blockquote type="cite">QUOTED <p>more')) .strip() == "OWN"


def test_visible_text_drops_head_styles_comments_and_decodes_entities():
    html = ("<html><head><title>T</title><style>p{color:red}</style></head><body><!-- hidden -->"
            "<p>Fish &amp; chips</p><p>exam<b>ple</b>.com</p></body></html>")
    text = visible_text(html)
    assert "Fish & chips" in text and "example.com" in text
    assert "color" not in text and "hidden" not in text and "T" not in text.split()


def test_url_refs_reads_attributes_and_css_but_not_namespaces():
    html = ('<html xmlns:o="urn:schemas-microsoft-com:office:office" xmlns="http://www.w3.org/TR/REC-html40">'
            '<body><a href="https://a.example.com">a</a><img src=\'cid:x\'><div style="background:url(b.png)">'
            '</div></body></html>')
    assert url_refs(html) == [("a", "href", "https://a.example.com"), ("img", "src", "cid:x"), ("div", "style", "b.png")]


def test_the_authored_view_is_computed_once_per_message():
    message = parsed("Own words.\n> quoted\n", html='<div>Own html</div><blockquote type="cite">q</blockquote>')
    first = authored(message)
    assert authored(message) is first
    assert "Own words." in first.text and "Own html" in first.text and "quoted" not in first.text
