"""Delivery: from the queue to the recipient's mail server.

`SmtpTransport.send` tries each hop the router gives and returns one
outcome per recipient: `Delivered`, `Temporary` or `Permanent`. A 5xx
reply is permanent; a 4xx, a refused connection, a timeout or any error we
did not foresee is temporary (retrying is safe, losing mail is not).
Connections are opened by `relay.outbound_tls` (STARTTLS, verified where
the policy demands it).

Each attempt signs the message afresh with DKIM (`relay.signing`, in a
thread) and sends a conversation message from its own VERP bounce address
(`aliasing.verp`, made from the queue entry id), so that a bounce arriving
later finds its message (`relay.bounces`).

`DeliveryWorker.run` claims due entries with a lease, sends up to
`concurrency` at a time, and records each outcome in one transaction:
temporary failures are retried on `retry_schedule`; a permanent failure,
or a message older than `max_age`, bounces, and the original sender gets a
DSN in the same transaction. Mail with a null envelope sender (the relay's
own notices and DSNs) never causes a DSN. On start, the worker takes back
at once the entries that a crashed process of this host had leased. The worker wakes when the intake
queues something and otherwise sleeps until the next entry is due.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import socket
from dataclasses import dataclass
from datetime import timedelta

import aiosmtplib
from sqlalchemy import select

from aliasing.addresses import parse_address
from aliasing.verp import VerpCodec
from relay.connections import ConnectionCache
from relay.notices import Sender, dsn, header_block
from relay.retry import next_attempt
from relay.outbound_tls import TlsFailure, TlsPolicy
from relay.routing import Hop, RouteError, Router
from relay.signing import Signer
from storage import queue as q
from storage.db import Database
from storage.messages import NewDelivery, NewMessage, log_message
from storage.models import Message, MessageBody
from storage.sealing import Sealer
from storage.textutil import clean
from storage.timeutil import utcnow

log = logging.getLogger(__name__)
_PERMANENT_STATUS = re.compile(r"^5\.\d{1,3}\.\d{1,3}$")
messages = Message.__table__
bodies = MessageBody.__table__


@dataclass(frozen=True)
class Delivered:
    reply: str
    tls: str = ""   # how the session was protected (relay.outbound_tls), when it was opened for this


@dataclass(frozen=True)
class Temporary:
    error: str


@dataclass(frozen=True)
class Permanent:
    error: str
    status: str = "5.0.0"


Outcome = Delivered | Temporary | Permanent


class _Stale:
    """A kept connection turned out to be closed before the message went out."""


class SmtpTransport:
    def __init__(self, router: Router, tls: TlsPolicy, cache: ConnectionCache | None = None):
        self.router = router
        self.tls = tls
        self.cache = cache or ConnectionCache()

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> Outcome:
        domain = parse_address(recipient).domain
        try:
            hops = await self.router.route(domain)
        except RouteError as exc:
            return Permanent(str(exc), exc.status) if exc.permanent else Temporary(str(exc))
        last: Outcome = Temporary("no mail server reachable")
        for hop in hops:
            last = await self._send_to(hop, domain, envelope_from, recipient, data)
            if not isinstance(last, Temporary):
                return last
        return last

    def close(self) -> None:
        self.cache.close_all()

    async def _send_to(self, hop: Hop, domain: str, envelope_from: str, recipient: str,
                       data: bytes) -> Outcome:
        # A connection opened for a TLS-required domain is verified; only
        # such deliveries may take it, and they take no other.
        key = (hop.host, hop.port, self.tls.required(domain))
        kept = self.cache.take(key)
        if kept is not None:
            outcome = await self._transact(kept, key, envelope_from, recipient, data)
            if not isinstance(outcome, _Stale):
                return outcome
        opened = await self.tls.open(hop.host, hop.port, hop.name, domain)
        if isinstance(opened, TlsFailure):
            return Temporary(opened.error)
        client, tls = opened
        log.debug("connected to %s (%s:%d), TLS %s", hop.name, hop.host, hop.port, tls)
        outcome = await self._transact(client, key, envelope_from, recipient, data)
        if isinstance(outcome, Delivered):
            return Delivered(outcome.reply, tls)
        return Temporary("the server closed the connection") if isinstance(outcome, _Stale) else outcome

    async def _transact(self, client: aiosmtplib.SMTP, key: tuple, envelope_from: str,
                        recipient: str, data: bytes) -> Outcome | _Stale:
        """One transaction; the client goes back to the cache only if it succeeded."""
        try:
            errors, response = await client.sendmail(envelope_from, [recipient], data)
            if errors:
                code, text = next(iter(errors.values()))
                client.close()
                return _by_code(code, text)
        except aiosmtplib.SMTPServerDisconnected:
            client.close()
            return _Stale()
        except aiosmtplib.SMTPRecipientsRefused as exc:
            client.close()
            refused = exc.recipients[0]
            return _by_code(refused.code, refused.message)
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            return _by_code(exc.code, exc.message)
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            client.close()
            return Temporary(f"{exc.__class__.__name__}: {exc}")
        self.cache.give(key, client)
        return Delivered(response)


def _by_code(code: int, text: str) -> Outcome:
    """Classify a remote reply; its text may hold any bytes and goes into a DSN."""
    text = clean(text) or ""
    detail = f"{code} {text}"
    if 500 <= code < 600:
        first = text.split()[0] if text.split() else ""
        return Permanent(detail, first if _PERMANENT_STATUS.match(first) else "5.0.0")
    return Temporary(detail)


def lease_owner_name() -> str:
    """`host:pid:token`, short enough for the column; the token tells incarnations apart."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_is_dead(owner: str, me: str) -> bool:
    """True only when `owner` surely no longer runs: a process of this host that is gone.

    Another host's workers cannot be checked from here; their leases run out.
    An owner with our own process id but another token held its leases
    before this process started with a recycled pid (PID 1 in a restarted
    container), since one process runs one worker.
    """
    host, _, rest = owner.partition(":")
    pid_text, _, _token = rest.partition(":")
    if host != socket.gethostname()[:40] or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return owner != me
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists but is not ours to signal
        return False
    return False


@dataclass(frozen=True)
class WorkerSettings:
    retry_schedule: tuple[float, ...]
    max_age: float
    concurrency: int
    lease_seconds: float
    poll_interval: float
    stop_grace: float = 30.0   # how long a stop waits for deliveries in flight


class DeliveryWorker:
    def __init__(self, db: Database, transport: SmtpTransport, settings: WorkerSettings, sender: Sender,
                 sealer: Sealer, verp: VerpCodec | None = None, signer: Signer | None = None):
        self.db = db
        self.sealer = sealer
        self.transport = transport
        self.settings = settings
        self.sender = sender
        self.verp = verp
        self.signer = signer
        self.owner = lease_owner_name()
        self._wake = asyncio.Event()
        self._stopping = False
        self._inflight: set[asyncio.Task] = set()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        recovered = False
        while not self._stopping:
            try:
                if not recovered:
                    await self._recover_dead_owners()
                    recovered = True
                await self._step()
            except Exception:  # the database failed us: the queue is safe in it, try again soon
                log.exception("delivery worker: database error; retrying in %.1f s",
                              self.settings.poll_interval)
                await asyncio.sleep(self.settings.poll_interval)

    async def _step(self) -> None:
        """Claim what is due into the free delivery slots, then wait for more work."""
        free = self.settings.concurrency - len(self._inflight)
        if free <= 0:
            await asyncio.wait(set(self._inflight), return_when=asyncio.FIRST_COMPLETED)
            return
        lease = timedelta(seconds=self.settings.lease_seconds)
        self._wake.clear()  # before claiming, so a wake-up during the claim is not lost
        claimed = await self.db.write(lambda c: q.claim(c, self.owner, lease, free, self.sealer))
        for entry in claimed:
            task = asyncio.create_task(self._deliver(entry))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        if len(claimed) < free:
            await self._sleep()

    async def _recover_dead_owners(self) -> None:
        """Release at once what a crashed process on this host held, not after its lease."""
        owners = await self.db.read(q.lease_owners)
        dead = [owner for owner in owners if owner_is_dead(owner, self.owner)]
        if dead:
            count = await self.db.write(lambda c: q.expire_leases(c, dead))
            log.warning("recovered %d queue entries leased by dead workers %s", count, dead)

    def _done(self, task: asyncio.Task) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task failed", exc_info=task.exception())

    async def _sleep(self) -> None:
        timeout = self.settings.poll_interval
        due = await self.db.read(q.next_due)
        if due is not None:
            timeout = max(0.0, min(timeout, (due - utcnow()).total_seconds()))
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=timeout)
        except asyncio.TimeoutError:
            pass

    async def stop(self) -> None:
        """Let deliveries in flight finish for `stop_grace`, cancel the rest, give back their leases.

        A cancelled delivery may already have reached the other side; it is
        sent again after the restart (at least once, never lost).
        """
        self._stopping = True
        self._wake.set()
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=self.settings.stop_grace)
        late = set(self._inflight)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
            log.info("stopped %d deliveries in flight; they are queued again", len(late))
        self.transport.close()
        await self.db.write(lambda c: q.release(c, self.owner))

    async def _deliver(self, entry: q.Claimed) -> None:
        if entry.poisoned:
            outcome = Permanent("the relay failed repeatedly while delivering this message", "4.3.0")
            await self.db.write(lambda c: self._bounce(c, entry, outcome, state="parked"))
            self.wake()
            return
        try:
            envelope_from, data = await self._prepare(entry)
            outcome = await self.transport.send(envelope_from, entry.recipient, data)
        except Exception:  # a bug of ours: retry like a 4xx rather than strand the entry in its lease
            log.exception("queue %d: delivery attempt failed unexpectedly", entry.id)
            outcome = Temporary("internal error in the relay")
        if isinstance(outcome, Delivered):
            await self.db.write(lambda c: q.finish(c, entry.id, self.owner, "delivered",
                                                   message_id=entry.message_id, sealer=self.sealer,
                                                   key_id=entry.key_id))
            log.debug("queue %d: delivered (message %d, TLS %s)", entry.id, entry.message_id,
                      outcome.tls or "as kept")
            return
        if isinstance(outcome, Temporary):
            when = next_attempt(self.settings.retry_schedule, self.settings.max_age,
                                entry.created_at, utcnow(), entry.attempts)
            if when is not None:
                await self.db.write(lambda c: q.finish(c, entry.id, self.owner, "deferred",
                                                       outcome.error, when, entry.message_id,
                                                       sealer=self.sealer, key_id=entry.key_id))
                log.info("queue %d: deferred until %s: %s", entry.id, when.isoformat(), outcome.error)
                return
            outcome = Permanent(f"gave up after {entry.attempts} attempts: {outcome.error}", "4.4.7")
        await self.db.write(lambda c: self._bounce(c, entry, outcome))
        self.wake()  # a DSN may have been queued
        log.info("queue %d: bounced: %s", entry.id, outcome.error)

    async def _prepare(self, entry: q.Claimed) -> tuple[str, bytes]:
        """The envelope sender and the bytes of this attempt: VERP, and a fresh DKIM signature.

        A conversation message goes out from its own bounce address
        (`aliasing.verp`, made from the queue entry id); the relay's notices
        and DSNs keep the null sender. Signing runs in a thread (see
        `relay.signing`); if it fails, the attempt fails like a 4xx.
        """
        envelope_from = entry.envelope_from
        if envelope_from and entry.kind == "conversation" and self.verp is not None:
            envelope_from = self.verp.address(entry.id)
        data = entry.data
        if self.signer is not None:
            data = await self.signer.sign(data)
        return envelope_from, data

    def _bounce(self, conn, entry: q.Claimed, outcome: Permanent, state: str = "bounced") -> None:
        if not q.finish(conn, entry.id, self.owner, state, outcome.error, message_id=entry.message_id,
                        sealer=self.sealer, key_id=entry.key_id):
            return
        if not entry.envelope_from or entry.kind != "conversation":
            return  # never bounce a bounce or a notice
        row = conn.execute(
            select(messages.c.mail_from, messages.c.received_at, messages.c.key_id, bodies.c.original,
                   bodies.c.key_id.label("body_key_id"))
            .join(bodies, bodies.c.message_id == messages.c.id)
            .where(messages.c.id == entry.message_id)).first()
        mail_from = self.sealer.text("messages.mail_from", row.mail_from, row.key_id)
        original = self.sealer.open("message_bodies.original", row.original, row.body_key_id)
        data = dsn(self.sender, to=mail_from, recipient_alias=entry.recipient_alias or "",
                   status=outcome.status, diagnostic=outcome.error,
                   original_headers=header_block(original),
                   arrival=row.received_at.strftime("%a, %d %b %Y %H:%M:%S +0000"),
                   scrub={entry.recipient.lower(): entry.recipient_alias or ""})
        log_message(conn, NewMessage(kind="dsn", thread_id=entry.thread_id, mail_from="",
                                     rcpt_to=[mail_from], original=data, delivered=data,
                                     status="queued", subject="delivery status notification",
                                     deliveries=[NewDelivery("", mail_from)]), self.sealer)
