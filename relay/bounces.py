"""Returned mail: bounces that come back to a VERP address, matched to their message.

Conversation messages leave with an envelope sender of their own,
`bounces+<token>@<alias domain>` (`aliasing.verp`). A recipient's server
that accepts a message and fails to deliver it later sends its report
there. The intake hands such recipients to `BounceHandler`:

- `check_recipient` (RCPT): the token must decode and name a conversation
  delivery the log knows, else 550 5.1.1; any envelope sender is accepted,
  the null sender included (that is what bounces use). One transaction
  carries one report: another bounce address, or an alias, gets 452.
- `accept` (DATA): `read_report` decides whether the message reports a
  permanent failure. An RFC 3464 report (multipart/report;
  report-type=delivery-status) is read field by field (`Action: failed`
  and its `Status`); any other message counts as a failure when it looks
  like a bounce (a 5.x.x or 5xx code, or a subject such as "Undelivered
  Mail Returned to Sender") and not like a delay warning or an automatic
  reply. Every report is logged (kind `bounce`, status `received`); a
  failure also marks the message `bounced` (status and event) and its queue
  entry if it is still waiting, and queues a notice to the original sender.

The notice is the relay's DSN (`relay.notices.dsn`): null sender, the
recipient named only by alias, and of the report nothing but its status
code, checked against the RFC 3463 syntax (else 5.0.0). Nothing of the
report's text, addresses or hosts reaches it. A message gets at most one
notice, and notices and DSNs never get one (they leave with the null
sender and have no bounce address).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message

from aliasing.addresses import Address
from aliasing.verp import VerpCodec
from policy.parsed import ParsedMessage
from relay import replies
from relay.notices import Sender, dsn, header_block
from relay.replies import Reply
from storage import bounces as store
from storage.bounces import BounceTarget
from storage.db import Database
from storage.messages import NewDelivery, NewMessage, log_message
from storage.models import MessageBody
from storage.sealing import Sealer

log = logging.getLogger(__name__)

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_SMTP_5XX = re.compile(r"(?<![\d.])5[0-5]\d(?=[ -])")
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|returned mail|delivery (status notification \(failure\)|failure|has failed)|"
    r"failure notice|could not be delivered|mail delivery failed", re.IGNORECASE)
_DELAY_SUBJECT = re.compile(r"delay|not yet been delivered|warning", re.IGNORECASE)
_DAEMONS = ("mailer-daemon", "postmaster")
bodies = MessageBody.__table__
OFF_LOOP_BYTES = 256 * 1024  # as in relay.intake


@dataclass(frozen=True)
class Report:
    failed: bool        # the delivery failed for good
    status: str         # an RFC 3463 code, checked; "5.0.0" when the report gives none
    summary: str        # for the log


class BounceHandler:
    def __init__(self, db: Database, verp: VerpCodec, sender: Sender, sealer: Sealer,
                 on_queued: Callable[[], None] = lambda: None):
        self.db = db
        self.sealer = sealer
        self.verp = verp
        self.sender = sender
        self.on_queued = on_queued

    async def check_recipient(self, txn, address: Address) -> Reply:
        """RCPT for a bounce address; `txn` is the intake's Transaction."""
        entry_id = self.verp.decode(address.local)
        if entry_id is None:
            return replies.R550_UNKNOWN_BOUNCE_ADDRESS
        if txn.thread is not None:
            return replies.R452_ONE_CONVERSATION
        if txn.bounce is not None:
            return replies.R250_RECIPIENT_OK if txn.bounce.entry_id == entry_id else replies.R452_ONE_REPORT
        target = await self.db.read(lambda c: store.load_target(c, self.sealer, entry_id))
        if target is None:
            return replies.R550_UNKNOWN_BOUNCE_ADDRESS
        txn.bounce = target
        txn.recipients.append(address.key)
        return replies.R250_RECIPIENT_OK

    async def accept(self, txn, mail_from: str, raw: bytes) -> Reply:
        target: BounceTarget = txn.bounce
        if len(raw) < OFF_LOOP_BYTES:
            report = read_report(ParsedMessage.from_bytes(raw), mail_from)
        else:  # a report with the whole message returned: parse it off the event loop
            report = await asyncio.to_thread(lambda: read_report(ParsedMessage.from_bytes(raw), mail_from))
        queued = await self.db.write(lambda c: self._record(c, target, mail_from, list(txn.recipients),
                                                            raw, report))
        log.info("queue %d (message %d): report received: %s%s", target.entry_id, target.message_id,
                 report.summary, "; notice queued" if queued else "")
        if queued:
            self.on_queued()
        return replies.R250_REPORT_RECEIVED

    def _record(self, conn, target: BounceTarget, mail_from: str, rcpt_to: list[str], raw: bytes,
                report: Report) -> bool:
        """Log the report; on a failure mark the message and queue the notice. True if queued."""
        log_message(conn, NewMessage(kind="bounce", thread_id=target.thread_id, mail_from=mail_from,
                                     rcpt_to=rcpt_to, original=raw, status="received",
                                     subject="returned message report", reason=report.summary),
                    self.sealer)
        if not report.failed:
            return False
        detail = f"returned by the recipient's mail server ({report.status})"
        if not store.mark_bounced(conn, self.sealer, target, detail) or not target.mail_from:
            return False  # bounced before: its sender was told then
        original = conn.execute(bodies.select().where(bodies.c.message_id == target.message_id)).first()
        alias = target.recipient_alias or ""
        data = dsn(self.sender, to=target.mail_from, recipient_alias=alias, status=report.status,
                   diagnostic=f"the recipient's mail server returned the message (status {report.status})",
                   original_headers=header_block(self._original(original)),
                   arrival=target.received_at.strftime("%a, %d %b %Y %H:%M:%S +0000"),
                   scrub={target.recipient.lower(): alias})
        log_message(conn, NewMessage(kind="dsn", thread_id=target.thread_id, mail_from="",
                                     rcpt_to=[target.mail_from], original=data, delivered=data,
                                     status="queued", subject="returned message notification",
                                     deliveries=[NewDelivery("", target.mail_from)]), self.sealer)
        return True

    def _original(self, row) -> bytes:
        if row is None:
            return b""
        return self.sealer.open("message_bodies.original", row.original, row.key_id) or b""


def read_report(parsed: ParsedMessage, mail_from: str) -> Report:
    """Whether `parsed` reports a permanent failure, and its status code."""
    message = parsed.message
    if message.get_content_type() == "multipart/report" and \
            (message.get_param("report-type") or "").lower() == "delivery-status":
        return _delivery_status(message)
    return _plain_bounce(parsed, mail_from)


def _delivery_status(message: Message) -> Report:
    actions: list[tuple[str, str]] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        for block in blocks[1:] if isinstance(blocks, list) else []:
            action = str(block.get("Action", "")).strip().lower()
            actions.append((action, _status(str(block.get("Status", "")))))
    failed = [status for action, status in actions if action == "failed"]
    if failed:
        status = next((s for s in failed if s.startswith("5.")), "5.0.0")
        return Report(True, status, f"delivery status report: failed {status}")
    shown = ", ".join(sorted({a for a, _ in actions if a.isalpha()})) or "no recipient fields"
    return Report(False, "", f"delivery status report, not a failure ({shown[:60]})")


def _plain_bounce(parsed: ParsedMessage, mail_from: str) -> Report:
    subject = parsed.subject
    auto = (parsed.header("Auto-Submitted") or "").strip().lower()
    sender = (parsed.header("From") or "").lower()
    text = "\n".join(p.text for p in parsed.text_parts)[:100_000]
    from_daemon = not mail_from or any(d in sender for d in _DAEMONS)
    if auto.startswith("auto-replied") and not from_daemon:
        return Report(False, "", "automatic reply, not a failure")
    codes = [m.group(0) for m in _STATUS.finditer(text)]
    permanent = [c for c in codes if c.startswith("5.")]
    if permanent:
        return Report(True, _status(permanent[0]), f"returned mail: failed {permanent[0]}")
    if codes or _DELAY_SUBJECT.search(subject):
        return Report(False, "", "delay warning, not a failure")
    if _BOUNCE_SUBJECT.search(subject) or (from_daemon and _SMTP_5XX.search(text)):
        return Report(True, "5.0.0", "returned mail without a status code")
    return Report(False, "", "not a delivery report")


def _status(value: str) -> str:
    """An RFC 3463 code exactly, or "5.0.0": nothing else of the report goes on."""
    match = _STATUS.fullmatch(value.strip().split(" ")[0]) if value.strip() else None
    if match is None:
        return "5.0.0"
    klass, subject, detail = match.groups()
    return f"{klass}.{int(subject)}.{int(detail)}"
