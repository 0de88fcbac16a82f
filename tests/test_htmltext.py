"""HTML to readable plain text (`policy.htmltext`): what stays, what goes.

Each test gives HTML as mail programs write it and checks the exact text,
so a change in layout (a lost paragraph, a bullet, a line break) shows.
"""

from __future__ import annotations

import pytest

from policy.htmltext import html_to_text
from tests.mailsamples import apple_mail_html, gmail_html, outlook_html


def test_paragraphs_headings_and_line_breaks():
    html = "<h2>Your order</h2><p>Hello   Jane,\n  thanks.</p><p>Line one<br>Line two<br><br>After a gap</p>"
    assert html_to_text(html) == "Your order\n\nHello Jane, thanks.\n\nLine one\nLine two\n\nAfter a gap\n"


def test_gmail_divs_and_empty_lines():
    html = '<div dir="ltr">Hello,<div><br></div><div>where is my <b>parcel</b>?</div><div><br></div><div>Jane</div></div>'
    assert html_to_text(html) == "Hello,\n\nwhere is my parcel?\n\nJane\n"


def test_lists_keep_bullets_numbers_and_nesting():
    html = "<ul><li>mug</li><li>plate<ol><li>red</li><li>blue</li></ol></li></ul><ol><li>first</li><li>second</li></ol>"
    assert html_to_text(html) == "\u2022 mug\n\u2022 plate\n  1. red\n  2. blue\n\n1. first\n2. second\n"


def test_simple_table_is_one_line_per_row():
    html = "<table><tr><th>Item</th><th>Qty</th></tr><tr><td>Mug</td><td>2</td></tr></table><p>Total 2</p>"
    assert html_to_text(html) == "Item | Qty\nMug | 2\n\nTotal 2\n"


def test_quotes_and_preformatted_text():
    html = "<p>Yes.</p><blockquote><p>Is it blue?</p><blockquote>Really?</blockquote></blockquote><pre>  a\n   b</pre>"
    assert html_to_text(html) == "Yes.\n\n> Is it blue?\n>\n> > Really?\n\n  a\n   b\n"


@pytest.mark.parametrize("html", [
    '<p>See <a href="https://evil.example/login">my photos</a></p>',
    '<p>See <img src="https://evil.example/pixel.gif" alt="x">my photos</p>',
    "<p>See <script>document.location='https://evil.example'</script>my photos</p>",
    "<style>p { background: url(https://evil.example/bg.png) }</style><p>See my photos</p>",
    '<p>See </p><form action="https://evil.example/post">Password <input type="password"></form><p>my photos</p>',
    '<p>See <object data="https://evil.example/x.swf"><embed src="https://evil.example/x.swf"></object>my photos</p>',
    '<p>See <iframe src="https://evil.example/frame"></iframe>my photos</p>',
], ids=["link", "image", "script", "style", "form", "object", "iframe"])
def test_link_targets_images_scripts_styles_forms_and_objects_go(html):
    text = html_to_text(html)
    assert "evil" not in text and "Password" not in text
    assert " ".join(text.split()) == "See my photos"


def test_entities_are_decoded_and_whitespace_normalised():
    html = "<p>Caf&eacute; &amp; tea&nbsp;&nbsp;for &euro;5 &lt;today&gt; &#x263A;</p>\n\n\n<p>  next  </p>"
    assert html_to_text(html) == "Caf\u00e9 & tea for \u20ac5 <today> \u263a\n\nnext\n"


def test_outlook_word_html_reads_as_its_text():
    text = html_to_text(outlook_html(["Dear Jane,", "", "Your mug ships today."]))
    assert text.startswith("Dear Jane,\n\nYour mug ships today.\n")
    assert "From: Jane Buyer\nSent: Monday, March 3, 2025 10:02\nSubject: Question" in text
    for junk in ("mso", "font-family", "WordSection", "shapedefaults", "{", "o:p"):
        assert junk not in text


def test_gmail_and_apple_mail_replies_keep_signature_and_quote():
    gmail = html_to_text(gmail_html(["Hi Jane,", "", "It ships today."]))
    assert gmail == ("Hi Jane,\n\nIt ships today.\n\n-- \nShop One\nCustomer care\n\n"
                     "On Mon, 3 Mar 2025 at 10:02, Jane Buyer wrote:\n\n> Is the blue mug still available?\n")
    apple = html_to_text(apple_mail_html(["Hi Jane,", "It ships today."]))
    assert apple == ("Hi Jane,\nIt ships today.\n\n> On 3 Mar 2025, at 10:02, Jane Buyer wrote:\n>\n"
                     "> Is the blue mug still available?\n")


@pytest.mark.parametrize("html", ["", "<", "<<<>>>", "<p", "</p></div></li>", "<ul><li>open", "&#xffffff;&#0;",
                                  "<table><td>cell outside a row", "\x00\x01<b>x</b>"])
def test_malformed_html_gives_text_not_an_error(html):
    assert isinstance(html_to_text(html), str)


def test_large_reply_with_quoted_history_keeps_every_paragraph():
    rounds = "".join(f"<p>Message {n}: the parcel left the depot.</p><blockquote>" for n in range(300))
    text = html_to_text(rounds + "</blockquote>" * 300)
    assert all(f"Message {n}: the parcel left the depot." in text for n in range(300))
