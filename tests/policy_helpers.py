"""Small builders for the rule tests: a parsed seller message and the context."""

from __future__ import annotations

import email.message
import email.policy

from policy.parsed import ParsedMessage
from policy.rule import Context, Direction
from tests.conftest import ORDER_ID

SELLER_CTX = Context(Direction.SELLER_TO_BUYER, ORDER_ID, "Marketplace")
BUYER_CTX = Context(Direction.BUYER_TO_SELLER, ORDER_ID, "Marketplace")


def parsed(text: str | None = None, *, html: str | None = None, subject: str = f"Order {ORDER_ID}") -> ParsedMessage:
    msg = email.message.EmailMessage()
    msg["From"] = "Shop One <owner@sellershop.example>"
    msg["Subject"] = subject
    if text is not None:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    else:
        msg.set_content(html or "", subtype="html")
    return ParsedMessage.from_bytes(msg.as_bytes(policy=email.policy.SMTP))
