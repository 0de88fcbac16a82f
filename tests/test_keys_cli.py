"""`relay keys rotate alias`: a running relay accepts aliases made under the new key."""

from __future__ import annotations

import json

from tests.conftest import compose, open_conversation, run_cli, send


async def test_aliases_of_old_and_new_keys_work_in_a_running_relay(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port)
    before = open_conversation(app.config_path)
    code, out = run_cli(app.config_path, "keys", "rotate", "alias")
    assert code == 0 and json.loads(out) == {"rotated": "alias", "key_id": "k2"}
    after = open_conversation(app.config_path, order_id="112-7654321-7654321")
    assert after.buyer_alias != before.buyer_alias
    for conv in (before, after):
        errors, _ = await send(app.server.port, conv.seller_email, [conv.buyer_alias],
                               compose(sender=conv.seller_email, to=conv.buyer_alias,
                                       subject=f"Order {conv.order_id}"))
        assert errors == {}
    received = await sink.handler.wait_for(2)
    assert sorted(m.rcpt_tos[0] for m in received) == [before.buyer_email] * 2


def test_rotate_names_only_known_keys(tmp_path, capsys):
    from tests.conftest import write_config
    path = write_config(tmp_path)
    code, _ = run_cli(path, "keys", "rotate", "everything")
    err = capsys.readouterr().err
    assert code == 2 and "invalid choice" in err and "alias" in err and "dkim" in err
