"""What a returned message changes in the log and the queue.

`load_target(conn, sealer, entry_id)` finds the conversation delivery a
VERP address names (None for anything else: an unknown entry, a notice, a
DSN), with its sealed columns opened. `mark_bounced(conn, sealer, target,
detail)` records that the recipient's server
returned it: the message's status becomes `bounced` with an event, and its
queue entry too if it is still waiting (`queued` or `deferred`; an entry a
worker holds is left to that worker). It returns False when the message
was already bounced, so that one message causes at most one notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from storage.models import Message, MessageEvent, QueueEntry
from storage.sealing import Sealer
from storage.timeutil import utcnow

messages = Message.__table__
events = MessageEvent.__table__
queue = QueueEntry.__table__


@dataclass(frozen=True)
class BounceTarget:
    entry_id: int
    message_id: int
    thread_id: int | None
    recipient: str
    recipient_alias: str | None
    mail_from: str          # the original sender: whom the notice goes to
    received_at: datetime
    key_id: str | None      # how the queue entry's sealed columns are stored


def load_target(conn: Connection, sealer: Sealer, entry_id: int) -> BounceTarget | None:
    row = conn.execute(
        select(queue.c.id, queue.c.message_id, queue.c.recipient, queue.c.recipient_alias,
               queue.c.envelope_from, queue.c.key_id, messages.c.kind, messages.c.thread_id,
               messages.c.mail_from, messages.c.received_at, messages.c.key_id.label("message_key_id"))
        .join(messages, messages.c.id == queue.c.message_id)
        .where(queue.c.id == entry_id)).first()
    if row is None or row.kind != "conversation" or not row.envelope_from:
        return None
    return BounceTarget(row.id, row.message_id, row.thread_id,
                        sealer.text("queue.recipient", row.recipient, row.key_id), row.recipient_alias,
                        sealer.text("messages.mail_from", row.mail_from, row.message_key_id) or "",
                        row.received_at, row.key_id)


def mark_bounced(conn: Connection, sealer: Sealer, target: BounceTarget, detail: str) -> bool:
    now = utcnow()
    conn.execute(update(queue).where(queue.c.id == target.entry_id,
                                     queue.c.state.in_(("queued", "deferred")))
                 .values(state="bounced", updated_at=now,
                         last_error=sealer.seal("queue.last_error", detail, target.key_id)))
    changed = conn.execute(update(messages).where(messages.c.id == target.message_id,
                                                  messages.c.status != "bounced")
                           .values(status="bounced", updated_at=now))
    if not changed.rowcount:
        return False
    conn.execute(insert(events).values(sealer.seal_row("message_events", dict(
        message_id=target.message_id, status="bounced", detail=detail, at=now))))
    return True
