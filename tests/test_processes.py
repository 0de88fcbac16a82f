"""Several relay processes on one port and one database (`[smtp] processes`).

`relay serve` runs as a real supervisor process with two workers; mail
sent over many concurrent sessions is spread over both, and every accepted
message must be delivered exactly once: a queue entry is claimed by one
worker only. A worker that dies is replaced, and SIGTERM stops them all.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiosmtplib

from tests.conftest import compose, open_conversation, run_cli, sql, wait_until, write_config
from tests.test_restart import expect_all_delivered

SESSIONS = 8
PER_SESSION = 6


def workers_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children]


async def send_session(port: int, conv, tag: str, count: int) -> list[str]:
    subjects = [f"{tag}-{i} order {conv.order_id}" for i in range(count)]
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=30)
    await client.connect()
    for subject in subjects:
        data = compose(sender=f"Shop One <{conv.seller_email}>", to=conv.buyer_alias, subject=subject)
        errors, _ = await client.sendmail(conv.seller_email, [conv.buyer_alias], data)
        assert errors == {}
    await client.quit()
    return subjects


async def test_two_processes_deliver_each_message_once(tmp_path, relays, sink):
    path = write_config(tmp_path, smarthost_port=sink.port, smtp_extra="processes = 2")
    assert run_cli(path, "init")[0] == 0
    conv = open_conversation(path)
    relay = await relays(path)
    assert len(workers_of(relay.proc.pid)) == 2
    batches = await asyncio.gather(*(send_session(relay.port, conv, f"s{n}", PER_SESSION)
                                     for n in range(SESSIONS)))
    subjects = [s for batch in batches for s in batch]
    await expect_all_delivered(sink, subjects)
    await wait_until(lambda: sql(path, "SELECT count(*) FROM queue WHERE state = 'delivered'")
                     == [(len(subjects),)])
    assert len(sink.handler.messages) == len(subjects)
    assert await relay.stop(signal.SIGTERM) == 0


async def test_a_dead_worker_is_replaced(tmp_path, relays, sink):
    path = write_config(tmp_path, smarthost_port=sink.port, smtp_extra="processes = 2")
    assert run_cli(path, "init")[0] == 0
    conv = open_conversation(path)
    relay = await relays(path)
    first, second = workers_of(relay.proc.pid)
    os.kill(first, signal.SIGKILL)
    await wait_until(lambda: len(workers_of(relay.proc.pid)) == 2 and first not in workers_of(relay.proc.pid))
    assert second in workers_of(relay.proc.pid)
    subjects = await send_session(relay.port, conv, "after", 3)
    await expect_all_delivered(sink, subjects)
    assert await relay.stop(signal.SIGTERM) == 0
