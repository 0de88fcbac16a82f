"""Child processes of the benchmark: finding programs, starting, stopping.

`find_program(name)` looks on PATH and in the sbin folders where Debian
puts Postfix (they are often missing from a normal user's PATH).
`Child` starts a long-running server with its output in a log file, waits
until it prints the line that says it is ready, and stops it by its own
process id: SIGTERM first, SIGKILL if it does not exit in time. Every
failure is a `BenchError` with one line the user can act on.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")


class BenchError(Exception):
    """The benchmark cannot go on; the message says why and what to do."""


def find_program(name: str) -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(SBIN_DIRS)
    return shutil.which(name, path=path)


def free_port() -> int:
    """A loopback port that is free now (the system may reuse it later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise BenchError(f"nothing listens on {host}:{port} after {timeout:.0f} s") from None
            time.sleep(0.1)


def process_tree_cpu(pid: int) -> float:
    """CPU seconds used by a process, its reaped children and its live descendants."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # After the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15), 0-based.
    total = sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    for child in _children(pid):
        total += process_tree_cpu(child)
    return total


def _children(pid: int) -> list[int]:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        found = []
        for task in tasks:
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            found += [int(x) for x in text.split()]
        return found
    except OSError:
        return []


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    try:
        values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values[:8]) - idle) / tick, sum(values[:8]) / tick


class Child:
    """A server process whose stdout and stderr go to `log_path`."""

    def __init__(self, name: str, argv: list[str], log_path: Path, cwd: Path | None = None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, ready: str, timeout: float = 30.0) -> re.Match:
        """Start and wait for a line matching the regular expression `ready`."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self.cwd)
        pattern = re.compile(ready, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = pattern.search(self.log_path.read_text(errors="replace"))
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        tail = self.log_tail()
        self.stop()
        raise BenchError(f"{self.name} did not start (log {self.log_path}):\n{tail}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait, then SIGKILL; returns the exit status."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        return process.returncode
