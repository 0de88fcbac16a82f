"""What kind of mail this is: auto-replies, bounces, loops.

The relay never answers automated mail automatically (RFC 3834), counts
auto-replies (out-of-office and the like) as not needing a response, and
refuses mail that has passed through too many hosts (a loop).
"""

from __future__ import annotations

import re

from policy.parsed import ParsedMessage

MAX_RECEIVED = 50
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|auto:|out of (the )?office|"
    r"abwesenheitsnotiz|r[ée]ponse automatique|respuesta autom[áa]tica|risposta automatica|"
    r"自動応答|自动回复)", re.IGNORECASE)


def is_auto_reply(parsed: ParsedMessage) -> bool:
    auto_submitted = (parsed.header("Auto-Submitted") or "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return True
    if parsed.header("X-Autoreply") or parsed.header("X-Autorespond"):
        return True
    if (parsed.header("Precedence") or "").strip().lower() in ("auto_reply", "bulk", "junk", "list"):
        return True
    if is_bounce(parsed):
        return True
    return bool(_AUTO_SUBJECT.match(parsed.subject))


def is_bounce(parsed: ParsedMessage) -> bool:
    return parsed.message.get_content_type() == "multipart/report"


def received_count(parsed: ParsedMessage) -> int:
    return len(parsed.message.get_all("Received", []) or [])
