"""Rule `promotion`: no marketing in a seller's message.

Discounts, coupons, sales, "check out our other products", newsletters,
social-media invitations, referrals to other shops or products: weighted
phrases in `policy/data/promotion.txt` (English, German, French, Spanish,
Italian, Chinese, Japanese) against `[policy] promotion_threshold`.
A seller declining ("this item is not on sale any more") passes.
"""

from __future__ import annotations

from policy.datafiles import DataFiles
from policy.phrases import PhraseList
from policy.rules.phrase_rule import PhraseRule
from relay import replies


def promotion(files: DataFiles, threshold: float) -> PhraseRule:
    return PhraseRule("promotion", PhraseList.load(files, "promotion.txt"), threshold,
                      replies.R550_PROMOTION, "marketing or promotion")
