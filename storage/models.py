"""The schema, as SQLAlchemy 2 declarative models.

The tables are created and changed only by the Alembic migrations in
`migrations/`; these classes describe them for queries. Times are naive UTC
`DateTime`s (the same on SQLite and PostgreSQL). Real addresses, names and
message bytes are sealed (`storage/sealing.py`: `LargeBinary` envelopes,
each row's `key_id` saying how); lookups by address use the blind index
in the `*_key` columns.

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
    name: Mapped[bytes] = mapped_column(LargeBinary)
    email: Mapped[bytes] = mapped_column(LargeBinary)
    email_key: Mapped[str] = mapped_column(String(320), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    key_id: Mapped[str | None] = mapped_column(String(32), index=True)


class SellerAddress(Base):
    __tablename__ = "seller_addresses"
    __table_args__ = (UniqueConstraint("seller_id", "email_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seller_id: Mapped[str] = mapped_column(ForeignKey("sellers.id"))
    email: Mapped[bytes] = mapped_column(LargeBinary)
    email_key: Mapped[str] = mapped_column(String(320), index=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    key_id: Mapped[str | None] = mapped_column(String(32), index=True)


class Thread(Base):
    __tablename__ = "threads"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seller_id: Mapped[str] = mapped_column(ForeignKey("sellers.id"), index=True)
    order_id: Mapped[str] = mapped_column(String(32), unique=True)
    buyer_email: Mapped[bytes] = mapped_column(LargeBinary)
    buyer_email_key: Mapped[str] = mapped_column(String(320), index=True)
    buyer_name: Mapped[bytes] = mapped_column(LargeBinary)
    fulfillment: Mapped[str] = mapped_column(String(8))
    buyer_alias: Mapped[str | None] = mapped_column(String(16), unique=True)
    seller_alias: Mapped[str | None] = mapped_column(String(16), unique=True)
    alias_key_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)  # `relay thread close`
    key_id: Mapped[str | None] = mapped_column(String(32), index=True)


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
    mail_from: Mapped[bytes] = mapped_column(LargeBinary)
    rcpt_to: Mapped[bytes] = mapped_column(LargeBinary)  # JSON list of what RCPT TO named
    header_from: Mapped[bytes | None] = mapped_column(LargeBinary)
    subject: Mapped[bytes | None] = mapped_column(LargeBinary)
    orig_message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    relay_message_id: Mapped[str | None] = mapped_column(String(998), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    rule: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[bytes | None] = mapped_column(LargeBinary)
    excerpt: Mapped[bytes | None] = mapped_column(LargeBinary)
    warning: Mapped[str | None] = mapped_column(String(32))
    attachment_count: Mapped[int] = mapped_column(Integer, default=0)
    auto_reply: Mapped[bool] = mapped_column(Boolean, default=False)
    no_response_needed: Mapped[bool] = mapped_column(Boolean, default=False)
    replied_at: Mapped[datetime | None] = mapped_column(DateTime)
    auth: Mapped[str | None] = mapped_column(Text)  # JSON: SPF, DKIM, DMARC result words
    auth_results: Mapped[str | None] = mapped_column(Text)  # the Authentication-Results field
    received_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    key_id: Mapped[str | None] = mapped_column(String(32), index=True)


class MessageBody(Base):
    """The bytes of a message, apart from its row in `messages`.

    Kept in a table of their own so that the frequent small updates of a
    message (status, replied) do not rewrite megabytes of body each time.
    """

    __tablename__ = "message_bodies"
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), primary_key=True)
    original: Mapped[bytes] = mapped_column(LargeBinary)
    delivered: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_id: Mapped[str | None] = mapped_column(String(32), index=True)


class Attachment(Base):
    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    filename: Mapped[bytes | None] = mapped_column(LargeBinary)
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(32), index=True)


class MessageEvent(Base):
    __tablename__ = "message_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[bytes | None] = mapped_column(LargeBinary)
    at: Mapped[datetime] = mapped_column(DateTime)
    key_id: Mapped[str | None] = mapped_column(String(32), index=True)


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
    envelope_from: Mapped[bytes] = mapped_column(LargeBinary)
    recipient: Mapped[bytes] = mapped_column(LargeBinary)
    recipient_alias: Mapped[str | None] = mapped_column(String(320))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_expiries: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    key_id: Mapped[str | None] = mapped_column(String(32), index=True)


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
