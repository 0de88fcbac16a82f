"""Several relay processes sharing one port and one database.

One Python process uses one core. With `[smtp] processes = N` (N > 1),
`relay serve` binds the listening socket once, then forks N workers; each
runs the whole relay (SMTP server on the inherited socket, its own
database writer and delivery worker) and the kernel spreads connections
among them. The database keeps them consistent: a queue entry is claimed
by one worker at a time (see `storage.queue.claim`).

The parent only supervises: SIGTERM or SIGINT is passed on to every
worker, which stops gracefully (as it does when the parent disappears); a worker that dies without being asked is
started again (at most once a second, so a crash loop does not spin).
The parent exits 0 once every worker has stopped after a signal, or with
the first failure's status if workers keep failing at start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time

from relay.app import initialize, serve
from relay.config import Config, ConfigError
from relay.tls import server_context

log = logging.getLogger(__name__)
RESTART_DELAY = 1.0
PARENT_CHECK_INTERVAL = 0.5
MAX_QUICK_FAILURES = 3  # workers dying this often right after start: give up


def bind(host: str, port: int) -> socket.socket:
    """The shared listener; ConfigError (one line) if it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _name, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(512)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise ConfigError(f"[smtp] cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


async def _worker(serving, parent: int) -> None:
    """Run `serving`; stop gracefully if the supervisor disappears (even by SIGKILL)."""
    async def watch() -> None:
        while os.getppid() == parent:
            await asyncio.sleep(PARENT_CHECK_INTERVAL)
        log.warning("the supervisor is gone; stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = asyncio.create_task(watch())
    try:
        await serving
    finally:
        watcher.cancel()


def run(config: Config, processes: int) -> int:
    """Serve with `processes` workers; returns the exit status."""
    initialize(config).close()  # once, before forking: workers find keys and schema ready
    if config.smtp.tls_cert and config.smtp.tls_key:
        server_context(config.smtp.tls_cert, config.smtp.tls_key)  # a bad file: one line, not N crashes
    sock = bind(config.smtp.host, config.smtp.port)
    host, port = sock.getsockname()[:2]
    supervisor = _Supervisor(config, sock)
    signal.signal(signal.SIGTERM, supervisor.forward)
    signal.signal(signal.SIGINT, supervisor.forward)
    for _ in range(processes):
        supervisor.start_child()
    print(f"relay: listening on {host}:{port} for *@{config.aliases.domain} "
          f"with {processes} processes", flush=True)
    status = supervisor.watch()
    sock.close()
    sys.stdout.flush()
    return status


class _Supervisor:
    """The workers by pid (with their start time), started, stopped and replaced."""

    def __init__(self, config: Config, sock: socket.socket):
        self.config = config
        self.sock = sock
        self.parent = os.getpid()
        self.children: dict[int, float] = {}
        self.stopping = False

    def start_child(self) -> None:
        pid = os.fork()
        if pid == 0:  # the worker: it must never return into the parent's code
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                asyncio.run(_worker(serve(self.config, sock=self.sock, announce=False), self.parent))
            except BaseException:  # noqa: BLE001 - whatever it was, the worker ends here
                log.exception("relay worker failed")
                code = 1
            os._exit(code)
        self.children[pid] = time.monotonic()

    def forward(self, _signum=None, _frame=None) -> None:
        """Stop: pass SIGTERM on to every worker."""
        self.stopping = True
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def watch(self) -> int:
        """Wait for the workers, replacing those that die unasked; the exit status."""
        status = 0
        quick_failures = 0
        while self.children:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:
                break
            started = self.children.pop(pid, None)
            if started is None:
                continue
            code = os.waitstatus_to_exitcode(wait_status)
            if self.stopping:
                status = status or max(code, 0)
                continue
            quick = time.monotonic() - started < RESTART_DELAY
            quick_failures = quick_failures + 1 if quick else 0
            if quick_failures >= MAX_QUICK_FAILURES:
                log.error("relay workers keep failing at start (last status %d); stopping", code)
                status = code or 1
                self.forward()
                continue
            log.error("relay worker %d exited with %d; starting another", pid, code)
            if quick:
                time.sleep(RESTART_DELAY)
            if not self.stopping:
                self.start_child()
        return status
