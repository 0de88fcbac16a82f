"""`[policy]` builds the rule list: its order, switching rules off, and a data folder."""

from __future__ import annotations

import pytest

from relay import config as config_mod
from relay.config import ConfigError, PolicyConfig
from policy.registry import RULE_NAMES, default_rules
from tests.conftest import ORDER_ID, compose, open_conversation, send, wait_until


def load(tmp_path, text: str) -> config_mod.Config:
    path = tmp_path / "relay.toml"
    path.write_text(text)
    return config_mod.load(path)


def test_defaults_and_the_shipped_relay_toml():
    c = PolicyConfig()
    assert c.enabled and c.disabled_rules == () and c.link_allow_domains == () and c.data_dir is None
    assert [r.name for r in default_rules(c)] == list(RULE_NAMES)


def test_the_rules_run_in_the_planned_order():
    planned = ["attachments", "phishing", "plain_text", "text_size", "links", "promotion", "reviews", "payment", "order_id",
               "seller_html"]
    assert list(RULE_NAMES) == [name for name in planned if name in RULE_NAMES]


def test_values_are_read_and_data_dir_is_relative_to_the_config(tmp_path):
    (tmp_path / "lists").mkdir()
    c = load(tmp_path, '[policy]\nenabled = true\ndisabled_rules = ["reviews"]\n'
                       'link_allow_domains = ["UPS.com", "dhl.de."]\npromotion_threshold = 4.5\n'
                       'data_dir = "lists"\n').policy
    assert c.disabled_rules == ("reviews",) and c.link_allow_domains == ("ups.com", "dhl.de")
    assert c.promotion_threshold == 4.5 and c.data_dir == tmp_path / "lists"
    assert [r.name for r in default_rules(c)] == [n for n in RULE_NAMES if n != "reviews"]


@pytest.mark.parametrize("name, content", [
    ("promotion.txt", "three \\bcoupon\\b\n"),
    ("payment.txt", "3 (unclosed\n"),
    ("negations.txt", "(unclosed\n"),
    ("reviews.txt", b"\xff\xfe3 x\n"),
])
def test_an_unusable_list_in_data_dir_is_one_config_error(tmp_path, name, content):
    (tmp_path / "lists").mkdir()
    target = tmp_path / "lists" / name
    target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content)
    policy = load(tmp_path, '[policy]\ndata_dir = "lists"\n').policy
    with pytest.raises(ConfigError) as caught:
        default_rules(policy)
    assert str(caught.value).startswith("[policy] data_dir") and "\n" not in str(caught.value)


def test_enabled_false_runs_no_rule(tmp_path):
    assert default_rules(load(tmp_path, "[policy]\nenabled = false\n").policy) == []


async def test_over_smtp_a_disabled_rule_lets_its_violation_through(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port, extra='\n[policy]\ndisabled_rules = ["order_id", "links"]\n')
    conv = open_conversation(app.config_path)
    data = compose(sender=conv.seller_email, to=conv.buyer_alias, subject="Your parcel",
                   body="Hi Jane, tracking on www.example.com\n")
    await send(app.server.port, conv.seller_email, [conv.buyer_alias], data)
    received = await wait_until(lambda: sink.handler.to(conv.buyer_email))
    assert "www.example.com" in received[0].data.decode()
    assert ORDER_ID not in received[0].message["Subject"]


def test_the_shipped_relay_toml_has_the_defaults():
    from pathlib import Path
    shipped = config_mod.load(Path(__file__).resolve().parent.parent / "relay.toml")
    assert shipped.policy == PolicyConfig()
