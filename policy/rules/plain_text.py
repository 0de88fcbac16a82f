"""Buyer to seller: the seller receives plain text only (a Transform).

A message that is already one text/plain part passes untouched. Any
other becomes text/plain; charset=utf-8, built from the message's text:
where a multipart/alternative offers a text/plain version it is taken,
otherwise the HTML is converted (`policy.htmltext`); text parts that
follow each other (Apple Mail splits text around an attachment) are
joined in order. Attachments of the allowed types stay, after the text
(multipart/mixed). Everything else goes: HTML parts, inline images (the
parts of a multipart/related that its HTML shows), attached messages,
signatures, calendar parts and files that are not allowed.

Headers other than Content-* stay as received, for the privacy rewrite
that follows to judge.
"""

from __future__ import annotations

from email.message import EmailMessage, Message, MIMEPart

from policy.htmltext import html_to_text
from policy.parsed import POLICY, ParsedMessage, decoded_text, is_attachment
from policy.rule import Context, Direction
from policy.rules.attachments import allowed, as_file, file_name, judged
from policy.verdicts import Pass, Transform, Verdict

_MAX_DEPTH = 40  # deeper nesting than any mail program writes: the rest is not read


class PlainText:
    name = "plain_text"
    directions = frozenset({Direction.BUYER_TO_SELLER})

    def check(self, parsed: ParsedMessage, ctx: Context) -> Verdict:
        if parsed.is_plain_text:
            return Pass()
        message = parsed.message
        pieces: list[str] = []
        files: list[Message] = []
        _read(message, pieces, files, 0)
        text = "\n".join(piece.rstrip() + "\n" for piece in pieces if piece.strip())
        leaves = sum(1 for part in message.walk() if not part.is_multipart())
        out = EmailMessage(policy=POLICY)
        for name, value in message.raw_items():
            if not _is_content_header(name):
                out.set_raw(name, value)
        out.set_content(text, charset="utf-8")
        if files:
            out.make_mixed()
            for part in files:
                out.attach(_file_copy(part))
        note = (f"delivered as plain text with {len(files)} attachment(s); "
                f"{leaves - len(files)} other part(s) converted or removed")
        return Transform(out, note)


def _read(part: Message, pieces: list[str], files: list[Message], depth: int) -> None:
    """Gather the text to show and the files to keep, in order."""
    if depth > _MAX_DEPTH:
        return
    if part.get_content_maintype() == "message":
        return  # an attached message, delivery report and the like
    if part.is_multipart():
        children = [c for c in part.get_payload() if isinstance(c, Message)]
        subtype = part.get_content_subtype()
        if subtype == "alternative":
            plain = [c for c in children if c.get_content_type() == "text/plain" and not is_attachment(c)]
            chosen = plain[:1] or children[-1:]
            for child in children:
                if child in chosen:
                    _read(child, pieces, files, depth + 1)
                else:
                    _files_only(child, files, depth + 1)
        elif subtype == "related":
            for child in children[:1]:  # the root; the rest are what it shows inline
                _read(child, pieces, files, depth + 1)
        else:
            for child in children:
                _read(child, pieces, files, depth + 1)
        return
    if is_attachment(part):
        if judged(part) and file_name(part) and allowed(as_file(part)):
            files.append(part)
    elif part.get_content_type() == "text/plain":
        pieces.append(decoded_text(part))
    elif part.get_content_type() == "text/html":
        pieces.append(html_to_text(decoded_text(part)))


def _files_only(part: Message, files: list[Message], depth: int) -> None:
    """Files in an alternative not shown as text (Apple Mail puts them in the HTML one)."""
    _read(part, [], files, depth)


def _file_copy(part: Message) -> MIMEPart:
    """The file with its own Content-* headers and encoded body, nothing else."""
    copy = MIMEPart(policy=POLICY)
    for name, value in part.raw_items():
        if _is_content_header(name):
            copy.set_raw(name, value)
    copy.set_payload(part.get_payload())
    return copy


def _is_content_header(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith("content-") or lowered == "mime-version"
