"""The counting sink: a minimal SMTP server that accepts everything and counts.

Every system under test delivers here. It speaks just enough ESMTP for a
relaying client (EHLO with PIPELINING, MAIL, RCPT, DATA, RSET, NOOP, QUIT),
answers 250 to every message and keeps nothing but counts: messages,
bytes, messages with a null envelope sender (bounces or notices, which a
benchmark run should not produce), and the time of the first and last
delivery on the monotonic clock, which every process on the machine
shares. It is a plain asyncio protocol rather than aiosmtpd so that the
sink, which shares the machine with the system under test, costs as
little CPU as possible: DATA is scanned in whole chunks for the end
marker instead of being read line by line.

Run as a child process of the benchmark:

    python bench/sink.py [--host 127.0.0.1] [--port 0]

It prints `port N` once it listens, then reads commands on stdin, one a
line, and answers each with one line on stdout: `reset` (zero the counts;
answers `ok`) and `stats` (answers a JSON object). It exits at end of input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

END = b"\r\n.\r\n"
EHLO_REPLY = (b"250-bench-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
              b"250-SIZE 104857600\r\n250 SMTPUTF8\r\n")


class Counts:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.messages = 0
        self.null_sender = 0
        self.bytes = 0
        self.first: float | None = None
        self.last: float | None = None

    def record(self, size: int, null_sender: bool) -> None:
        now = time.monotonic()
        if null_sender:
            self.null_sender += 1
            return
        self.messages += 1
        self.bytes += size
        self.first = self.first if self.first is not None else now
        self.last = now

    def as_dict(self) -> dict:
        return {"messages": self.messages, "null_sender": self.null_sender, "bytes": self.bytes,
                "first": self.first, "last": self.last}


class SinkSession(asyncio.Protocol):
    """One SMTP connection; commands and DATA are parsed from one buffer."""

    def __init__(self, counts: Counts):
        self.counts = counts
        self.buffer = b""
        self.in_data = False
        self.data_bytes = 0
        self.null_sender = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(b"220 bench-sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies: list[bytes] = []
        while self.buffer:
            if self.in_data:
                if not self._consume_data(replies):
                    break
            else:
                end = self.buffer.find(b"\r\n")
                if end < 0:
                    break
                line, self.buffer = self.buffer[:end], self.buffer[end + 2:]
                replies.append(self._command(line))
        if replies and self.transport is not None:
            self.transport.write(b"".join(replies))

    def _consume_data(self, replies: list[bytes]) -> bool:
        """Eat DATA up to the end marker; False if it has not arrived yet."""
        if self.data_bytes == 0 and self.buffer.startswith(b".\r\n"):
            end, skip, tail = 0, 3, 0  # an empty message
        else:
            end, skip, tail = self.buffer.find(END), len(END), 2  # the last CRLF is content
        if end < 0:
            # Keep the last bytes: the marker may straddle two reads.
            keep = len(END) - 1
            self.data_bytes += max(0, len(self.buffer) - keep)
            self.buffer = self.buffer[-keep:]
            return False
        self.data_bytes += end + tail
        self.buffer = self.buffer[end + skip:]
        self.counts.record(self.data_bytes, self.null_sender)
        self.in_data = False
        self.data_bytes = 0
        replies.append(b"250 2.0.0 Ok: counted\r\n")
        return True

    def _command(self, line: bytes) -> bytes:
        verb = line[:4].upper()
        if verb in (b"EHLO", b"HELO"):
            return EHLO_REPLY if verb == b"EHLO" else b"250 bench-sink\r\n"
        if verb == b"MAIL":
            self.null_sender = b"<>" in line.split(b":", 1)[-1][:3]
            return b"250 2.1.0 Ok\r\n"
        if verb == b"RCPT":
            return b"250 2.1.5 Ok\r\n"
        if verb == b"DATA":
            self.in_data = True
            self.data_bytes = 0
            return b"354 End data with <CR><LF>.<CR><LF>\r\n"
        if verb in (b"RSET", b"NOOP"):
            return b"250 2.0.0 Ok\r\n"
        if verb == b"QUIT":
            if self.transport is not None:
                self.transport.write(b"221 2.0.0 Bye\r\n")
                self.transport.close()
            self.transport = None
            return b""
        return b"502 5.5.2 Command not implemented\r\n"


async def control(counts: Counts) -> None:
    """Answer `reset` and `stats` from stdin until it closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = line.decode().strip()
        if command == "reset":
            counts.reset()
            answer = "ok"
        elif command == "stats":
            answer = json.dumps(counts.as_dict())
        else:
            answer = json.dumps({"error": f"unknown command {command!r}"})
        print(answer, flush=True)


async def main(host: str, port: int) -> None:
    counts = Counts()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SinkSession(counts), host, port, backlog=512)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await control(counts)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port))
