"""Rule `order_id`: a seller's message names the thread's order.

The order ID (`ctx.order_id`) must appear in the subject or in what the
seller wrote (`policy/authored.py`); one that appears only in the quoted
buyer message does not count. Spaces or other dashes inside the number
("112 1234567 1234567", "112–1234567–1234567") are accepted.
"""

from __future__ import annotations

import re

from policy.authored import authored
from policy.parsed import ParsedMessage
from policy.rule import Context, Direction
from policy.verdicts import Pass, Refuse, Verdict
from relay import replies

_SEPARATORS = re.compile(r"[\s\-‐‑‒–—―－]+")


class OrderId:
    name = "order_id"
    directions = frozenset({Direction.SELLER_TO_BUYER})

    def check(self, parsed: ParsedMessage, ctx: Context) -> Verdict:
        if not ctx.order_id:
            return Pass()
        view = authored(parsed)
        if ctx.order_id in view.subject or ctx.order_id in view.text:
            return Pass()
        wanted = _SEPARATORS.sub("", ctx.order_id)
        if wanted in _SEPARATORS.sub("", view.subject) or wanted in _SEPARATORS.sub("", view.text):
            return Pass()
        return Refuse(replies.R550_ORDER_ID, f"order id {ctx.order_id} not in subject or authored text",
                      view.subject[:200])
