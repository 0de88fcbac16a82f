"""What comes from outside is stored as every database accepts it.

PostgreSQL refuses NUL characters and over-long values that SQLite takes;
`storage.textutil` makes such text safe. A table test of its two helpers,
and one message through the relay whose subject decodes to a NUL.
"""

from __future__ import annotations

import json

import pytest

from storage.models import Message, QueueEntry
from storage.textutil import REPLACEMENT, clean, fit
from tests.conftest import compose, open_conversation, run_cli, send


@pytest.mark.parametrize("given, expected", [
    (None, None),
    ("plain ascii", "plain ascii"),
    ("a\x00b", f"a{REPLACEMENT}b"),
    ("caf\u00e9", "caf\u00e9"),
    (b"bad \xff byte".decode("utf-8", "surrogateescape"), f"bad {REPLACEMENT} byte"),
    ("lone \udc80\udcff", f"lone {REPLACEMENT}{REPLACEMENT}"),
])
def test_clean(given, expected):
    assert clean(given) == expected


def test_fit_cuts_by_bytes_without_splitting_a_character():
    column = QueueEntry.__table__.c.recipient_alias  # String(320)
    assert fit(column, "x" * 320) == "x" * 320
    assert fit(column, "x" * 321) == "x" * 320
    cut = fit(column, "\u00e9" * 200)  # 400 bytes of UTF-8
    assert cut == "\u00e9" * 160 and len(cut.encode()) == 320
    assert fit(Message.__table__.c.subject, "y" * 10_000) == "y" * 10_000  # no length: no limit


async def test_a_subject_with_an_encoded_nul_is_accepted_and_logged_clean(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port)
    conv = open_conversation(app.config_path)
    data = compose(sender=conv.buyer_email, to=conv.seller_alias,
                   subject="placeholder").replace(b"Subject: placeholder", b"Subject: =?utf-8?q?a=00b?=")
    await send(app.server.port, conv.buyer_email, [conv.seller_alias], data)
    code, out = run_cli(app.config_path, "message", "list")
    assert code == 0
    [row] = [json.loads(line) for line in out.splitlines()]
    assert row["subject"] == f"a{REPLACEMENT}b"
