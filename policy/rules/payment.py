"""Rule `payment`: no payment or refund outside the marketplace.

Asking a buyer to pay, or offering to refund, by bank transfer, PayPal,
Venmo, Zelle, WeChat Pay, Alipay, gift cards, Western Union, crypto and
the like; phrases in `policy/data/payment.txt` against
`[policy] payment_threshold`. Declining ("we cannot refund via PayPal")
passes, as does a refund through the marketplace that reaches the
buyer's own account.
"""

from __future__ import annotations

from policy.datafiles import DataFiles
from policy.phrases import PhraseList
from policy.rules.phrase_rule import PhraseRule
from relay import replies


def payment(files: DataFiles, threshold: float) -> PhraseRule:
    return PhraseRule("payment", PhraseList.load(files, "payment.txt"), threshold,
                      replies.R550_PAYMENT, "payment outside the marketplace")
