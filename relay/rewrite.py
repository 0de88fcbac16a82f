"""The privacy rewrite: what the recipient sees names each party only by alias.

`rewrite(message, plan)` changes the parsed message in place and returns
the bytes to deliver:

- Top-level headers are kept only if they are on `KEPT_HEADERS` (dates,
  subject, MIME structure, threading hints): everything that can carry the
  sender's identity or path (Received, Return-Path, Sender, X-Originating-IP,
  DKIM signatures the rewrite breaks, ARC, client and provider headers) is
  dropped by not being listed.
- From becomes `"<name> via <marketplace>" <sender alias>`, To the alias
  the sender wrote to; Reply-To, Cc and Bcc go.
- Message-ID is the relay's own; In-Reply-To and References are mapped
  through the log so both sides' mail programs keep the thread, and ids the
  log does not know are dropped.
- Every real address of either party (primary and alternates, also in
  `%40` and `&#64;` spellings) is replaced by that party's alias in every
  remaining header, every part's headers, every text part (plain, HTML,
  and text attachments such as a vCard), quoted history included, and the
  MIME preamble and epilogue. An attached message (message/rfc822) keeps
  only `NESTED_KEPT` headers: its own path and ids go like the top's.
- A warning a policy rule gave is marked (`relay/warning_mark.py`).

It does not raise on odd input: a header the parser cannot read, or a
second copy of a header that may appear once, is dropped.
"""

from __future__ import annotations

import binascii
import email
import email.policy
from email import errors
import quopri
from dataclasses import dataclass
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.header import decode_header, make_header
from email.utils import collapse_rfc2231_value, formataddr

from aliasing.addresses import replace_addresses
from policy.parsed import decoded_text
from relay import warning_mark
from relay.msgids import thread_headers

KEPT_HEADERS = frozenset(h.lower() for h in (
    "Date", "Subject", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
    "Content-Language", "Content-Disposition", "Auto-Submitted", "Precedence",
    "X-Auto-Response-Suppress", "Thread-Topic", "Importance", "Priority", "X-Priority",
    "Accept-Language",
))
# An attached message keeps who wrote to whom, when, and about what.
NESTED_KEPT = KEPT_HEADERS | {"from", "to", "cc", "reply-to"}
# Part headers that `set_content` clears and a scrubbed text part keeps.
_PART_HEADERS_KEPT = ("content-disposition", "content-id", "content-description", "content-language",
                      "content-location")
_TEXT_PARAMS_KEPT = ("format", "delsp", "name")
_ATTACHED_MESSAGES = ("message/rfc822", "message/global")
_PROBE = b"Jane.Doe+x@example.org %40 &#64;"
_LEGACY = email.policy.compat32.clone(linesep="\r\n")


@dataclass(frozen=True)
class RewritePlan:
    sender_display: str            # "Jane via Marketplace"
    sender_alias: str              # full alias address of the sender's party
    recipient_alias: str           # full alias address the sender wrote to
    relay_message_id: str          # "<...@domain>"
    address_map: dict[str, str]    # real address key -> alias address
    id_map: dict[str, str]         # Message-ID mapping (see storage.messages.map_message_ids)
    subject: str | None = None     # replacement subject, if any
    warning: tuple[str, str] | None = None  # (word, first paragraph) a policy rule labelled it with


def address_variants(mapping: dict[str, str]) -> dict[str, str]:
    """Add the `%40` and `&#64;` spellings of every address."""
    out = dict(mapping)
    for key, alias in mapping.items():
        local, _, domain = key.rpartition("@")
        out[f"{local}%40{domain}"] = alias
        out[f"{local}&#64;{domain}"] = alias
    return out


def rewrite(message: EmailMessage, plan: RewritePlan, raw: bytes | None = None) -> bytes:
    """The bytes to deliver. `raw`, when given, is what `message` was parsed from.

    When the scrub changes nothing below the top-level headers (the usual
    case), the body goes out exactly as it came in after the new header
    block: writing it out again would cost more than all the rest.
    """
    mapping = address_variants(plan.address_map)
    in_reply_to, references = thread_headers(message, plan.id_map)
    kept = _top_headers(message, mapping)
    if plan.subject is not None:
        kept = [h for h in kept if h[0].lower() != "subject"]
        kept.insert(0, ("Subject", replace_addresses(plan.subject, mapping), False))
    for name in set(message.keys()):
        del message[name]
    if plan.sender_display.isascii():
        message.set_raw("From", formataddr((plan.sender_display, plan.sender_alias)))
    else:  # the header registry encodes (and quotes) a non-ASCII name correctly
        message["From"] = HeaderAddress(display_name=plan.sender_display, addr_spec=plan.sender_alias)
    message.set_raw("To", plan.recipient_alias)
    message.set_raw("Message-ID", plan.relay_message_id)
    if in_reply_to:
        _set_ids(message, "In-Reply-To", in_reply_to)
        _set_ids(message, "References", " ".join(references))
    for name, value, as_received in kept:
        if as_received:
            message.set_raw(name, value)
        elif value:
            _set_header(message, name, value)
    changed = _scrub_parts(message, mapping)
    if plan.warning is not None:
        warning_mark.mark(message, *plan.warning)
        changed = True
    body = None if changed or raw is None else _raw_body(message, raw)
    if body is not None:
        head = _header_block(message)
        if head is not None:
            return head + body
    return serialize(message)


def _top_headers(message: EmailMessage, mapping: dict[str, str]) -> list[tuple[str, str, bool]]:
    """The first copy of each kept top-level header: (name, value, as received).

    A plain ASCII value without encoded-words that names no one is kept
    exactly as received (no parsing on the way in or out, which is most of
    the cost of a small message); any other is decoded and scrubbed.
    """
    first: dict[str, tuple[str, str, bool]] = {}
    for name, raw in message.raw_items():
        key = name.lower()
        if key not in KEPT_HEADERS or key in first:
            continue
        if raw.isascii() and "=?" not in raw and not _mentions(raw, mapping):
            first[key] = (name, raw, True)
        else:
            value = _clean_value(message, name, raw, mapping)
            if value is not None:
                first[key] = (name, value, False)
    return list(first.values())


def _mentions(text: str, mapping: dict[str, str]) -> bool:
    lowered = text.lower()
    return any(key in lowered for key in mapping)


def _set_ids(message: EmailMessage, name: str, value: str) -> None:
    if value.isascii():
        message.set_raw(name, value)
    else:
        _set_header(message, name, value)


def _raw_body(message: EmailMessage, raw: bytes) -> bytes | None:
    """The body as received, if the header block ends unambiguously."""
    end = raw.find(b"\r\n\r\n")
    if end < 0 or any(isinstance(d, errors.MissingHeaderBodySeparatorDefect) for d in message.defects):
        return None
    head = raw[:end + 2]
    if head.count(b"\n") != head.count(b"\r\n") or head.count(b"\r") != head.count(b"\r\n"):
        return None  # bare CR or LF: the parser may have ended the headers elsewhere
    return raw[end + 2:]


def _header_block(message: EmailMessage) -> bytes | None:
    for policy in (email.policy.SMTP, email.policy.SMTPUTF8):
        try:
            return b"".join(policy.fold_binary(name, value) for name, value in message.raw_items())
        except Exception:  # the email package's errors on odd input vary
            continue
    return None


def _scrub_parts(message: EmailMessage, mapping: dict[str, str]) -> bool:
    """Scrub every part below the top; True if anything was changed."""
    changed = False
    # walk() reads a part's children only after yielding the part, so the
    # headers of an attached message are filtered before it is visited.
    for part in message.walk():
        if part is not message:
            changed |= _scrub_headers(part, mapping)
        content_type = part.get_content_type()
        if content_type in _ATTACHED_MESSAGES and isinstance(part.get_payload(), list):
            changed = True
            _decode_attached(part)
            for inner in part.get_payload():
                _filter_headers(inner, NESTED_KEPT, mapping)
        if part.is_multipart():
            for side in ("preamble", "epilogue"):
                text = getattr(part, side)
                if text and replace_addresses(text, mapping) != text:
                    setattr(part, side, replace_addresses(text, mapping))
                    changed = True
        elif content_type.partition("/")[0] in ("text", "multipart", "message"):
            # multipart and message here are containers the parser could not
            # split (no boundary found): their body is text to mail programs.
            changed |= _scrub_text(part, mapping)
    return changed


def _decode_attached(part: EmailMessage) -> None:
    """Parse an attached message sent in base64 or quoted-printable.

    The parser reads such a body as a message of its own without headers,
    so addresses in it would be hidden from the scrub. RFC 6532 allows it
    for message/global; some programs do it for message/rfc822 too.
    """
    cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if cte not in ("base64", "quoted-printable") or len(part.get_payload()) != 1:
        return
    try:
        data = part.get_payload()[0].as_string(policy=email.policy.SMTPUTF8).encode("ascii", errors="ignore")
        decoded = binascii.a2b_base64(data) if cte == "base64" else quopri.decodestring(data)
    except Exception:  # what cannot be decoded cannot be scrubbed either: drop it
        decoded = b""
    part.set_payload([email.message_from_bytes(decoded, policy=email.policy.default)])
    del part["Content-Transfer-Encoding"]


def _scrub_text(part: EmailMessage, mapping: dict[str, str]) -> bool:
    text = decoded_text(part)
    scrubbed = replace_addresses(text, mapping)
    if scrubbed == text:
        if _plainly_decoded(part):
            return False
        # The text as decoded names no one; a body that is not valid in its
        # charset or transfer encoding may still show an address elsewhere.
        for form in _body_forms(part):
            as_text = form.decode("utf-8", errors="replace")
            if replace_addresses(as_text, mapping) != as_text:
                scrubbed = replace_addresses(as_text, mapping)
                break
        else:
            return False
    saved = [(name, value) for name, raw in part.raw_items()
             if name.lower() in _PART_HEADERS_KEPT and (value := _decoded(part, name, raw))]
    params = {k: collapse_rfc2231_value(v) for k in _TEXT_PARAMS_KEPT
              if (v := part.get_param(k)) is not None}
    subtype = part.get_content_subtype()
    if part.get_content_maintype() != "text":  # an unsplit container becomes the text it is
        del part["Content-Type"]
        subtype = "plain"
    part.set_content(scrubbed, subtype=subtype, charset="utf-8", params=params)
    for name, value in saved:
        _set_header(part, name, value)
    return True


def _plainly_decoded(part: EmailMessage) -> bool:
    """Whether every ASCII character of the body shows as itself when decoded.

    True for the usual text parts (7bit, 8bit or quoted-printable in an
    ASCII-compatible charset): what the decoded text does not name, the
    bytes do not name either, and the costlier checks can be skipped.
    """
    cte = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    if cte not in ("7bit", "8bit", "binary", "quoted-printable"):
        return False
    try:
        return _PROBE.decode(part.get_content_charset() or "us-ascii") == _PROBE.decode("ascii")
    except (LookupError, UnicodeError):
        return False


def _body_forms(part: EmailMessage) -> list[bytes]:
    """The body decoded from its transfer encoding, and as sent (if text)."""
    forms = [part.get_payload(decode=True) or b""]
    payload = part.get_payload()
    if not isinstance(payload, str):
        return forms
    forms.append(payload.encode("utf-8", errors="replace"))
    if not payload.isascii():
        # 8-bit bytes in a body that should be ASCII: the parser keeps them
        # but shows them through the charset; only writing them out shows
        # them as sent.
        try:
            forms.append(part.as_bytes(policy=email.policy.SMTPUTF8).partition(b"\r\n\r\n")[2])
        except Exception:  # the email package's errors on odd input vary
            pass
    return forms


def _scrub_headers(part: EmailMessage, mapping: dict[str, str]) -> bool:
    """A part's own headers, rewritten only if one names a real address."""
    raw_items = list(part.raw_items())
    if not any(_names_anyone(part, name, raw, mapping) for name, raw in raw_items):
        return False
    # Even a name can carry an address in a header block the parser read
    # from a malformed body (message/delivery-status).
    cleaned = [(replace_addresses(name, mapping), _clean_value(part, name, raw, mapping))
               for name, raw in raw_items]
    for name in set(part.keys()):
        del part[name]
    for name, value in cleaned:
        if value:
            _set_header(part, name, value)
    return True


def _filter_headers(part: EmailMessage, allowed: frozenset[str], mapping: dict[str, str]) -> None:
    kept = _kept_headers(part, allowed, mapping)
    for name in set(part.keys()):
        del part[name]
    for name, value in kept:
        _set_header(part, name, value)


def _kept_headers(part: EmailMessage, allowed: frozenset[str],
                  mapping: dict[str, str]) -> list[tuple[str, str]]:
    """The first readable value of each allowed header, scrubbed and unfolded."""
    first: dict[str, tuple[str, str]] = {}
    for name, raw in part.raw_items():
        if name.lower() in allowed and name.lower() not in first:
            value = _clean_value(part, name, raw, mapping)
            if value is not None:
                first[name.lower()] = (name, value)
    return list(first.values())


def _names_anyone(part: EmailMessage, name: str, raw: str, mapping: dict[str, str]) -> bool:
    """Whether a header names a real address as sent, as read, or as it would be written."""
    for text in (f"{name}: {raw}", _decoded(part, name, raw)):
        if text is None or replace_addresses(text, mapping) != text:
            return True  # an unreadable header counts: a rewrite drops it
    if "=?" not in raw:
        return False
    # An encoded-word the parser could not place (glued to other text) may
    # still be decoded when the header is written out again.
    scratch = EmailMessage(policy=email.policy.SMTPUTF8)
    try:
        scratch[name] = raw
        written = scratch.as_bytes().decode("utf-8", errors="replace")
    except Exception:  # the email package's errors on odd input vary
        return True
    return replace_addresses(written, mapping) != written


def _clean_value(part: EmailMessage, name: str, raw: str, mapping: dict[str, str]) -> str | None:
    """A header value that names no real address; None if there is none to give.

    Usually the decoded value. Where the address shows only in the raw
    text, that text scrubbed: the parser drops what it cannot read (an
    unquoted `@` in a filename) from its view, but not from the bytes.
    """
    text = " ".join(str(raw).split())
    decoded = _decoded(part, name, raw)
    if decoded is None:
        return None
    if not _names_anyone(part, name, raw, mapping):
        return decoded
    candidates = [decoded, text] if replace_addresses(decoded, mapping) != decoded else [text, decoded]
    candidates.append(_unicode(text))
    for candidate in candidates:
        cleaned = replace_addresses(candidate, mapping)
        if not _names_anyone(part, name, cleaned, mapping):
            return cleaned
    return None


def _decoded(part: EmailMessage, name: str, raw: str) -> str | None:
    try:
        return " ".join(str(part.policy.header_fetch_parse(name, raw)).split())
    except Exception:  # a header the parser cannot make sense of
        return None


def _unicode(text: str) -> str:
    """Encoded-words decoded wherever they stand."""
    try:
        return str(make_header(decode_header(text)))
    except Exception:  # malformed encoded-words: the text as it is
        return text


def _set_header(part: EmailMessage, name: str, value: str) -> None:
    try:
        part[name] = value
    except ValueError:  # a second copy of a header allowed once
        pass


def serialize(message: EmailMessage) -> bytes:
    """7-bit where possible, else 8-bit; never fails on what the parser accepted."""
    writers = (
        lambda: message.as_bytes(policy=email.policy.SMTP),
        lambda: message.as_bytes(policy=email.policy.SMTPUTF8),
        # The modern folder fails on some odd headers (IndexError on a long
        # name with an empty value); the legacy one writes them as they are.
        lambda: message.as_bytes(policy=_LEGACY),
    )
    for write in writers:
        try:
            return write()
        except Exception:  # the email package's errors on odd input vary
            continue
    # The bytes generator cannot write some text the parser decoded with
    # replacement characters (e.g. a multipart body without boundaries).
    text = message.as_string(policy=email.policy.SMTPUTF8)
    return text.encode("utf-8", errors="replace")
