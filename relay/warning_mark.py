"""Mark a delivered message with the warning a policy rule gave it.

`mark(message, word, paragraph)` sets the header `X-Relay-Warning: <word>`
on the top and puts `paragraph` first in the message's first text/plain
part and its first text/html part (the body, not attachments), so the
reader sees it whichever the mail program shows. It runs inside the
privacy rewrite, after the sender's own headers are gone, so a sender
cannot forge or remove the header.
"""

from __future__ import annotations

import html
import re
from email.message import EmailMessage

from policy.mimeedit import set_text
from policy.parsed import decoded_text

HEADER = "X-Relay-Warning"
_BODY_START = re.compile(r"<body\b[^>]*>", re.IGNORECASE)


def mark(message: EmailMessage, word: str, paragraph: str) -> None:
    del message[HEADER]
    message.set_raw(HEADER, word)
    done: set[str] = set()
    for part in message.walk():
        subtype = part.get_content_subtype()
        if (part.is_multipart() or part.get_content_maintype() != "text" or subtype not in ("plain", "html")
                or subtype in done or part.get_content_disposition() == "attachment"):
            continue
        done.add(subtype)
        text = decoded_text(part)
        if subtype == "plain":
            set_text(part, f"{paragraph}\n\n{text}", "plain")
        else:
            banner = f'<p style="font-weight:bold">{html.escape(paragraph)}</p>'
            match = _BODY_START.search(text)
            at = match.end() if match else 0
            set_text(part, text[:at] + banner + text[at:], "html")

