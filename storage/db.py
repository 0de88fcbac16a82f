"""The database handle: migrations, reads in threads, writes by group commit.

`Database(url)` opens a synchronous SQLAlchemy engine (SQLite or
PostgreSQL). The event loop never touches it directly:

- `await db.read(fn)` runs `fn(connection)` in a small thread pool;
- `await db.write(fn)` hands `fn(connection)` to one writer thread, which
  takes every write that is waiting, runs them all in one transaction and
  commits once (group commit: one fsync for many messages). If the batch
  fails, it is rolled back and each write is retried alone, so one bad
  write fails only its own caller. A write's future resolves only after
  its transaction has committed: that is what lets the SMTP layer say 250.

SQLite runs in WAL mode with `synchronous=FULL`, so a committed transaction
survives a crash or power loss. `upgrade()` applies the Alembic migrations.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BATCH = 256
MIGRATION_LOCK = 0x72656C6179  # any fixed number: the PostgreSQL advisory lock of `upgrade`


class DatabaseError(Exception):
    """The database cannot be opened or migrated."""


def make_engine(url: str, writer: bool = False) -> Engine:
    """An engine for reads, or (`writer`) for the transactions that write.

    SQLite writers take the write lock when the transaction begins (BEGIN
    IMMEDIATE), not at its first write: a transaction that reads and then
    writes (claiming queue entries, opening a thread) is then atomic
    against other processes sharing the file, instead of failing with
    "database is locked" when another writer got in between.
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               pool_size=2 if writer else 8, max_overflow=2 if writer else 8)
        event.listen(engine, "connect", _sqlite_pragmas)
        if writer:
            event.listen(engine, "connect", _sqlite_manual_transactions)
            event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    return create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True)


def _sqlite_manual_transactions(dbapi_conn, _record) -> None:
    # The driver's own BEGIN would come too late (at the first write); the
    # engine's "begin" event issues BEGIN IMMEDIATE instead.
    dbapi_conn.isolation_level = None


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("migrations")))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Relays starting together on a new database would each create the
            # tables, and all but one fail. Held until the commit, the lock lets
            # one migrate; the others wait, then find nothing left to do.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Database:
    def __init__(self, engine: Engine, write_engine: Engine | None = None):
        self.engine = engine
        self.write_engine = write_engine or engine
        self._readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="db-read")
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="db-write", daemon=True)
        self._writer.start()

    @classmethod
    def open(cls, url: str) -> Database:
        try:
            engine = make_engine(url)
            with engine.connect():
                pass
            write_engine = make_engine(url, writer=True) if url.startswith("sqlite") else engine
        except Exception as exc:  # the driver's own error types vary
            raise DatabaseError(f"cannot open database {_safe_url(url)}: {exc}") from None
        return cls(engine, write_engine)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, fn)

    def _run_read(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.connect() as conn:
            return fn(conn)

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in a committed transaction; resolves after the commit."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        self._jobs.put((fn, loop, fut))
        return await asyncio.shield(fut)

    def write_sync(self, fn: Callable[[Connection], T]) -> T:
        """For the command line: one transaction, outside any event loop.

        A transaction that lost a race for a unique key runs once more and
        then finds the winner's row: two `thread open` of one new order at
        once both see no thread on PostgreSQL, and the second insert fails
        (SQLite writers take turns, so there it does not happen).
        """
        try:
            with self.write_engine.begin() as conn:
                return fn(conn)
        except IntegrityError:
            with self.write_engine.begin() as conn:
                return fn(conn)

    def close(self) -> None:
        self._jobs.put(None)
        self._writer.join(timeout=30)
        self._readers.shutdown(wait=True)
        self.engine.dispose()
        self.write_engine.dispose()

    def _write_loop(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[tuple]) -> None:
        results: list[tuple[bool, Any]] = []
        try:
            with self.write_engine.begin() as conn:
                for fn, _loop, _fut in batch:
                    results.append((True, fn(conn)))
        except Exception as exc:
            if len(batch) == 1:
                _fn, loop, fut = batch[0]
                _settle(loop, fut, False, exc)
                return
            log.debug("group commit of %d writes failed; retrying one by one", len(batch))
            for job in batch:
                self._run_batch([job])
            return
        for (ok, value), (_fn, loop, fut) in zip(results, batch):
            _settle(loop, fut, ok, value)


def _settle(loop: asyncio.AbstractEventLoop, fut: asyncio.Future, ok: bool, value: Any) -> None:
    def apply() -> None:
        if fut.cancelled():
            return
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
    try:
        loop.call_soon_threadsafe(apply)
    except RuntimeError:  # the loop is closed: nobody waits any more
        pass


def _safe_url(url: str) -> str:
    """The URL without its password."""
    from sqlalchemy.engine import make_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable URL)"
