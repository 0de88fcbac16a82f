"""The message log as the command line shows it: `message list`, marks, and response-time figures.

Every message goes through the real relay into a real SQLite file; times
that a test must control (a reply 25 hours late, a message from March) are
set afterwards with SQL on that file.
"""

from __future__ import annotations

import email.policy
import hashlib
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
import pytest

from tests.conftest import (BUYER_EMAIL, SELLER_EMAIL, Conversation, open_conversation, run_cli, send, sql,
                            unsealed, wait_until, write_config)

ORDER_B = "113-7654321-7654321"
OTHER_SELLER = "owner@othershop.example"
OTHER_BUYER = "bob@buyermail.example"
STAFF = "staff@sellershop.example"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
DB_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy keeps a DateTime in SQLite


def mail(sender: str, to: str, subject: str, body: str = "Hello,\nany news?\n",
         headers: dict[str, str] | None = None, pdf: bytes | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = make_msgid(domain="mua.example")
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    if pdf is not None:
        msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="invoice.pdf")
    return msg.as_bytes(policy=email.policy.SMTP)


class Chat:
    """Sends as either party of a thread through the running relay."""

    def __init__(self, app, conv: Conversation):
        self.app, self.conv = app, conv

    async def buyer(self, subject: str, **kwargs) -> None:
        c = self.conv
        await send(self.app.server.port, c.buyer_email, [c.seller_alias],
                   mail(kwargs.pop("header_from", c.buyer_email), c.seller_alias, subject, **kwargs))

    async def seller(self, subject: str, sender: str | None = None, **kwargs) -> None:
        c = self.conv
        sender = sender or c.seller_email
        await send(self.app.server.port, sender, [c.buyer_alias],
                   mail(kwargs.pop("header_from", sender), c.buyer_alias, f"{subject} ({c.order_id})", **kwargs))


def listed(config_path, *args: str) -> list[dict]:
    code, out = run_cli(config_path, "message", "list", *args)
    assert code == 0
    return [json.loads(line) for line in out.splitlines()]


def subjects(config_path, *args: str) -> set[str]:
    return {row["subject"] for row in listed(config_path, *args)}


def second_thread(config_path) -> Conversation:
    """Seller S2 and another buyer, with an ASIN of their own."""
    assert run_cli(config_path, "seller", "add", "S2", "--email", OTHER_SELLER, "--name", "Shop Two")[0] == 0
    code, out = run_cli(config_path, "thread", "open", "--seller", "S2", "--buyer-email", OTHER_BUYER,
                        "--buyer-name", "Bob", "--order", ORDER_B, "--asin", "B000OTHER2")
    assert code == 0
    t = json.loads(out)
    return Conversation(config_path, t["thread_id"], t["buyer_alias"], t["seller_alias"], ORDER_B,
                        OTHER_SELLER, OTHER_BUYER)


def ids_of(config_path, subject: str) -> list[int]:
    """The conversation messages with `subject` (subjects are sealed: found through the log)."""
    return [row["id"] for row in listed(config_path) if row["subject"] == subject]


def set_time(config_path, column: str, subject: str, when: datetime) -> None:
    assert column in ("received_at", "replied_at")
    for message_id in ids_of(config_path, subject):
        sql(config_path, f"UPDATE messages SET {column} = ? WHERE id = ?", when.strftime(DB_TIME), message_id)


def received(config_path, subject: str) -> datetime:
    [message_id] = ids_of(config_path, subject)
    [(text,)] = sql(config_path, "SELECT received_at FROM messages WHERE id = ?", message_id)
    return datetime.strptime(text, DB_TIME)


@pytest.fixture
async def chat(relay_factory, sink) -> Chat:
    app = await relay_factory(smarthost_port=sink.port)
    app.sink = sink
    return Chat(app, open_conversation(app.config_path))


# --- what a row says ---------------------------------------------------------------

async def test_rows_carry_every_field_newest_first(chat):
    cfg = chat.app.config_path
    await chat.buyer("Where is my parcel?")
    await chat.seller("Re: your parcel")
    await chat.buyer("Invoice please", pdf=PDF)
    await chat.app.sink.handler.wait_for(5)  # three messages and two acknowledgments

    def all_delivered():
        rows = listed(cfg)
        return rows if all(r["status"] == "delivered" for r in rows) else None
    rows = await wait_until(all_delivered)

    assert [r["subject"] for r in rows] == ["Invoice please", f"Re: your parcel ({chat.conv.order_id})",
                                            "Where is my parcel?"]
    assert [r["direction"] for r in rows] == ["buyer_to_seller", "seller_to_buyer", "buyer_to_seller"]
    assert rows[0]["id"] > rows[1]["id"] > rows[2]["id"]
    times = [datetime.fromisoformat(r["received_at"]) for r in rows]
    assert times == sorted(times, reverse=True)
    now = datetime.now(timezone.utc)
    for r, t in zip(rows, times):
        assert r["received_at"].endswith("+00:00") and t.utcoffset() == timedelta(0)
        assert now - timedelta(minutes=5) < t <= now  # UTC, not local time
        assert (r["thread_id"], r["order_id"]) == (chat.conv.thread_id, chat.conv.order_id)
        assert (r["rule"], r["warning"]) == (None, None)
    assert [r["attachments"] for r in rows] == [1, 0, 0]
    assert [r["response_needed"] for r in rows] == [True, False, True]


async def test_a_refused_message_is_listed_as_rejected(chat):
    cfg = chat.app.config_path
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await chat.buyer("Sent in my name", header_from="mallory@elsewhere.example")
    assert refused.value.code == 550
    await chat.buyer("A real question")
    await chat.app.sink.handler.wait_for(2)  # the real question and its acknowledgment
    [good, bad] = listed(cfg)
    assert bad["subject"] == "Sent in my name"
    assert (bad["status"], bad["rule"], bad["response_needed"]) == ("rejected", "sender", False)
    assert bad["thread_id"] == chat.conv.thread_id and bad["direction"] == "buyer_to_seller"
    assert good["status"] in ("queued", "delivered") and good["rule"] is None
    assert len(chat.app.sink.handler.messages) == 2


async def test_attachments_are_counted_logged_and_filtered(chat):
    cfg = chat.app.config_path
    await chat.buyer("Photo of the damage")
    await chat.buyer("The invoice", pdf=PDF)
    [row] = listed(cfg, "--with-attachments")
    assert (row["subject"], row["attachments"]) == ("The invoice", 1)
    assert sql(cfg, "SELECT content_type, size, sha256 FROM attachments WHERE message_id = ?",
               row["id"]) == [("application/pdf", len(PDF), hashlib.sha256(PDF).hexdigest())]
    assert unsealed(cfg, "attachments.filename", "SELECT filename, key_id FROM attachments "
                    "WHERE message_id = ?", row["id"]) == ["invoice.pdf"]
    assert len(listed(cfg)) == 2


# --- filters -----------------------------------------------------------------

async def test_filters_by_order_asin_and_any_address_of_either_party(chat):
    cfg = chat.app.config_path
    a = chat.conv
    b = second_thread(cfg)
    assert run_cli(cfg, "seller", "address", "add", "S1", STAFF)[0] == 0
    await chat.buyer("About order A")
    await Chat(chat.app, b).buyer("About order B")
    A, B, NONE = {"About order A"}, {"About order B"}, set()

    assert subjects(cfg) == A | B
    assert subjects(cfg, "--order", a.order_id) == A
    assert subjects(cfg, "--order", ORDER_B) == B
    assert subjects(cfg, "--order", "999-9999999-9999999") == NONE
    assert subjects(cfg, "--asin", "B000TEST01") == A
    assert subjects(cfg, "--asin", "B000OTHER2") == B
    assert subjects(cfg, "--asin", "B000NONE00") == NONE
    for address, expected in [(BUYER_EMAIL, A), (BUYER_EMAIL.upper(), A), (SELLER_EMAIL, A), (STAFF, A),
                              (a.buyer_alias, A), (a.seller_alias.upper(), A), (OTHER_BUYER, B),
                              (OTHER_SELLER, B), (b.buyer_alias, B), (b.seller_alias, B),
                              ("nobody@buyermail.example", NONE)]:
        assert subjects(cfg, "--email", address) == expected, address
    assert subjects(cfg, "--order", a.order_id, "--email", OTHER_BUYER) == NONE


async def test_since_and_until_take_days_and_timestamps(chat):
    cfg = chat.app.config_path
    for subject in ("A", "B", "C"):
        await chat.buyer(subject)
    set_time(cfg, "received_at", "A", datetime(2024, 3, 1, 10, 0, 0))
    set_time(cfg, "received_at", "B", datetime(2024, 3, 2, 23, 59, 59, 500000))
    set_time(cfg, "received_at", "C", datetime(2024, 3, 3, 0, 0, 0))
    cases = [
        (["--since", "2024-03-02"], {"B", "C"}),
        (["--until", "2024-03-02"], {"A", "B"}),
        (["--since", "2024-03-02", "--until", "2024-03-02"], {"B"}),
        (["--since", "2024-03-03"], {"C"}),
        (["--until", "2024-03-01"], {"A"}),
        (["--since", "2024-03-04"], set()),
        (["--since", "2024-03-02T23:59:59+00:00"], {"B", "C"}),
        (["--since", "2024-03-03T01:00:00+02:00"], {"B", "C"}),
        (["--until", "2024-03-02T23:59:59Z"], {"A"}),
        (["--until", "2024-03-01T10:00:00"], {"A"}),
        (["--since", "2024-03-01T10:00:00.000001+00:00", "--until", "2024-03-03T00:00:00+00:00"], {"B", "C"}),
    ]
    for args, expected in cases:
        assert subjects(cfg, *args) == expected, args
    assert [r["subject"] for r in listed(cfg)] == ["C", "B", "A"]
    for bad in ("2024-02-30", "2024-3-5", "03/02/2024", "yesterday", "2024-03-02T25:00"):
        assert run_cli(cfg, "message", "list", "--since", bad)[0] == 2, bad
        assert run_cli(cfg, "message", "list", "--until", bad)[0] == 2, bad


def test_an_invalid_date_is_one_line_on_stderr(tmp_path):
    path = write_config(tmp_path)
    assert run_cli(path, "init")[0] == 0
    done = subprocess.run([sys.executable, "-m", "relay", "--config", str(path), "message", "list",
                           "--until", "2024-13-01"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "2024-13-01" in done.stderr and "Traceback" not in done.stderr


# --- replies and marks ---------------------------------------------------------

async def test_reply_status_splits_buyer_messages_three_ways(chat):
    cfg = chat.app.config_path
    await chat.buyer("First question")
    await chat.buyer("Out of office", headers={"Auto-Submitted": "auto-replied"})
    await chat.seller("Re: first question")
    await chat.buyer("Second question")
    await chat.buyer("Thanks, all good")
    [thanks] = [r for r in listed(cfg) if r["subject"] == "Thanks, all good"]
    code, out = run_cli(cfg, "message", "mark-no-response", str(thanks["id"]))
    assert code == 0 and json.loads(out) == {"id": thanks["id"], "no_response_needed": True}

    needs = subjects(cfg, "--reply-status", "needs-reply")
    replied = subjects(cfg, "--reply-status", "replied")
    no_need = subjects(cfg, "--reply-status", "no-response-needed")
    assert needs == {"Second question"}
    assert replied == {"First question"}
    assert no_need == {"Out of office", "Thanks, all good"}
    rows = {r["subject"]: r for r in listed(cfg)}
    assert {s for s, r in rows.items() if r["response_needed"]} == {"First question", "Second question"}
    assert rows["First question"]["replied_at"] is not None
    assert rows["Second question"]["replied_at"] is None
    # Marking works on a message that was already answered too, and moves it.
    assert run_cli(cfg, "message", "mark-no-response", str(rows["First question"]["id"]))[0] == 0
    assert subjects(cfg, "--reply-status", "replied") == set()
    assert "First question" in subjects(cfg, "--reply-status", "no-response-needed")


async def test_a_reply_marks_only_earlier_messages_of_its_own_thread(chat):
    cfg = chat.app.config_path
    other = Chat(chat.app, second_thread(cfg))
    await chat.buyer("A1")
    await other.buyer("B1")
    await chat.seller("Re: A1")
    await chat.buyer("A2")
    with pytest.raises(aiosmtplib.SMTPDataError):  # a refused reply answers nothing
        await chat.seller("Forged reply", header_from="intruder@elsewhere.example")
    assert subjects(cfg, "--reply-status", "replied") == {"A1"}
    assert subjects(cfg, "--reply-status", "needs-reply") == {"B1", "A2"}
    a1 = next(r for r in listed(cfg) if r["subject"] == "A1")
    assert datetime.fromisoformat(a1["replied_at"]) >= datetime.fromisoformat(a1["received_at"])


async def test_mark_no_response_refuses_unknown_and_non_conversation_ids(chat):
    cfg = chat.app.config_path
    await chat.buyer("Question")
    await chat.app.sink.handler.wait_for(2)
    [(notice_id,)] = sql(cfg, "SELECT id FROM messages WHERE kind = 'notice'")
    assert run_cli(cfg, "message", "mark-no-response", str(notice_id))[0] == 1
    assert run_cli(cfg, "message", "mark-no-response", "99999")[0] == 1
    assert run_cli(cfg, "message", "mark-no-response", "abc")[0] == 2
    assert subjects(cfg, "--reply-status", "needs-reply") == {"Question"}


# --- response-time figures --------------------------------------------------------

def figure(cfg, seller: str, *args: str) -> dict:
    code, out = run_cli(cfg, "metrics", "response-time", "--seller", seller, *args)
    assert code == 0
    return json.loads(out)


async def test_response_time_counts_buyer_messages_that_need_an_answer(chat):
    cfg = chat.app.config_path
    other = Chat(chat.app, second_thread(cfg))
    assert run_cli(cfg, "seller", "add", "S3", "--email", "owner@quietshop.example", "--name", "Quiet")[0] == 0
    await chat.buyer("Answered soon")
    await chat.buyer("Answered late")
    await chat.buyer("Away", headers={"Auto-Submitted": "auto-replied"})
    await chat.buyer("Just thanks")
    with pytest.raises(aiosmtplib.SMTPDataError):
        await chat.buyer("Refused", header_from="mallory@elsewhere.example")
    await chat.seller("Re: everything")
    await chat.buyer("Never answered")
    await other.buyer("Other seller's question")
    rows = {r["subject"]: r for r in listed(cfg)}
    assert rows["Refused"]["replied_at"] is None  # a refused message was never the seller's to answer
    assert run_cli(cfg, "message", "mark-no-response", str(rows["Just thanks"]["id"]))[0] == 0
    set_time(cfg, "replied_at", "Answered late", received(cfg, "Answered late") + timedelta(hours=25))
    set_time(cfg, "replied_at", "Answered soon", received(cfg, "Answered soon") + timedelta(hours=23, minutes=59))

    assert figure(cfg, "S1") == {"seller_id": "S1", "buyer_messages": 3, "replied_within_24h": 1,
                                 "rate": pytest.approx(1 / 3)}
    assert figure(cfg, "S2") == {"seller_id": "S2", "buyer_messages": 1, "replied_within_24h": 0, "rate": 0.0}
    assert figure(cfg, "S3") == {"seller_id": "S3", "buyer_messages": 0, "replied_within_24h": 0, "rate": None}

    set_time(cfg, "received_at", "Never answered", datetime.now(timezone.utc).replace(tzinfo=None)
             - timedelta(days=100))
    assert figure(cfg, "S1")["buyer_messages"] == 2
    assert figure(cfg, "S1", "--days", "120") == {"seller_id": "S1", "buyer_messages": 3,
                                                   "replied_within_24h": 1, "rate": pytest.approx(1 / 3)}
    assert figure(cfg, "S1", "--days", "90")["rate"] == 0.5
    assert run_cli(cfg, "metrics", "response-time", "--seller", "S9")[0] == 1
