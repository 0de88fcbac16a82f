"""Secrets at rest: a copy of the database shows no real address and no message text.

Traffic goes both ways through a real `relay serve` (a buyer's message
with its acknowledgment and an attachment, a reply from a seller's
alternate address, a message that bounces into a DSN whose remote error
quotes the real address, and a refused one); then the raw bytes of the
SQLite file and its -wal/-shm files, taken while the relay runs and after
it stopped, are searched for every real address in several spellings,
for the names, and for sentences of the bodies. The same traffic with
`[storage] encrypt = false` shows that the search finds them when they
are there.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import sqlite3
import stat
import sys
from importlib import resources
from pathlib import Path

import aiosmtplib
import pytest
from alembic import command
from alembic.config import Config as AlembicConfig

from aliasing.codec import Party
from aliasing.keys import ensure_key_file, load_key_ring
from relay import config as config_mod
from relay.app import App
from storage.db import make_engine
from storage.sealing import PLAIN, Sealer, SealError, add_storage_key, ensure_storage_key_file
from tests.conftest import compose, open_conversation, run_cli, send, sql, wait_until, write_config

STAFF = "Staff.Member@sellershop.example"
STRANGER = "mallory@elsewhere.example"
BUYER_SENTENCE = "The parcel arrived broken on Tuesday morning"
SELLER_SENTENCE = "We will send a replacement kettle tomorrow"
BOUNCED_SENTENCE = "Your order left our warehouse today"
NAMES = ["Jane Buyer", "Shop One"]


def spellings(text: str) -> set[bytes]:
    """`text` as is, lower and upper case, with the @ as %40, &#64; and =40, and in base64."""
    forms = {text, text.lower(), text.upper()}
    if "@" in text:
        local, domain = text.split("@")
        forms |= {f"{local}{at}{domain}" for at in ("%40", "&#64;", "=40")}
    found = {f.encode() for f in forms}
    for shift in range(3):  # base64 of the text at any of the three alignments
        encoded = base64.b64encode(b"\0" * shift + text.encode())
        found.add(encoded[4 if shift else 0:-4])
    return found


def database_files(folder: Path) -> dict[str, bytes]:
    files = {}
    for name in ("relay.db", "relay.db-wal", "relay.db-shm"):
        path = folder / "data" / name
        if path.exists():
            files[name] = path.read_bytes()
    return files


def with_storage_setting(path: Path, line: str) -> None:
    url = 'url = "sqlite:///data/relay.db"'
    path.write_text(path.read_text().replace(url, f"{url}\n{line}"))


async def traffic(relay_port: int, sink, conv) -> None:
    # The seller's message bounces: the remote error names the buyer's real address.
    sink.handler.failures.append(f"550 5.1.1 <{conv.buyer_email}>: mailbox {conv.buyer_email} unknown")
    await send(relay_port, conv.seller_email, [conv.buyer_alias],
               compose(sender=conv.seller_email, to=conv.buyer_alias, subject=f"Order {conv.order_id}",
                       body=f"{BOUNCED_SENTENCE}.\n"))
    await sink.handler.wait_for(1)  # the DSN to the seller
    buyer = compose(sender=f"Jane Buyer <{conv.buyer_email}>", to=conv.seller_alias,
                    subject=f"Broken kettle, write to {conv.buyer_email}",
                    body=f"{BUYER_SENTENCE}.\nReach me at {conv.buyer_email}.\n")
    buyer = buyer.replace(b"MIME-Version", b"Reply-To: " + conv.buyer_email.encode() + b"\r\nMIME-Version")
    await send(relay_port, conv.buyer_email, [conv.seller_alias], buyer)
    await sink.handler.wait_for(3)  # the message and its acknowledgment
    await send(relay_port, STAFF, [conv.buyer_alias],
               compose(sender=STAFF, to=conv.buyer_alias, subject=f"Re: Order {conv.order_id}",
                       body=f"{SELLER_SENTENCE}.\n"))
    await sink.handler.wait_for(4)
    spoof = compose(sender=STRANGER, to=conv.seller_alias, subject="Hello", body=f"{BUYER_SENTENCE}!\n")
    with pytest.raises(aiosmtplib.SMTPDataError):
        await send(relay_port, conv.buyer_email, [conv.seller_alias], spoof)


@pytest.mark.parametrize("encrypt", [True, False])
async def test_a_copy_of_the_database_reveals_no_real_address(tmp_path, sink, relays, encrypt):
    path = write_config(tmp_path, smarthost_port=sink.port)
    with_storage_setting(path, f"encrypt = {str(encrypt).lower()}")
    assert run_cli(path, "init")[0] == 0
    conv = open_conversation(path)
    assert run_cli(path, "seller", "address", "add", "S1", STAFF)[0] == 0
    relay = await relays(path)
    await traffic(relay.port, sink, conv)
    running = database_files(tmp_path)
    assert await relay.stop(signal.SIGTERM) == 0
    stopped = database_files(tmp_path)

    needles = set()
    for text in (conv.buyer_email, conv.seller_email, STAFF, STRANGER, *NAMES,
                 BUYER_SENTENCE, SELLER_SENTENCE, BOUNCED_SENTENCE):
        needles |= spellings(text)
    found = {needle for files in (running, stopped) for data in files.values()
             for needle in needles if needle in data}
    if encrypt:
        assert found == set()
    else:  # the search finds what is there
        assert {conv.buyer_email.encode(), STAFF.encode(), BUYER_SENTENCE.encode()} <= found

    # The operator still sees everything, through the keys.
    code, out = run_cli(path, "message", "list", "--email", conv.buyer_email.upper())
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["subject"] for r in rows} == {f"Order {conv.order_id}",
                                            f"Broken kettle, write to {conv.buyer_email}",
                                            f"Re: Order {conv.order_id}", "Hello"}
    assert len(sink.handler.to(conv.buyer_email)) == 2  # the acknowledgment and the staff's reply


def test_sealed_values_carry_their_key_and_column(tmp_path):
    key_file = tmp_path / "storage.keys"
    assert ensure_storage_key_file(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    sealer = Sealer(key_file)
    sealed = sealer.seal("threads.buyer_email", "jane@example.org")
    assert sealed[0] == 1 and sealed[1:4] == b"\x02s1" and b"jane" not in sealed
    assert sealer.text("threads.buyer_email", sealed, "s1") == "jane@example.org"
    assert sealer.seal("threads.buyer_email", "jane@example.org") != sealed  # a fresh nonce each time
    with pytest.raises(SealError, match="not from this column"):
        sealer.open("sellers.email", sealed, "s1")
    damaged = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SealError):
        sealer.open("threads.buyer_email", damaged, "s1")
    index = sealer.index("jane@example.org")
    assert add_storage_key(key_file) == "s2" and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert sealer.refresh() and sealer.current == "s2"
    assert sealer.seal("threads.buyer_email", "x@example.org")[1:4] == b"\x02s2"
    assert sealer.text("threads.buyer_email", sealed, "s1") == "jane@example.org"  # old key still opens
    assert sealer.index("jane@example.org") == index  # the blind index survives rotation
    assert Sealer(key_file, encrypt=False).seal("threads.buyer_email", "a@b.example", PLAIN) == b"a@b.example"


def test_a_running_relay_keeps_working_keys_when_the_file_is_spoilt(tmp_path):
    key_file = tmp_path / "storage.keys"
    ensure_storage_key_file(key_file)
    sealer = Sealer(key_file)
    index = sealer.index("jane@example.org")
    good = key_file.read_text()
    key_file.write_text(good + "s2 not-hex\n")
    assert not sealer.refresh() and sealer.current == "s1"  # a bad edit: the keys read before stay
    new_index_key = "index " + "ab" * 32
    key_file.write_text("\n".join(new_index_key if line.startswith("index ") else line
                                  for line in good.splitlines()) + "\n")
    sealer.refresh()
    assert sealer.index("jane@example.org") == index  # the index key never changes under a relay


# --- key files ----------------------------------------------------------------

@pytest.mark.parametrize("key_file", ["keys/alias.keys", "var/storage.keys"])
@pytest.mark.parametrize("mode", [0o640, 0o620, 0o604, 0o602, 0o660])
def test_every_command_refuses_a_key_file_open_to_others(tmp_path, key_file, mode, capsys):
    path = write_config(tmp_path)
    assert run_cli(path, "init")[0] == 0
    for name in ("keys/alias.keys", "var/storage.keys"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    (tmp_path / key_file).chmod(mode)
    capsys.readouterr()
    for command in (["init"], ["message", "list"], ["keys", "rotate", "storage"],
                    ["seller", "add", "S1", "--email", "a@shop.example", "--name", "A"]):
        assert run_cli(path, *command)[0] == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{mode:04o}" in err and "chmod 600" in err, (command, err)
        assert str(tmp_path / key_file) in err


async def test_serve_refuses_an_open_storage_key_file(tmp_path):
    path = write_config(tmp_path)
    assert run_cli(path, "init")[0] == 0
    (tmp_path / "var" / "storage.keys").chmod(0o644)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relay", "--config", str(path), "serve",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1 and out == b""
    assert err.decode().count("\n") == 1 and b"chmod 600" in err and b"Traceback" not in err


# --- rotation -----------------------------------------------------------------

SEALED_TABLES = ("sellers", "seller_addresses", "threads", "messages", "message_bodies",
                 "attachments", "message_events", "queue")


def key_ids(path: Path) -> set:
    return {k for table in SEALED_TABLES for (k,) in sql(path, f"SELECT DISTINCT key_id FROM {table}")}


async def test_rotation_while_running_moves_every_row_and_loses_nothing(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port)
    path = app.config_path
    conv = open_conversation(path)
    assert run_cli(path, "seller", "address", "add", "S1", STAFF)[0] == 0
    # Two deliveries fail for now: their entries wait, sealed with s1, across the rotation.
    sink.handler.failures += ["451 4.3.0 try again"] * 2
    for n in range(3):
        await send(app.server.port, conv.buyer_email, [conv.seller_alias],
                   compose(sender=conv.buyer_email, to=conv.seller_alias, subject=f"Before {n}",
                           body=f"{BUYER_SENTENCE} ({n}).\n"))
    assert key_ids(path) == {"s1"}

    code, out = run_cli(path, "keys", "rotate", "storage")
    assert (code, json.loads(out)) == (0, {"rotated": "storage", "key_id": "s2"})
    await send(app.server.port, STAFF, [conv.buyer_alias],
               compose(sender=STAFF, to=conv.buyer_alias, subject=f"After ({conv.order_id})"))
    # Every row of every table moves to s2 while the relay goes on.
    await wait_until(lambda: key_ids(path) == {"s2"}, timeout=30)
    await sink.handler.wait_for(7)  # 4 messages and 3 acknowledgments, all delivered
    assert {m.message["Subject"] for m in sink.handler.to(conv.seller_email)} == {
        f"Before {n} (Order {conv.order_id})" for n in range(3)}

    # s1 is no longer needed: without it, everything still opens and is found.
    key_file = path.parent / "var" / "storage.keys"
    key_file.write_text("".join(line for line in key_file.read_text().splitlines(keepends=True)
                                if not line.startswith("s1 ")))
    code, out = run_cli(path, "message", "list", "--email", conv.buyer_email)
    assert code == 0
    assert {json.loads(line)["subject"] for line in out.splitlines()} == {
        "Before 0", "Before 1", "Before 2", f"After ({conv.order_id})"}
    assert run_cli(path, "thread", "open", "--seller", "S1", "--buyer-email", conv.buyer_email,
                   "--buyer-name", "Jane Buyer", "--order", conv.order_id)[0] == 0
    await send(app.server.port, conv.buyer_email, [conv.seller_alias],
               compose(sender=conv.buyer_email, to=conv.seller_alias, subject="Later"))
    await sink.handler.wait_for(9)


# --- a database from before encryption ------------------------------------------

def legacy_database(tmp_path: Path, conv_aliases) -> Path:
    """A database at revision 0001 with plaintext rows, as the relay wrote them then."""
    path = write_config(tmp_path)
    (tmp_path / "data").mkdir()
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'relay.db'}")
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("migrations")))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    engine.dispose()
    buyer_alias, seller_alias = conv_aliases
    now = "2026-11-01 10:00:00.000000"
    db = sqlite3.connect(tmp_path / "data" / "relay.db")
    with db:
        db.execute("INSERT INTO sellers VALUES ('S1', 'Shop One', 'Owner@SellerShop.example', "
                   "'owner@sellershop.example', ?)", (now,))
        db.execute("INSERT INTO seller_addresses VALUES (1, 'S1', ?, ?, 1, ?)", (STAFF, STAFF.lower(), now))
        db.execute("INSERT INTO threads VALUES (1, 'S1', '112-1234567-1234567', 'jane.buyer@buyermail.example', "
                   "'jane.buyer@buyermail.example', 'Jane Buyer', 'mfn', ?, ?, 'k1', ?)",
                   (buyer_alias, seller_alias, now))
        db.execute("INSERT INTO messages (id, thread_id, kind, direction, mail_from, rcpt_to, header_from, "
                   "subject, status, attachment_count, auto_reply, no_response_needed, received_at, updated_at) "
                   "VALUES (1, 1, 'conversation', 'buyer_to_seller', 'jane.buyer@buyermail.example', ?, "
                   "'jane.buyer@buyermail.example', 'Old question', 'delivered', 0, 0, 0, ?, ?)",
                   (json.dumps([seller_alias]), now, now))
        db.execute("INSERT INTO message_bodies VALUES (1, ?, ?)",
                   (f"Subject: Old question\r\n\r\n{BUYER_SENTENCE}\r\n".encode(), b"delivered bytes"))
        db.execute("INSERT INTO message_events (message_id, status, detail, at) VALUES (1, 'delivered', "
                   "'250 ok for owner@sellershop.example', ?)", (now,))
        db.execute("INSERT INTO queue (message_id, envelope_from, recipient, state, attempts, lease_expiries, "
                   "next_attempt_at, created_at, updated_at) VALUES (1, 'bounces@marketplace.example', "
                   "'Owner@SellerShop.example', 'delivered', 1, 0, ?, ?, ?)", (now, now, now))
    db.close()
    return path


async def test_plaintext_rows_of_an_older_database_are_sealed_and_still_work(tmp_path, sink):
    ensure_key_file(tmp_path / "keys" / "alias.keys")
    ring = load_key_ring(tmp_path / "keys" / "alias.keys")
    aliases = ring.encode(1, Party.BUYER), ring.encode(1, Party.SELLER)
    path = legacy_database(tmp_path, aliases)
    path.write_text(path.read_text().replace('mode = "mx"\nmx_port = 25',
                                             f'mode = "smarthost"\nsmarthost = "127.0.0.1:{sink.port}"'))
    # Any command seals the directory at once: lookups by address find the old rows.
    code, out = run_cli(path, "thread", "open", "--seller", "S1", "--buyer-email", "JANE.BUYER@buyermail.example",
                        "--buyer-name", "Jane Buyer", "--order", "112-1234567-1234567")
    assert code == 0 and json.loads(out)["thread_id"] == 1
    assert sql(path, "SELECT count(*) FROM threads WHERE key_id IS NULL OR buyer_email_key LIKE '%@%'") == [(0,)]
    # The running relay seals the rest in the background, and the old thread carries mail.
    app = App.build(config_mod.load(path))
    await app.start()
    try:
        await wait_until(lambda: key_ids(path) == {"s1"})
        code, out = run_cli(path, "message", "list", "--email", STAFF)
        assert [json.loads(line)["subject"] for line in out.splitlines()] == ["Old question"]
        buyer_alias = f"{aliases[0]}@marketplace.example"
        await send(app.server.port, STAFF, [buyer_alias],
                   compose(sender=STAFF, to=buyer_alias, subject="Re: Order 112-1234567-1234567"))
        [got] = await sink.handler.wait_for(1)
        assert got.rcpt_tos == ["jane.buyer@buyermail.example"]
    finally:
        await app.stop()


async def test_a_damaged_row_is_reported_and_the_rest_still_moves(relay_factory, sink, capsys):
    app = await relay_factory(smarthost_port=sink.port)
    path = app.config_path
    conv = open_conversation(path)
    for n in range(2):
        await send(app.server.port, conv.buyer_email, [conv.seller_alias],
                   compose(sender=conv.buyer_email, to=conv.seller_alias, subject=f"Question {n}"))
    [(first, sealed)] = sql(path, "SELECT id, subject FROM messages WHERE kind = 'conversation' "
                                  "ORDER BY id LIMIT 1")
    sql(path, "UPDATE messages SET subject = ? WHERE id = ?", sealed[:-1] + bytes([sealed[-1] ^ 1]), first)
    assert run_cli(path, "keys", "rotate", "storage")[0] == 0
    await wait_until(lambda: sql(path, "SELECT id FROM messages WHERE key_id != 's2'") == [(first,)]
                     and key_ids(path) == {"s1", "s2"}
                     and all(k == "s2" for t in SEALED_TABLES if t != "messages"
                             for (k,) in sql(path, f"SELECT DISTINCT key_id FROM {t}")))
    capsys.readouterr()
    assert run_cli(path, "message", "list")[0] == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "messages.subject" in err and "damaged" in err
    await send(app.server.port, conv.buyer_email, [conv.seller_alias],
               compose(sender=conv.buyer_email, to=conv.seller_alias, subject="Still flowing"))
    await sink.handler.wait_for(6)  # three messages, three acknowledgments
