"""Rule `promotion`: marketing in seven languages is refused; declining a request is not marketing."""

from __future__ import annotations

import aiosmtplib
import pytest

from policy.datafiles import DataFiles
from policy.phrases import PhraseError, PhraseList, normalise
from policy.rules.promotion import promotion
from policy.verdicts import Pass, Refuse
from relay import replies
from tests.conftest import ORDER_ID, compose, open_conversation, send, sql, wait_until
from tests.policy_helpers import SELLER_CTX, parsed


@pytest.fixture(scope="module")
def rule():
    return promotion(DataFiles(), 3.0)


@pytest.mark.parametrize("text", [
    "Use code SAVE20 for 20% off your next order!",
    "Check out our other products, we have matching plates.",
    "Follow us on Instagram and subscribe to our newsletter.",
    "Limited-time offer: our summer sale ends Sunday.",
    "It is also cheaper on eBay from our partner shop.",
    "No problem, use code MUG10 for 10% off your next purchase.",
    "Don't miss our Black Friday deals!",
    "We're having a huge clearance sale right now, everything must go.",
    "Like our Facebook page to enter our monthly giveaway.",
    "Jetzt 20 % Rabatt auf alles im Shop!",
    "Profitez de -30 % sur toute la boutique avec le code HIVER.",
    "¡Aprovecha 2x1 en todas las tazas este fin de semana!",
    "Approfitta dello sconto del 20% su tutto il negozio.",
    "店铺全场八折，欢迎选购！",
    "今なら全品20％オフ！",
    "Rejoignez notre groupe Facebook pour des offres exclusives.",
    "Únase a nuestro boletín para recibir ofertas.",
    "Iscriviti al nostro canale Telegram per le offerte.",
    "请加我微信，下次给你便宜。",
    "Besuchen Sie doch auch unseren Online-Shop für weitere Artikel.",
    "Folgen Sie uns auf Instagram! 15 % Rabatt mit dem Gutscheincode TASSE.",
    "Découvrez nos autres produits : code promo TASSE10.",
    "Suivez-nous sur Facebook pour nos soldes.",
    "Visite nuestra tienda: 10% de descuento en su próxima compra.",
    "Síguenos en Instagram.",
    "Seguici su Instagram per le offerte speciali.",
    "Visiti il nostro negozio per altri prodotti.",
    "欢迎关注我们的微信公众号！",
    "送您优惠券，下次购买可用。",
    "他の商品もぜひご覧ください。",
    "インスタグラムをフォローしてください。次回のご購入で使えるクーポンです。",
])
def test_marketing_is_refused(rule, text):
    verdict = rule.check(parsed(f"Hi Jane,\n\n{text}\n\nShop One"), SELLER_CTX)
    assert isinstance(verdict, Refuse), text
    assert verdict.reply == replies.R550_PROMOTION and verdict.excerpt


@pytest.mark.parametrize("text", [
    "Sorry, this item is not on sale any more.",
    "Unfortunately we cannot offer a discount code or a refund via PayPal.",
    "We don't have any coupon codes, sorry.",
    "Your return code is on the label; use the code at the post office.",
    "Thank you for your order. The parcel ships today.",
    "Leider ist der Artikel nicht mehr im Sonderangebot.",
    "Désolé, cet article n'est plus en solde.",
    "Lo siento, no tenemos ningún código de descuento.",
    "Mi dispiace, il prodotto non è più in offerta.",
    "抱歉，我们目前不提供优惠券。",
    "申し訳ございませんが、この商品はセール対象外です。",
    "a newsletter",  # one weak word is not a promotion
    "We offer free returns on all orders within 30 days.",
    "Il pacco arriverà su tutto il territorio nazionale in 2 giorni.",
    "Enviamos en todo el país con Correos.",
    "Profitez bien de votre théière !",
    "全场物流均为顺丰快递。",
])
def test_declining_and_ordinary_messages_pass(rule, text):
    assert rule.check(parsed(f"Hi Jane,\n\n{text}\n\nShop One"), SELLER_CTX) == Pass(), text


def test_a_reply_subject_is_the_buyers_words_but_a_new_subject_counts(rule):
    body = "Hi Jane, the price is as shown.\n"
    assert rule.check(parsed(body, subject="Re: Is there a coupon code? 20% off?"), SELLER_CTX) == Pass()
    assert isinstance(rule.check(parsed(body, subject="Summer sale: 20% off with coupon code JUNE"), SELLER_CTX),
                      Refuse)


def test_weights_add_up_to_the_threshold():
    text = normalise("Hi, a newsletter and a coupon code.")  # 1 + 2
    phrases = PhraseList.load(DataFiles(), "promotion.txt")
    assert phrases.score(text).total == 3
    assert isinstance(promotion(DataFiles(), 3).check(parsed(text), SELLER_CTX), Refuse)
    assert promotion(DataFiles(), 3.5).check(parsed(text), SELLER_CTX) == Pass()


def test_a_phrase_file_in_data_dir_replaces_the_shipped_one(tmp_path):
    (tmp_path / "promotion.txt").write_text("3 \\bmug club\\b\n")
    rule = promotion(DataFiles(tmp_path), 3)
    assert isinstance(rule.check(parsed("Join the mug club!"), SELLER_CTX), Refuse)
    assert rule.check(parsed("Follow us on Instagram"), SELLER_CTX) == Pass()


@pytest.mark.parametrize("line", ["three coupon", "3 (unclosed", "3 {nomacro} x"])
def test_a_bad_phrase_line_is_a_clear_error(tmp_path, line):
    (tmp_path / "promotion.txt").write_text(line + "\n")
    with pytest.raises(PhraseError, match="promotion.txt"):
        promotion(DataFiles(tmp_path), 3)


async def test_over_smtp_the_threshold_is_tunable(relay_factory, sink, tmp_path):
    body = "Hi Jane,\n\nfollow us on Instagram!\n"
    app = await relay_factory(smarthost_port=sink.port)
    conv = open_conversation(app.config_path)
    data = compose(sender=conv.seller_email, to=conv.buyer_alias, subject=f"Order {ORDER_ID}", body=body)
    with pytest.raises(aiosmtplib.SMTPDataError) as caught:
        await send(app.server.port, conv.seller_email, [conv.buyer_alias], data)
    assert caught.value.code == 550 and "Marketing and promotion are not allowed" in caught.value.message
    assert sql(app.config_path, "SELECT rule FROM messages") == [("promotion",)]

    lenient = await relay_factory(smarthost_port=sink.port, folder=_folder(tmp_path, "lenient"),
                                  extra="\n[policy]\npromotion_threshold = 10\n")
    conv = open_conversation(lenient.config_path)
    data = compose(sender=conv.seller_email, to=conv.buyer_alias, subject=f"Order {ORDER_ID}", body=body)
    await send(lenient.server.port, conv.seller_email, [conv.buyer_alias], data)
    await wait_until(lambda: sink.handler.to(conv.buyer_email))


def _folder(tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    return folder
