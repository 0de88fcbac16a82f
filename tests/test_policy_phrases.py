"""Phrase scoring: literals a pattern needs, and skipping phrases never changes a score."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy.datafiles import DataFiles
from policy.literals import required_literals
from policy.phrases import PhraseList, normalise


@pytest.mark.parametrize("pattern, literals", [
    (r"\b(?:coupon|voucher) codes?\b", {"coupon", "voucher"}),
    (r"\bdeals? of the (?:day|week)\b", {" of the "}),
    (r"(?:他の|その他の)商品(?:も|を)", {"商品"}),
    (r"\b(?:sommer|winter)?schlussverkauf", {"schlussverkauf"}),
    (r"[一二三]折", {"折"}),
    (r"x?y", None),
    (r"\b\d+\b", None),
])
def test_required_literals(pattern, literals):
    found = required_literals(pattern)
    assert (set(found) if found is not None else None) == literals


LISTS = {name: PhraseList.load(DataFiles(), name) for name in ("promotion.txt", "reviews.txt", "payment.txt")}
UNFILTERED = {name: PhraseList([dataclasses.replace(p, needs=None) for p in pl.phrases], pl.negation, pl.contrast)
              for name, pl in LISTS.items()}
WORDS = st.sampled_from([
    "use code", "20% off", "your next order", "follow us on instagram", "not", "cannot", "but", "sale", "is on sale",
    "paypal", "refund you via", "bank transfer", "5-star review", "remove your", "feedback", "gift card", "优惠券",
    "下次购买", "クーポン", "できません", "rabatt", "gutschein", "code promo", "síguenos en", "seguici su", ",", ".",
    "\n\n", "2x1", "-30 %", "全场", "八折", "please", "we", "will", "send", "the", "money", "via", "wechat pay",
])
TEXT = st.lists(st.one_of(WORDS, st.text(max_size=8)), max_size=30).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(text=TEXT)
def test_skipping_phrases_by_their_literals_never_changes_the_score(text):
    normal = normalise(text)
    for name, phrases in LISTS.items():
        assert phrases.score(normal).total == UNFILTERED[name].score(normal).total
