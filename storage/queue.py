"""The delivery queue: claim with a lease, record one outcome per entry.

`claim` moves due entries (`queued`, or `deferred` whose time has come) and
entries whose lease has expired (a worker died holding them) to `active`,
leased to one owner until `lease_until`. The selection uses `FOR UPDATE
SKIP LOCKED` where the database has it (PostgreSQL), so several relay
processes can share one queue; SQLite serialises writers anyway. An entry
whose lease has expired `MAX_LEASE_EXPIRIES` times is handed out once more
marked `poisoned`: something about it crashes the worker, and retrying it
forever would only repeat the crash, so the worker parks it (state
`parked`) and tells the sender instead of sending it. A restarted worker need not wait out the leases of the process it
replaces: `lease_owners` and `expire_leases` let it end the leases of
workers it knows to be dead.

`finish` records an outcome (`delivered`, `deferred` with the next attempt
time, `bounced` or `parked`) and recomputes the message's status from all of its
entries, adding a status event when it changes.

Addresses, message bytes and remote errors are sealed (`storage/sealing.py`):
`claim` opens them with the `Sealer`, and `finish` seals the error under
the key the entry was claimed with. The background re-encryption leaves
`active` entries alone, so that key is still the entry's own when the
outcome is written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.engine import Connection

from storage.models import Message, MessageBody, MessageEvent, QueueEntry
from storage.sealing import Sealer
from storage.textutil import clean
from storage.timeutil import utcnow

log = logging.getLogger(__name__)
queue = QueueEntry.__table__
messages = Message.__table__
bodies = MessageBody.__table__
events = MessageEvent.__table__

MAX_LEASE_EXPIRIES = 5

# Statements of the delivery hot path, built once: building one per call
# (and its cache key) costs several times what running it does.
_FINISH = update(queue).where(queue.c.id == bindparam("b_id"), queue.c.lease_owner == bindparam("b_owner"),
                              queue.c.state == "active")
_MESSAGE_OF = select(queue.c.message_id).where(queue.c.id == bindparam("b_id"))
_STATES_OF = select(queue.c.state).where(queue.c.message_id == bindparam("b_id"))
# A message that came back as returned mail (relay.bounces) stays bounced,
# whatever a delivery attempt still in flight reports afterwards.
_SET_STATUS = update(messages).where(messages.c.id == bindparam("b_id"), messages.c.status != "bounced")
_SET_STATUS_IF_CHANGED = _SET_STATUS.where(messages.c.status != bindparam("b_status"))
_ADD_EVENT = insert(events)
_DUE = (select(queue.c.id, queue.c.state)
        .where(or_((queue.c.state.in_(("queued", "deferred"))) & (queue.c.next_attempt_at <= bindparam("b_now")),
                   (queue.c.state == "active") & (queue.c.lease_until < bindparam("b_now"))))
        .order_by(queue.c.next_attempt_at).limit(bindparam("b_limit"))
        .with_for_update(skip_locked=True))
_LEASE = (update(queue).where(queue.c.id.in_(bindparam("b_ids", expanding=True)))
          .values(attempts=queue.c.attempts + 1))
_CLAIMED = (select(queue.c.id, queue.c.message_id, queue.c.envelope_from, queue.c.recipient,
                   queue.c.recipient_alias, queue.c.attempts, queue.c.created_at, queue.c.key_id,
                   messages.c.kind, messages.c.thread_id, bodies.c.delivered,
                   bodies.c.key_id.label("body_key_id"))
            .join(messages, messages.c.id == queue.c.message_id)
            .join(bodies, bodies.c.message_id == queue.c.message_id)
            .where(queue.c.id.in_(bindparam("b_ids", expanding=True))))
OPEN_STATES = ("queued", "deferred", "active")


@dataclass(frozen=True)
class Claimed:
    id: int
    message_id: int
    envelope_from: str
    recipient: str
    recipient_alias: str | None
    attempts: int
    created_at: datetime
    kind: str
    thread_id: int | None
    data: bytes
    key_id: str | None = None  # how the entry's row is sealed; `finish` seals its error alike
    poisoned: bool = False  # its lease expired too often: bounce it, do not try again


def claim(conn: Connection, owner: str, lease: timedelta, limit: int, sealer: Sealer) -> list[Claimed]:
    now = utcnow()
    rows = conn.execute(_DUE, {"b_now": now, "b_limit": limit}).all()
    if not rows:
        return []
    expired = [r.id for r in rows if r.state == "active"]
    to_park: list[int] = []
    if expired:
        conn.execute(update(queue).where(queue.c.id.in_(expired))
                     .values(lease_expiries=queue.c.lease_expiries + 1))
        to_park = conn.execute(select(queue.c.id).where(
            queue.c.id.in_(expired), queue.c.lease_expiries >= MAX_LEASE_EXPIRIES)).scalars().all()
        if to_park:
            log.warning("queue entries %s: the lease expired %d times; parking them",
                        to_park, MAX_LEASE_EXPIRIES)
    ids = [r.id for r in rows]
    conn.execute(_LEASE, {"b_ids": ids, "state": "active", "lease_owner": owner,
                          "lease_until": now + lease, "updated_at": now})
    result = conn.execute(_CLAIMED, {"b_ids": ids})
    text = sealer.text
    return [Claimed(id=r.id, message_id=r.message_id,
                    envelope_from=text("queue.envelope_from", r.envelope_from, r.key_id),
                    recipient=text("queue.recipient", r.recipient, r.key_id),
                    recipient_alias=r.recipient_alias, attempts=r.attempts,
                    created_at=r.created_at, kind=r.kind, thread_id=r.thread_id,
                    data=sealer.open("message_bodies.delivered", r.delivered, r.body_key_id),
                    key_id=r.key_id, poisoned=r.id in to_park) for r in result]


def finish(conn: Connection, entry_id: int, owner: str, state: str, error: str | None = None,
           next_attempt_at: datetime | None = None, message_id: int | None = None, *,
           sealer: Sealer, key_id: str | None) -> bool:
    """Record an outcome; False if the lease was lost to another worker.

    `message_id`, when the caller knows it, saves a lookup on the hot path;
    `key_id` is the entry's `Claimed.key_id`.
    """
    assert state in ("delivered", "deferred", "bounced", "parked")
    now = utcnow()
    error = clean(error)  # a remote server's reply: it may hold NUL or undecodable bytes
    values = dict(b_id=entry_id, b_owner=owner, state=state, lease_owner=None, lease_until=None,
                  updated_at=now, last_error=sealer.seal("queue.last_error", error, key_id))
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    result = conn.execute(_FINISH, values)
    if result.rowcount == 0:
        return False
    if message_id is None:
        message_id = conn.execute(_MESSAGE_OF, {"b_id": entry_id}).scalar_one()
    _update_message_status(conn, message_id, error, sealer)
    return True


def _update_message_status(conn: Connection, message_id: int, detail: str | None, sealer: Sealer) -> None:
    states = _entry_states(conn, message_id)
    if len(states) > 1:
        # Under READ COMMITTED (PostgreSQL), two processes finishing two entries
        # of one message at once would each still see the other's entry active
        # and leave the message "queued". Whoever locks the message row second
        # reads again after the first has committed. SQLite has no FOR UPDATE
        # and needs none: its writers take turns.
        conn.execute(select(messages.c.id).where(messages.c.id == message_id).with_for_update())
        states = _entry_states(conn, message_id)
    states = set(states)
    if "deferred" in states:
        status = "deferred"
    elif states & {"queued", "active"}:
        status = "queued"
    elif "bounced" in states or "parked" in states:
        status = "bounced"
    else:
        status = "delivered"
    now = utcnow()
    # Every deferral is an event of its own; other states are recorded once.
    statement = _SET_STATUS if status == "deferred" else _SET_STATUS_IF_CHANGED
    changed = conn.execute(statement, {"b_id": message_id, "b_status": status, "status": status,
                                       "updated_at": now})
    if changed.rowcount:
        conn.execute(_ADD_EVENT, sealer.seal_row("message_events", {
            "message_id": message_id, "status": status, "detail": detail, "at": now}))


def _entry_states(conn: Connection, message_id: int) -> list[str]:
    return list(conn.execute(_STATES_OF, {"b_id": message_id}).scalars())


def release(conn: Connection, owner: str) -> int:
    """Give back every lease of `owner` (clean shutdown): due again at once."""
    result = conn.execute(update(queue).where(queue.c.lease_owner == owner, queue.c.state == "active")
                          .values(state="queued", lease_owner=None, lease_until=None,
                                  attempts=queue.c.attempts - 1, updated_at=utcnow()))
    return result.rowcount


def lease_owners(conn: Connection) -> list[str]:
    """Every worker that holds a lease now."""
    return list(conn.execute(select(queue.c.lease_owner).where(queue.c.state == "active")
                             .distinct()).scalars())


def expire_leases(conn: Connection, owners: list[str]) -> int:
    """End the leases of workers known to be dead; the next claim takes (and counts) them."""
    if not owners:
        return 0
    result = conn.execute(update(queue).where(queue.c.state == "active", queue.c.lease_owner.in_(owners))
                          .values(lease_until=utcnow()))
    return result.rowcount


def next_due(conn: Connection) -> datetime | None:
    """When the earliest waiting entry becomes due (for the worker's sleep)."""
    return conn.execute(select(queue.c.next_attempt_at).where(queue.c.state.in_(("queued", "deferred")))
                        .order_by(queue.c.next_attempt_at).limit(1)).scalar()
