"""A private Postfix instance: the baseline the relay is measured against.

`PostfixInstance(root, port, relayhost)` writes its own `main.cf` and
`master.cf` under `root/conf`, with its queue, data folder and log file
under `root` as well, and starts it with `postfix -c root/conf start`. It
listens on one loopback port and relays everything to `relayhost` (the
counting sink). Durability is Postfix's default: the queue file is
fsynced before the 250. The system's own Postfix (its `/etc/postfix`, its
queue, a master that may already be running) is never read or touched:
every command gets `-c` with the private folder, and the instance shares
nothing with the system's but the `postfix` user.

`master.cf` is written here rather than copied from the distribution so
that no service runs chrooted (a chroot would need copies of system files
inside the private queue folder). Starting needs root, as for any Postfix.

Postfix reports a bad configuration only to syslog, or to stderr when
that is a terminal; the commands therefore run with stderr on a
pseudo-terminal so that the error reaches the user's screen as a
`BenchError`.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

from procs import BenchError, find_program, wait_for_port

MASTER_CF = """\
# service  type  private unpriv chroot wakeup maxproc command
{listen}   inet  n       -      n      -      -       smtpd
pickup     unix  n       -      n      60     1       pickup
cleanup    unix  n       -      n      -      0       cleanup
qmgr       unix  n       -      n      300    1       qmgr
tlsmgr     unix  -       -      n      1000?  1       tlsmgr
rewrite    unix  -       -      n      -      -       trivial-rewrite
bounce     unix  -       -      n      -      0       bounce
defer      unix  -       -      n      -      0       bounce
trace      unix  -       -      n      -      0       bounce
verify     unix  -       -      n      -      1       verify
flush      unix  n       -      n      1000?  0       flush
proxymap   unix  -       -      n      -      -       proxymap
smtp       unix  -       -      n      -      -       smtp
relay      unix  -       -      n      -      -       smtp
showq      unix  n       -      n      -      -       showq
error      unix  -       -      n      -      -       error
retry      unix  -       -      n      -      -       error
discard    unix  -       -      n      -      -       discard
local      unix  -       n      n      -      -       local
anvil      unix  -       -      n      -      1       anvil
scache     unix  -       -      n      -      1       scache
postlog    unix-dgram n  -      n      -      1       postlogd
"""


def main_cf(root: Path, relayhost: str) -> dict[str, str]:
    """Settings that differ from Postfix's defaults, and why."""
    return {
        "compatibility_level": "3.6",
        "queue_directory": str(root / "queue"),
        "data_directory": str(root / "data"),
        # Logging to a file: the machine may have no syslog daemon.
        "maillog_file": str(root / "maillog"),
        "maillog_file_prefixes": str(root),
        "myhostname": "postfix.bench.localdomain",
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        # Deliver nothing locally; relay everything from loopback to the sink.
        "mydestination": "",
        "local_recipient_maps": "",
        "alias_maps": "",
        "alias_database": "",
        "mynetworks": "127.0.0.0/8",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        "relayhost": relayhost,
        "smtp_tls_security_level": "none",
        "smtpd_tls_security_level": "none",
        "biff": "no",
    }


class PostfixInstance:
    def __init__(self, root: Path, port: int, relayhost: tuple[str, int]):
        self.root = root
        self.conf = root / "conf"
        self.port = port
        self.relayhost = f"[{relayhost[0]}]:{relayhost[1]}"
        self.postfix = find_program("postfix")
        self.postconf = find_program("postconf")
        self.running = False

    def start(self) -> None:
        if not (self.postfix and self.postconf):
            raise BenchError("Postfix is not installed: apt-get install postfix "
                             "(or pass --no-postfix to skip the Postfix baseline)")
        if os.geteuid() != 0:
            raise BenchError("a private Postfix instance must be started as root "
                             "(run the benchmark as root, or pass --no-postfix)")
        self._write_config()
        self._postfix("check")
        self._postfix("start")
        self.running = True
        try:
            wait_for_port("127.0.0.1", self.port, timeout=20)
        except BenchError as exc:
            raise BenchError(f"Postfix did not open its port: {exc}\n{self.log_tail()}") from None

    def _write_config(self) -> None:
        for folder in (self.conf, self.root / "queue", self.root / "data"):
            folder.mkdir(parents=True, exist_ok=True)
        # Postfix's daemons run as the postfix user and must reach the queue.
        self.root.chmod(0o755)
        data = self.root / "data"
        os.chown(data, _uid("postfix"), -1)
        (self.conf / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        (self.conf / "main.cf").write_text("# Written by bench/run.py for one benchmark run.\n")
        settings = [f"{key}={value}" for key, value in main_cf(self.root, self.relayhost).items()]
        result = subprocess.run([self.postconf, "-c", str(self.conf), "-e", *settings],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise BenchError(f"postconf failed: {result.stderr.strip()}")

    def _postfix(self, command: str) -> str:
        """Run `postfix -c CONF command` with stderr on a pseudo-terminal."""
        leader, follower = pty.openpty()
        try:
            result = subprocess.run([self.postfix, "-c", str(self.conf), command],
                                    stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
                                    timeout=60)
            os.close(follower)
            follower = -1
            output = _drain(leader)
        finally:
            if follower >= 0:
                os.close(follower)
            os.close(leader)
        if result.returncode != 0:
            raise BenchError(f"postfix {command} failed (exit {result.returncode}): "
                             f"{output.strip() or 'no message'}")
        return output

    def stop(self) -> None:
        """Stop the master and wait until it has exited."""
        if not self.running:
            return
        self.running = False
        pid = self.master_pid()
        try:
            self._postfix("stop")
        except BenchError:
            pass
        deadline = time.monotonic() + 20
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid and _alive(pid):
            os.kill(pid, 9)

    def master_pid(self) -> int | None:
        try:
            return int((self.root / "queue" / "pid" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def log_tail(self, lines: int = 10) -> str:
        try:
            return "\n".join((self.root / "maillog").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no Postfix log)"


def _drain(fd: int) -> str:
    """What the command wrote; a daemon it left behind may hold the terminal open."""
    chunks = []
    while select.select([fd], [], [], 0.2)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: every writer has closed it and all is read
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _uid(user: str) -> int:
    import pwd
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise BenchError(f"there is no {user!r} user: is Postfix installed? "
                         "(apt-get install postfix)") from None
