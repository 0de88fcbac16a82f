"""Rate limits per sender, per thread and per client network, and the header limit.

`RateLimiter` answers two questions for the intake:

- `check(thread_id, mail_from, peer_ip)` at RCPT: is any limit already
  reached? A read, so that a client over its limit is told before it
  sends the message (`451 4.7.1` with the limit that was hit);
- `admit(conn, ...)`, run inside the transaction that commits an accepted
  message: counts again, raises `RateLimited` if a limit is reached (the
  transaction, and with it the message, is then not committed), else
  records the accept events in that same transaction. On SQLite every
  writing transaction holds the database's write lock from its start
  (`BEGIN IMMEDIATE`), so relay processes sharing the file count exactly.

Only accepted messages count: a refused or deferred message leaves no
event. A thread is counted from the message log; senders and networks
from `accept_events`, keyed by `key_hash`, a keyed hash the composition
root supplies, so the table holds no address. An IPv6 client is counted
by its /64 network (one host often owns the whole /64). Events older than
an hour are deleted in the same transactions (on an index: the few that
aged out since the last message).

`header_length(raw)` is the size of the header block, for the
`max_header_bytes` limit that the intake checks before parsing, and
`parse_bounded(raw)` parses a message at most `MAX_MIME_PARTS` parts and
`MAX_MIME_DEPTH` levels deep (Postfix's `mime_nesting_limit`): it stops
as soon as the parser creates one part too many, so ten thousand tiny
parts cost no more than a thousand, and checks the depth without
recursion, before any rule or the rewrite walks the tree recursively.
Beyond either it raises `TooComplex` with the reply to give (554 5.6.0).
"""

from __future__ import annotations

import email
import ipaddress
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from aliasing.addresses import try_parse
from policy.parsed import POLICY, ParsedMessage
from relay import replies
from relay.replies import Reply
from storage import limits as store
from storage.db import Database
from storage.timeutil import utcnow

MAX_MIME_PARTS = 1000
MAX_MIME_DEPTH = 100
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class RateSettings:
    per_sender_per_hour: int = 0    # 0: off
    per_thread_per_hour: int = 0
    per_ip_per_minute: int = 0

    @property
    def any(self) -> bool:
        return bool(self.per_sender_per_hour or self.per_thread_per_hour or self.per_ip_per_minute)


class RateLimited(Exception):
    """Raised inside the commit transaction: a limit is reached, nothing is stored."""

    def __init__(self, reply: Reply):
        super().__init__(reply.text)
        self.reply = reply


def network_of(peer_ip: str | None) -> str | None:
    """The address an IPv4 client is counted by, or the /64 of an IPv6 one."""
    if not peer_ip:
        return None
    try:
        ip = ipaddress.ip_address(peer_ip)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass(frozen=True)
class _Keys:
    sender: str | None
    ip: str | None


class RateLimiter:
    def __init__(self, settings: RateSettings, db: Database, key_hash: Callable[[str], str]):
        self.settings = settings
        self.db = db
        self.key_hash = key_hash

    def _keys(self, mail_from: str, peer_ip: str | None) -> _Keys:
        s = self.settings
        sender = try_parse(mail_from) if s.per_sender_per_hour else None
        network = network_of(peer_ip) if s.per_ip_per_minute else None
        return _Keys(self.key_hash(sender.key) if sender else None,
                     self.key_hash(network) if network else None)

    def _over(self, conn: Connection, thread_id: int, keys: _Keys, now: datetime) -> Reply | None:
        s = self.settings
        if keys.ip and store.count_events(conn, "ip", keys.ip, now - MINUTE) >= s.per_ip_per_minute:
            return replies.R451_RATE_IP
        if keys.sender and store.count_events(conn, "sender", keys.sender, now - HOUR) >= s.per_sender_per_hour:
            return replies.R451_RATE_SENDER
        if s.per_thread_per_hour and store.count_thread(conn, thread_id, now - HOUR) >= s.per_thread_per_hour:
            return replies.R451_RATE_THREAD
        return None

    async def check(self, thread_id: int, mail_from: str, peer_ip: str | None) -> Reply | None:
        """The limit already reached for a new message, if any (a read, at RCPT)."""
        if not self.settings.any:
            return None
        keys = self._keys(mail_from, peer_ip)
        return await self.db.read(lambda c: self._over(c, thread_id, keys, utcnow()))

    def admission(self, thread_id: int, mail_from: str, peer_ip: str | None) -> Callable[[Connection], None]:
        """What the commit transaction runs before storing the message (see the module text)."""
        keys = self._keys(mail_from, peer_ip)

        def admit(conn: Connection) -> None:
            if not self.settings.any:
                return
            now = utcnow()
            reply = self._over(conn, thread_id, keys, now)
            if reply is not None:
                raise RateLimited(reply)
            store.record_events(conn, [(kind, key) for kind, key in (("ip", keys.ip), ("sender", keys.sender))
                                       if key], now)
            store.prune_events(conn, now - HOUR)
        return admit


def header_length(raw: bytes) -> int:
    """Bytes before the blank line that ends the header (all of them if there is none)."""
    if raw.startswith((b"\r\n", b"\n")):
        return 0
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    return min(ends) if ends else len(raw)


class TooComplex(Exception):
    """The message's MIME structure is beyond the limits; `reply` says which."""

    def __init__(self, reply: Reply):
        super().__init__(reply.text)
        self.reply = reply


def parse_bounded(raw: bytes) -> ParsedMessage:
    made = itertools.count()

    def factory(policy=POLICY):
        if next(made) > MAX_MIME_PARTS:  # the first call is the parser trying the factory out
            raise TooComplex(replies.R554_TOO_MANY_PARTS)
        return POLICY.message_factory(policy=policy)
    try:
        message = email.message_from_bytes(raw, _class=factory, policy=POLICY)
    except RecursionError:
        raise TooComplex(replies.R554_MIME_TOO_DEEP) from None
    if mime_depth(message) > MAX_MIME_DEPTH:
        raise TooComplex(replies.R554_MIME_TOO_DEEP)
    return ParsedMessage(message, raw)


def mime_depth(message) -> int:
    """Levels of nesting (1: a single part), walked without recursion."""
    deepest = 0
    stack = [(message, 1)]
    while stack:
        part, depth = stack.pop()
        deepest = max(deepest, depth)
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            stack.extend((child, depth + 1) for child in payload)
    return deepest
