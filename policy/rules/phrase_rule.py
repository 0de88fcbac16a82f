"""A seller rule judged by a weighted phrase list (`policy/phrases.py`).

Promotion, review manipulation and payment outside the marketplace are
each such a rule: their phrases differ, the judging is the same. The
rule reads what the seller authored (`policy/authored.py`), with the
subject unless it is a reply's ("Re: ..."), whose words are the buyer's.
"""

from __future__ import annotations

from policy.authored import authored
from policy.parsed import ParsedMessage
from policy.phrases import PhraseList, Vocabulary, normalise
from policy.rule import Context, Direction
from policy.verdicts import Pass, Refuse, Verdict
from relay.replies import Reply


class PhraseRule:
    directions = frozenset({Direction.SELLER_TO_BUYER})

    def __init__(self, name: str, phrases: PhraseList, threshold: float, reply: Reply, reason: str):
        self.name = name
        self.phrases = phrases
        self.threshold = threshold
        self.reply = reply
        self.reason = reason

    def check(self, parsed: ParsedMessage, ctx: Context) -> Verdict:
        view = authored(parsed)
        text = parsed.memo("authored_normalised", lambda: normalise(f"{view.own_subject}\n\n{view.text}"))
        vocabulary = parsed.memo("authored_vocabulary", lambda: Vocabulary(text))
        score = self.phrases.score(text, vocabulary)
        if score.total >= self.threshold:
            return Refuse(self.reply, f"{self.reason} (score {score.total:g})", score.excerpt)
        return Pass()
