"""The intake pipeline: from an SMTP envelope and raw bytes to one reply.

The SMTP layer calls three things and turns what they return into replies:

- `check_recipient(txn, mail_from, rcpt)` at RCPT: the alias domain, the
  alias itself (decoded without a database read, then the thread loaded),
  whether the thread is closed, one conversation per transaction, whether
  the envelope sender is a participant allowed to write to that alias,
  and the rate limits (`relay.limits`);
- `accept(txn, mail_from, raw)` at DATA: the header size, parse once
  (bounded in parts and depth), authenticate the sender (SPF, DKIM,
  DMARC: `relay.auth`), then the stages in `relay.stages` (loop, header
  From, sender authentication, content policy), the privacy rewrite, and
  one committed write of the log record, its queue entries, the buyer's
  acknowledgment and the rate-limit events (the limits are counted again
  in that transaction: over one, nothing is stored and the answer is 451
  4.7.1). Only after that commit does it return 250. Refusals are logged
  too, and every log record keeps the authentication results; rate-limit
  deferrals are not logged.

A recipient in the bounce namespace (`bounces+<token>`, `aliasing.verp`)
is handed to `relay.bounces.BounceHandler` at RCPT and at DATA instead.

Anything unexpected before the commit becomes 451 (try again later): the
sender keeps the message, so nothing accepted is ever lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from aliasing.addresses import AddressError, parse_address, try_parse
from aliasing.codec import KeyRing, Party
from aliasing.verp import is_bounce_local
from policy.engine import evaluate
from policy.parsed import ParsedMessage
from policy.rule import Context, Direction, Rule
from policy.warning_texts import warning_paragraph
from relay import replies, stages
from relay.auth.check import Authenticator, AuthRequest, header_from_domain
from relay.auth.results import AuthResults
from relay.bounces import BounceHandler
from relay.classify import is_auto_reply
from relay.limits import RateLimited, RateLimiter, TooComplex, header_length, parse_bounded
from relay.notices import Sender, acknowledgment
from relay.replies import Reply
from relay.msgids import referenced_ids
from relay.rewrite import RewritePlan, rewrite
from storage import directory
from storage.db import Database
from storage.bounces import BounceTarget
from storage.directory import ThreadInfo
from storage.messages import AttachmentInfo, NewDelivery, NewMessage, log_message, map_message_ids
from storage.sealing import Sealer

log = logging.getLogger(__name__)
T = TypeVar("T")
# Parsing and rewriting a message this large takes long enough (milliseconds
# to tens of them) to hold up every other session if done on the event loop.
OFF_LOOP_BYTES = 256 * 1024


@dataclass
class Transaction:
    """What RCPT has established for the DATA that follows."""

    thread: ThreadInfo | None = None
    party: Party | None = None          # whom the accepted alias stands for
    recipients: list[str] = field(default_factory=list)
    peer_ip: str | None = None          # the connecting client, for SPF
    helo: str | None = None             # the name it gave in HELO/EHLO
    bounce: BounceTarget | None = None  # set when RCPT named a bounce address (relay.bounces)

    @property
    def direction(self) -> Direction:
        return Direction.BUYER_TO_SELLER if self.party is Party.SELLER else Direction.SELLER_TO_BUYER


@dataclass(frozen=True)
class IntakeSettings:
    alias_domain: str
    marketplace_name: str
    max_recipients: int
    bounce_local: str = "bounces"
    max_header_bytes: int = 64 * 1024


class Intake:
    def __init__(self, settings: IntakeSettings, db: Database, keyring: KeyRing, rules: list[Rule],
                 sender: Sender, on_queued: Callable[[], None] = lambda: None,
                 sender_checks: list[stages.SenderCheck] | None = None,
                 authenticator: Authenticator | None = None, limiter: RateLimiter | None = None,
                 bounces: BounceHandler | None = None, *, sealer: Sealer):
        self.settings = settings
        self.sealer = sealer
        self.db = db
        self.keyring = keyring
        self.rules = rules
        self.sender = sender
        self.on_queued = on_queued
        self.sender_checks = sender_checks or []
        self.authenticator = authenticator  # None: nothing checked, results recorded as none
        self.limiter = limiter
        self.bounces = bounces

    def alias_address(self, local: str) -> str:
        return f"{local}@{self.settings.alias_domain}"

    async def check_recipient(self, txn: Transaction, mail_from: str, rcpt: str) -> Reply:
        try:
            address = parse_address(rcpt)
        except AddressError:
            return replies.R553_BAD_ADDRESS
        if address.domain != self.settings.alias_domain:
            return replies.R550_RELAY_DENIED
        if is_bounce_local(address.local):  # returned mail: relay.bounces
            if self.bounces is None:
                return replies.R550_UNKNOWN_BOUNCE_ADDRESS
            return await self.bounces.check_recipient(txn, address)
        if txn.bounce is not None:
            return replies.R452_ONE_REPORT
        if not mail_from:
            return replies.R550_NULL_SENDER
        if len(txn.recipients) >= self.settings.max_recipients:
            return replies.R452_TOO_MANY_RECIPIENTS
        decoded = self.keyring.decode(address.local)
        if decoded is None:
            return replies.R550_UNKNOWN_ALIAS
        if txn.thread is not None and (decoded.thread_id != txn.thread.id or decoded.party != txn.party):
            return replies.R452_ONE_CONVERSATION
        thread = txn.thread or await self.db.read(
            lambda c: directory.load_thread(c, self.sealer, decoded.thread_id))
        if thread is None:
            return replies.R550_UNKNOWN_ALIAS
        alias = thread.buyer_alias if decoded.party is Party.BUYER else thread.seller_alias
        if alias != address.local.lower():
            return replies.R550_UNKNOWN_ALIAS  # an alias of a rotated-away encoding
        if thread.closed_at is not None:
            return replies.R550_THREAD_CLOSED
        sender = try_parse(mail_from)
        if sender is None or sender.key not in thread.senders_for(decoded.party):
            return replies.R550_NOT_PARTICIPANT
        if txn.thread is None and self.limiter is not None:
            limited = await self.limiter.check(thread.id, mail_from, txn.peer_ip)
            if limited is not None:
                return limited
        txn.thread, txn.party = thread, decoded.party
        if address.key not in txn.recipients:
            txn.recipients.append(address.key)
        return replies.R250_RECIPIENT_OK

    async def accept(self, txn: Transaction, mail_from: str, raw: bytes) -> Reply:
        if txn.bounce is not None and self.bounces is not None:
            return await self.bounces.accept(txn, mail_from, raw)
        thread, party = txn.thread, txn.party
        if thread is None or party is None:
            return replies.R451_TEMPORARY
        ctx = Context(txn.direction, thread.order_id, self.settings.marketplace_name, self.settings.alias_domain)
        if header_length(raw) > self.settings.max_header_bytes:
            return await self._refuse(txn, mail_from, raw, None, "header-size", replies.R552_HEADER_TOO_BIG,
                                      "header larger than [limits] max_header_bytes", "")
        try:
            parsed = await self._cpu(len(raw), parse_bounded, raw)
        except TooComplex as exc:
            return await self._refuse(txn, mail_from, raw, None, "mime-structure", exc.reply, str(exc), "")
        except Exception:  # the parser is meant not to raise; if it does, refuse cleanly
            log.exception("message from a %s could not be parsed", txn.direction.value)
            return await self._refuse(txn, mail_from, raw, None, "parse", replies.R554_UNPARSEABLE,
                                      "unparseable message", "")
        auth = await self._authenticate(txn, mail_from, raw, parsed)
        refusal = await stages.first_refusal(parsed, thread, party, mail_from, self.sender_checks, auth)
        if refusal is not None:
            return await self._refuse(txn, mail_from, raw, parsed, refusal.rule, refusal.reply,
                                      refusal.reason, refusal.excerpt, auth)
        outcome = await self._cpu(len(raw), evaluate, self.rules, parsed, ctx)
        if outcome.refusal is not None:
            r = outcome.refusal
            return await self._refuse(txn, mail_from, raw, parsed, outcome.rule, r.reply, r.reason,
                                      r.excerpt, auth)
        return await self._deliver(txn, mail_from, raw, parsed, outcome.parsed, outcome.warning,
                                   "; ".join(outcome.notes) or None, auth)

    async def _authenticate(self, txn: Transaction, mail_from: str, raw: bytes,
                            parsed: ParsedMessage) -> AuthResults:
        from_domain = header_from_domain(parsed)
        if self.authenticator is None:
            return AuthResults.not_checked(from_domain)
        return await self.authenticator.authenticate(
            AuthRequest(txn.peer_ip, txn.helo, mail_from, raw, from_domain))

    async def _cpu(self, size: int, fn: Callable[..., T], *args) -> T:
        """Run CPU work for a large message in a thread, so other sessions go on meanwhile."""
        if size < OFF_LOOP_BYTES:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    async def refuse_oversize(self, txn: Transaction, mail_from: str) -> Reply:
        """Log a message that went past `max_message_bytes` (its bytes are not kept)."""
        if txn.thread is None:
            return replies.R552_TOO_BIG
        return await self._refuse(txn, mail_from, b"", None, "size", replies.R552_TOO_BIG,
                                  "message larger than [smtp] max_message_bytes", "")

    async def _deliver(self, txn: Transaction, mail_from: str, raw: bytes, original: ParsedMessage,
                       final: ParsedMessage, warning: str | None, notes: str | None,
                       auth: AuthResults) -> Reply:
        thread, party = txn.thread, txn.party
        assert thread is not None and party is not None
        # Read what the log keeps of the original now: `rewrite` changes the
        # message in place, and `final` is `original` when no rule transformed it.
        subject = original.subject
        auto = is_auto_reply(original)
        header_from = _header_from(original)
        orig_message_id = _first_id(original.header("Message-ID"))
        attachments = await self._cpu(len(raw), _attachment_infos, original)
        ids = referenced_ids(final.message)
        id_map = await self.db.read(lambda c: map_message_ids(c, thread.id, ids)) if ids else {}
        relay_id = self.sender.new_message_id()
        sender_party = Party.BUYER if party is Party.SELLER else Party.SELLER
        new_subject = None
        if txn.direction is Direction.BUYER_TO_SELLER and thread.order_id not in subject:
            new_subject = f"{subject} (Order {thread.order_id})" if subject else f"Order {thread.order_id}"
        plan = RewritePlan(
            sender_display=f"{self._party_name(thread, sender_party)} via {self.settings.marketplace_name}",
            sender_alias=self.alias_address(self._alias_of(thread, sender_party)),
            recipient_alias=self.alias_address(self._alias_of(thread, party)),
            relay_message_id=relay_id,
            address_map=self._address_map(thread),
            id_map=id_map,
            subject=new_subject,
            warning=(warning, warning_paragraph(warning, self.settings.marketplace_name)) if warning else None,
        )
        delivered = await self._cpu(len(raw), rewrite, final.message, plan, final.raw)
        recipient = thread.buyer_email if party is Party.BUYER else thread.seller_email
        record = NewMessage(
            kind="conversation", thread_id=thread.id, direction=txn.direction.value,
            mail_from=mail_from, rcpt_to=list(txn.recipients), header_from=header_from,
            subject=subject, orig_message_id=orig_message_id,
            relay_message_id=relay_id, original=raw, delivered=delivered, status="queued",
            reason=notes, warning=warning, auto_reply=auto, attachments=attachments,
            auth=auth.summary(), auth_results=auth.header(self.sender.hostname),
            deliveries=[NewDelivery(f"{self.settings.bounce_local}@{self.settings.alias_domain}",
                                    recipient, plan.recipient_alias)],
        )
        notice = None
        if txn.direction is Direction.BUYER_TO_SELLER and not auto:
            notice = self._acknowledgment(thread, subject, record.orig_message_id)
        admit = self.limiter.admission(thread.id, mail_from, txn.peer_ip) if self.limiter else None
        try:
            await self.db.write(lambda c: _store(c, record, notice, self.sealer, admit))
        except RateLimited as limited:
            log.info("deferred %s message for thread %s: %s", txn.direction.value, thread.id, limited)
            return limited.reply
        self.on_queued()
        return replies.R250_QUEUED

    def _acknowledgment(self, thread: ThreadInfo, subject: str, in_reply_to: str | None) -> NewMessage:
        data = acknowledgment(self.sender, to=thread.buyer_email, seller_name=thread.seller_name,
                              seller_alias=self.alias_address(thread.seller_alias),
                              order_id=thread.order_id, subject=subject, in_reply_to=in_reply_to)
        return NewMessage(kind="notice", thread_id=thread.id, mail_from="", rcpt_to=[thread.buyer_email],
                          original=data, delivered=data, status="queued",
                          subject=f"acknowledgment for order {thread.order_id}",
                          deliveries=[NewDelivery("", thread.buyer_email)])

    async def _refuse(self, txn: Transaction, mail_from: str, raw: bytes, parsed: ParsedMessage | None,
                      rule: str | None, reply: Reply, reason: str, excerpt: str,
                      auth: AuthResults | None = None) -> Reply:
        thread = txn.thread
        subject = parsed.subject if parsed else None
        record = NewMessage(
            kind="conversation", thread_id=thread.id if thread else None, direction=txn.direction.value,
            mail_from=mail_from, rcpt_to=list(txn.recipients),
            header_from=_header_from(parsed) if parsed else None, subject=subject,
            orig_message_id=_first_id(parsed.header("Message-ID")) if parsed else None,
            original=raw, status="rejected", rule=rule, reason=reason, excerpt=excerpt[:500] or None,
            auth=auth.summary() if auth else None,
            auth_results=auth.header(self.sender.hostname) if auth else None)
        log.info("refused %s message for thread %s: rule=%s reason=%s",
                 txn.direction.value, thread.id if thread else None, rule, reason)
        await self.db.write(lambda c: log_message(c, record, self.sealer))
        return reply

    @staticmethod
    def _alias_of(thread: ThreadInfo, party: Party) -> str:
        return thread.buyer_alias if party is Party.BUYER else thread.seller_alias

    @staticmethod
    def _party_name(thread: ThreadInfo, party: Party) -> str:
        return thread.buyer_name if party is Party.BUYER else thread.seller_name

    def _address_map(self, thread: ThreadInfo) -> dict[str, str]:
        seller_alias = self.alias_address(thread.seller_alias)
        mapping = {key: seller_alias for key in thread.seller_addresses}
        mapping[thread.buyer_email.lower()] = self.alias_address(thread.buyer_alias)
        return mapping


def _attachment_infos(parsed: ParsedMessage) -> list[AttachmentInfo]:
    return [AttachmentInfo(a.filename, a.content_type, len(a.data), a.sha256) for a in parsed.attachments]


def _store(conn, record: NewMessage, notice: NewMessage | None, sealer: Sealer,
           admit: Callable | None = None) -> int:
    if admit is not None:
        admit(conn)  # counts and records the rate-limit events, or raises RateLimited
    message_id = log_message(conn, record, sealer)
    if notice is not None:
        log_message(conn, notice, sealer)
    return message_id


def _header_from(parsed: ParsedMessage) -> str | None:
    return (parsed.header("From") or "")[:320] or None  # the log's column holds one address line


def _first_id(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()
    start, end = value.find("<"), value.find(">")
    if 0 <= start < end:
        return value[start:end + 1][:998]
    return None
