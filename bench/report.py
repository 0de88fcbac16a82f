"""Tables and target verdicts for the results of one benchmark run.

`table(results, markdown)` lays out one row per system and cell, with the
delivered rate as a ratio to Postfix's in the same cell, the CPU time the
system used per delivered message, how many cores that kept busy, and how
busy all of the machine's CPUs were (the load generator and the sink
included). `verdicts(results)`
checks the relay against the targets: delivered messages/s of at least
1.0x Postfix at 1 KB (10 and 50 sessions), 0.6x at 100 KB and 0.3x at
5 MB (every session count), and no message lost in any cell. `machine()`
describes the computer the numbers come from.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from driver import CellResult
from procs import find_program

SYSTEMS = ("postfix", "passthrough", "relay")
# size in bytes -> (minimum ratio to Postfix, session counts it applies to or None for all)
TARGETS = {1024: (1.0, {10, 50}), 100 * 1024: (0.6, None), 5 * 1024 * 1024: (0.3, None)}


def size_label(size: int) -> str:
    for unit, factor in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def _ratio(result: CellResult, baseline: CellResult | None) -> str:
    if baseline is None or baseline.delivered_rate <= 0:
        return "n/a"
    return f"{result.delivered_rate / baseline.delivered_rate:.2f}x"


def _postfix_of(results: list[CellResult], r: CellResult) -> CellResult | None:
    cell = (r.load.size, r.load.sessions)
    for other in results:
        if other.system == "postfix" and (other.load.size, other.load.sessions) == cell:
            return other
    return None


def table(results: list[CellResult], markdown: bool = False) -> str:
    header = ["size", "sessions", "messages", "system", "accepted/s", "delivered/s", "lost",
              "vs Postfix", "CPU ms/msg", "cores", "CPUs busy"]
    rows = []
    for r in results:
        lost = str(r.lost) + (f" ({r.null_sender} bounces)" if r.null_sender else "")
        if r.error:
            lost += " [error]"
        rows.append([size_label(r.load.size), str(r.load.sessions), str(r.load.messages), r.system,
                     f"{r.accepted_rate:.1f}", f"{r.delivered_rate:.1f}", lost,
                     _ratio(r, _postfix_of(results, r)),
                     "n/a" if r.cpu_ms_per_message is None else f"{r.cpu_ms_per_message:.2f}",
                     "n/a" if r.cores is None else f"{r.cores:.2f}",
                     f"{r.machine_busy * 100:.0f}%"])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    else:
        widths = [max(len(x) for x in column) for column in zip(header, *rows)]

        def fmt(row: list[str]) -> str:  # the system's name left, numbers right
            return "  ".join(x.ljust(w) if i == 3 else x.rjust(w)
                             for i, (x, w) in enumerate(zip(row, widths)))
        lines = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(row) for row in rows]
    errors = [f"error in {r.system} {size_label(r.load.size)} x {r.load.sessions}: {r.error}"
              for r in results if r.error]
    return "\n".join(lines + errors)


def verdicts(results: list[CellResult]) -> list[str]:
    """One line per relay cell with a target: met or short, and by how much."""
    lines = []
    for r in results:
        if r.system != "relay":
            continue
        label = f"{size_label(r.load.size)} x {r.load.sessions} sessions"
        target = TARGETS.get(r.load.size)
        if target and (target[1] is None or r.load.sessions in target[1]):
            baseline = _postfix_of(results, r)
            if baseline is None or baseline.delivered_rate <= 0:
                lines.append(f"{label}: no Postfix figure to compare with")
            else:
                ratio = r.delivered_rate / baseline.delivered_rate
                verdict = "met" if ratio >= target[0] else "SHORT"
                lines.append(f"{label}: {ratio:.2f}x Postfix (target {target[0]:.1f}x): {verdict}")
        if r.lost or r.error:
            lines.append(f"{label}: {r.lost} lost{', error: ' + r.error if r.error else ''}: SHORT")
    relay = [r for r in results if r.system == "relay"]
    if relay and not any(r.lost or r.error for r in relay):
        lines.append("messages lost by the relay: 0 in every cell: met")
    return lines


def machine() -> dict[str, str]:
    info = {"cpus": str(os.cpu_count()), "cpu": _cpu_model(), "memory": _memory(),
            "os": _os_name(), "kernel": platform.release(), "python": platform.python_version()}
    postconf = find_program("postconf")
    if postconf:
        done = subprocess.run([postconf, "-h", "mail_version"], capture_output=True, text=True)
        info["postfix"] = done.stdout.strip() or "unknown"
    info["load average"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()
