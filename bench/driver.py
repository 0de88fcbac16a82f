"""One benchmark cell: smtp-source drives a system, the sink counts.

`Sink` runs `sink.py` as a child process and talks to it over its stdin
and stdout (`reset`, `stats`). `run_cell` zeroes the sink, starts Postfix's
`smtp-source` against one system with one message size, session count
and message count, and waits for it to finish (accepted messages: the
count of DATA commands answered 250, from smtp-source's `-c` counter; it
stops at the first refusal, and the cell records the error). It then
waits until the sink has every accepted message, or until no new message
has arrived for `drain_timeout` seconds. The clock starts when
smtp-source starts:

- accepted/s  = accepted / time until smtp-source exits;
- delivered/s = delivered / time until the sink counted the last one;
- lost        = accepted - delivered after the drain.

It also notes the CPU time of the system's own processes in that time
(a process tree: the relay, the pass-through, or Postfix's master with
every daemon it ran) and how busy the machine's CPUs were.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from procs import BenchError, machine_cpu, process_tree_cpu


class Sink:
    def __init__(self, python: str, script: Path, log_path: Path):
        self.log = open(log_path, "ab")
        self.process = subprocess.Popen([python, str(script)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1)
        first = self.process.stdout.readline().split()
        if len(first) != 2 or first[0] != "port":
            self.stop()
            raise BenchError(f"the counting sink did not start (log {log_path})")
        self.port = int(first[1])

    def _ask(self, command: str) -> str:
        try:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
            answer = self.process.stdout.readline()
        except OSError:
            answer = ""
        if not answer:
            raise BenchError("the counting sink has exited (see sink.log in the work folder)")
        return answer.strip()

    def reset(self) -> None:
        self._ask("reset")

    def stats(self) -> dict:
        return json.loads(self._ask("stats"))

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        try:
            process.stdin.close()  # end of input: the sink exits
            process.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait(10)
        self.log.close()


@dataclass(frozen=True)
class Load:
    """What smtp-source sends in one cell."""

    size: int             # body bytes (smtp-source -l); headers come on top
    sessions: int
    messages: int
    sender: str
    recipient: str
    subject: str
    reuse_connections: bool = False
    message_file: Path | None = None  # a whole message for smtp-source -F, instead of -l/-S


@dataclass
class CellResult:
    system: str
    load: Load
    accepted: int = 0
    accept_seconds: float = 0.0
    delivered: int = 0
    deliver_seconds: float = 0.0
    null_sender: int = 0
    error: str | None = None
    cpu_seconds: float | None = None   # the system's own processes, start to end of drain
    machine_busy: float = 0.0          # share of all CPUs busy in that time, 0..1

    @property
    def lost(self) -> int:
        return max(0, self.accepted - self.delivered)

    @property
    def accepted_rate(self) -> float:
        return self.accepted / self.accept_seconds if self.accept_seconds > 0 else 0.0

    @property
    def delivered_rate(self) -> float:
        return self.delivered / self.deliver_seconds if self.deliver_seconds > 0 else 0.0

    @property
    def cpu_ms_per_message(self) -> float | None:
        if self.cpu_seconds is None or not self.delivered:
            return None
        return self.cpu_seconds * 1000 / self.delivered

    @property
    def cores(self) -> float | None:
        """CPU cores the system kept busy on average while it worked."""
        if self.cpu_seconds is None or self.deliver_seconds <= 0:
            return None
        return self.cpu_seconds / self.deliver_seconds

    def as_dict(self) -> dict:
        return {"system": self.system, "size": self.load.size, "sessions": self.load.sessions,
                "messages": self.load.messages, "accepted": self.accepted,
                "accept_seconds": round(self.accept_seconds, 3), "delivered": self.delivered,
                "deliver_seconds": round(self.deliver_seconds, 3), "lost": self.lost,
                "null_sender": self.null_sender, "accepted_per_s": round(self.accepted_rate, 1),
                "delivered_per_s": round(self.delivered_rate, 1),
                "cpu_seconds": None if self.cpu_seconds is None else round(self.cpu_seconds, 2),
                "machine_busy": round(self.machine_busy, 3), "error": self.error}


def smtp_source_argv(program: str, port: int, load: Load) -> list[str]:
    argv = [program, "-c", "-s", str(load.sessions), "-m", str(load.messages),
            "-f", load.sender, "-t", load.recipient, "-M", "bench-client.localdomain"]
    if load.message_file is not None:
        argv += ["-F", str(load.message_file)]  # a whole message, headers included
    else:
        argv += ["-l", str(load.size), "-S", load.subject]
    if load.reuse_connections:
        argv.append("-d")
    return argv + [f"127.0.0.1:{port}"]


def run_cell(system: str, port: int, pid: int | None, load: Load, sink: Sink, smtp_source: str,
             drain_timeout: float, send_timeout: float) -> CellResult:
    """Run one cell; `pid` is the system's main process, for its CPU time."""
    result = CellResult(system, load)
    sink.reset()
    cpu_before = process_tree_cpu(pid) if pid else 0.0
    busy_before, total_before = machine_cpu()
    start = time.monotonic()
    proc = subprocess.Popen(smtp_source_argv(smtp_source, port, load), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        out, err = proc.communicate(timeout=send_timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        err += f"\nsmtp-source stopped after {send_timeout:.0f} s".encode()
    except BaseException:  # interrupted: leave nothing running
        proc.kill()
        proc.wait()
        raise
    result.accept_seconds = time.monotonic() - start
    counters = out.decode(errors="replace").replace("\r", "\n").split()
    result.accepted = int(counters[-1]) if counters and counters[-1].isdigit() else 0
    if proc.returncode != 0:
        result.error = (err.decode(errors="replace").strip().splitlines() or ["failed"])[-1][:300]
    _drain(sink, result, start, drain_timeout)
    if pid:
        result.cpu_seconds = process_tree_cpu(pid) - cpu_before
    busy_after, total_after = machine_cpu()
    if total_after > total_before:
        result.machine_busy = (busy_after - busy_before) / (total_after - total_before)
    return result


def _drain(sink: Sink, result: CellResult, start: float, drain_timeout: float) -> None:
    """Wait until the sink has every accepted message or nothing more comes."""
    seen, changed = -1, time.monotonic()
    while True:
        stats = sink.stats()
        if stats["messages"] != seen:
            seen, changed = stats["messages"], time.monotonic()
        if seen >= result.accepted or time.monotonic() - changed > drain_timeout:
            break
        time.sleep(0.05)
    result.delivered = stats["messages"]
    result.null_sender = stats["null_sender"]
    if stats["last"] is not None:
        result.deliver_seconds = stats["last"] - start


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
