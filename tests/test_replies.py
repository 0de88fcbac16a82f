"""Every SMTP reply is named by its code, and what the client sees is one clean line."""

from __future__ import annotations

import re

import pytest

from relay import replies
from relay.replies import Reply

_NAME = re.compile(r"^R(\d{3})_[A-Z0-9_]+$")
_ENHANCED = re.compile(r"^([245])\.\d{1,3}\.\d{1,3}$")

NAMED = sorted((name, value) for name, value in vars(replies).items() if isinstance(value, Reply))


def test_the_module_names_replies():
    assert len(NAMED) >= 10
    assert all(_NAME.match(name) for name, _ in NAMED), [n for n, _ in NAMED if not _NAME.match(n)]


@pytest.mark.parametrize(("name", "reply"), NAMED, ids=[n for n, _ in NAMED])
def test_name_matches_code(name: str, reply: Reply):
    match = _NAME.match(name)
    assert match is not None
    assert reply.code == int(match.group(1))


@pytest.mark.parametrize(("name", "reply"), NAMED, ids=[n for n, _ in NAMED])
def test_enhanced_status_matches_class(name: str, reply: Reply):
    match = _ENHANCED.match(reply.status)
    assert match is not None, reply.status
    assert match.group(1) == str(reply.code)[0]


@pytest.mark.parametrize(("name", "reply"), NAMED, ids=[n for n, _ in NAMED])
def test_text_is_one_clean_line(name: str, reply: Reply):
    assert reply.text.strip()
    assert "\r" not in reply.text and "\n" not in reply.text
    line = str(reply)
    assert line == f"{reply.code} {reply.status} {reply.text}"
    assert line.isprintable()
