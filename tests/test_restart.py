"""Durability: `relay serve` as a real process, killed and restarted.

The relay runs as `python -m relay --config ... serve` in its own process,
so SIGKILL is a real crash; the sink runs in the test's event loop. What is
in the queue is read from, and for the lease tests written to, the relay's
real SQLite file while no relay runs.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from pathlib import Path

import aiosmtplib
import pytest

from relay import config as config_mod
from relay.app import App
from storage.queue import MAX_LEASE_EXPIRIES
from tests.conftest import (compose, free_port, open_conversation, run_cli, sql, start_sink, wait_until,
                            write_config)

N_MESSAGES = 20


async def send_many(port: int, conv, count: int) -> list[str]:
    """Seller replies, each with its own subject, over one SMTP session; all must get 250."""
    subjects = [f"Update {i:02d} for order {conv.order_id}" for i in range(count)]
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=30)
    await client.connect()
    for subject in subjects:
        data = compose(sender=f"Shop One <{conv.seller_email}>", to=conv.buyer_alias, subject=subject)
        errors, _ = await client.sendmail(conv.seller_email, [conv.buyer_alias], data)  # raises unless 250
        assert errors == {}
    await client.quit()
    return subjects


async def expect_all_delivered(sink, subjects: list[str]) -> None:
    await wait_until(lambda: {m.message["Subject"] for m in sink.handler.messages} >= set(subjects), timeout=30)
    seen = [m.message["Subject"] for m in sink.handler.messages]
    duplicates = {s for s in seen if seen.count(s) > 1}
    # At least once is the promise; but in these tests nothing reached a mailbox
    # before the crash, so a duplicate here would mean a finished entry was redone.
    assert not duplicates, f"delivered more than once: {sorted(duplicates)}"


async def restart_and_expect(relays, path: Path, sink_port: int, subjects: list[str]) -> None:
    """Bring the mailbox up where the relay delivers, start the relay again, see everything arrive."""
    sink = await start_sink(sink_port)
    try:
        await relays(path)
        await expect_all_delivered(sink, subjects)
    finally:
        await sink.close()


def prepare(folder: Path, smarthost_port: int):
    """A config, an initialized database and an open thread, with no relay running."""
    path = write_config(folder, smarthost_port=smarthost_port)
    assert run_cli(path, "init")[0] == 0
    return path, open_conversation(path)


def states(config_path: Path) -> list[str]:
    return [s for (s,) in sql(config_path, "SELECT state FROM queue ORDER BY id")]


async def test_sigkill_with_the_sink_down_loses_nothing(tmp_path, relays):
    sink_port = free_port()  # nothing listens here yet
    path, conv = prepare(tmp_path, sink_port)
    relay = await relays(path)
    subjects = await send_many(relay.port, conv, N_MESSAGES)
    await wait_until(lambda: "deferred" in states(path))  # the worker has tried and failed
    assert await relay.stop(signal.SIGKILL) == -signal.SIGKILL
    assert "delivered" not in states(path)
    sink = await start_sink(sink_port)
    try:
        await relays(path)
        await expect_all_delivered(sink, subjects)
        await wait_until(lambda: states(path) == ["delivered"] * N_MESSAGES)
    finally:
        await sink.close()


class BlackHole:
    """A mail server that accepts connections and never says a word: deliveries hang."""

    def __init__(self):
        self.held: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self, port: int) -> BlackHole:
        async def swallow(_reader, writer):
            self.held.append(writer)
        self.server = await asyncio.start_server(swallow, "127.0.0.1", port)
        return self

    def close(self) -> None:
        self.server.close()
        for writer in self.held:
            writer.close()


async def test_sigkill_during_delivery_is_recovered_on_restart(tmp_path, relays):
    """The crash hits while every entry is leased: the restart must not wait out the lease."""
    sink_port = free_port()
    hole = await BlackHole().start(sink_port)
    path, conv = prepare(tmp_path, sink_port)
    relay = await relays(path)
    subjects = await send_many(relay.port, conv, 5)
    await wait_until(lambda: states(path) == ["active"] * 5)
    await relay.stop(signal.SIGKILL)
    hole.close()
    await restart_and_expect(relays, path, sink_port, subjects)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_exits_zero_without_waiting_for_idle_sessions(tmp_path, relays, sink, sig):
    path, _ = prepare(tmp_path, sink.port)
    # A grace far beyond stop()'s 30 s wait: only closing the idle session at once passes.
    path.write_text(path.read_text().replace("shutdown_grace = 5", "shutdown_grace = 300"))
    relay = await relays(path)
    idle = aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, start_tls=False, timeout=30)
    await idle.connect()
    await idle.ehlo()
    assert await relay.stop(sig) == 0
    assert "Traceback" not in relay.log()


async def test_sigterm_during_a_stuck_delivery_exits_zero_and_requeues(tmp_path, relays):
    sink_port = free_port()
    hole = await BlackHole().start(sink_port)
    path, conv = prepare(tmp_path, sink_port)
    path.write_text(path.read_text().replace("shutdown_grace = 5", "shutdown_grace = 1"))
    relay = await relays(path)
    subjects = await send_many(relay.port, conv, 2)
    await wait_until(lambda: states(path) == ["active"] * 2)
    # The delivery timeout (60 s) is far longer than the wait: the stop must cut it short.
    assert await relay.stop(signal.SIGTERM) == 0
    assert sql(path, "SELECT state, attempts, lease_owner FROM queue") == [("queued", 0, None)] * 2
    hole.close()
    await restart_and_expect(relays, path, sink_port, subjects)


@pytest.mark.parametrize("processes", [1, 2])
async def test_a_busy_port_is_one_clear_error(tmp_path, processes):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path, _ = prepare(tmp_path, free_port())
        path.write_text(path.read_text().replace("port = 0", f"port = {port}\nprocesses = {processes}", 1))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "relay", "--config", str(path), "serve",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert "Traceback" not in err.decode()
    assert f"cannot listen on 127.0.0.1:{port}" in err.decode().splitlines()[-1]


async def test_sigterm_lets_a_transaction_in_flight_finish(tmp_path, relays, sink):
    path, conv = prepare(tmp_path, sink.port)
    relay = await relays(path)
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, start_tls=False, timeout=30)
    await client.connect()
    await client.ehlo()
    await client.mail(conv.seller_email)
    await client.rcpt(conv.buyer_alias)
    relay.proc.send_signal(signal.SIGTERM)

    async def refused() -> bool:  # the listener is closed: the shutdown has begun
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        except (ConnectionRefusedError, ConnectionResetError):  # reset: closed with us in its backlog
            return True
        writer.close()
        return False
    for _ in range(100):
        if await refused():
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the relay kept accepting connections after SIGTERM")
    data = compose(sender=f"Shop One <{conv.seller_email}>", to=conv.buyer_alias,
                   subject=f"Last words on {conv.order_id}")
    response = await client.data(data)
    assert response.code == 250
    await client.quit()
    assert await asyncio.wait_for(relay.proc.wait(), 30) == 0
    if not sink.handler.messages:  # not delivered before the exit: then after a restart
        await relays(path)
    [got] = await sink.handler.wait_for(1)
    assert got.message["Subject"] == f"Last words on {conv.order_id}"


async def run_app(path: Path) -> App:
    app = App.build(config_mod.load(path))
    await app.start()
    return app


async def test_expired_lease_is_redelivered_and_a_repeat_offender_parked(tmp_path, sink):
    path, conv = prepare(tmp_path, free_port())  # the first run cannot deliver
    app = await run_app(path)
    try:
        subjects = await send_many(app.server.port, conv, 2)
        await wait_until(lambda: states(path) == ["deferred", "deferred"])
    finally:
        await app.stop()
    # As if a worker on another host had crashed on each entry, the second one for the last time.
    crashed = "2000-01-01 00:00:00.000000"
    for entry_id, expiries in ((1, MAX_LEASE_EXPIRIES - 2), (2, MAX_LEASE_EXPIRIES - 1)):
        sql(path, "UPDATE queue SET state = 'active', lease_owner = 'gone.example:1:dead', "
                  "lease_until = ?, lease_expiries = ? WHERE id = ?", crashed, expiries, entry_id)
    write_config(tmp_path, smarthost_port=sink.port)
    app = await run_app(path)
    try:
        await sink.handler.wait_for(2)
        delivered = [m.message["Subject"] for m in sink.handler.messages]
        assert subjects[0] in delivered and subjects[1] not in delivered
        # The parked message is not sent, but its sender is told (a DSN, the third entry).
        [dsn] = sink.handler.to(conv.seller_email)
        assert dsn.message.get_content_type() == "multipart/report"
        assert dsn.mail_from in ("", "<>")
        await wait_until(lambda: states(path) == ["delivered", "parked", "delivered"])
        assert sql(path, "SELECT lease_expiries FROM queue ORDER BY id") == [
            (MAX_LEASE_EXPIRIES - 1,), (MAX_LEASE_EXPIRIES,), (0,)]
        code, out = run_cli(path, "message", "list")
        assert code == 0
        listed = {row["subject"]: row["status"] for row in map(json.loads, out.splitlines())}
        assert listed == {subjects[0]: "delivered", subjects[1]: "bounced"}
        await asyncio.sleep(1.5)  # a few polls: the parked entry stays parked
        assert len(sink.handler.messages) == 2 and states(path) == ["delivered", "parked", "delivered"]
    finally:
        await app.stop()
