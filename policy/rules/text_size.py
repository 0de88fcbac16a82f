"""Rule `text_size`: a seller's own text is short enough to be read whole.

The seller rules read each part's own words (`policy/authored.py`,
quoted history left out) up to `SCAN_CHARS` characters, and its own HTML
up to `SCAN_HTML_CHARS`. A message with more is refused with 552 5.3.4
rather than judged on its beginning only: otherwise a link or an offer
placed after enough filler would go unread. Quoted history, however
long, does not count.
"""

from __future__ import annotations

from policy.authored import SCAN_CHARS, authored
from policy.parsed import ParsedMessage
from policy.rule import Context, Direction
from policy.verdicts import Pass, Refuse, Verdict
from relay import replies


class TextSize:
    name = "text_size"
    directions = frozenset({Direction.SELLER_TO_BUYER})

    def check(self, parsed: ParsedMessage, ctx: Context) -> Verdict:
        view = authored(parsed)
        if not view.oversized:
            return Pass()
        return Refuse(replies.R552_TEXT_TOO_LONG,
                      f"own text longer than {SCAN_CHARS // 1024} KB (quoted history not counted)",
                      view.text[:200])
