"""The background re-encryption of `relay serve`.

Every `interval` seconds the `Resealer` looks at the storage key file (a
new key from `relay keys rotate storage` is taken up there, by every
running relay process) and asks the database whether any row is not yet
sealed with the newest key: after a rotation, rows from before
encryption, or rows of `[storage] encrypt = false`. If so it sweeps the
tables in batches (`storage.reseal.reseal_batch`), each batch one short
write transaction through the database writer, so SMTP sessions and
deliveries go on meanwhile. A failed batch is logged and tried again at
the next look; rows that cannot be opened (their key was taken out of
the file too early) are logged, and looked at again only every
`retry_broken` seconds. The relay keeps running.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select

from storage.db import Database
from storage.models import Base
from storage.reseal import TABLES, reseal_batch, stale
from storage.sealing import Sealer

log = logging.getLogger(__name__)


class Resealer:
    def __init__(self, db: Database, sealer: Sealer, interval: float = 1.0, retry_broken: float = 300.0):
        self.db = db
        self.sealer = sealer
        self.interval = interval
        self.retry_broken = retry_broken

    async def run(self) -> None:
        while True:
            pause = self.interval
            try:
                changed = await asyncio.to_thread(self.sealer.refresh)  # a stat; a read when it changed
                if await self.db.read(self._anything_stale):
                    moved, failed = await self._sweep()
                    if failed and not moved and not changed:
                        pause = self.retry_broken  # only rows that cannot be opened are left
            except Exception:  # the database failed us: nothing is lost, look again later
                log.exception("re-encryption: a batch failed; trying again in %.1f s", self.interval)
            await asyncio.sleep(pause)

    def _anything_stale(self, conn) -> bool:
        for name in TABLES:
            table = Base.metadata.tables[name]
            if conn.execute(select(table.c.key_id).where(stale(table, self.sealer)).limit(1)).first():
                return True
        return False

    async def _sweep(self) -> tuple[int, int]:
        """One pass over every table; (rows moved, rows that could not be opened)."""
        target = self.sealer.current
        moved = failed = 0
        for name in TABLES:
            after = None
            while True:
                batch = await self.db.write(lambda c: reseal_batch(c, self.sealer, name, after))
                moved, failed = moved + batch.moved, failed + batch.failed
                if batch.last is None:
                    break
                after = batch.last
                if await asyncio.to_thread(self.sealer.refresh):  # yet another key: the next sweep takes it
                    return moved, failed
        if moved:
            log.info("re-encryption: %d rows now sealed as %s", moved, target)
        return moved, failed
