"""DKIM: everything the relay delivers verifies against the record `relay keys dkim` prints."""

from __future__ import annotations

import os
import re
import stat

import pytest

from aliasing.keys import KeyFileError
from relay import config as config_mod
from relay import signing
from relay.app import App
from tests.conftest import (ALIAS_DOMAIN, compose, dkim_verifies, open_conversation, publish_dkim,
                            run_cli, send, write_config)

RECORD = re.compile(r'^(?P<selector>[a-z0-9.-]+)\._domainkey\.' + re.escape(ALIAS_DOMAIN)
                    + r'\. IN TXT (?P<strings>"[^"]{1,255}"(?: "[^"]{1,255}")*)\n$')


def _signature_tags(data: bytes) -> dict[str, str]:
    header = data.split(b"\r\n\r\n", 1)[0].decode()
    unfolded = re.sub(r"\r\n[ \t]+", " ", header)
    line = next(h for h in unfolded.split("\r\n") if h.lower().startswith("dkim-signature:"))
    tags = [t.strip() for t in line.split(":", 1)[1].split(";") if t.strip()]
    return {k.strip(): v.strip() for k, v in (t.split("=", 1) for t in tags)}


async def test_conversation_message_and_acknowledgment_verify(relay_factory, sink, dns_server):
    app = await relay_factory(smarthost_port=sink.port)
    conv = open_conversation(app.config_path)
    await publish_dkim(app.config_path, dns_server)
    await send(app.server.port, conv.buyer_email, [conv.seller_alias],
               compose(sender=conv.buyer_email, to=conv.seller_alias, subject="Where is it?"))
    received = await sink.handler.wait_for(2)
    for message in received:
        assert await dkim_verifies(message.data, dns_server), message.data[:400]
        tags = _signature_tags(message.data)
        assert tags["d"] == ALIAS_DOMAIN and tags["s"] == "relay"
        assert tags["a"] == "rsa-sha256" and tags["c"] == "relaxed/relaxed"
        signed = [h.strip().lower() for h in tags["h"].split(":")]
        assert {"from", "to", "subject", "date", "message-id"} <= set(signed)
    assert dns_server.queries[(f"relay._domainkey.{ALIAS_DOMAIN}", "TXT")] >= 2
    # A changed body no longer verifies: the check above can fail.
    [conversation] = sink.handler.to(conv.seller_email)
    tampered = conversation.data.replace(b"Hello", b"Hullo", 1)
    assert tampered != conversation.data
    assert not await dkim_verifies(tampered, dns_server)


async def test_a_dsn_is_signed_too(relay_factory, sink, dns_server):
    app = await relay_factory(smarthost_port=sink.port)
    conv = open_conversation(app.config_path)
    await publish_dkim(app.config_path, dns_server)
    sink.handler.failures.append("550 5.1.1 no such user")
    await send(app.server.port, conv.seller_email, [conv.buyer_alias],
               compose(sender=conv.seller_email, to=conv.buyer_alias, subject=f"Order {conv.order_id}"))
    dsn = (await sink.handler.wait_for(1))[0]
    assert dsn.rcpt_tos == [conv.seller_email] and b"multipart/report" in dsn.data
    assert await dkim_verifies(dsn.data, dns_server)


async def test_sign_false_delivers_unsigned(tmp_path, sink):
    path = write_config(tmp_path, smarthost_port=sink.port)
    path.write_text(path.read_text().replace('key_file = "keys/dkim.key"',
                                             'key_file = "keys/dkim.key"\nsign = false'))
    app = App.build(config_mod.load(path))
    await app.start()
    try:
        conv = open_conversation(path)
        await send(app.server.port, conv.seller_email, [conv.buyer_alias],
                   compose(sender=conv.seller_email, to=conv.buyer_alias, subject=f"Order {conv.order_id}"))
        received = (await sink.handler.wait_for(1))[0]
        assert b"DKIM-Signature" not in received.data and b"Order" in received.data
    finally:
        await app.stop()


async def test_rotation_switches_a_running_relay_to_the_new_selector(relay_factory, sink, dns_server):
    app = await relay_factory(smarthost_port=sink.port)
    conv = open_conversation(app.config_path)
    first = await publish_dkim(app.config_path, dns_server)
    code, out = run_cli(app.config_path, "keys", "rotate", "dkim")
    assert code == 0, out
    second = await publish_dkim(app.config_path, dns_server)
    assert second != first and re.match(r"^relay-\d{8}\._domainkey\.", second)
    await send(app.server.port, conv.seller_email, [conv.buyer_alias],
               compose(sender=conv.seller_email, to=conv.buyer_alias, subject=f"Order {conv.order_id}"))
    received = (await sink.handler.wait_for(1))[0]
    assert _signature_tags(received.data)["s"] == second.split(".", 1)[0]
    assert await dkim_verifies(received.data, dns_server)


def test_init_creates_the_key_0600_and_keys_dkim_prints_one_zone_line(tmp_path):
    path = write_config(tmp_path, dkim_key=False)
    assert not (tmp_path / "keys" / "dkim.key").exists()
    code, _ = run_cli(path, "init")
    assert code == 0
    key_file = tmp_path / "keys" / "dkim.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    code, out = run_cli(path, "keys", "dkim")
    assert code == 0
    match = RECORD.match(out)
    assert match, out
    value = "".join(s.strip('"') for s in match.group("strings").split('" "'))
    assert value.startswith("v=DKIM1; k=rsa; p=MII") and len(match.group("strings").split('" "')) == 2
    # init again keeps the key
    before = key_file.read_bytes()
    assert run_cli(path, "init")[0] == 0 and key_file.read_bytes() == before


def test_a_key_file_readable_by_others_is_refused(tmp_path, capsys):
    path = write_config(tmp_path)
    assert run_cli(path, "init")[0] == 0
    key_file = tmp_path / "keys" / "dkim.key"
    os.chmod(key_file, 0o644)
    with pytest.raises(KeyFileError, match="open to others"):
        signing.load_key(key_file)
    code, _ = run_cli(path, "keys", "dkim")
    assert code == 1 and "chmod 600" in capsys.readouterr().err
    code, _ = run_cli(path, "init")
    assert code == 1 and "dkim.key is open to others" in capsys.readouterr().err


def test_a_broken_key_file_is_one_clear_error(tmp_path, capsys):
    path = write_config(tmp_path)
    assert run_cli(path, "init")[0] == 0
    key_file = tmp_path / "keys" / "dkim.key"
    key_file.write_text("# selector: relay\n-----BEGIN RSA PRIVATE KEY-----\nnot a key\n")
    code, _ = run_cli(path, "keys", "dkim")
    err = capsys.readouterr().err
    assert code == 1 and "cannot be read" in err and "Traceback" not in err


@pytest.mark.parametrize(("current", "expected"), [
    ("relay", "relay-20261126"),
    ("relay-20250101", "relay-20261126"),
    ("relay-20261126", "relay-20261126-2"),
    ("relay-20261126-2", "relay-20261126-3"),
])
def test_rotation_selectors(current, expected):
    from datetime import date
    assert signing.next_selector(current, "relay", date(2026, 11, 26)) == expected


def test_dkim_defaults(tmp_path):
    (tmp_path / "relay.toml").write_text("")
    c = config_mod.load(tmp_path / "relay.toml").dkim
    assert c.selector == "relay" and c.sign is True and c.key_file == tmp_path / "var" / "dkim.key"
