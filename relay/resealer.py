"""The background re-encryption of `relay serve`.

Every `interval` seconds the `Resealer` looks at the storage key file (a
new key from `relay keys rotate storage` is taken up there, by every
running relay process) and asks the database whether any row is not yet
sealed with the newest key: after a rotation, rows from before
encryption, or rows of `[storage] encrypt = false`. If so it sweeps the
tables in batches (`storage.reseal.reseal_batch`), each batch one short
write transaction through the database writer, so SMTP sessions and
deliveries go on meanwhile. A failed batch is logged and tried again at
the next look; the relay keeps running.
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
    def __init__(self, db: Database, sealer: Sealer, interval: float = 1.0):
        self.db = db
        self.sealer = sealer
        self.interval = interval

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.sealer.refresh)  # a stat, and a read when it changed
                if await self.db.read(self._anything_stale):
                    await self._sweep()
            except Exception:  # the database failed us: nothing is lost, look again later
                log.exception("re-encryption: a batch failed; trying again in %.1f s", self.interval)
            await asyncio.sleep(self.interval)

    def _anything_stale(self, conn) -> bool:
        for name in TABLES:
            table = Base.metadata.tables[name]
            if conn.execute(select(table.c.key_id).where(stale(table, self.sealer)).limit(1)).first():
                return True
        return False

    async def _sweep(self) -> None:
        target = self.sealer.current
        moved = 0
        for name in TABLES:
            after = None
            while True:
                batch = await self.db.write(lambda c: reseal_batch(c, self.sealer, name, after))
                moved += batch.moved
                if batch.last is None:
                    break
                after = batch.last
                if await asyncio.to_thread(self.sealer.refresh):  # yet another key: the next sweep takes it
                    return
        if moved:
            log.info("re-encryption: %d rows now sealed as %s", moved, target)
