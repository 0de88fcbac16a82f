"""The relay benchmark: relay vs. Postfix vs. a bare pass-through, one run.

    python bench/run.py [--quick] [--sizes 1K,100K,5M] [--sessions 1,10,50]
                        [--messages N] [--systems postfix,passthrough,relay] ...

Postfix's `smtp-source` drives three systems in turn, all delivering to
one counting sink (`sink.py`):

- the relay (`python -m relay serve`), set up through its own command
  line in a temporary folder, in smarthost mode towards the sink, with
  smtp-source mailing as a thread's seller to the buyer's alias;
- a private Postfix instance with its own main.cf, master.cf and queue in
  the temporary folder, relayhost = the sink, default durability;
- a bare aiosmtpd-to-aiosmtplib pass-through (`passthrough.py`);
- with `--variant NAME:SECTION.KEY=VALUE`, more relays that differ from
  the first in the settings given (the system `relay-NAME`), such as the
  relay without encryption at rest.

For every message size and session count it prints accepted messages/s,
delivered messages/s, messages lost, and each system's delivered rate as
a ratio to Postfix's in the same cell, then the relay's verdict against
the targets. It needs `smtp-source` and `postfix` (Debian and Ubuntu:
`apt-get install postfix`) and root for the private Postfix (or
`--no-postfix`); it installs nothing itself. Every process it starts is
stopped before it exits, on errors and on Ctrl-C too. Exit status: 0 when
the run completed, 1 when it could not, 2 on bad options.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from driver import CellResult, Load, Sink, progress, run_cell
from postfix_instance import PostfixInstance
from procs import BenchError, Child, find_program, free_port
from relay_instance import RelayInstance, parse_setting
from report import SYSTEMS, machine, size_label, table, verdicts

HERE = Path(__file__).resolve().parent
SIZE = re.compile(r"^(\d+)([KM]?)$")
UNITS = {"": 1, "K": 1024, "M": 1024 * 1024}
# Messages per cell by body size and session count (the nearest smaller key
# applies): enough for a steady rate, few enough that a full run of 27
# cells takes about five minutes at the rates of BENCHMARKS.md.
MESSAGES = {1024: {1: 500, 10: 3000, 50: 3000},
            100 * 1024: {1: 300, 10: 1000, 50: 1000},
            5 * 1024 * 1024: {1: 20, 10: 80, 50: 150}}
QUICK_DIVISOR = 15
BUSY_LOAD = 0.5  # load average per CPU above which other work skews the numbers


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="a small run (1 and 10 sessions, few messages) to check the set-up")
    p.add_argument("--sizes", default="1K,100K,5M",
                   help="message body sizes in bytes, K or M, comma-separated (default 1K,100K,5M)")
    p.add_argument("--sessions", help="parallel SMTP sessions, comma-separated (default 1,10,50)")
    p.add_argument("--messages", type=int, help="messages per cell (default: by size and sessions)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the default message counts")
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help=f"which systems to measure (default {','.join(SYSTEMS)})")
    p.add_argument("--no-postfix", action="store_true",
                   help="skip the Postfix baseline (it needs root)")
    p.add_argument("--reuse-connections", action="store_true",
                   help="send all messages of a session over one connection (smtp-source -d)")
    p.add_argument("--drain-timeout", type=float, default=30.0,
                   help="seconds without a new delivery before the rest counts as lost (default 30)")
    p.add_argument("--send-timeout", type=float, default=900.0,
                   help="seconds one smtp-source run may take (default 900)")
    p.add_argument("--workdir", type=Path,
                   help="folder for configs, queues and logs, kept afterwards (default: a temporary one)")
    p.add_argument("--relay-set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="a relay.toml setting for the relay under test, e.g. delivery.concurrency=40 "
                        "(repeatable)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME:SECTION.KEY=VALUE",
                   help="also measure the relay with a setting changed, as the system relay-NAME, "
                        "e.g. plaintext:storage.encrypt=false (repeatable; several settings may "
                        "share a NAME)")
    p.add_argument("--profile-relay", type=Path, metavar="FILE",
                   help="run the relay under cProfile and write its statistics to FILE")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results to FILE")
    p.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    args.size_bytes = []
    for text in filter(None, (s.strip().upper() for s in args.sizes.split(","))):
        found = SIZE.match(text)
        if not found or int(found.group(1)) == 0:
            p.error(f"invalid size {text!r}: expected a number of bytes with K or M, like 100K")
        args.size_bytes.append(int(found.group(1)) * UNITS[found.group(2)])
    sessions = args.sessions or ("1,10" if args.quick else "1,10,50")
    try:
        args.session_counts = [int(s) for s in sessions.split(",") if s.strip()]
    except ValueError:
        args.session_counts = []
    if not args.session_counts or min(args.session_counts) < 1:
        p.error("--sessions takes whole numbers >= 1, comma-separated")
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    if args.no_postfix and "postfix" in names:
        names.remove("postfix")
    if not names or not set(names) <= set(SYSTEMS):
        p.error(f"--systems takes some of {', '.join(SYSTEMS)}")
    args.system_names = names
    try:
        args.relay_settings = dict(parse_setting(text) for text in args.relay_set)
    except ValueError as exc:
        p.error(f"--relay-set: {exc}")
    args.variants = {}
    for text in args.variant:
        name, colon, setting = text.partition(":")
        if not colon or not re.fullmatch(r"[a-z0-9-]+", name):
            p.error(f"--variant: expected NAME:SECTION.KEY=VALUE with a lower-case NAME, got {text!r}")
        try:
            key, value = parse_setting(setting)
        except ValueError as exc:
            p.error(f"--variant: {exc}")
        args.variants.setdefault(f"relay-{name}", {})[key] = value
    if not (args.size_bytes and (args.messages is None or args.messages > 0)):
        p.error("give at least one size, and a message count >= 1")
    return args


def messages_for(args: argparse.Namespace, size: int, sessions: int) -> int:
    """Messages in one cell; never fewer than sessions, so each session sends."""
    if args.messages:
        return max(args.messages, sessions)
    by_sessions = MESSAGES[max((k for k in MESSAGES if k <= size), default=min(MESSAGES))]
    n = by_sessions[max((k for k in by_sessions if k <= sessions), default=1)] * args.scale
    if args.quick:
        n /= QUICK_DIVISOR
    return max(int(n), sessions)


def find_smtp_source() -> str:
    smtp_source = find_program("smtp-source")
    if smtp_source is None:
        raise BenchError("smtp-source not found: it comes with Postfix "
                         "(Debian/Ubuntu: apt-get install postfix)")
    return smtp_source


class Systems:
    """The sink and the systems under test; `close()` stops all of them."""

    def __init__(self, args: argparse.Namespace, root: Path):
        self.args, self.root = args, root
        self.stack = contextlib.ExitStack()
        self.ports: dict[str, int] = {}
        self.pids: dict[str, int | None] = {}
        self.sender = self.recipient = self.subject = ""

    def start(self) -> Sink:
        python = sys.executable
        sink = Sink(python, HERE / "sink.py", self.root / "sink.log")
        self.stack.callback(sink.stop)
        target = ("127.0.0.1", sink.port)
        relay = RelayInstance(self.root / "relay", python, free_port(), target,
                              overrides=self.args.relay_settings,
                              profile=self.args.profile_relay and self.args.profile_relay.resolve())
        progress("setting up the relay (init, seller add, thread open)")
        conversation = relay.setup()
        self.sender, self.recipient = conversation.seller_email, conversation.buyer_alias
        self.subject = f"Re: Order {conversation.order_id}"
        if "postfix" in self.args.system_names:
            progress("starting a private Postfix instance")
            postfix = PostfixInstance(self.root / "postfix", free_port(), target)
            self.stack.callback(postfix.stop)
            postfix.start()
            self.ports["postfix"] = postfix.port
            self.pids["postfix"] = postfix.master_pid()
        if "passthrough" in self.args.system_names:
            progress("starting the pass-through")
            child = Child("pass-through", [python, str(HERE / "passthrough.py"),
                                           "--to", f"{target[0]}:{target[1]}"],
                          self.root / "passthrough.log")
            self.stack.callback(child.stop)
            self.ports["passthrough"] = int(child.start(ready=r"^port (\d+)$").group(1))
            self.pids["passthrough"] = child.pid
        if "relay" in self.args.system_names:
            progress("starting the relay")
            self.stack.callback(relay.stop)
            relay.start()
            self.ports["relay"] = relay.port
            self.pids["relay"] = relay.child.pid if relay.child else None
        for name, settings in self.args.variants.items():
            self._start_variant(name, settings, relay, target, conversation.buyer_alias)
        return sink

    def _start_variant(self, name: str, settings: dict, main: RelayInstance, target: tuple[str, int],
                       buyer_alias: str) -> None:
        """Another relay, with the main one's alias keys so that the same alias reaches it."""
        progress(f"setting up and starting {name}")
        variant = RelayInstance(self.root / name, sys.executable, free_port(), target,
                                overrides={**self.args.relay_settings, **settings})
        variant.root.mkdir(parents=True, exist_ok=True)
        shutil.copy2(main.root / "alias.keys", variant.root / "alias.keys")
        if variant.setup().buyer_alias != buyer_alias:
            raise BenchError(f"{name}: its thread got another alias than the relay's")
        self.stack.callback(variant.stop)
        variant.start()
        self.ports[name] = variant.port
        self.pids[name] = variant.child.pid if variant.child else None

    def close(self) -> None:
        self.stack.close()


def run_all(args: argparse.Namespace, root: Path, smtp_source: str) -> list[CellResult]:
    systems = Systems(args, root)
    results: list[CellResult] = []
    try:
        sink = systems.start()
        for size in args.size_bytes:
            for sessions in args.session_counts:
                count = messages_for(args, size, sessions)
                load = Load(size, sessions, count, systems.sender, systems.recipient,
                            systems.subject, args.reuse_connections)
                for name in [s for s in SYSTEMS if s in systems.ports] + list(args.variants):
                    progress(f"{size_label(size)} x {sessions} sessions, {count} messages: {name}")
                    r = run_cell(name, systems.ports[name], systems.pids.get(name), load, sink,
                                 smtp_source, args.drain_timeout, args.send_timeout)
                    progress(f"  accepted {r.accepted_rate:.1f}/s, delivered {r.delivered_rate:.1f}/s, "
                             f"lost {r.lost}" + (f", error: {r.error}" if r.error else ""))
                    results.append(r)
    finally:
        progress("stopping everything")
        systems.close()
    return results


def _interrupt(_signum, _frame) -> None:
    """SIGINT and SIGTERM end the run through the `finally` blocks that stop every child."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    try:
        smtp_source = find_smtp_source()
        about = machine()
        if os.getloadavg()[0] > BUSY_LOAD * (os.cpu_count() or 1):
            progress(f"note: load average {about['load average']} before the run: other programs "
                     "are using the CPUs, and the numbers will be lower and noisier")
        root = args.workdir or Path(tempfile.mkdtemp(prefix="relay-bench-"))
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)  # Postfix's daemons run as the postfix user and need to get in
        started = time.monotonic()
        try:
            results = run_all(args, root.resolve(), smtp_source)
        finally:
            if args.workdir is None:
                shutil.rmtree(root, ignore_errors=True)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; everything it started has been stopped", file=sys.stderr)
        return 130
    about["load average after"] = machine()["load average"]
    print_results(args, about, results, time.monotonic() - started)
    return 0


def print_results(args, about: dict, results: list[CellResult], seconds: float) -> None:
    print()
    for key, value in about.items():
        print(f"{key}: {value}")
    print(f"command: bench/run.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"run time: {seconds:.0f} s\n")
    print(table(results, markdown=args.markdown))
    print()
    for line in verdicts(results):
        print(line)
    if args.json:
        args.json.write_text(json.dumps({"machine": about, "argv": sys.argv[1:],
                                         "results": [r.as_dict() for r in results]}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
