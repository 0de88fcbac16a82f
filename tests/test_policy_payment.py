"""Rule `payment`: paying or refunding outside the marketplace is refused; declining it is not."""

from __future__ import annotations

import pytest

from policy.datafiles import DataFiles
from policy.rules.payment import payment
from policy.verdicts import Pass, Refuse
from relay import replies
from tests.policy_helpers import SELLER_CTX, parsed


@pytest.fixture(scope="module")
def rule():
    return payment(DataFiles(), 3.0)


@pytest.mark.parametrize("text", [
    "Please pay via bank transfer to our account.",
    "Just send the money by PayPal friends and family.",
    "We can refund you via Zelle or Venmo today.",
    "Our PayPal is pay@shop.example.",
    "Please buy a $50 Apple gift card and send us the code.",
    "Pay with USDT to our wallet for a 10 percent discount.",
    "Send the payment through Western Union.",
    "We can refund you through WeChat Pay.",
    "Bitte überweisen Sie den Betrag per PayPal.",
    "Wir erstatten Ihnen das Geld per Banküberweisung.",
    "Nous allons vous rembourser par virement bancaire.",
    "Puede pagar por Bizum o transferencia bancaria.",
    "Può pagare tramite bonifico bancario.",
    "可以直接通过支付宝付款给我们。",
    "请用微信支付转账给我们。",
    "銀行振込でお支払いください。",
    "Puede pagarnos directamente por PayPal.",
    "Può pagarci direttamente con PayPal.",
])
def test_payment_outside_the_marketplace_is_refused(rule, text):
    verdict = rule.check(parsed(f"Hi Jane,\n\n{text}\n\nShop One"), SELLER_CTX)
    assert isinstance(verdict, Refuse), text
    assert verdict.reply == replies.R550_PAYMENT


@pytest.mark.parametrize("text", [
    "We cannot refund via PayPal, but the marketplace will refund you.",
    "Unfortunately we cannot offer a discount code or a refund via PayPal.",
    "Your refund was issued through the marketplace and will reach your bank account in 5 days.",
    "The refund goes back to your original payment method.",
    "Eine Erstattung per PayPal ist leider nicht möglich.",
    "Nous ne pouvons pas rembourser par PayPal.",
    "No podemos reembolsar por PayPal.",
    "Non possiamo rimborsare tramite PayPal.",
    "我们无法通过PayPal退款。",
    "PayPalでの返金はできかねます。",
    "We ship with DHL and the parcel is insured.",
    "Su pago con PayPal a través del marketplace se ha recibido correctamente.",
    "Il suo pagamento con PayPal tramite il marketplace è arrivato.",
])
def test_declining_and_marketplace_refunds_pass(rule, text):
    assert rule.check(parsed(f"Hi Jane,\n\n{text}\n\nShop One"), SELLER_CTX) == Pass(), text
