"""Counting accepted messages for the rate limits, in the shared database.

Every function takes an open `Connection` and runs in the caller's
transaction. Because the counts come from the database, every relay
process sharing it sees the same numbers:

- `count_thread`: accepted conversation messages of a thread since a time
  (the `messages` log itself, on its (thread_id, received_at) index);
- `count_events` / `record_events`: rows of `accept_events`, one per
  accepted message and limited key (sender address, client network),
  stored as a keyed hash;
- `prune_events`: drop rows older than any window still looks at.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.engine import Connection

from storage.models import AcceptEvent, Message

events = AcceptEvent.__table__
messages = Message.__table__

# Run for every accepted message while limits are on: built once.
_COUNT_EVENTS = select(func.count()).select_from(events).where(
    events.c.kind == bindparam("b_kind"), events.c.key_hash == bindparam("b_key"),
    events.c.at >= bindparam("b_since"))
_COUNT_THREAD = select(func.count()).select_from(messages).where(
    messages.c.thread_id == bindparam("b_thread"), messages.c.received_at >= bindparam("b_since"),
    messages.c.kind == "conversation", messages.c.status != "rejected")
_ADD_EVENT = insert(events)
_PRUNE = delete(events).where(events.c.at < bindparam("b_before"))


def count_thread(conn: Connection, thread_id: int, since: datetime) -> int:
    return conn.execute(_COUNT_THREAD, {"b_thread": thread_id, "b_since": since}).scalar_one()


def count_events(conn: Connection, kind: str, key_hash: str, since: datetime) -> int:
    return conn.execute(_COUNT_EVENTS, {"b_kind": kind, "b_key": key_hash, "b_since": since}).scalar_one()


def record_events(conn: Connection, keys: list[tuple[str, str]], at: datetime) -> None:
    if keys:
        conn.execute(_ADD_EVENT, [dict(kind=kind, key_hash=key, at=at) for kind, key in keys])


def prune_events(conn: Connection, before: datetime) -> int:
    return conn.execute(_PRUNE, {"b_before": before}).rowcount
