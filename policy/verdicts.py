"""What a policy rule says about a message: values, not exceptions.

`Pass()` lets it through unchanged, `Transform(message, note)` hands on a
changed message, `Refuse(reply, reason, excerpt)` stops it with an SMTP
reply for the sender and a reason and excerpt for the log. `Warn(word,
note)` lets it through but labels it (the label travels to the recipient
and the log).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage

from relay.replies import Reply


@dataclass(frozen=True)
class Pass:
    pass


@dataclass(frozen=True)
class Transform:
    message: EmailMessage
    note: str


@dataclass(frozen=True)
class Warn:
    word: str
    note: str


@dataclass(frozen=True)
class Refuse:
    reply: Reply
    reason: str
    excerpt: str = ""


Verdict = Pass | Transform | Warn | Refuse
