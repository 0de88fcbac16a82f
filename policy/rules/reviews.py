"""Rule `reviews`: no review manipulation in a seller's message.

Refused: anything offered for a review or feedback, asking for positive
(five-star) reviews only or to contact the seller before a negative one,
asking a buyer to change or remove feedback; phrases in
`policy/data/reviews.txt` against `[policy] reviews_threshold`.

A neutral request without an incentive or a wished-for rating ("if you
have a moment, we'd welcome your feedback") passes: the marketplace's
rules forbid the three above, not asking for an honest opinion.
"""

from __future__ import annotations

from policy.datafiles import DataFiles
from policy.phrases import PhraseList
from policy.rules.phrase_rule import PhraseRule
from relay import replies


def reviews(files: DataFiles, threshold: float) -> PhraseRule:
    return PhraseRule("reviews", PhraseList.load(files, "reviews.txt"), threshold,
                      replies.R550_REVIEW, "review manipulation")
