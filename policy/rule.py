"""What a rule is: a name, the directions it applies to, one check.

`Context` tells a rule what it cannot read from the message itself: the
direction, the thread's order id, the marketplace's name and its alias
domain.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from policy.parsed import ParsedMessage
from policy.verdicts import Verdict


class Direction(str, enum.Enum):
    BUYER_TO_SELLER = "buyer_to_seller"
    SELLER_TO_BUYER = "seller_to_buyer"


BOTH = frozenset(Direction)


@dataclass(frozen=True)
class Context:
    direction: Direction
    order_id: str
    marketplace_name: str
    alias_domain: str = ""


class Rule(Protocol):
    name: str
    directions: frozenset[Direction]

    def check(self, parsed: ParsedMessage, ctx: Context) -> Verdict: ...
