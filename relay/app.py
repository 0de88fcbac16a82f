"""The composition root: the one place that builds and wires the relay.

`initialize(config)` creates what must exist before anything runs (the
alias, storage and DKIM key files, mode 0600, and the schema through
Alembic) and seals the directory rows written before encryption; it is
idempotent. `App.build(config)` opens the database and the key rings and
builds the intake, the SMTP server, the delivery worker and the
background re-encryption, handing each its collaborators; nothing is
module-level state. `App.start()` and
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
from aliasing.keys import ReloadingKeyRing, ensure_key_file, load_key_ring
from aliasing.verp import VerpCodec
from policy.registry import default_rules
from relay.auth.check import AuthCheck, Authenticator, AuthSettings
from relay.auth.dmarc import OrgDomains
from relay.auth.lookup import AuthDns
from relay import signing
from relay.bounces import BounceHandler
from relay.config import Config, ConfigError
from relay.delivery import DeliveryWorker, SmtpTransport, WorkerSettings
from relay.intake import Intake, IntakeSettings
from relay.limits import RateLimiter, RateSettings
from relay.notices import Sender
from relay.resealer import Resealer
from relay.outbound_tls import TlsPolicy
from relay.routing import Router, make_resolver
from relay.smtp_server import Handler, SessionLimits, SmtpServer
from relay.tls import server_context
from storage.db import Database, upgrade
from storage.reseal import DIRECTORY_TABLES, reseal_all
from storage.sealing import Sealer, ensure_storage_key_file

log = logging.getLogger(__name__)


def initialize(config: Config) -> Database:
    """Create missing key files and migrate the schema; returns the open database."""
    if ensure_key_file(config.aliases.key_file):
        log.info("created alias key file %s", config.aliases.key_file)
    if ensure_storage_key_file(config.storage.encryption_key_file):
        log.info("created storage key file %s", config.storage.encryption_key_file)
    sealer = open_sealer(config)
    if signing.ensure_key_file(config.dkim.key_file, config.dkim.selector):
        log.info("created DKIM key file %s (publish it: 'relay keys dkim')", config.dkim.key_file)
    db = Database.open(config.storage.url)
    try:
        upgrade(db.write_engine)
        # Lookups by address need the blind index of rows from before
        # encryption at once; the other tables follow in the background.
        reseal_all(db.write_sync, sealer, DIRECTORY_TABLES, legacy_only=True)
    except Exception:
        db.close()
        raise
    return db


def open_sealer(config: Config) -> Sealer:
    """The storage keys (the file must exist and be private)."""
    return Sealer(config.storage.encryption_key_file, encrypt=config.storage.encrypt)


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
    sealer: Sealer
    resealer: Resealer
    _worker_task: asyncio.Task | None = None
    _reseal_task: asyncio.Task | None = None

    @classmethod
    def build(cls, config: Config) -> App:
        rules = default_rules(config.policy)  # first: a bad list in data_dir stops before any file is touched
        db = initialize(config)
        keyring = ReloadingKeyRing(config.aliases.key_file)
        sealer = open_sealer(config)
        sender = Sender(marketplace_name=config.marketplace.name,
                        notices_from=config.marketplace.notices_from,
                        alias_domain=config.aliases.domain, hostname=config.smtp.hostname)
        d = config.delivery
        router = Router(d.mode, make_resolver(config.dns.nameservers, config.dns.timeout),
                        mx_port=d.mx_port, smarthost=d.smarthost)
        tls = TlsPolicy(config.smtp.hostname, d.timeout, d.tls_ca_file, d.require_tls_domains)
        verp = VerpCodec(keyring, config.aliases.domain)
        signer = signing.Signer(config.dkim.key_file, config.aliases.domain) if config.dkim.sign else None
        worker = DeliveryWorker(
            db, SmtpTransport(router, tls),
            WorkerSettings(retry_schedule=d.retry_schedule, max_age=d.max_age,
                           concurrency=d.concurrency, lease_seconds=d.lease_seconds,
                           poll_interval=d.poll_interval, stop_grace=config.smtp.shutdown_grace),
            sender, sealer, verp=verp, signer=signer)
        # A message's checks may take a few DNS timeouts (SPF follows includes), not more.
        auth = AuthSettings(config.auth.mode, config.auth.relaxed_domains, deadline=4 * config.dns.timeout)
        # Its own resolver: the authentication lookups are cached as their TTL allows.
        authenticator = Authenticator(auth, AuthDns(make_resolver(config.dns.nameservers, config.dns.timeout)),
                                      OrgDomains())
        lim = config.limits
        # Rate-limit keys are hashed like the address index: under a key that never rotates.
        limiter = RateLimiter(RateSettings(lim.per_sender_per_hour, lim.per_thread_per_hour,
                                           lim.per_ip_per_minute),
                              db, key_hash=sealer.index)
        intake = Intake(
            IntakeSettings(alias_domain=config.aliases.domain, marketplace_name=config.marketplace.name,
                           max_recipients=lim.max_recipients, max_header_bytes=lim.max_header_bytes),
            db, keyring, rules, sender, on_queued=worker.wake,
            sender_checks=[AuthCheck(auth)], authenticator=authenticator, limiter=limiter,
            sealer=sealer, bounces=BounceHandler(db, verp, sender, sealer, on_queued=worker.wake))
        s = config.smtp
        tls = server_context(s.tls_cert, s.tls_key) if s.tls_cert and s.tls_key else None
        server = SmtpServer(Handler(intake), host=s.host, port=s.port, hostname=s.hostname,
                            max_message_bytes=s.max_message_bytes, timeout=s.timeout,
                            shutdown_grace=s.shutdown_grace, tls_context=tls, require_tls=s.require_tls,
                            limits=SessionLimits(lim.max_connections, lim.session_timeout))
        return cls(config, db, keyring, intake, server, worker, sealer, Resealer(db, sealer))

    async def start(self, sock: socket.socket | None = None) -> tuple[str, int]:
        address = await self.server.start(sock)
        self._worker_task = asyncio.create_task(self.worker.run(), name="delivery-worker")
        self._reseal_task = asyncio.create_task(self.resealer.run(), name="re-encryption")
        return address

    async def stop(self) -> None:
        await self.server.stop()
        if self._reseal_task is not None:
            self._reseal_task.cancel()  # a batch already handed to the writer still commits
            try:
                await self._reseal_task
            except asyncio.CancelledError:
                pass
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
