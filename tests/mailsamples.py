"""Messages shaped as real mail programs write them, for the policy tests.

`gmail`, `outlook` and `apple_mail` build a reply with HTML the way each
program does (Gmail's `gmail_quote` and signature divs; Outlook's Word
HTML with its style sheet, `<o:p>`, conditional comments and `mso-`
CSS; Apple Mail's `blockquote type="cite"`), with a text/plain
alternative unless told not to. `with_files` adds attachments; `inline`
adds an image shown through `cid:`.
"""

from __future__ import annotations

import email.headerregistry
import email.policy
import email.utils
from email.message import EmailMessage

SMTP = email.policy.SMTP


def _base(sender: str, to: str, subject: str, display: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = email.headerregistry.Address(display_name=display or "", addr_spec=sender) if display else sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate()
    msg["Message-ID"] = email.utils.make_msgid(domain=sender.split("@")[-1])
    return msg


def html_message(sender: str, to: str, subject: str, html: str, plain: str | None = None,
                 display: str | None = None) -> EmailMessage:
    msg = _base(sender, to, subject, display)
    if plain is None:
        msg.set_content(html, subtype="html")
    else:
        msg.set_content(plain)
        msg.add_alternative(html, subtype="html")
    return msg


def gmail_html(lines: list[str], quoted: str = "Is the blue mug still available?") -> str:
    body = "".join(f"<div>{line}</div>" if line else "<div><br></div>" for line in lines)
    return (f'<div dir="ltr">{body}<br clear="all"><div><br></div><span class="gmail_signature_prefix">-- </span>'
            '<br><div dir="ltr" class="gmail_signature">Shop One<br>Customer care</div></div><br>'
            '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Mon, 3 Mar 2025 at 10:02, '
            'Jane Buyer wrote:<br></div><blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;'
            f'border-left:1px solid rgb(204,204,204);padding-left:1ex"><div dir="ltr">{quoted}</div>'
            '</blockquote></div>\n')


def outlook_html(lines: list[str], quoted: str = "Is the blue mug still available?") -> str:
    paragraphs = "".join(f'<p class="MsoNormal"><span lang="EN-US" style="mso-fareast-language:EN-US">'
                         f'{line or "<o:p>&nbsp;</o:p>"}<o:p></o:p></span></p>' for line in lines)
    return ('<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office" '
            'xmlns:w="urn:schemas-microsoft-com:office:word" xmlns:m="http://schemas.microsoft.com/office/2004/12/omml" '
            'xmlns="http://www.w3.org/TR/REC-html40"><head><meta http-equiv="Content-Type" content="text/html; '
            'charset=utf-8"><meta name="Generator" content="Microsoft Word 15 (filtered medium)">'
            '<style><!--\n/* Font Definitions */\n@font-face {font-family:"Cambria Math";}\n'
            'p.MsoNormal, li.MsoNormal, div.MsoNormal {margin:0cm;font-size:11.0pt;font-family:"Calibri",sans-serif;'
            'mso-fareast-language:EN-US;}\n.MsoChpDefault {mso-style-type:export-only;}\n'
            '@page WordSection1 {size:612.0pt 792.0pt;}\ndiv.WordSection1 {page:WordSection1;}\n--></style>'
            '<!--[if gte mso 9]><xml>\n<o:shapedefaults v:ext="edit" spidmax="1026" />\n</xml><![endif]-->'
            '</head><body lang="EN-US" link="#0563C1" vlink="#954F72" style="word-wrap:break-word">'
            f'<div class="WordSection1">{paragraphs}'
            '<div><div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm">'
            '<p class="MsoNormal"><b>From:</b> Jane Buyer<br><b>Sent:</b> Monday, March 3, 2025 10:02<br>'
            '<b>Subject:</b> Question<o:p></o:p></p></div></div>'
            f'<p class="MsoNormal">{quoted}<o:p></o:p></p></div></body></html>\n')


def apple_mail_html(lines: list[str], quoted: str = "Is the blue mug still available?") -> str:
    body = "".join(f"<div>{line}</div>" if line else "<div><br></div>" for line in lines)
    return ('<html><head><meta http-equiv="content-type" content="text/html; charset=utf-8"></head>'
            '<body style="overflow-wrap: break-word; -webkit-nbsp-mode: space; line-break: after-white-space;">'
            f'{body}<div><br><blockquote type="cite"><div>On 3 Mar 2025, at 10:02, Jane Buyer wrote:</div>'
            f'<br><div><div>{quoted}</div></div></blockquote></div><br></body></html>\n')


def with_files(msg: EmailMessage, files: list[tuple[str, bytes, str]]) -> EmailMessage:
    """Attach (name, data, content type) files; the message becomes multipart/mixed."""
    for name, data, content_type in files:
        maintype, subtype = content_type.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg


def inline(msg: EmailMessage, data: bytes, cid: str, subtype: str = "png") -> EmailMessage:
    """Add an image to the HTML part, as a multipart/related sibling shown through `cid:`."""
    html_part = msg.get_body(preferencelist=("html",))
    html_part.add_related(data, maintype="image", subtype=subtype, cid=f"<{cid}>", filename=f"image001.{subtype}",
                          disposition="inline")
    return msg


def as_bytes(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=SMTP)
