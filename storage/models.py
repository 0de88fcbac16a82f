"""The schema, as SQLAlchemy 2 declarative models.

The tables are created and changed only by the Alembic migrations in
`migrations/`; these classes describe them for queries. Times are naive UTC
`DateTime`s (the same on SQLite and PostgreSQL); addresses are stored as
given plus a lower-case `*_key` column that lookups use.

- `sellers`, `seller_addresses`: who may write as a seller (the primary
  address, plus alternates that can be disabled).
- `threads`, `thread_asins`: one conversation per order, with the two
  aliases handed out for it.
- `messages`: every message that reached DATA, accepted or refused; its
  original and delivered bytes are in `message_bodies`, and `attachments`
  and `message_events` (status history) hang off it too. Acknowledgments and DSNs are messages too, of
  another `kind`.
- `queue`: one entry per message and recipient, the only bridge from
  acceptance to delivery.
- `accept_events`: accepted messages by hashed sender and client network,
  counted by the rate limits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary,
                        String, Text, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Seller(Base):
    __tablename__ = "sellers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class SellerAddress(Base):
    __tablename__ = "seller_addresses"
    __table_args__ = (UniqueConstraint("seller_id", "email_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seller_id: Mapped[str] = mapped_column(ForeignKey("sellers.id"))
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), index=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Thread(Base):
    __tablename__ = "threads"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seller_id: Mapped[str] = mapped_column(ForeignKey("sellers.id"), index=True)
    order_id: Mapped[str] = mapped_column(String(32), unique=True)
    buyer_email: Mapped[str] = mapped_column(String(320))
    buyer_email_key: Mapped[str] = mapped_column(String(320), index=True)
    buyer_name: Mapped[str] = mapped_column(String(200))
    fulfillment: Mapped[str] = mapped_column(String(8))
    buyer_alias: Mapped[str | None] = mapped_column(String(16), unique=True)
    seller_alias: Mapped[str | None] = mapped_column(String(16), unique=True)
    alias_key_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)  # `relay thread close`


class ThreadAsin(Base):
    __tablename__ = "thread_asins"
    thread_id: Mapped[int] = mapped_column(ForeignKey("threads.id"), primary_key=True)
    asin: Mapped[str] = mapped_column(String(16), primary_key=True, index=True)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_thread_received", "thread_id", "received_at"),
        # "mark the buyer's unanswered messages replied" runs on every seller reply
        Index("ix_messages_unreplied", "thread_id", "direction", "replied_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    thread_id: Mapped[int | None] = mapped_column(ForeignKey("threads.id"))
    kind: Mapped[str] = mapped_column(String(16))  # conversation | notice | dsn
    direction: Mapped[str | None] = mapped_column(String(16))
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt_to: Mapped[str] = mapped_column(Text)  # JSON list of what RCPT TO named
    header_from: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    orig_message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    relay_message_id: Mapped[str | None] = mapped_column(String(998), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    rule: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    excerpt: Mapped[str | None] = mapped_column(Text)
    warning: Mapped[str | None] = mapped_column(String(32))
    attachment_count: Mapped[int] = mapped_column(Integer, default=0)
    auto_reply: Mapped[bool] = mapped_column(Boolean, default=False)
    no_response_needed: Mapped[bool] = mapped_column(Boolean, default=False)
    replied_at: Mapped[datetime | None] = mapped_column(DateTime)
    auth: Mapped[str | None] = mapped_column(Text)  # JSON: SPF, DKIM, DMARC result words
    auth_results: Mapped[str | None] = mapped_column(Text)  # the Authentication-Results field
    received_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class MessageBody(Base):
    """The bytes of a message, apart from its row in `messages`.

    Kept in a table of their own so that the frequent small updates of a
    message (status, replied) do not rewrite megabytes of body each time.
    """

    __tablename__ = "message_bodies"
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), primary_key=True)
    original: Mapped[bytes] = mapped_column(LargeBinary)
    delivered: Mapped[bytes | None] = mapped_column(LargeBinary)


class Attachment(Base):
    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    filename: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))


class MessageEvent(Base):
    __tablename__ = "message_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime)


class QueueEntry(Base):
    """One delivery: a message to one recipient.

    States: `queued` (new), `deferred` (a temporary failure, waiting for
    `next_attempt_at`), `active` (leased by a worker until `lease_until`),
    `delivered`, `bounced` (permanent failure or too old), `parked` (its
    lease expired too often: the worker crashes on it; an operator looks).
    """

    __tablename__ = "queue"
    __table_args__ = (Index("ix_queue_due", "state", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    envelope_from: Mapped[str] = mapped_column(String(320))
    recipient: Mapped[str] = mapped_column(String(320))
    recipient_alias: Mapped[str | None] = mapped_column(String(320))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_expiries: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class AcceptEvent(Base):
    """One accepted message counted against a rate limit (`relay/limits.py`).

    `kind` is "sender" or "ip"; `key_hash` a keyed hash of the sender
    address or client network, never the value itself.
    """

    __tablename__ = "accept_events"
    __table_args__ = (Index("ix_accept_events_key_at", "kind", "key_hash", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    key_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
