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

from relay.config import Config, ConfigError

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
    from relay.app import initialize, serve

    initialize(config).close()  # once, before forking: workers find keys and schema ready
    sock = bind(config.smtp.host, config.smtp.port)
    host, port = sock.getsockname()[:2]
    children: dict[int, float] = {}
    stopping = False

    def start_child() -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                asyncio.run(_worker(serve(config, sock=sock, announce=False), parent))
            except BaseException:  # noqa: BLE001 - the worker must never return into the parent's code
                log.exception("relay worker failed")
                code = 1
            os._exit(code)
        children[pid] = time.monotonic()

    def forward(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    parent = os.getpid()
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for _ in range(processes):
        start_child()
    print(f"relay: listening on {host}:{port} for *@{config.aliases.domain} "
          f"with {processes} processes", flush=True)
    status = 0
    quick_failures = 0
    while children:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        started = children.pop(pid, None)
        if started is None:
            continue
        code = os.waitstatus_to_exitcode(wait_status)
        if stopping:
            status = status or (code if code > 0 else 0)
            continue
        quick = time.monotonic() - started < RESTART_DELAY
        quick_failures = quick_failures + 1 if quick else 0
        if quick_failures >= MAX_QUICK_FAILURES:
            log.error("relay workers keep failing at start (last status %d); stopping", code)
            status = code or 1
            forward(signal.SIGTERM, None)
            continue
        log.error("relay worker %d exited with %d; starting another", pid, code)
        if quick:
            time.sleep(RESTART_DELAY)
        if not stopping:
            start_child()
    sock.close()
    sys.stdout.flush()
    return status
