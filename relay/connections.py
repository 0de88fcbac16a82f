"""Reusing SMTP connections between deliveries to the same server.

Opening a connection (TCP, greeting, EHLO, perhaps STARTTLS) costs more
than sending a small message. After a delivery that went well, the client
is kept for `idle_limit` seconds for the next message to the same host and
port, as Postfix's connection cache does. Only connections whose last
transaction succeeded are kept, so each starts clean at MAIL FROM.

A kept connection may have been closed by the server meanwhile; the
transport notices that when it sends MAIL FROM, before any of the message
has gone out, and tries again once on a new connection.
"""

from __future__ import annotations

import time

import aiosmtplib

Key = tuple  # (host, port, ...): what a kept connection may be used for


class ConnectionCache:
    def __init__(self, idle_limit: float = 2.0, max_idle: int = 16):
        self.idle_limit = idle_limit
        self.max_idle = max_idle
        self._idle: dict[Key, list[tuple[float, aiosmtplib.SMTP]]] = {}

    def take(self, key: Key) -> aiosmtplib.SMTP | None:
        """A live idle connection to `key`, most recently used first, or None."""
        entries = self._idle.get(key, [])
        now = time.monotonic()
        while entries:
            since, client = entries.pop()
            if now - since <= self.idle_limit and client.is_connected:
                return client
            client.close()
        return None

    def give(self, key: Key, client: aiosmtplib.SMTP) -> None:
        entries = self._idle.setdefault(key, [])
        now = time.monotonic()
        fresh = [(t, c) for t, c in entries if now - t <= self.idle_limit and c.is_connected]
        for t, c in entries:
            if (t, c) not in fresh:
                c.close()
        fresh.append((now, client))
        while len(fresh) > self.max_idle:
            fresh.pop(0)[1].close()
        self._idle[key] = fresh

    def close_all(self) -> None:
        for entries in self._idle.values():
            for _t, client in entries:
                client.close()
        self._idle.clear()
