"""Attachments, both directions: only allowed types, at most 10 MB in all.

Allowed are text (.txt), PDF, Word (.doc, .docx) and images (.jpg/.jpeg,
.gif, .tif/.tiff, .bmp, .png), one or more. Every file the message
carries is judged, inline images included:

- more than `max_total_bytes` decoded in all: 552 5.3.4;
- by content (`policy.filetypes.sniff`): an executable, a document with
  macros, an archive, an encrypted or unreadable file, or a type not on
  the list: 550 5.7.1 naming the file;
- by name: an extension not on the list, or one that does not match the
  content (a .pdf that is a PNG): 550 5.7.1 naming the file. Word's
  two formats count as one type, so a .doc that is really a .docx
  passes. A file without an extension is judged by its content alone.

Signatures of signed mail (S/MIME, OpenPGP) and nameless alternative
text parts (text/calendar, text/enriched) are not files and are not
judged; the plain-text rule removes them from buyers' mail.
"""

from __future__ import annotations

import re
from email.message import Message
from pathlib import PurePosixPath

from policy.filetypes import sniff
from policy.parsed import AttachedFile, ParsedMessage, is_attachment
from policy.rule import BOTH, Context
from policy.verdicts import Pass, Refuse, Verdict
from relay import replies

ALLOWED_EXTENSIONS = {
    ".txt": "text", ".pdf": "pdf", ".doc": "word", ".docx": "word", ".jpg": "jpeg", ".jpeg": "jpeg",
    ".gif": "gif", ".tif": "tiff", ".tiff": "tiff", ".bmp": "bmp", ".png": "png",
}
SIGNATURE_TYPES = frozenset({"application/pkcs7-signature", "application/x-pkcs7-signature",
                             "application/pgp-signature"})
_RAW_NAME = re.compile(r"""(?:^|;)\s*(?:file)?name(\*)?\s*=\s*(?:"([^"]*)"|([^\s;"]+))""", re.IGNORECASE)
_KIND_NAMES = {"text": "text", "pdf": "a PDF", "word": "a Word document", "jpeg": "a JPEG image",
               "gif": "a GIF image", "tiff": "a TIFF image", "bmp": "a BMP image", "png": "a PNG image"}


class Attachments:
    name = "attachments"
    directions = BOTH

    def __init__(self, max_total_bytes: int = 10_485_760):
        self.max_total_bytes = max_total_bytes

    def check(self, parsed: ParsedMessage, ctx: Context) -> Verdict:
        files = judged_files(parsed)
        total = sum(len(f.data) for f in files)
        if total > self.max_total_bytes:
            names = ", ".join(shown_name(f) for f in files)
            return Refuse(replies.R552_ATTACHMENTS_TOO_BIG.with_text(
                f"Attachments total {total:,} bytes; at most {self.max_total_bytes:,} bytes are allowed"),
                f"attachments total {total} bytes, more than {self.max_total_bytes}", names)
        for file in files:
            problem = file_problem(file)
            if problem is not None:
                shown = shown_name(file)
                return Refuse(replies.R550_ATTACHMENT.with_text(
                    f"Attachment {shown} not allowed: {problem}. Allowed are .txt, .pdf, .doc, .docx, "
                    ".jpg, .gif, .tif, .bmp and .png files"), f"attachment {shown}: {problem}", shown)
        return Pass()


def file_problem(file: AttachedFile) -> str | None:
    """Why a file may not pass, or None if it may."""
    if not file.data:
        return None
    found = sniff(file.data)
    if found.problem is not None:
        return f"it is {found.problem}"
    suffix = PurePosixPath(file.filename or "").suffix.lower()
    if not suffix:
        return None if found.kind is not None else "it is of a type that is not allowed"
    expected = ALLOWED_EXTENSIONS.get(suffix)
    if expected is None:
        return f"{suffix} files are not allowed"
    if expected != found.kind:
        return f"the name says {suffix} but it is {_KIND_NAMES.get(found.kind or '', 'something else')}"
    return None


def allowed(file: AttachedFile) -> bool:
    return file_problem(file) is None


def judged(part: Message) -> bool:
    """Whether a leaf part is a file to judge (see the module docstring)."""
    if not is_attachment(part) or part.get_content_type() in SIGNATURE_TYPES:
        return False
    if part.get_content_maintype() == "text" and part.get_content_disposition() != "attachment":
        return bool(part.get_filename())
    return True


def judged_files(parsed: ParsedMessage) -> list[AttachedFile]:
    return [as_file(p) for p in parsed.message.walk() if not p.is_multipart() and judged(p)]


def as_file(part: Message) -> AttachedFile:
    data = part.get_payload(decode=True)
    return AttachedFile(file_name(part), part.get_content_type(), data if isinstance(data, bytes) else b"")


def file_name(part: Message) -> str | None:
    """The name the sender gave, as written when the parser cannot read all of it.

    An unquoted name with an `@` ("filename=a@b.pdf") is cut by the parser
    at the `@`; judging the name by what is left would be judging another.
    """
    parsed_name = part.get_filename()
    for header in ("Content-Disposition", "Content-Type"):
        for name, raw in part.raw_items():
            if name.lower() != header.lower():
                continue
            match = _RAW_NAME.search(raw)
            if match and not match.group(1) and match.group(3) and match.group(3).startswith(parsed_name or ""):
                return match.group(3)
    return parsed_name


def shown_name(file: AttachedFile) -> str:
    """The file's name as it may appear in an SMTP reply: printable ASCII, short."""
    name = file.filename or f"(unnamed {file.content_type} part)"
    name = "".join(c if " " <= c <= "~" and c != "@" else "?" for c in name)
    return name if len(name) <= 80 else name[:77] + "..."
