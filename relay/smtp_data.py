"""Reading the DATA section in large chunks instead of line by line.

aiosmtpd reads DATA one line at a time (`readuntil(b"\\r\\n")` per line):
for a 5 MB message that is some 65,000 awaits and most of the relay's CPU.
`read_data` takes whatever the socket has delivered, scans it for the end
of data, and hands back the de-dotted message. The rules are aiosmtpd's:

- only `<CRLF>.<CRLF>` ends the data (bare LF or CR never does: that is
  what keeps SMTP smuggling out);
- a line longer than `line_limit` bytes (CRLF included) spoils the
  message (500), and so does a message over `size_limit` (552); in both
  cases the rest is read and discarded up to the end of data, so the
  session stays in step with the client;
- bytes after the end of data (pipelined commands) are left in the reader
  for the command loop.

It works on the StreamReader's buffer directly (`_buffer`, `_wait_for_data`,
`_maybe_resume_transport`): stable in CPython's asyncio, but private, so
`supported(reader)` says whether this reader has them; when it does not,
the caller falls back to aiosmtpd's own reader.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

END = b"\r\n.\r\n"


class DataState(enum.Enum):
    OK = "ok"
    TOO_LONG = "too_long"       # a line over the limit
    TOO_MUCH = "too_much"       # the message over the size limit
    CLOSED = "closed"           # the connection ended inside DATA


@dataclass(frozen=True)
class DataResult:
    state: DataState
    content: bytes = b""


def supported(reader: asyncio.StreamReader) -> bool:
    return all(hasattr(reader, name) for name in ("_buffer", "_wait_for_data", "_maybe_resume_transport"))


async def read_data(reader: asyncio.StreamReader, size_limit: int | None, line_limit: int) -> DataResult:
    # A CRLF is put in front so that "." on the very first line also ends the data.
    data = bytearray(b"\r\n")
    state = DataState.OK
    scanned = 0          # where to resume looking for END
    line_start = 2       # start of the line being checked for length
    while True:
        buf = reader._buffer
        if buf:
            data += buf
            buf.clear()
            reader._maybe_resume_transport()
            end = data.find(END, max(0, scanned - len(END)))
            stop = end + 2 if end >= 0 else len(data)
            if state is DataState.OK and _line_too_long(data, line_start, stop, line_limit):
                state = DataState.TOO_LONG
            if end >= 0:
                leftover = data[end + len(END):]
                if leftover:
                    reader._buffer.extend(leftover)
                if state is not DataState.OK:
                    return DataResult(state)
                body = bytes(data[:end + 2]).replace(b"\r\n.", b"\r\n")
                content = body[2:]
                if size_limit and len(content) > size_limit:
                    return DataResult(DataState.TOO_MUCH)
                return DataResult(DataState.OK, content)
            line_start = _last_line_start(data, line_start)
            if state is DataState.OK and size_limit and len(data) > size_limit + len(END) + 2:
                state = DataState.TOO_MUCH
            if state is not DataState.OK:
                # Keep only what can still hold the start of END.
                keep = data[-(len(END) - 1):]
                data = bytearray(b"\r\n") + keep if not keep.startswith(b"\r\n") else bytearray(keep)
                line_start = 0
            scanned = len(data)
        if reader.at_eof():
            return DataResult(DataState.CLOSED)
        await reader._wait_for_data("read_data")


def _line_too_long(data: bytearray, start: int, stop: int, limit: int) -> bool:
    """Whether a CRLF-ended line in data[start:stop] (or the open last one) is too long.

    Splitting at LF runs in C; a piece is never longer than the CRLF line
    holding it, so a long piece settles it. Only when bare LFs are present
    can short pieces hide a long line, and then the lines are walked.
    """
    chunk = bytes(data[start:stop])
    if max(map(len, chunk.split(b"\n"))) + 1 > limit:
        return True
    if chunk.count(b"\n") == chunk.count(b"\r\n"):
        return False
    return any(len(line) + 2 > limit for line in chunk.split(b"\r\n"))


def _last_line_start(data: bytearray, previous: int) -> int:
    nl = data.rfind(b"\r\n", previous)
    return previous if nl < 0 else nl + 2
