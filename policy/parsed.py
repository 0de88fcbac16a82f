"""One parse of a message, shared by every rule and by the rewriter.

`ParsedMessage.from_bytes(raw)` parses with `email.policy.default` once.
Rules read the same view: `text_parts`, `html_parts` (decoded strings) and
`attachments` (with decoded bytes), computed on first use. Parsing never
raises on malformed input: the standard library records defects instead,
and undecodable text falls back to replacement characters.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
from dataclasses import dataclass
from email.message import EmailMessage, Message
from functools import cached_property

POLICY = email.policy.default


@dataclass(frozen=True)
class Part:
    content_type: str
    text: str


@dataclass(frozen=True)
class AttachedFile:
    filename: str | None
    content_type: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class ParsedMessage:
    def __init__(self, message: EmailMessage, raw: bytes | None = None):
        self.message = message
        self.raw = raw
        self._memo: dict[str, object] = {}

    def memo(self, key: str, compute):
        """A value derived from this message, computed once (e.g. a view several rules share)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @classmethod
    def from_bytes(cls, raw: bytes) -> ParsedMessage:
        return cls(email.message_from_bytes(raw, policy=POLICY), raw)

    def header(self, name: str) -> str | None:
        """A header's value as text, or None; never raises on bad encodings."""
        try:
            value = self.message.get(name)
        except Exception:  # malformed header: the parser's error types vary
            return None
        return None if value is None else str(value)

    @cached_property
    def subject(self) -> str:
        return (self.header("Subject") or "").strip()

    def _leaves(self) -> list[Message]:
        return [p for p in self.message.walk() if not p.is_multipart()]

    @cached_property
    def attachments(self) -> list[AttachedFile]:
        return [AttachedFile(part.get_filename(), part.get_content_type(), _payload(part))
                for part in self._leaves() if is_attachment(part)]

    @cached_property
    def text_parts(self) -> list[Part]:
        return [Part("text/plain", decoded_text(p)) for p in self._leaves()
                if not is_attachment(p) and p.get_content_type() == "text/plain"]

    @cached_property
    def html_parts(self) -> list[Part]:
        return [Part("text/html", decoded_text(p)) for p in self._leaves()
                if not is_attachment(p) and p.get_content_type() == "text/html"]

    @property
    def is_plain_text(self) -> bool:
        return not self.message.is_multipart() and self.message.get_content_type() == "text/plain"


def is_attachment(part: Message) -> bool:
    if part.get_content_disposition() == "attachment":
        return True
    if part.get_content_maintype() == "text" and part.get_content_subtype() in ("plain", "html"):
        return False
    return True


def decoded_text(part: Message) -> str:
    """The part's text, decoded once: rules, the rewrite and the warning read it again."""
    payload = part.get_payload()
    cached = getattr(part, "_relay_decoded", None)
    if cached is not None and cached[0] is payload:  # set_content puts a new payload in
        return cached[1]
    try:
        text = part.get_content()
    except Exception:  # unknown charset or broken transfer encoding
        data = part.get_payload(decode=True) or b""
        text = data.decode("utf-8", errors="replace")
    part._relay_decoded = (payload, text)
    return text


def _payload(part: Message) -> bytes:
    data = part.get_payload(decode=True)
    if data is None:
        data = str(part.get_payload()).encode("utf-8", errors="replace")
    return data
