"""What the relay's features cost: the same relay with each switched on and off, one run.

    python bench/features.py [--quick] [--sessions N] [--rounds N] [--groups policy,trust]

Every variant is the relay itself (`relay serve`, set up through its own
command line like `bench/run.py` does), differing only in a few settings,
and all of them deliver to one counting sink. Postfix's `smtp-source -F`
sends the messages of `bench/messages.py`, as the seller to the buyer's
alias, so every message passes the content policy and reaches the sink.

- policy: `[policy] enabled = false` against the default rules, on
  100 KB replies with quoted history (plain text, Gmail's HTML, Outlook's
  HTML) and on 9 MB of PDF attachments. The target: the policy costs at most 25% of the
  throughput on 100 KB messages.
- trust: sender authentication (`[auth] mode`), DKIM signing (`[dkim]
  sign`) and encryption at rest (`[storage] encrypt`), each alone and all
  together, against the relay with all three off, on 1 KB and 100 KB
  messages. Authentication asks a DNS responder on loopback (the tests'
  one) that publishes an SPF record passing 127.0.0.0/8.

Cells of one message kind run in turns, variant after variant, for
`--rounds` rounds, so that the machine's noise falls on every variant
alike; the table gives each variant's median delivered messages/s and its
ratio to the baseline measured in the same rounds, and the CPU time the
relay's processes used per delivered message with the same ratio taken
the other way up (baseline CPU / variant CPU): the relay is held by one
core, so that is the throughput the variant would have on a quiet
machine, and it moves far less with what else runs. It needs `smtp-source`
(Debian: apt-get install postfix) but not root. Exit status: 0 when the
run completed, 1 when it could not, 2 on bad options.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the tests' DNS responder and sample files

import messages  # noqa: E402
from driver import CellResult, Load, Sink, progress, run_cell  # noqa: E402
from procs import BenchError, free_port  # noqa: E402
from relay_instance import RelayInstance  # noqa: E402
from report import machine  # noqa: E402
from run import _interrupt, find_smtp_source  # noqa: E402
from tests.dnsresponder import DnsResponder  # noqa: E402

TRUST_OFF = {("auth", "mode"): '"off"', ("dkim", "sign"): "false", ("storage", "encrypt"): "false"}
GROUPS = {
    "policy": {
        "kinds": ["plain-100K", "gmail-100K", "outlook-100K", "pdf-9M"],
        "baseline": "policy off",
        "variants": {"policy off": {**TRUST_OFF, ("policy", "enabled"): "false"},
                     "policy on": dict(TRUST_OFF)},
    },
    "trust": {
        "kinds": ["plain-1K", "plain-100K"],
        "baseline": "all off",
        "variants": {"all off": {**TRUST_OFF, ("policy", "enabled"): "false"},
                     "auth": {**TRUST_OFF, ("policy", "enabled"): "false", ("auth", "mode"): '"strict"'},
                     "dkim": {**TRUST_OFF, ("policy", "enabled"): "false", ("dkim", "sign"): "true"},
                     "encryption": {**TRUST_OFF, ("policy", "enabled"): "false",
                                    ("storage", "encrypt"): "true"},
                     "all on": {("policy", "enabled"): "false"}},
    },
}
MESSAGES = {"plain-1K": 1000, "plain-100K": 400, "gmail-100K": 400, "outlook-100K": 400, "pdf-9M": 12}
SELLER_DOMAIN = "bench-seller.example"


class DnsThread:
    """The loopback DNS responder, in a thread of its own for the whole run."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.responder = DnsResponder()
        self.responder.add(SELLER_DOMAIN, "TXT", "v=spf1 ip4:127.0.0.0/8 -all")
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        if not ready.wait(10):
            raise BenchError("the DNS responder did not start")

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.responder.start())
        ready.set()
        self.loop.run_forever()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/features.py", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a tenth of the messages, one round")
    p.add_argument("--sessions", type=int, default=10, help="parallel SMTP sessions (default 10)")
    p.add_argument("--rounds", type=int, help="turns of every variant per message kind (default 3)")
    p.add_argument("--groups", default="policy,trust", help="policy, trust or both (default both)")
    p.add_argument("--drain-timeout", type=float, default=30.0,
                   help="seconds without a new delivery before the rest counts as lost (default 30)")
    args = p.parse_args(argv)
    args.group_names = [g.strip() for g in args.groups.split(",") if g.strip()]
    if not args.group_names or not set(args.group_names) <= set(GROUPS):
        p.error(f"--groups takes some of {', '.join(GROUPS)}")
    if args.sessions < 1 or (args.rounds is not None and args.rounds < 1):
        p.error("--sessions and --rounds take whole numbers >= 1")
    args.rounds = args.rounds or (1 if args.quick else 3)
    return args


def start_relays(group: dict, root: Path, sink: Sink, dns_port: int, stack: list) -> dict:
    relays = {}
    for name, overrides in group["variants"].items():
        settings = {("dns", "nameservers"): f'["127.0.0.1:{dns_port}"]', **overrides}
        relay = RelayInstance(root / name.replace(" ", "-"), sys.executable, free_port(),
                              ("127.0.0.1", sink.port), overrides=settings)
        progress(f"setting up the relay: {name}")
        conversation = relay.setup()
        stack.append(relay.stop)
        relay.start()
        relays[name] = (relay, conversation)
    return relays


def run_group(args, group: dict, root: Path, sink: Sink, dns_port: int, smtp_source: str) -> list:
    stack: list = []
    rows = []
    try:
        relays = start_relays(group, root, sink, dns_port, stack)
        for kind in group["kinds"]:
            count = max(args.sessions, MESSAGES[kind] // (10 if args.quick else 1))
            results: dict[str, list[CellResult]] = {name: [] for name in relays}
            for turn in range(args.rounds):
                for name, (relay, conv) in relays.items():
                    path = messages.write(kind, relay.root, conv.seller_email,
                                          f"{conv.buyer_alias}", conv.order_id)
                    load = Load(path.stat().st_size, args.sessions, count, conv.seller_email,
                                conv.buyer_alias, "", message_file=path)
                    progress(f"{kind}, round {turn + 1}: {name}")
                    r = run_cell(name, relay.port, relay.child.pid, load, sink, smtp_source,
                                 args.drain_timeout, 900.0)
                    progress(f"  delivered {r.delivered_rate:.1f}/s, lost {r.lost}"
                             + (f", error: {r.error}" if r.error else ""))
                    results[name].append(r)
            rows += summarize(kind, group["baseline"], results)
    finally:
        for stop in reversed(stack):
            stop()
    return rows


def summarize(kind: str, baseline: str, results: dict[str, list[CellResult]]) -> list[list[str]]:
    base = statistics.median(r.delivered_rate for r in results[baseline])
    base_cpu = _median_cpu(results[baseline])
    rows = []
    for name, cells in results.items():
        rate = statistics.median(r.delivered_rate for r in cells)
        cpu = _median_cpu(cells)
        lost = sum(r.lost for r in cells)
        errors = sum(1 for r in cells if r.error)
        ratio = f"{rate / base:.2f}x" if base > 0 else "n/a"
        cpu_ratio = f"{base_cpu / cpu:.2f}x" if cpu and base_cpu else "n/a"
        rows.append([kind, name, str(cells[0].load.messages), str(len(cells)), f"{rate:.1f}", ratio,
                     f"{cpu:.2f}" if cpu else "n/a", cpu_ratio, str(lost) + (f" ({errors} errors)" if errors else "")])
    return rows


def _median_cpu(cells: list[CellResult]) -> float | None:
    values = [r.cpu_ms_per_message for r in cells if r.cpu_ms_per_message]
    return statistics.median(values) if values else None


def print_table(rows: list[list[str]]) -> None:
    header = ["message", "variant", "messages", "rounds", "delivered/s (median)", "vs baseline",
              "relay CPU ms/msg (median)", "baseline CPU / CPU", "lost"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    root = Path(tempfile.mkdtemp(prefix="relay-features-"))
    started, rows = time.monotonic(), []
    sink = dns = None
    try:
        smtp_source = find_smtp_source()
        dns = DnsThread()
        sink = Sink(sys.executable, HERE / "sink.py", root / "sink.log")
        for name in args.group_names:
            rows += run_group(args, GROUPS[name], root / name, sink, dns.responder.port, smtp_source)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; everything it started has been stopped", file=sys.stderr)
        return 130
    finally:
        if sink is not None:
            sink.stop()
        if dns is not None:
            dns.stop()
        shutil.rmtree(root, ignore_errors=True)
    print()
    for key, value in machine().items():
        print(f"{key}: {value}")
    print(f"command: bench/features.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"run time: {time.monotonic() - started:.0f} s\n")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
