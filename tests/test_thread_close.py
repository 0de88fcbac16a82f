"""`relay thread close` and `reopen`: a closed conversation's aliases refuse mail at RCPT."""

from __future__ import annotations

import json

import pytest

from tests.conftest import compose, open_conversation, run_cli, sql, write_config
from tests.test_smtp_conversation import data_reply, rcpt_reply


async def test_a_closed_thread_refuses_mail_to_both_aliases_until_reopened(relay, sink):
    conv = open_conversation(relay.config_path)
    code, out = run_cli(relay.config_path, "thread", "close", str(conv.thread_id))
    assert code == 0
    closed = json.loads(out)
    assert (closed["thread_id"], closed["closed"]) == (conv.thread_id, True) and closed["closed_at"]

    for sender, alias in ((conv.buyer_email, conv.seller_alias), (conv.seller_email, conv.buyer_alias)):
        code, text = await rcpt_reply(relay.server.port, sender, alias)
        assert (code, text.split()[0]) == (550, "5.1.1")
        assert "conversation closed" in text

    code, out = run_cli(relay.config_path, "thread", "reopen", str(conv.thread_id))
    assert code == 0 and json.loads(out) == {"thread_id": conv.thread_id, "closed": False, "closed_at": None}
    data = compose(sender=conv.buyer_email, to=conv.seller_alias, subject="after reopening")
    code, text = await data_reply(relay.server.port, conv.buyer_email, conv.seller_alias, data)
    assert code == 250, text
    await sink.handler.wait_for(2)
    assert len(sink.handler.to(conv.seller_email)) == 1


async def test_closing_twice_keeps_the_first_time_and_other_threads_stay_open(relay):
    conv = open_conversation(relay.config_path)
    other = open_conversation(relay.config_path, order_id="112-7654321-7654321")
    first = json.loads(run_cli(relay.config_path, "thread", "close", str(conv.thread_id))[1])
    again = json.loads(run_cli(relay.config_path, "thread", "close", str(conv.thread_id))[1])
    assert again["closed_at"] == first["closed_at"]
    assert sql(relay.config_path, "SELECT closed_at IS NOT NULL FROM threads ORDER BY id") == [(1,), (0,)]
    code, _ = await rcpt_reply(relay.server.port, other.buyer_email, other.seller_alias)
    assert code == 250


@pytest.fixture(scope="module")
def initialized(tmp_path_factory):
    path = write_config(tmp_path_factory.mktemp("close"))
    assert run_cli(path, "init")[0] == 0
    return path


@pytest.mark.parametrize("args, exit_code, says", [
    (["thread", "close", "4242"], 1, "no thread with id 4242"),
    (["thread", "reopen", "4242"], 1, "no thread with id 4242"),
    (["thread", "close", "99999999999999999999"], 1, "no thread"),
    (["thread", "close", "one"], 2, "thread id"),
    (["thread", "reopen", "-1"], 2, "thread id"),
    (["thread", "close"], 2, "thread_id"),
])
def test_an_unknown_or_bad_thread_id_is_one_line(initialized, capsys, args, exit_code, says):
    capsys.readouterr()
    code, out = run_cli(initialized, *args)
    err = capsys.readouterr().err
    assert code == exit_code and out == ""
    assert err.count("\n") == 1 and err.startswith("relay: error: ") and says in err, err
