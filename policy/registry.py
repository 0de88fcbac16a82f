"""Every policy rule, once, in the order they run.

The first `Refuse` stops the message; a `Transform` hands its message on
to the rules after it. The content rules of the marketplace's messaging
guide are added here as they are written; `relay.toml [policy]` will be
able to switch them off.

Attachments are judged first (both directions); phishing is judged on
the buyer's message as sent, before `plain_text` converts it; sellers'
HTML is sanitized last, after the rules that refuse.
"""

from __future__ import annotations

from policy.rule import Rule
from policy.rules.attachments import Attachments
from policy.rules.phishing import Phishing
from policy.rules.plain_text import PlainText
from policy.rules.seller_html import SellerHtml


def default_rules() -> list[Rule]:
    return [Attachments(), Phishing(), PlainText(), SellerHtml()]
