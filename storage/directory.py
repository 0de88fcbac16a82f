"""Sellers, their sending addresses, and conversation threads.

Every function takes an open SQLAlchemy `Connection` and runs inside the
caller's transaction. Lookups that the SMTP layer needs per recipient
(`load_thread`) return a frozen `ThreadInfo` carrying everything the
intake checks: who may write as each party and which real addresses to
scrub.

Addresses and names are sealed (`storage/sealing.py`): every function
that writes or reads them takes the `Sealer`; lookups by address compare
its blind index. Errors the command line reports (unknown seller, an
order that belongs to another seller) are `DirectoryError`s with a
one-line message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection

from aliasing.addresses import Address
from aliasing.codec import KeyRing, Party
from storage.models import Seller, SellerAddress, Thread, ThreadAsin
from storage.sealing import Sealer
from storage.timeutil import utcnow

sellers = Seller.__table__
MAX_ID = 2**31 - 1  # ids are 32-bit signed on PostgreSQL
addresses = SellerAddress.__table__
threads = Thread.__table__
thread_asins = ThreadAsin.__table__


# Run for every RCPT: built once (building it per call costs more than running it).
_LOAD_THREAD = (
    select(threads, sellers.c.name.label("seller_name"), sellers.c.email.label("seller_email"),
           sellers.c.key_id.label("seller_key_id"), addresses.c.email.label("alternate"),
           addresses.c.key_id.label("alternate_key_id"), addresses.c.enabled.label("alternate_enabled"))
    .join(sellers, sellers.c.id == threads.c.seller_id)
    .outerjoin(addresses, addresses.c.seller_id == threads.c.seller_id)
    .where(threads.c.id == bindparam("b_id")))


class DirectoryError(Exception):
    """A request the directory cannot satisfy; the text is for the user."""


@dataclass(frozen=True)
class ThreadInfo:
    id: int
    order_id: str
    seller_id: str
    seller_name: str
    seller_email: str
    buyer_name: str
    buyer_email: str
    fulfillment: str
    buyer_alias: str
    seller_alias: str
    seller_senders: frozenset[str]  # keys of addresses allowed to write as the seller
    seller_addresses: frozenset[str]  # keys of every seller address, for scrubbing
    created_at: datetime
    closed_at: datetime | None = None   # set by `relay thread close`: no mail accepted

    def senders_for(self, party_written_to: Party) -> frozenset[str]:
        """Who may write to the alias of `party_written_to`."""
        if party_written_to is Party.BUYER:
            return self.seller_senders
        return frozenset({self.buyer_email.lower()})


def add_seller(conn: Connection, sealer: Sealer, seller_id: str, email: Address, name: str) -> None:
    if conn.execute(select(sellers.c.id).where(sellers.c.id == seller_id)).first():
        raise DirectoryError(f"seller {seller_id} already exists")
    conn.execute(insert(sellers).values(sealer.seal_row("sellers", dict(
        id=seller_id, name=name, email=str(email), email_key=sealer.index(email.key),
        created_at=utcnow()))))


def require_seller(conn: Connection, seller_id: str):
    row = conn.execute(select(sellers).where(sellers.c.id == seller_id)).first()
    if row is None:
        raise DirectoryError(f"unknown seller {seller_id}")
    return row


def add_address(conn: Connection, sealer: Sealer, seller_id: str, email: Address) -> None:
    seller = require_seller(conn, seller_id)
    email_key = sealer.index(email.key)
    if seller.email_key == email_key:
        raise DirectoryError(f"{email} is already the primary address of seller {seller_id}")
    existing = conn.execute(select(addresses.c.id).where(
        addresses.c.seller_id == seller_id, addresses.c.email_key == email_key)).first()
    if existing:
        raise DirectoryError(f"seller {seller_id} already has the address {email}")
    conn.execute(insert(addresses).values(sealer.seal_row("seller_addresses", dict(
        seller_id=seller_id, email=str(email), email_key=email_key, enabled=True,
        created_at=utcnow()))))


def set_address_enabled(conn: Connection, sealer: Sealer, seller_id: str, email: Address,
                        enabled: bool) -> None:
    require_seller(conn, seller_id)
    result = conn.execute(update(addresses).where(
        addresses.c.seller_id == seller_id, addresses.c.email_key == sealer.index(email.key))
        .values(enabled=enabled))
    if result.rowcount == 0:
        raise DirectoryError(f"seller {seller_id} has no alternate address {email}")


def open_thread(conn: Connection, keyring: KeyRing, sealer: Sealer, *, seller_id: str,
                buyer_email: Address, buyer_name: str, order_id: str, asins: list[str],
                fulfillment: str) -> ThreadInfo:
    """The thread of `order_id`, created with its two aliases if new."""
    require_seller(conn, seller_id)
    buyer_key = sealer.index(buyer_email.key)
    row = conn.execute(select(threads).where(threads.c.order_id == order_id)).first()
    if row is not None:
        if row.seller_id != seller_id:
            raise DirectoryError(f"order {order_id} belongs to another seller")
        if row.buyer_email_key != buyer_key:
            raise DirectoryError(f"order {order_id} is already open with another buyer address")
        thread_id = row.id
    else:
        thread_id = conn.execute(insert(threads).values(sealer.seal_row("threads", dict(
            seller_id=seller_id, order_id=order_id, buyer_email=str(buyer_email),
            buyer_email_key=buyer_key, buyer_name=buyer_name, fulfillment=fulfillment,
            created_at=utcnow())))).inserted_primary_key[0]
        conn.execute(update(threads).where(threads.c.id == thread_id).values(
            buyer_alias=keyring.encode(thread_id, Party.BUYER),
            seller_alias=keyring.encode(thread_id, Party.SELLER),
            alias_key_id=keyring.current.key_id))
    known = set(conn.execute(select(thread_asins.c.asin).where(thread_asins.c.thread_id == thread_id)).scalars())
    for asin in dict.fromkeys(asins):
        if asin not in known:
            conn.execute(insert(thread_asins).values(thread_id=thread_id, asin=asin))
    info = load_thread(conn, sealer, thread_id)
    assert info is not None
    return info


def load_thread(conn: Connection, sealer: Sealer, thread_id: int) -> ThreadInfo | None:
    """The thread with its seller and the seller's alternates, in one query (it runs per RCPT)."""
    rows = conn.execute(_LOAD_THREAD, {"b_id": thread_id}).all()
    if not rows or rows[0].buyer_alias is None:
        return None
    row = rows[0]
    seller_email = sealer.text("sellers.email", row.seller_email, row.seller_key_id)
    alternates = [(sealer.text("seller_addresses.email", r.alternate, r.alternate_key_id).lower(),
                   r.alternate_enabled) for r in rows if r.alternate is not None]
    senders = {seller_email.lower()} | {key for key, enabled in alternates if enabled}
    every = {seller_email.lower()} | {key for key, _enabled in alternates}
    return ThreadInfo(
        id=row.id, order_id=row.order_id, seller_id=row.seller_id,
        seller_name=sealer.text("sellers.name", row.seller_name, row.seller_key_id),
        seller_email=seller_email,
        buyer_name=sealer.text("threads.buyer_name", row.buyer_name, row.key_id),
        buyer_email=sealer.text("threads.buyer_email", row.buyer_email, row.key_id),
        fulfillment=row.fulfillment, buyer_alias=row.buyer_alias, seller_alias=row.seller_alias,
        seller_senders=frozenset(senders), seller_addresses=frozenset(every),
        created_at=row.created_at, closed_at=row.closed_at)


def set_thread_closed(conn: Connection, thread_id: int, closed: bool) -> datetime | None:
    """Close a thread (its aliases refuse mail) or reopen it; returns `closed_at`.

    Closing a closed thread keeps the time it was first closed.
    """
    row = None
    if 0 < thread_id <= MAX_ID:  # PostgreSQL would refuse to compare an id out of range
        row = conn.execute(select(threads.c.closed_at).where(threads.c.id == thread_id)).first()
    if row is None:
        raise DirectoryError(f"no thread with id {thread_id}")
    closed_at = (row.closed_at or utcnow()) if closed else None
    conn.execute(update(threads).where(threads.c.id == thread_id).values(closed_at=closed_at))
    return closed_at
