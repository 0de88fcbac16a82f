"""Message-IDs across the relay: what a message cites, and what each side should see.

Each side's mail program threads by the ids it knows: its own originals
and the relay ids it received. `referenced_ids` lists what a message cites
(for one lookup in the log); `thread_headers` turns them, through the map
the log gives (`storage.messages.map_message_ids`), into the In-Reply-To
and References the recipient's mailbox can place. Unknown ids are dropped:
they might name the sender's domain.
"""

from __future__ import annotations

import re
from email.message import EmailMessage

_MSGID = re.compile(r"<[^<>\s]+>")
MAX_REFERENCES = 100  # a long thread's oldest ids matter least; this bounds the lookup


def referenced_ids(message: EmailMessage) -> list[str]:
    """Every id the message cites (for the log lookup), In-Reply-To first."""
    return list(dict.fromkeys(_ids(message, "In-Reply-To") + _ids(message, "References")))


def _ids(message: EmailMessage, name: str) -> list[str]:
    found: list[str] = []
    try:
        values = message.get_all(name, []) or []
    except Exception:  # an unreadable header cites nothing
        return []
    for value in values:
        found.extend(_MSGID.findall(str(value)))
    return found[-MAX_REFERENCES:]


def thread_headers(message: EmailMessage, id_map: dict[str, str]) -> tuple[str | None, list[str]]:
    """In-Reply-To and References as the recipient's mailbox knows the thread.

    Each side cites the ids it has (its own originals, the relay ids it
    received); `id_map` turns each into the id the other side has. The
    order of References is kept; when the parent is unknown, the last known
    reference stands in for it so the reply still lands in the thread.
    """
    parents = [id_map[i] for i in _ids(message, "In-Reply-To") if i in id_map]
    chain = [id_map[i] for i in _ids(message, "References") if i in id_map]
    parent = parents[0] if parents else (chain[-1] if chain else None)
    if parent is not None and parent not in chain:
        chain.append(parent)
    return parent, list(dict.fromkeys(chain))
