"""The relay under test, set up through its own command line.

`RelayInstance(root, python, port, sink)` writes a `relay.toml` in `root`
(smarthost mode pointing at the counting sink, an SQLite file and the key
file beside it, all other settings at their defaults unless `overrides`
sets them, e.g. `{("delivery", "concurrency"): "40"}`), then runs, as a
user would:

    python -m relay --config root/relay.toml init
    python -m relay --config root/relay.toml seller add ...
    python -m relay --config root/relay.toml thread open ...

and keeps the seller's address and the buyer's alias from the JSON that
`thread open` prints: the benchmark mails as the seller to the buyer's
alias, so the header From is a participant and every message is relayed
(seller messages cause no acknowledgment, so the sink gets exactly one
message per accepted message). `start()` runs `relay serve` as a child
process (under cProfile if `profile` names an output file); `stop()` sends
it SIGTERM, the relay's own graceful stop.
"""

from __future__ import annotations

import json
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from procs import BenchError, Child

SELLER_ID = "bench-seller"
SELLER_EMAIL = "seller@bench-seller.example"
BUYER_EMAIL = "buyer@bench-buyer.example"
ORDER_ID = "112-0000000-0000001"



def config_text(port: int, sink: tuple[str, int], overrides: dict[tuple[str, str], str]) -> str:
    """relay.toml: the benchmark's settings, then `overrides` (TOML values as text)."""
    settings = {
        ("smtp", "host"): '"127.0.0.1"',
        ("smtp", "port"): str(port),
        ("aliases", "domain"): '"marketplace.example"',
        ("aliases", "key_file"): '"alias.keys"',
        ("storage", "encryption_key_file"): '"storage.keys"',
        ("storage", "url"): '"sqlite:///relay.db"',
        ("delivery", "mode"): '"smarthost"',
        ("delivery", "smarthost"): f'"{sink[0]}:{sink[1]}"',
        # The benchmark's domains publish no SPF, DKIM or DMARC and it reaches
        # no DNS: sender authentication is off unless `auth.mode=...` says so.
        ("auth", "mode"): '"off"',
        # One client floods one thread from one address: the rate limits
        # would stop it within a minute (--relay-set limits.per_ip_per_minute=N
        # measures them).
        ("limits", "per_sender_per_hour"): "0",
        ("limits", "per_thread_per_hour"): "0",
        ("limits", "per_ip_per_minute"): "0",
        # smtp-source's body is all the seller's own text (100 KB, 5 MB), more
        # than the content rules read: text_size would refuse it. The rules'
        # cost on replies shaped like real ones is bench/features.py's part.
        ("policy", "disabled_rules"): '["text_size"]',
    }
    settings.update(overrides)
    lines = ["# Written by bench/run.py for one benchmark run."]
    for section in dict.fromkeys(section for section, _key in settings):
        lines.append(f"\n[{section}]")
        lines += [f"{key} = {value}" for (sec, key), value in settings.items() if sec == section]
    return "\n".join(lines) + "\n"


def parse_setting(text: str) -> tuple[tuple[str, str], str]:
    """`section.key=value` from the command line; a value that is not TOML is a string."""
    name, sep, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not (sep and dot and section and key):
        raise ValueError(f"expected SECTION.KEY=VALUE, got {text!r}")
    try:
        tomllib.loads(f"v = {value}")
    except tomllib.TOMLDecodeError:
        value = json.dumps(value)
    return (section, key.strip()), value.strip()


@dataclass(frozen=True)
class Conversation:
    seller_email: str
    buyer_alias: str
    order_id: str


class RelayInstance:
    def __init__(self, root: Path, python: str, port: int, sink: tuple[str, int],
                 overrides: dict[tuple[str, str], str] | None = None, profile: Path | None = None):
        self.root = root
        self.overrides = overrides or {}
        self.profile = profile
        self.python = python
        self.port = port
        self.config = root / "relay.toml"
        self.sink = sink
        self.child: Child | None = None

    def setup(self) -> Conversation:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(config_text(self.port, self.sink, self.overrides))
        self._cli("init")
        self._cli("seller", "add", SELLER_ID, "--email", SELLER_EMAIL, "--name", "Bench Seller")
        opened = json.loads(self._cli("thread", "open", "--seller", SELLER_ID,
                                      "--buyer-email", BUYER_EMAIL, "--buyer-name", "Bench Buyer",
                                      "--order", ORDER_ID))
        return Conversation(SELLER_EMAIL, opened["buyer_alias"], opened["order_id"])

    def _cli(self, *args: str) -> str:
        argv = [self.python, "-m", "relay", "--config", str(self.config), *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=self.root)
        if result.returncode != 0:
            raise BenchError(f"relay {' '.join(args[:2])} failed (exit {result.returncode}): "
                             f"{result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def start(self) -> None:
        argv = [self.python, "-m", "relay", "--config", str(self.config), "serve"]
        if self.profile is not None:
            # cProfile sees the event loop's thread only, which is the busy one.
            argv[1:1] = ["-m", "cProfile", "-o", str(self.profile)]
        self.child = Child("relay", argv, self.root / "relay.log", cwd=self.root)
        self.child.start(ready=r"relay: listening on ", timeout=60)

    def stop(self) -> None:
        if self.child is not None:
            code = self.child.stop(timeout=60)
            self.child = None
            if code not in (0, None):
                print(f"note: relay serve exited with status {code} (log {self.root / 'relay.log'})")

    def queue_counts(self) -> dict:
        """Queue entries by state, read straight from the SQLite file."""
        import sqlite3
        with sqlite3.connect(self.root / "relay.db", timeout=30) as db:
            return dict(db.execute("SELECT state, count(*) FROM queue GROUP BY state"))
