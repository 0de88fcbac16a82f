"""The SMTP layer: aiosmtpd on the app's own event loop, translating only.

`Handler` turns RCPT and DATA into calls on the `Intake` and the returned
`Reply` into the line the client sees. It decides nothing itself. What it
adds to aiosmtpd:

- the PIPELINING keyword in the EHLO answer (aiosmtpd reads pipelined
  commands already) next to SIZE, 8BITMIME and SMTPUTF8;
- DATA read in large chunks (`relay.smtp_data`) rather than aiosmtpd's
  line at a time, with the same end-of-data and limit rules;
- over-size mail answered `552 5.3.4` (aiosmtpd's own text has no
  enhanced status code), both at `MAIL ... SIZE=` and after DATA;
- STARTTLS when a certificate is configured (aiosmtpd's `tls_context`),
  optionally required before MAIL (`530 5.7.0`);
- session limits: over `max_connections` a new client gets `421 4.7.0`
  and is closed; an idle client (`[smtp] timeout`, also the bound on one
  DATA) and a session older than `session_timeout` get `421 4.4.2` and
  are closed, never while the intake is working on their message;
- an exception in a hook answered 451 with no detail (aiosmtpd would
  otherwise send the exception text to the client), logged in full here;
- a graceful stop: the listener closes, idle sessions are closed, and
  sessions inside a transaction get `shutdown_grace` seconds to finish.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass

from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException

from aliasing.addresses import try_parse
from relay import replies, smtp_data
from relay.intake import Intake, Transaction
from relay.smtp_data import DataState

log = logging.getLogger(__name__)

_ENVELOPE_TXN = "relay_txn"


class Handler:
    def __init__(self, intake: Intake):
        self.intake = intake

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        return responses[:-1] + ["250-PIPELINING", responses[-1]]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        if address not in ("", "<>") and try_parse(address) is None:
            return str(replies.R553_BAD_ADDRESS)
        # The null sender stays "<>" here: aiosmtpd reads an empty mail_from
        # as "no MAIL yet" and would answer RCPT with 503 instead of our 550.
        envelope.mail_from = address or "<>"
        envelope.mail_options.extend(mail_options)
        peer = session.peer[0] if isinstance(session.peer, tuple) and session.peer else None
        setattr(envelope, _ENVELOPE_TXN, Transaction(peer_ip=peer, helo=session.host_name))
        return str(replies.R250_SENDER_OK)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        txn = getattr(envelope, _ENVELOPE_TXN)
        reply = await self.intake.check_recipient(txn, _sender(envelope), address)
        if reply.accepted:
            envelope.rcpt_tos.append(address)
        return str(reply)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        txn = getattr(envelope, _ENVELOPE_TXN)
        server.busy = True
        try:
            reply = await self.intake.accept(txn, _sender(envelope), envelope.original_content)
        finally:
            server.busy = False
        return str(reply)

    async def handle_oversize(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """DATA went past the size limit: its bytes are gone, the refusal is logged."""
        txn = getattr(envelope, _ENVELOPE_TXN)
        return str(await self.intake.refuse_oversize(txn, _sender(envelope)))

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):  # the client gave up on the handshake: no bug here
            log.info("STARTTLS handshake failed: %r", error.__cause__)
        else:
            log.error("SMTP session error", exc_info=error)
        return str(replies.R451_TEMPORARY)


def _sender(envelope: Envelope) -> str:
    """The envelope sender as the intake sees it: "" for the null sender."""
    return "" if envelope.mail_from == "<>" else envelope.mail_from


@dataclass(frozen=True)
class SessionLimits:
    max_connections: int = 100          # sessions at once in this process
    session_timeout: float = 1200.0     # seconds a whole session may last


# aiosmtpd's own replies that lack an enhanced status code, by their start.
_REWORDED = {"552 Error:": replies.R552_TOO_BIG, "530 Must issue a STARTTLS": replies.R530_STARTTLS_FIRST,
             "454 TLS not available": replies.R454_NO_TLS}


class RelaySMTP(SMTP):
    """aiosmtpd's SMTP with enhanced codes, session tracking and session limits."""

    # RFC 5321 4.5.3.1.6: 998 characters and CRLF; aiosmtpd's default allows 999.
    line_length_limit = 1000

    def __init__(self, handler: Handler, sessions: set, limits: SessionLimits, **kwargs):
        super().__init__(handler, **kwargs)
        self._sessions = sessions
        self._limits = limits
        self._refused = False
        self._deadline: asyncio.TimerHandle | None = None
        self.busy = False

    def connection_made(self, transport) -> None:
        first = self.transport is None  # later calls come after STARTTLS
        if first and len(self._sessions) >= self._limits.max_connections:
            self._refused = True
            transport.write(f"{replies.R421_TOO_MANY_CONNECTIONS}\r\n".encode())
            transport.close()
            return
        self._sessions.add(self)
        super().connection_made(transport)
        if first:
            self._deadline = self.loop.call_later(self._limits.session_timeout, self._session_expired)

    def connection_lost(self, error) -> None:
        if self._refused:
            return
        if self._deadline is not None:
            self._deadline.cancel()
        self._sessions.discard(self)
        super().connection_lost(error)

    def eof_received(self):
        return False if self._refused else super().eof_received()

    def _timeout_cb(self) -> None:
        """aiosmtpd's idle timeout, with a 421 first and never during the intake's work."""
        if self.busy:
            self._reset_timeout()
            return
        self._say_goodbye(replies.R421_TIMEOUT)

    def _session_expired(self) -> None:
        if self.busy:
            self._deadline = self.loop.call_later(1, self._session_expired)
            return
        log.info("%r session time limit reached", self.session.peer if self.session else None)
        self._say_goodbye(replies.R421_SESSION_TIMEOUT)

    def _say_goodbye(self, reply) -> None:
        if self.transport is None:
            return
        if getattr(self, "_writer", None) is not None:
            self._writer.write(f"{reply}\r\n".encode())
        self.transport.close()  # the reply is flushed before the socket closes

    async def push(self, status) -> None:
        if isinstance(status, str):
            for start, reply in _REWORDED.items():
                if status.startswith(start):
                    status = str(reply)
        await super().push(status)

    async def smtp_DATA(self, arg: str) -> None:
        if self._reader is None or not smtp_data.supported(self._reader):
            await super().smtp_DATA(arg)
            return
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        result = await smtp_data.read_data(self._reader, self.data_size_limit, self.line_length_limit)
        if result.state is DataState.CLOSED:
            return
        if result.state is DataState.TOO_MUCH:
            status = await self.event_handler.handle_oversize(self, self.session, self.envelope)
            self._set_post_data_state()
            await self.push(status)
            return
        if result.state is DataState.TOO_LONG:
            self._set_post_data_state()
            await self.push(str(replies.R500_LINE_TOO_LONG))
            return
        self.envelope.content = self.envelope.original_content = result.content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(status)

    def close_idle(self) -> None:
        in_transaction = self.envelope is not None and self.envelope.mail_from is not None
        if not (self.busy or in_transaction) and self.transport is not None:
            self.transport.close()


class SmtpServer:
    def __init__(self, handler: Handler, *, host: str, port: int, hostname: str,
                 max_message_bytes: int, timeout: float, shutdown_grace: float,
                 limits: SessionLimits = SessionLimits(), tls_context: ssl.SSLContext | None = None,
                 require_tls: bool = False):
        self.handler = handler
        self.host, self.port = host, port
        self.hostname = hostname
        self.max_message_bytes = max_message_bytes
        self.timeout = timeout
        self.shutdown_grace = shutdown_grace
        self.limits = limits
        self.tls_context, self.require_tls = tls_context, require_tls
        self.sessions: set[RelaySMTP] = set()
        self._server: asyncio.Server | None = None

    def _protocol(self) -> RelaySMTP:
        return RelaySMTP(self.handler, self.sessions, self.limits, data_size_limit=self.max_message_bytes,
                         tls_context=self.tls_context, require_starttls=self.require_tls,
                         enable_SMTPUTF8=True, hostname=self.hostname, ident="Marketplace Relay",
                         timeout=self.timeout, loop=asyncio.get_running_loop())

    async def start(self, sock: socket.socket | None = None) -> tuple[str, int]:
        """Listen on host:port, or on `sock` when a supervisor bound it for several processes."""
        loop = asyncio.get_running_loop()
        if sock is not None:
            self._server = await loop.create_server(self._protocol, sock=sock)
        else:
            self._server = await loop.create_server(self._protocol, host=self.host, port=self.port,
                                                    reuse_address=True)
        sockname = self._server.sockets[0].getsockname()
        self.port = sockname[1]
        log.info("SMTP listening on %s:%d", sockname[0], sockname[1])
        return sockname[0], sockname[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.shutdown_grace
        while self.sessions and loop.time() < deadline:
            for session in list(self.sessions):
                session.close_idle()
            await asyncio.sleep(0.05)
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.close()
        self._server = None
