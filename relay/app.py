"""The composition root: the one place that builds and wires the relay.

`initialize(config)` creates what must exist before anything runs (the
alias key file, mode 0600, and the schema through Alembic); it is
idempotent. `App.build(config)` opens the database and the key ring and
builds the intake, the SMTP server and the delivery worker, handing each
its collaborators; nothing is module-level state. `App.start()` and
`App.stop()` run them on the current event loop; `serve(config)` runs
until SIGTERM or SIGINT and then stops gracefully. A port that cannot be
listened on is a `ConfigError` naming it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from dataclasses import dataclass

from aliasing.codec import KeyRing
from aliasing.keys import ensure_key_file, load_key_ring
from policy.registry import default_rules
from relay.config import Config, ConfigError
from relay.delivery import DeliveryWorker, SmtpTransport, WorkerSettings
from relay.intake import Intake, IntakeSettings
from relay.notices import Sender
from relay.routing import Router, make_resolver
from relay.smtp_server import Handler, SmtpServer
from storage.db import Database, upgrade

log = logging.getLogger(__name__)


def initialize(config: Config) -> Database:
    """Create missing key files and migrate the schema; returns the open database."""
    if ensure_key_file(config.aliases.key_file):
        log.info("created alias key file %s", config.aliases.key_file)
    db = Database.open(config.storage.url)
    try:
        upgrade(db.write_engine)
    except Exception:
        db.close()
        raise
    return db


def open_existing(config: Config) -> tuple[Database, KeyRing]:
    """For commands that need an initialized relay (keys and schema)."""
    keyring = load_key_ring(config.aliases.key_file)
    db = initialize(config)
    return db, keyring


@dataclass
class App:
    config: Config
    db: Database
    keyring: KeyRing
    intake: Intake
    server: SmtpServer
    worker: DeliveryWorker
    _worker_task: asyncio.Task | None = None

    @classmethod
    def build(cls, config: Config) -> App:
        rules = default_rules(config.policy)  # first: a bad list in data_dir stops before any file is touched
        db = initialize(config)
        keyring = load_key_ring(config.aliases.key_file)
        sender = Sender(marketplace_name=config.marketplace.name,
                        notices_from=config.marketplace.notices_from,
                        alias_domain=config.aliases.domain, hostname=config.smtp.hostname)
        d = config.delivery
        router = Router(d.mode, make_resolver(config.dns.nameservers, config.dns.timeout),
                        mx_port=d.mx_port, smarthost=d.smarthost)
        worker = DeliveryWorker(
            db, SmtpTransport(router, config.smtp.hostname, d.timeout),
            WorkerSettings(retry_schedule=d.retry_schedule, max_age=d.max_age,
                           concurrency=d.concurrency, lease_seconds=d.lease_seconds,
                           poll_interval=d.poll_interval, stop_grace=config.smtp.shutdown_grace),
            sender)
        intake = Intake(
            IntakeSettings(alias_domain=config.aliases.domain, marketplace_name=config.marketplace.name,
                           max_recipients=config.smtp.max_recipients),
            db, keyring, rules, sender, on_queued=worker.wake)
        s = config.smtp
        server = SmtpServer(Handler(intake), host=s.host, port=s.port, hostname=s.hostname,
                            max_message_bytes=s.max_message_bytes, timeout=s.timeout,
                            shutdown_grace=s.shutdown_grace)
        return cls(config, db, keyring, intake, server, worker)

    async def start(self, sock: socket.socket | None = None) -> tuple[str, int]:
        address = await self.server.start(sock)
        self._worker_task = asyncio.create_task(self.worker.run(), name="delivery-worker")
        return address

    async def stop(self) -> None:
        await self.server.stop()
        if self._worker_task is not None:
            # Stop claiming first; a claim already sent still commits before
            # the release below, since the writer runs writes in order.
            self._worker_task.cancel()
            try:
                await self._worker_task
            except asyncio.CancelledError:
                pass
        await self.worker.stop()
        self.db.close()


async def serve(config: Config, sock: socket.socket | None = None, announce: bool = True) -> None:
    """Run until SIGTERM or SIGINT; `sock` is a listener bound by the supervisor."""
    app = App.build(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        host, port = await app.start(sock)
    except OSError as exc:  # the port is taken, or the address is not ours
        await app.stop()
        s = config.smtp
        raise ConfigError(f"[smtp] cannot listen on {s.host}:{s.port}: {exc.strerror or exc}") from None
    if announce:
        print(f"relay: listening on {host}:{port} for *@{config.aliases.domain}", flush=True)
    await stop.wait()
    log.info("stopping: no new connections; finishing sessions in flight")
    await app.stop()
