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
  remaining header and every text and HTML body part, quoted history
  included.
"""

from __future__ import annotations

import email.policy
import re
from dataclasses import dataclass
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage

from aliasing.addresses import replace_addresses
from policy.parsed import decoded_text, is_attachment

KEPT_HEADERS = frozenset(h.lower() for h in (
    "Date", "Subject", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
    "Content-Language", "Content-Disposition", "Auto-Submitted", "Precedence",
    "X-Auto-Response-Suppress", "Thread-Topic", "Importance", "Priority", "X-Priority",
    "Accept-Language",
))
_MSGID = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True)
class RewritePlan:
    sender_display: str            # "Jane via Marketplace"
    sender_alias: str              # full alias address of the sender's party
    recipient_alias: str           # full alias address the sender wrote to
    relay_message_id: str          # "<...@domain>"
    address_map: dict[str, str]    # real address key -> alias address
    id_map: dict[str, str]         # Message-ID mapping (see storage.messages.map_message_ids)
    subject: str | None = None     # replacement subject, if any


def referenced_ids(message: EmailMessage) -> list[str]:
    ids: list[str] = []
    for name in ("In-Reply-To", "References"):
        for value in message.get_all(name, []) or []:
            ids.extend(_MSGID.findall(str(value)))
    return list(dict.fromkeys(ids))


def address_variants(mapping: dict[str, str]) -> dict[str, str]:
    """Add the `%40` and `&#64;` spellings of every address."""
    out = dict(mapping)
    for key, alias in mapping.items():
        local, _, domain = key.rpartition("@")
        out[f"{local}%40{domain}"] = alias
        out[f"{local}&#64;{domain}"] = alias
    return out


def rewrite(message: EmailMessage, plan: RewritePlan) -> bytes:
    mapping = address_variants(plan.address_map)
    referenced = referenced_ids(message)
    subject = plan.subject if plan.subject is not None else _header_text(message, "Subject")
    kept = [(name, _header_text(message, name)) for name in message.keys()
            if name.lower() in KEPT_HEADERS and name.lower() != "subject"]
    for name in set(message.keys()):
        del message[name]
    message["From"] = HeaderAddress(display_name=plan.sender_display, addr_spec=plan.sender_alias)
    message["To"] = HeaderAddress(addr_spec=plan.recipient_alias)
    message["Message-ID"] = plan.relay_message_id
    mapped = [plan.id_map[i] for i in referenced if i in plan.id_map]
    if mapped:
        message["In-Reply-To"] = mapped[-1]
        message["References"] = " ".join(mapped)
    if subject:
        message["Subject"] = replace_addresses(subject, mapping)
    for name, value in kept:
        if value is not None:
            message[name] = replace_addresses(value, mapping)
    _scrub_parts(message, mapping)
    return serialize(message)


def _scrub_parts(message: EmailMessage, mapping: dict[str, str]) -> None:
    for part in message.walk():
        if part is not message:
            _scrub_headers(part, mapping)
        if part.is_multipart() or is_attachment(part):
            continue
        text = decoded_text(part)
        scrubbed = replace_addresses(text, mapping)
        if scrubbed != text:
            disposition = part.get("Content-Disposition")
            part.set_content(scrubbed, subtype=part.get_content_subtype(), charset="utf-8")
            if disposition:
                part["Content-Disposition"] = str(disposition)


def _scrub_headers(part: EmailMessage, mapping: dict[str, str]) -> None:
    """Headers below the top (e.g. of an attached message/rfc822)."""
    for name, value in list(part.items()):
        text = str(value)
        scrubbed = replace_addresses(text, mapping)
        if scrubbed != text:
            part.replace_header(name, scrubbed)


def _header_text(message: EmailMessage, name: str) -> str | None:
    try:
        value = message.get(name)
    except Exception:  # a header the parser cannot make sense of is dropped
        return None
    if value is None:
        return None
    return " ".join(str(value).split())


def serialize(message: EmailMessage) -> bytes:
    try:
        return message.as_bytes(policy=email.policy.SMTP)
    except (UnicodeError, ValueError, TypeError):
        return message.as_bytes(policy=email.policy.SMTPUTF8)
