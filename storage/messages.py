"""The message log: what reached DATA, what became of it, and the figures.

`log_message` writes a message, its attachments, its first status event
and its queue entries in the caller's transaction: the intake commits them
together before it answers 250. `list_messages` and `response_time` serve
the command line; `map_message_ids` lets the rewriter keep threads
threaded on both sides. Addresses, subjects, refusal texts and message
bytes are sealed on the way in and opened on the way out by the `Sealer`
(`storage/sealing.py`) that each of them takes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, exists, insert, or_, select, update
from sqlalchemy.engine import Connection

from storage.models import Attachment, Message, MessageBody, MessageEvent, QueueEntry, Seller, SellerAddress, Thread, ThreadAsin
from storage.sealing import Sealer
from storage.textutil import clean, fit
from storage.timeutil import to_iso, utcnow

messages = Message.__table__
bodies = MessageBody.__table__
attachments = Attachment.__table__
events = MessageEvent.__table__
queue = QueueEntry.__table__
threads = Thread.__table__
sellers = Seller.__table__
addresses = SellerAddress.__table__
thread_asins = ThreadAsin.__table__

# Ids are `Integer` columns: 32-bit signed on PostgreSQL.
MAX_ID = 2**31 - 1

BUYER_TO_SELLER = "buyer_to_seller"
SELLER_TO_BUYER = "seller_to_buyer"

# Statements run for every message, built once: building one per call (and
# its cache key) costs several times what running it does.
_ADD_MESSAGE = insert(messages)
_ADD_BODY = insert(bodies)
_ADD_EVENT = insert(events)
_ADD_ENTRY = insert(queue)
_MARK_REPLIED = update(messages).where(
    messages.c.thread_id == bindparam("b_thread"), messages.c.direction == BUYER_TO_SELLER,
    messages.c.replied_at.is_(None), messages.c.status != "rejected",
    messages.c.id < bindparam("b_before"))


@dataclass(frozen=True)
class AttachmentInfo:
    filename: str | None
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class NewDelivery:
    envelope_from: str
    recipient: str
    recipient_alias: str | None = None


@dataclass
class NewMessage:
    kind: str
    mail_from: str
    rcpt_to: list[str]
    original: bytes
    status: str
    thread_id: int | None = None
    direction: str | None = None
    header_from: str | None = None
    subject: str | None = None
    orig_message_id: str | None = None
    relay_message_id: str | None = None
    delivered: bytes | None = None
    rule: str | None = None
    reason: str | None = None
    excerpt: str | None = None
    warning: str | None = None
    auto_reply: bool = False
    auth: dict[str, str] | None = None     # {"spf": ..., "dkim": ..., "dmarc": ...}
    auth_results: str | None = None        # the Authentication-Results field, for the log only
    attachments: list[AttachmentInfo] = field(default_factory=list)
    deliveries: list[NewDelivery] = field(default_factory=list)


def log_message(conn: Connection, msg: NewMessage, sealer: Sealer) -> int:
    # Text taken from the message is fitted to its column: PostgreSQL would
    # refuse the whole write (and the sender get 451 forever) for a NUL, a
    # too long value or undecodable bytes that SQLite stores as they come.
    now = utcnow()
    m = messages.c
    seal = sealer.seal_row
    reason = clean(msg.reason)
    message_id = conn.execute(_ADD_MESSAGE, seal("messages", dict(
        thread_id=msg.thread_id, kind=msg.kind, direction=msg.direction, mail_from=msg.mail_from,
        rcpt_to=json.dumps(msg.rcpt_to), header_from=clean(msg.header_from),
        subject=clean(msg.subject), orig_message_id=fit(m.orig_message_id, msg.orig_message_id),
        relay_message_id=msg.relay_message_id, status=msg.status, rule=fit(m.rule, msg.rule),
        reason=reason, excerpt=clean(msg.excerpt),
        warning=fit(m.warning, msg.warning), attachment_count=len(msg.attachments),
        auto_reply=msg.auto_reply, no_response_needed=False,
        auth=json.dumps(msg.auth) if msg.auth is not None else None, auth_results=msg.auth_results,
        received_at=now, updated_at=now))).inserted_primary_key[0]
    conn.execute(_ADD_BODY, seal("message_bodies", dict(
        message_id=message_id, original=msg.original, delivered=msg.delivered)))
    if msg.attachments:
        att = attachments.c
        conn.execute(insert(attachments), [seal("attachments", dict(
            message_id=message_id, filename=clean(a.filename),
            content_type=fit(att.content_type, a.content_type), size=a.size,
            sha256=a.sha256)) for a in msg.attachments])
    conn.execute(_ADD_EVENT, seal("message_events", dict(message_id=message_id, status=msg.status,
                                                          detail=reason, at=now)))
    if msg.deliveries:
        conn.execute(_ADD_ENTRY, [seal("queue", dict(
            message_id=message_id, envelope_from=d.envelope_from, recipient=d.recipient,
            recipient_alias=d.recipient_alias, state="queued", attempts=0, lease_expiries=0,
            next_attempt_at=now, created_at=now, updated_at=now)) for d in msg.deliveries])
    if msg.direction == SELLER_TO_BUYER and msg.status != "rejected" and msg.thread_id:
        conn.execute(_MARK_REPLIED, {"b_thread": msg.thread_id, "b_before": message_id, "replied_at": now})
    return message_id


def map_message_ids(conn: Connection, thread_id: int, ids: list[str]) -> dict[str, str]:
    """For each known id, its counterpart: relay id <-> the sender's original id.

    A recipient replying to a relay id gets the original author's id back
    (so the author's mail program threads it with what they sent), and an
    author's own original id becomes the relay id the other side knows.
    Unknown ids are left out: they might name the sender's domain. So are
    ids no log entry can hold (a NUL, undecodable bytes), which PostgreSQL
    would refuse even as a value to compare.
    """
    ids = [i for i in ids if clean(i) == i]
    if not ids:
        return {}
    rows = conn.execute(select(messages.c.orig_message_id, messages.c.relay_message_id).where(
        messages.c.thread_id == thread_id,
        or_(messages.c.relay_message_id.in_(ids), messages.c.orig_message_id.in_(ids)))).all()
    mapping: dict[str, str] = {}
    for orig, relay in rows:
        if relay in ids and orig:
            mapping[relay] = orig
        elif relay in ids:
            mapping[relay] = relay
        if orig in ids and relay:
            mapping[orig] = relay
    return mapping


def mark_no_response(conn: Connection, message_id: int) -> bool:
    if not 0 < message_id <= MAX_ID:  # PostgreSQL would refuse to compare an id out of range
        return False
    result = conn.execute(update(messages).where(
        messages.c.id == message_id, messages.c.kind == "conversation").values(
        no_response_needed=True, updated_at=utcnow()))
    return result.rowcount > 0


@dataclass(frozen=True)
class ListFilter:
    order_id: str | None = None
    asin: str | None = None
    email_key: str | None = None
    alias: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    reply_status: str | None = None
    with_attachments: bool = False
    limit: int | None = None


def list_messages(conn: Connection, f: ListFilter, sealer: Sealer) -> list[dict]:
    """`f.email_key` is the blind index of the address (`Sealer.index`)."""
    m, t = messages, threads
    q = (select(m.c.id, m.c.thread_id, t.c.order_id, m.c.direction, m.c.subject, m.c.received_at,
                m.c.status, m.c.rule, m.c.warning, m.c.attachment_count, m.c.auto_reply,
                m.c.no_response_needed, m.c.replied_at, m.c.auth, m.c.key_id)
         .join(t, t.c.id == m.c.thread_id)
         .where(m.c.kind == "conversation"))
    if f.order_id:
        q = q.where(t.c.order_id == f.order_id)
    if f.asin:
        q = q.where(exists().where(thread_asins.c.thread_id == t.c.id, thread_asins.c.asin == f.asin))
    if f.email_key or f.alias:
        q = q.where(_party_matches(f.email_key, f.alias))
    if f.since:
        q = q.where(m.c.received_at >= f.since)
    if f.until:
        q = q.where(m.c.received_at <= f.until)
    if f.with_attachments:
        q = q.where(m.c.attachment_count > 0)
    # The three reply states split the delivered buyer messages: each is in exactly one.
    buyer_message = and_(m.c.direction == BUYER_TO_SELLER, m.c.status != "rejected")
    no_response = or_(m.c.auto_reply.is_(True), m.c.no_response_needed.is_(True))
    if f.reply_status == "needs-reply":
        q = q.where(buyer_message, ~no_response, m.c.replied_at.is_(None))
    elif f.reply_status == "replied":
        q = q.where(buyer_message, ~no_response, m.c.replied_at.is_not(None))
    elif f.reply_status == "no-response-needed":
        q = q.where(buyer_message, no_response)
    q = q.order_by(m.c.received_at.desc(), m.c.id.desc())
    if f.limit:
        q = q.limit(f.limit)
    return [_listed(row, sealer) for row in conn.execute(q)]


def _party_matches(email_key: str | None, alias: str | None):
    t = threads
    clauses = []
    if email_key:
        seller_ids = select(sellers.c.id).where(sellers.c.email_key == email_key).union(
            select(addresses.c.seller_id).where(addresses.c.email_key == email_key))
        clauses += [t.c.buyer_email_key == email_key, t.c.seller_id.in_(seller_ids)]
    if alias:
        clauses += [t.c.buyer_alias == alias, t.c.seller_alias == alias]
    return or_(*clauses)


def _listed(row, sealer: Sealer) -> dict:
    response_needed = (row.direction == BUYER_TO_SELLER and row.status != "rejected"
                       and not row.auto_reply and not row.no_response_needed)
    return {
        "id": row.id, "thread_id": row.thread_id, "order_id": row.order_id,
        "direction": row.direction, "subject": sealer.text("messages.subject", row.subject, row.key_id),
        "received_at": to_iso(row.received_at), "status": row.status, "rule": row.rule,
        "warning": row.warning, "attachments": row.attachment_count,
        "response_needed": response_needed, "replied_at": to_iso(row.replied_at),
        "auto_reply": bool(row.auto_reply),
        "auth": json.loads(row.auth) if row.auth else None,
    }


def response_time(conn: Connection, seller_id: str, days: int) -> dict:
    """Share of buyer messages needing a response that were answered within 24 h."""
    since = utcnow() - timedelta(days=days)
    m, t = messages, threads
    rows = conn.execute(select(m.c.received_at, m.c.replied_at).join(t, t.c.id == m.c.thread_id).where(
        t.c.seller_id == seller_id, m.c.kind == "conversation", m.c.direction == BUYER_TO_SELLER,
        m.c.status != "rejected", m.c.auto_reply.is_(False), m.c.no_response_needed.is_(False),
        m.c.received_at >= since)).all()
    window = timedelta(hours=24)
    replied = sum(1 for r in rows if r.replied_at is not None and r.replied_at - r.received_at <= window)
    return {"seller_id": seller_id, "buyer_messages": len(rows), "replied_within_24h": replied,
            "rate": (replied / len(rows)) if rows else None}
