"""The checks every message passes at DATA before the content policy.

In order: a mail loop (more than 50 Received headers: 554 5.4.6); the
header From, which must name exactly one address, and one that may write
to this alias (the same participants as the envelope check at RCPT); then
each `SenderCheck`, which judges proof of origin from the message's
`AuthResults` (SPF, DKIM, DMARC, evaluated before the stages run:
`relay.auth.check.AuthCheck`). The first refusal wins; `None` means go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from aliasing.addresses import try_parse
from aliasing.codec import Party
from policy.parsed import ParsedMessage
from relay import replies
from relay.auth.results import AuthResults
from relay.classify import MAX_RECEIVED, received_count
from relay.replies import Reply
from storage.directory import ThreadInfo


@dataclass(frozen=True)
class StageRefusal:
    rule: str
    reply: Reply
    reason: str
    excerpt: str = ""


class SenderCheck(Protocol):
    async def check(self, parsed: ParsedMessage, mail_from: str, thread: ThreadInfo,
                    party: Party, auth: AuthResults) -> StageRefusal | None: ...


async def first_refusal(parsed: ParsedMessage, thread: ThreadInfo, party: Party, mail_from: str,
                        sender_checks: list[SenderCheck], auth: AuthResults) -> StageRefusal | None:
    hops = received_count(parsed)
    if hops > MAX_RECEIVED:
        return StageRefusal("loop", replies.R554_LOOP, f"{hops} Received headers")
    refusal = header_from(parsed, thread, party)
    if refusal is not None:
        return refusal
    for check in sender_checks:
        refusal = await check.check(parsed, mail_from, thread, party, auth)
        if refusal is not None:
            return refusal
    return None


def header_from(parsed: ParsedMessage, thread: ThreadInfo, party: Party) -> StageRefusal | None:
    try:
        from_header = parsed.message.get("From")
        addresses = list(from_header.addresses) if from_header is not None else []
    except Exception:  # a From header the parser cannot read at all
        addresses = []
    if len(addresses) != 1:
        return StageRefusal("sender", replies.R550_BAD_FROM,
                            f"header From names {len(addresses)} addresses")
    author = try_parse(addresses[0].addr_spec)
    if author is None or author.key not in thread.senders_for(party):
        return StageRefusal("sender", replies.R550_NOT_PARTICIPANT,
                            "header From is not a participant of this conversation")
    return None
