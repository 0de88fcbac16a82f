"""Every seller rule returns a verdict for any text or HTML: no exception, whatever arrives."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy.registry import default_rules
from policy.verdicts import Pass, Refuse, Transform
from relay.config import PolicyConfig
from tests.policy_helpers import SELLER_CTX, parsed

RULES = [r for r in default_rules(PolicyConfig()) if SELLER_CTX.direction in r.directions]
PIECES = st.sampled_from([
    "<a href='", "http://", "www.", ".com", "[.]", " dot ", "<blockquote type=\"cite\">", "</blockquote>",
    "<div class=\"gmail_quote\">", "</div>", "<!--", "-->", "<style>", "url(", "> ", "\n", "wrote:",
    "-----Original Message-----", "From: x\nSent: y\n", "coupon code", "PayPal", "不能", "ません", "%", "@",
    "112-1234567-1234567", "\u0130", "\ufb01", "\x00", "é", "xn--", ".", "-", "/", "&amp;", "&#x",
])
TEXT = st.lists(st.one_of(PIECES, st.text(max_size=20)), max_size=40).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXT, html=TEXT, subject=TEXT)
def test_rules_answer_any_input(text, html, subject):
    message = parsed(text, html=html, subject="".join(c for c in subject if c.isprintable())[:200])
    for rule in RULES:
        assert isinstance(rule.check(message, SELLER_CTX), (Pass, Refuse, Transform))
