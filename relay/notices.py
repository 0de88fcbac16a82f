"""Mail the relay writes itself: acknowledgments to buyers, and DSNs.

`acknowledgment(...)` tells a buyer their message reached the seller
(`Auto-Submitted: auto-replied`, sent with a null envelope sender so that
nothing ever answers it automatically).

`dsn(...)` is an RFC 3464 delivery status notification (multipart/report)
from MAILER-DAEMON at the alias domain, to the original sender: the
recipient is named only by alias, the remote server's text is scrubbed of
every real address, host name and IP address (and of the recipient's
mailbox name where it stands alone), and only the sender's own headers are
returned.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage, Message
from email.utils import format_datetime, localtime

from aliasing.addresses import replace_addresses, try_parse
from relay.rewrite import serialize

_HOSTLIKE = re.compile(r"\b(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}\b|\[?\b\d{1,3}(?:\.\d{1,3}){3}\b\]?")
# Two or more colons between hex groups: IPv6 (also hits clock times, which may go too).
_IPV6 = re.compile(r"\[?(?:IPv6:)?[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%\w+)?\]?", re.IGNORECASE)
_EMAIL = re.compile(r"[^\s<>\"'@]+@[^\s<>\"'@]+")


@dataclass(frozen=True)
class Sender:
    """Who the relay's own mail comes from."""

    marketplace_name: str
    notices_from: str
    alias_domain: str
    hostname: str

    def new_message_id(self) -> str:
        return f"<{secrets.token_hex(12)}@{self.alias_domain}>"


def acknowledgment(sender: Sender, *, to: str, seller_name: str, seller_alias: str, order_id: str,
                   subject: str, in_reply_to: str | None) -> bytes:
    msg = EmailMessage()
    msg["From"] = HeaderAddress(display_name=sender.marketplace_name, addr_spec=sender.notices_from)
    msg["To"] = to
    msg["Subject"] = f"Your message about order {order_id} was sent"
    msg["Date"] = format_datetime(localtime())
    msg["Message-ID"] = sender.new_message_id()
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg.set_content(
        f"Your message \"{subject}\" about order {order_id} was delivered to {seller_name}.\n"
        f"The seller will get in touch with you. Their replies come from {seller_alias};\n"
        f"you can answer them, or write to that address again, from your own mail program.\n\n"
        f"-- \n{sender.marketplace_name}\n")
    return serialize(msg)


def dsn(sender: Sender, *, to: str, recipient_alias: str, status: str, diagnostic: str,
        original_headers: bytes, arrival: str, scrub: dict[str, str]) -> bytes:
    """A failure report; `scrub` maps real address keys to aliases."""
    reason = scrub_diagnostic(diagnostic, scrub)
    msg = EmailMessage()
    msg["From"] = HeaderAddress(display_name="Mail Delivery System",
                                addr_spec=f"MAILER-DAEMON@{sender.alias_domain}")
    msg["To"] = to
    msg["Subject"] = "Undelivered Mail Returned to Sender"
    msg["Date"] = format_datetime(localtime())
    msg["Message-ID"] = sender.new_message_id()
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content(
        f"Your message to {recipient_alias} could not be delivered.\n\n"
        f"Reason: {reason}\n\n"
        f"The headers of your message are attached. If the problem persists, "
        f"contact {sender.marketplace_name} support.\n")
    msg.make_mixed()
    msg.set_type("multipart/report")
    msg.set_param("report-type", "delivery-status")
    status_part = EmailMessage()
    status_part["Content-Type"] = "message/delivery-status"
    status_part.set_payload([
        _fields([("Reporting-MTA", f"dns; {sender.hostname}"), ("Arrival-Date", arrival)]),
        _fields([("Final-Recipient", f"rfc822; {recipient_alias}"), ("Action", "failed"),
                 ("Status", status), ("Diagnostic-Code", f"smtp; {reason}")]),
    ])
    msg.attach(status_part)
    headers_part = EmailMessage()
    headers_part["Content-Type"] = "text/rfc822-headers"
    headers_part.set_payload(original_headers.decode("utf-8", errors="replace") + "\r\n")
    msg.attach(headers_part)
    return serialize(msg)


def scrub_diagnostic(text: str, scrub: dict[str, str]) -> str:
    """The remote reply with real addresses aliased and hosts and IPs removed."""
    one_line = " ".join(text.split())
    aliased = replace_addresses(one_line, scrub)
    keep = set(scrub.values())
    masked = _EMAIL.sub(lambda m: m.group(0) if m.group(0) in keep else "<address removed>", aliased)
    mailboxes = {a.local.lower(): alias for real, alias in scrub.items() if (a := try_parse(real))}
    parts = []
    for chunk in re.split(r"(<address removed>|\S+@\S+)", masked):
        if "@" in chunk or chunk == "<address removed>":
            parts.append(chunk)
        else:
            parts.append(_mask_words(chunk, mailboxes))
    return "".join(parts)[:400] or "delivery failed"


def _mask_words(chunk: str, mailboxes: dict[str, str]) -> str:
    """Hosts and IP addresses out; a mailbox named alone (`jane... User unknown`) aliased."""
    chunk = _IPV6.sub("[host]", chunk)
    chunk = _HOSTLIKE.sub("[host]", chunk)
    for local, alias in mailboxes.items():
        chunk = re.sub(rf"(?<![\w.+-]){re.escape(local)}(?![\w+-])", alias, chunk, flags=re.IGNORECASE)
    return chunk


def _fields(pairs: list[tuple[str, str]]) -> Message:
    block = Message()
    for name, value in pairs:
        block[name] = value
    return block


def header_block(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    return raw if end < 0 else raw[:end]
