"""Re-encryption: moving rows to the newest storage key, one short batch at a time.

After `relay keys rotate storage`, new rows are sealed with the new key at
once, and older rows still name an older one. `reseal_batch` moves up to
`limit` rows of one table (those after a given primary key, in key order)
to `Sealer.current`: it opens each sealed column under the row's own
mark, seals it again, and writes the row back only if its mark has not
changed meanwhile. Rows from before encryption (mark NULL) are sealed the
same way, and their `*_key` column, which then held the plain lower-case
address, becomes its blind-index entry. With `[storage] encrypt = false`
the same pass writes rows back in plaintext.

Queue entries being delivered (`active`) are left for a later sweep: the
delivery worker seals their outcome under the key it claimed them with.
A row that cannot be opened (its key is no longer in the key file, or it
is damaged) is logged and skipped; the sweep goes on past it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Table, func, or_, select, update
from sqlalchemy.engine import Connection

from storage.models import Base
from storage.sealing import INDEXED, PLAIN, SEALED, Sealer, SealError

log = logging.getLogger(__name__)

# Directory tables first: lookups by address need their blind index.
TABLES = ("sellers", "seller_addresses", "threads", "messages", "message_bodies",
          "attachments", "message_events", "queue")
DIRECTORY_TABLES = TABLES[:3]
BATCH_ROWS = 200
BATCH_BYTES = 8 * 1024 * 1024  # a batch ends early past this much sealed data


@dataclass(frozen=True)
class Batch:
    moved: int
    last: object | None  # the primary key to continue after; None: the table is done
    failed: int = 0  # rows that could not be opened


def _pk(table: Table):
    return table.c.message_id if table.name == "message_bodies" else table.c.id


def stale(table: Table, sealer: Sealer, legacy_only: bool = False):
    """Rows not yet sealed as `sealer.current` says (and that can be opened).

    `legacy_only`: only the rows from before encryption.
    """
    others = [k for k in [*sealer.key_ids, PLAIN] if k != sealer.current]
    condition = table.c.key_id.is_(None)
    if not legacy_only:
        condition = or_(condition, table.c.key_id.in_(others))
    if table.name == "queue":
        condition = condition & (table.c.state != "active")
    return condition


def reseal_batch(conn: Connection, sealer: Sealer, name: str, after=None,
                 limit: int = BATCH_ROWS, legacy_only: bool = False) -> Batch:
    table = Base.metadata.tables[name]
    pk = _pk(table)
    target = sealer.current
    query = (select(pk, table.c.key_id).where(stale(table, sealer, legacy_only))
             .order_by(pk).limit(limit))
    if after is not None:
        query = query.where(pk > after)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    candidates = conn.execute(query).all()
    if not candidates:
        return Batch(0, None)
    columns = [table.c[c] for c in SEALED[name]]
    index = INDEXED.get(name)
    if index:
        columns.append(table.c[index[0]])
    moved = size = failed = 0
    last = None
    for key, mark in candidates:
        last = key
        row = conn.execute(select(*columns).where(pk == key, table.c.key_id.is_not_distinct_from(mark))).first()
        if row is None:
            continue
        try:
            values = {c: sealer.open(f"{name}.{c}", row._mapping[c], mark) for c in SEALED[name]}
        except SealError as exc:
            log.error("%s %s: cannot re-encrypt: %s", name, key, exc)
            failed += 1
            continue
        if index and mark is None:  # before encryption the index held the plain address
            values[index[0]] = sealer.index(_text(row._mapping[index[0]]).lower())
        size += sum(len(v) for v in values.values() if isinstance(v, bytes))
        sealer.seal_row(name, values, target)
        guard = [pk == key, table.c.key_id.is_not_distinct_from(mark)]
        if name == "queue":
            guard.append(table.c.state != "active")
        moved += conn.execute(update(table).where(*guard).values(values)).rowcount
        if size > BATCH_BYTES:
            break
    return Batch(moved, last, failed)


def reseal_all(run, sealer: Sealer, tables=TABLES, legacy_only: bool = False) -> int:
    """Move every row of `tables`, each batch through `run(fn)` (one transaction); returns the count."""
    total = 0
    for name in tables:
        after = None
        while True:
            batch = run(lambda conn: reseal_batch(conn, sealer, name, after, legacy_only=legacy_only))
            total += batch.moved
            if batch.last is None:
                break
            after = batch.last
    return total


def pending(conn: Connection, sealer: Sealer) -> dict[str, int]:
    """Rows of each table not yet as `sealer.current` (for the command line and tests)."""
    counts = {}
    for name in TABLES:
        table = Base.metadata.tables[name]
        counts[name] = conn.execute(select(func.count()).select_from(table)
                                    .where(stale(table, sealer))).scalar_one()
    return counts


def _text(value) -> str:
    return value if isinstance(value, str) else bytes(value).decode("utf-8", "surrogateescape")
