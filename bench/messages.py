"""Whole messages for the feature benchmark, written as files for smtp-source -F.

Each is a seller's reply to the buyer's alias that the content policy lets
through (the order id in the subject, no links, no promotion), so the sink
gets exactly one message per accepted one whatever is switched on:

- `plain-1K`: a short text/plain reply;
- `plain-100K`: a text/plain reply of about 100 KB: a few paragraphs of
  the seller's own and the earlier messages quoted below (`>` lines), as
  mail programs send a reply in a long conversation;
- `gmail-100K`: a Gmail-style multipart/alternative reply of about 100 KB
  in all, with inline CSS, a signature and the quoted history of earlier
  messages (`gmail_quote` blockquotes; the text alternative quotes with
  `>`): HTML the seller rules let through as it is;
- `outlook-100K`: the same from Outlook: Word HTML with a `<style>` block,
  `MsoNormal` paragraphs and the history below Outlook's reply header
  block, which the HTML sanitizer rewrites (the style block goes);
- `pdf-9M`: a short text with three 3 MB PDF attachments (9 MB decoded,
  about 12 MB in base64).

The text is made from a fixed set of plain shipping sentences and the
PDFs are the tests' samples (`tests/filesamples.py`) padded to size, so
every run sends the same bytes.
"""

from __future__ import annotations

import random
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

from tests.filesamples import pdf  # the tests' well-formed PDF, padded to a size

SENTENCES = [
    "Thank you for your order, we packed it this morning.",
    "The parcel was handed to the carrier today and should arrive within three working days.",
    "Please let us know if the size does not fit, we will arrange a replacement.",
    "The blue model is the one you selected, and it comes with the charging cable.",
    "Our warehouse team checked the item before it left, and it works as described.",
    "If the parcel is not there by Friday, reply to this message and we will look into it.",
]


def prose(size: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    lines, total = [], 0
    while total < size:
        line = " ".join(rng.choice(SENTENCES) for _ in range(3))
        lines.append(line)
        total += len(line) + 1
        if rng.random() < 0.2:
            lines.append("")
    return "\n".join(lines) + "\n"


def _base(sender: str, recipient: str, order_id: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Bench Seller <{sender}>"
    msg["To"] = recipient
    msg["Subject"] = f"Re: Order {order_id}"
    msg["Date"] = formatdate()
    return msg


def plain(size: int, sender: str, recipient: str, order_id: str) -> EmailMessage:
    msg = _base(sender, recipient, order_id)
    own = prose(min(size, 2048))
    history = _quoted(size - len(own), seed=3) if size > 4096 else ""
    msg.set_content(f"Hello,\n\nabout order {order_id}:\n\n{own}\nBench Seller\n{history}")
    return msg


def _quoted(size: int, seed: int) -> str:
    lines = prose(size, seed=seed).splitlines()
    return "\nOn Mon, 2 Mar 2026 at 09:14, Bench Buyer wrote:\n" + "".join(f"> {line}\n" for line in lines)


def html_reply(size: int, sender: str, recipient: str, order_id: str) -> EmailMessage:
    msg = _base(sender, recipient, order_id)
    own = prose(2048, seed=2)
    paragraphs = "".join(f'<p style="font-family:Arial;font-size:10pt">{line}</p>\n'
                         for line in own.splitlines() if line)
    history = "".join(f"<p>{line}</p>\n" for line in prose(size * 6 // 10, seed=3).splitlines() if line)
    html = (
        "<html><body>\n"
        f'<div dir="ltr"><p>Hello,</p><p>about order {order_id}:</p>\n{paragraphs}'
        "<p>Kind regards,<br><b>Bench Seller</b><br>Customer service</p></div>\n"
        '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Mon, 2 Mar 2026 at 09:14, '
        "Bench Buyer wrote:<br></div>\n"
        '<blockquote class="gmail_quote" style="margin:0 0 0 .8ex;border-left:1px #ccc solid;'
        f'padding-left:1ex">{history}</blockquote></div></body></html>\n'
    )
    text = f"Hello,\n\nabout order {order_id}:\n\n{own}\nKind regards,\nBench Seller\n"
    msg.set_content(text + _quoted(size * 3 // 10, seed=3))
    msg.add_alternative(html, subtype="html")
    return msg


def outlook_reply(size: int, sender: str, recipient: str, order_id: str) -> EmailMessage:
    msg = _base(sender, recipient, order_id)
    own = prose(2048, seed=2)
    paragraphs = "".join(f'<p class="MsoNormal"><span style="font-size:11.0pt">{line}<o:p></o:p></span></p>\n'
                         for line in own.splitlines() if line)
    history = "".join(f'<p class="MsoNormal">{line}<o:p></o:p></p>\n'
                      for line in prose(size * 6 // 10, seed=3).splitlines() if line)
    html = (
        '<html xmlns:o="urn:schemas-microsoft-com:office:office" '
        'xmlns="http://www.w3.org/TR/REC-html40"><head>'
        '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
        "<style><!-- p.MsoNormal{margin:0cm;font-size:11.0pt;font-family:Calibri} --></style>"
        '</head><body lang="EN-US"><div class="WordSection1">\n'
        f'<p class="MsoNormal">Hello,<o:p></o:p></p><p class="MsoNormal">about order {order_id}:</p>\n'
        f"{paragraphs}<p class=\"MsoNormal\">Kind regards,<br>Bench Seller<o:p></o:p></p>\n"
        '<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm">'
        '<p class="MsoNormal"><b>From:</b> Bench Buyer<br><b>Sent:</b> Monday, 2 March 2026 09:14<br>'
        f"<b>Subject:</b> Order {order_id}</p></div>\n{history}</div></body></html>\n"
    )
    text = (f"Hello,\n\nabout order {order_id}:\n\n{own}\nKind regards,\nBench Seller\n\n"
            "From: Bench Buyer\nSent: Monday, 2 March 2026 09:14\n\n" + prose(size * 3 // 10, seed=3))
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def with_pdfs(total: int, sender: str, recipient: str, order_id: str) -> EmailMessage:
    msg = _base(sender, recipient, order_id)
    msg.set_content(f"Hello,\n\nthe invoices for order {order_id} are attached.\n\nBench Seller\n")
    for i in range(3):
        msg.add_attachment(pdf(f"Invoice {i + 1} of order {order_id}", size=total // 3), maintype="application", subtype="pdf",
                           filename=f"invoice-{i + 1}.pdf")
    return msg


KINDS = {
    "plain-1K": lambda *a: plain(1024, *a),
    "plain-100K": lambda *a: plain(100 * 1024, *a),
    "gmail-100K": lambda *a: html_reply(100 * 1024, *a),
    "outlook-100K": lambda *a: outlook_reply(100 * 1024, *a),
    "pdf-9M": lambda *a: with_pdfs(9 * 1024 * 1024, *a),
}


def write(kind: str, folder: Path, sender: str, recipient: str, order_id: str) -> Path:
    path = folder / f"{kind}.eml"
    path.write_bytes(KINDS[kind](sender, recipient, order_id).as_bytes().replace(b"\r\n", b"\n"))
    return path
