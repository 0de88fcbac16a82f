"""Replace the text of one MIME part, keeping how the part is named.

`set_text(part, text, subtype)` writes `text` as UTF-8 (7bit when it is
ASCII in lines of at most 998 characters, else base64: the email
package's own choice computes quoted-printable in Python, which costs
more than the rest of the rules on a 100 KB HTML reply) and keeps the
part's Content-Disposition, Content-ID, Content-Description,
Content-Language and Content-Location, and the `format`/`delsp`
parameters of its Content-Type.
"""

from __future__ import annotations

from email.message import Message
from email.utils import collapse_rfc2231_value

_KEPT = ("content-disposition", "content-id", "content-description", "content-language", "content-location")


def set_text(part: Message, text: str, subtype: str) -> None:
    saved = [(name, value) for name, value in part.raw_items() if name.lower() in _KEPT]
    params = {k: collapse_rfc2231_value(v) for k in ("format", "delsp") if (v := part.get_param(k)) is not None}
    part.set_content(text, subtype=subtype, charset="utf-8", params=params, cte=_transfer_encoding(text))
    for name, value in saved:
        part.set_raw(name, value)  # as received: never fails on a value the parser could not read


def _transfer_encoding(text: str) -> str:
    if text.isascii() and all(len(line) <= 998 for line in text.splitlines()):
        return "7bit"
    return "base64"
