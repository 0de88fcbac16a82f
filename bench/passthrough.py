"""The bare pass-through baseline: aiosmtpd in, aiosmtplib out, nothing between.

It shows what the relay's two SMTP libraries cost on their own, with no
parsing, rewriting, storage or queue: each message received is sent on to
the sink over a new aiosmtplib connection before the client gets its
reply, so 250 means "the sink has it" and nothing is ever queued. A
failure to pass a message on is answered 451.

Run as a child process of the benchmark:

    python bench/passthrough.py --to HOST:PORT [--host 127.0.0.1] [--port 0]

It prints `port N` once it listens and runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import aiosmtplib
from aiosmtpd.smtp import SMTP, Envelope, Session


class ForwardHandler:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        try:
            await aiosmtplib.send(envelope.original_content, sender=envelope.mail_from,
                                  recipients=envelope.rcpt_tos, hostname=self.host, port=self.port,
                                  start_tls=False, timeout=60)
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            return f"451 4.4.1 Pass-through failed: {exc.__class__.__name__}"
        return "250 2.0.0 Ok: passed on"


async def main(host: str, port: int, to_host: str, to_port: int) -> None:
    loop = asyncio.get_running_loop()
    handler = ForwardHandler(to_host, to_port)
    server = await loop.create_server(
        lambda: SMTP(handler, data_size_limit=None, enable_SMTPUTF8=True, hostname="bench-pass",
                     loop=loop),
        host, port, backlog=512)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--to", required=True, help="the sink, as HOST:PORT")
    args = parser.parse_args()
    to_host, _, to_port = args.to.rpartition(":")
    asyncio.run(main(args.host, args.port, to_host, int(to_port)))
