"""The labelled corpus, every file through the real SMTP path.

`tests/corpus/seller_to_buyer/*.eml` and `tests/corpus/buyer_to_seller/*.eml`
are messages as mail programs write them, each opened by label headers
that are removed before sending:

    X-Corpus-Expect: pass | refuse <rule> | warn <word>     (required)
    X-Corpus-Reply: <code> <enhanced>     (optional; refuse defaults to 550 5.7.1)
    X-Corpus-Note: <why>                  (optional)

`{{TO}}` anywhere in a file becomes the recipient's alias address. Each
file goes from its side's address (`SELLER_EMAIL` or `BUYER_EMAIL`) to a
fresh relay; the test checks the SMTP reply, the rule in the log for a
refusal, and for pass and warn that the mailbox got the message (with
`X-Relay-Warning: <word>` for warn). False refusals and missed violations
over the whole corpus are printed at the end of the run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib
import pytest

from tests.conftest import (BUYER_EMAIL, CORPUS_TALLY, SELLER_EMAIL, CorpusTally, open_conversation, send, sql,
                            wait_until)

CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(CORPUS.glob("*/*.eml"))
_LABEL = re.compile(rb"^X-Corpus-([A-Za-z]+):[ \t]*(.*?)\r?\n", re.IGNORECASE)


@dataclass(frozen=True)
class Labelled:
    direction: str
    verdict: str          # pass | refuse | warn
    detail: str           # the rule for refuse, the word for warn
    code: int | None
    status: str | None
    note: str
    data: bytes


def read_labelled(path: Path) -> Labelled:
    data = path.read_bytes()
    labels: dict[str, str] = {}
    while (m := _LABEL.match(data)) is not None:
        labels[m.group(1).decode().lower()] = m.group(2).decode("utf-8").strip()
        data = data[m.end():]
    expect = labels.get("expect", "").split()
    assert expect and expect[0] in ("pass", "refuse", "warn"), f"{path.name}: bad X-Corpus-Expect"
    assert (len(expect) == 2) == (expect[0] != "pass"), f"{path.name}: refuse/warn name a rule/word"
    code = status = None
    if expect[0] == "refuse":
        code_text, status = labels.get("reply", "550 5.7.1").split()
        code = int(code_text)
    return Labelled(path.parent.name, expect[0], expect[1] if len(expect) > 1 else "", code, status,
                    labels.get("note", ""), data)


def test_the_corpus_covers_both_directions_and_every_seller_rule():
    labelled = [read_labelled(p) for p in FILES]
    seller_rules = {m.detail for m in labelled if m.direction == "seller_to_buyer" and m.verdict == "refuse"}
    assert {"links", "promotion", "reviews", "payment", "order_id"} <= seller_rules
    assert any(m.direction == "buyer_to_seller" for m in labelled)
    assert sum(m.verdict == "pass" for m in labelled) >= 10


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
async def test_corpus_message(path, relay_factory, sink, request):
    item = read_labelled(path)
    app = await relay_factory(smarthost_port=sink.port)
    conv = open_conversation(app.config_path)
    if item.direction == "seller_to_buyer":
        sender, to, recipient = SELLER_EMAIL, conv.buyer_alias, BUYER_EMAIL
    else:
        sender, to, recipient = BUYER_EMAIL, conv.seller_alias, SELLER_EMAIL
    data = item.data.replace(b"{{TO}}", to.encode())
    try:
        await send(app.server.port, sender, [to], data)
        got = (250, "2.0.0")
    except aiosmtplib.SMTPResponseException as exc:
        got = (exc.code, exc.message.split()[0] if exc.message else "")
    rejected = sql(app.config_path, "SELECT rule, reason, excerpt FROM messages WHERE status = 'rejected'")
    tally: CorpusTally = request.config.stash.setdefault(CORPUS_TALLY, CorpusTally())
    name = f"{item.direction}/{path.name}"
    if item.verdict == "refuse":
        refused_by = rejected[0][0] if rejected else None
        tally.record(name, item.verdict, got[0] >= 400, f"{got} rule={refused_by}")
        assert got == (item.code, item.status), f"{name}: expected {item.code} {item.status}, got {got}"
        assert refused_by == item.detail, f"{name}: refused by {refused_by}, expected {item.detail}"
        return
    tally.record(name, item.verdict, got[0] >= 400, f"{got} {rejected[:1]}")
    assert got == (250, "2.0.0"), f"{name}: expected acceptance, got {got}; log: {rejected}"
    delivered = (await wait_until(lambda: sink.handler.to(recipient)))[0]
    warning = delivered.message.get("X-Relay-Warning")
    if item.verdict == "warn":
        assert warning == item.detail, f"{name}: X-Relay-Warning {warning!r}, expected {item.detail!r}"
    else:
        assert warning is None, f"{name}: unexpected X-Relay-Warning {warning!r}"
