"""Run the rules over one parsed message and gather their verdicts.

`evaluate(rules, parsed, ctx)` returns an `Outcome`: the message to deliver
(the last transform's, else the original), the notes and warnings the
rules left, and the refusal with the rule's name if one refused. A rule
that raises is a bug, not a verdict: the exception propagates, and the
intake answers 451 so the sender retries once it is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from policy.parsed import ParsedMessage
from policy.rule import Context, Rule
from policy.verdicts import Pass, Refuse, Transform, Warn


@dataclass
class Outcome:
    parsed: ParsedMessage
    notes: list[str] = field(default_factory=list)
    warning: str | None = None
    refusal: Refuse | None = None
    rule: str | None = None


def evaluate(rules: list[Rule], parsed: ParsedMessage, ctx: Context) -> Outcome:
    outcome = Outcome(parsed)
    for rule in rules:
        if ctx.direction not in rule.directions:
            continue
        verdict = rule.check(outcome.parsed, ctx)
        match verdict:
            case Pass():
                pass
            case Transform(message=message, note=note):
                outcome.parsed = ParsedMessage(message)
                outcome.notes.append(f"{rule.name}: {note}")
            case Warn(word=word, note=note):
                outcome.warning = outcome.warning or word
                outcome.notes.append(f"{rule.name}: {note}")
            case Refuse():
                outcome.refusal = verdict
                outcome.rule = rule.name
                return outcome
    return outcome
