"""Text as every database accepts it: valid UTF-8, no NUL, within the column.

What the log keeps of a message (subject, header From, Message-ID,
attachment names, a remote server's error reply) comes from outside and
may hold what one database takes and another refuses: PostgreSQL rejects
NUL characters in text and enforces `String(n)` lengths, which SQLite
ignores, and no driver encodes the lone surrogates that stand for
undecodable bytes (`surrogateescape`). These helpers make such text safe
to store; they never raise.
"""

from __future__ import annotations

from sqlalchemy import Column

REPLACEMENT = "\ufffd"


def clean(value: str | None) -> str | None:
    """`value` with undecodable bytes and NUL characters replaced by U+FFFD."""
    if value is None:
        return None
    if not value.isascii():
        try:  # back to the bytes that were received, then decoded strictly
            data = value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate that stands for no byte
            data = value.encode("utf-8", "replace")
        value = data.decode("utf-8", "replace")
    return value.replace("\x00", REPLACEMENT)


def fit(column: Column, value: str | None) -> str | None:
    """`clean(value)`, cut for `column`: at most its length in bytes of UTF-8.

    Bytes rather than characters: within a `String(n)` column on every
    database, and small enough for a PostgreSQL index entry (at most 2704
    bytes) even when every character takes four bytes. A cut never splits
    a character. `Text` columns have no length and keep the whole text.
    """
    value = clean(value)
    limit = getattr(column.type, "length", None)
    if value is None or limit is None:
        return value
    data = value.encode("utf-8")
    if len(data) <= limit:
        return value
    return data[:limit].decode("utf-8", "ignore")
