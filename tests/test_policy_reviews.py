"""Rule `reviews`: incentives, positive-only requests and change/remove requests are refused.

A neutral request for feedback, without an incentive or a wished-for
rating, passes: the marketplace's rules forbid the three above, not
asking for an honest opinion.
"""

from __future__ import annotations

import pytest

from policy.datafiles import DataFiles
from policy.rules.reviews import reviews
from policy.verdicts import Pass, Refuse
from relay import replies
from tests.policy_helpers import SELLER_CTX, parsed


@pytest.fixture(scope="module")
def rule():
    return reviews(DataFiles(), 3.0)


@pytest.mark.parametrize("text", [
    "We will send you a $10 gift card if you leave a 5-star review.",
    "Leave us a review and we'll refund 20% of the price.",
    "Please leave positive feedback only. Contact us first before leaving negative feedback.",
    "Please don't leave negative feedback, we will fix it.",
    "Could you please remove your negative feedback?",
    "Leave a 5 star review and get a free mug!",
    "Rate us 5 stars please!",
    "If you give us a positive review we will refund you 5 dollars.",
    "Would you kindly change your review now that the mug arrived?",
    "Bitte ändern Sie Ihre Bewertung.",
    "Einen Gutschein für eine positive Bewertung.",
    "Pouvez-vous supprimer votre avis ?",
    "Un remboursement en échange d'un avis 5 étoiles.",
    "¿Podría eliminar su reseña?",
    "Le ofrecemos un reembolso a cambio de una reseña.",
    "Potrebbe rimuovere la sua recensione?",
    "Un buono sconto per una recensione a 5 stelle.",
    "给我们五星好评就返现5美元。",
    "麻烦您删除差评。",
    "評価の削除をお願いします。",
    "Merci de laisser un avis 5 étoiles, nous vous offrirons un bon d'achat.",
    "Deje una valoración de 5 estrellas y le regalamos una taza.",
    "Lasci una recensione a 5 stelle e riceverà un buono sconto.",
    "好评后联系客服领取红包。",
    "高評価レビューをいただけたら、次回使えるクーポンを差し上げます。",
    "レビューを書いていただいた方にクーポンをプレゼント。",
])
def test_review_manipulation_is_refused(rule, text):
    verdict = rule.check(parsed(f"Hi Jane,\n\n{text}\n\nShop One"), SELLER_CTX)
    assert isinstance(verdict, Refuse), text
    assert verdict.reply == replies.R550_REVIEW


@pytest.mark.parametrize("text", [
    "If you have a moment, we'd welcome your feedback.",
    "We would be glad if you left a review of the mug.",
    "Thank you for your positive feedback!",
    "We cannot offer anything for a review, sorry.",
    "Wir freuen uns über Ihre ehrliche Meinung.",
    "Votre avis nous intéresse.",
    "Please leave a review if you have time; we read every review and reply.",
    "Merci pour votre avis positif ! Nous vous avons remboursé les frais de port.",
    "Gracias por su valoración positiva. Le hemos reembolsado el envío.",
    "Grazie per la sua recensione positiva, le abbiamo rimborsato la spedizione.",
    "Danke für Ihre positive Bewertung! Die Rückerstattung ist erfolgt.",
    "感谢您的好评！退款已经处理。",
    "高評価ありがとうございます。返金手続きは完了しました。",
])
def test_neutral_requests_and_thanks_pass(rule, text):
    assert rule.check(parsed(f"Hi Jane,\n\n{text}\n\nShop One"), SELLER_CTX) == Pass(), text
