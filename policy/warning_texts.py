"""The paragraph put first in a message that a rule labelled with a warning.

`warning_paragraph(word, marketplace_name)` is the text for the word a
`Warn` verdict gave (`impersonation`, `links`); an unknown word gets a
general caution. The privacy rewrite puts it before the message's own
text, and the word itself in the `X-Relay-Warning` header.
"""

from __future__ import annotations

_TEXTS = {
    "impersonation": (
        "WARNING from {name}: this message was written by a buyer, not by {name}. It looks like it "
        "pretends to come from {name}. Do not answer requests about your account in it, do not "
        "click anything in it and never enter your password."),
    "links": (
        "WARNING from {name}: this buyer asks you to follow a link, paste one into a browser or "
        "go to another site. Do not do so; answer through this conversation instead."),
}
_GENERAL = "WARNING from {name}: treat this message with caution."


def warning_paragraph(word: str, marketplace_name: str) -> str:
    return _TEXTS.get(word, _GENERAL).format(name=marketplace_name)
