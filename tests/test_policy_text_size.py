"""Rule `text_size`: the seller rules read the seller's own text whole, or refuse it.

Quoted history does not count toward the limit, however long; own text
past it is refused with 552 5.3.4 instead of being read in part, so a
link or an offer cannot hide behind filler.
"""

from __future__ import annotations

import aiosmtplib
import pytest

from policy.authored import SCAN_CHARS
from policy.registry import default_rules
from policy.rules.text_size import TextSize
from policy.verdicts import Pass, Refuse
from relay import replies
from relay.config import PolicyConfig
from tests.conftest import ORDER_ID, compose, open_conversation, send, sql, wait_until
from tests.policy_helpers import SELLER_CTX, parsed

FILLER = "The parcel left our warehouse this morning and is on its way to you.\n"


def own_text(chars: int) -> str:
    return f"Hello Jane, about order {ORDER_ID}:\n" + FILLER * (chars // len(FILLER) + 1)


def test_own_text_up_to_the_limit_passes_and_past_it_is_refused():
    assert TextSize().check(parsed(own_text(SCAN_CHARS - 2000)), SELLER_CTX) == Pass()
    verdict = TextSize().check(parsed(own_text(SCAN_CHARS + 2000)), SELLER_CTX)
    assert isinstance(verdict, Refuse) and verdict.reply == replies.R552_TEXT_TOO_LONG


def test_long_quoted_history_does_not_count():
    history = "".join(f"> {line}" for line in [FILLER] * (4 * SCAN_CHARS // len(FILLER)))
    text = f"It shipped today, order {ORDER_ID}.\n\nOn Mon, 3 Mar 2025, Jane wrote:\n{history}"
    html = ('<div>It shipped today.</div><div class="gmail_quote"><blockquote class="gmail_quote">'
            + "<p>Where is it?</p>" * (SCAN_CHARS // 10) + "</blockquote></div>")
    assert TextSize().check(parsed(text, html=html), SELLER_CTX) == Pass()


def test_a_link_after_a_long_own_text_is_still_found():
    text = own_text(SCAN_CHARS - 4000) + "More mugs at shop-one-mugs.com\n"
    rules = default_rules(PolicyConfig())
    verdicts = {rule.name: rule.check(parsed(text), SELLER_CTX) for rule in rules
                if SELLER_CTX.direction in rule.directions and rule.name in ("text_size", "links")}
    assert verdicts["text_size"] == Pass() and isinstance(verdicts["links"], Refuse)


async def test_over_smtp_a_too_long_reply_gets_552_and_is_logged(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port)
    conv = open_conversation(app.config_path)
    data = compose(sender=conv.seller_email, to=conv.buyer_alias, subject=f"Order {ORDER_ID}",
                   body=own_text(SCAN_CHARS + 1000))
    with pytest.raises(aiosmtplib.SMTPDataError) as caught:
        await send(app.server.port, conv.seller_email, [conv.buyer_alias], data)
    assert (caught.value.code, caught.value.message.split()[0]) == (552, "5.3.4")
    assert sql(app.config_path, "SELECT status, rule FROM messages") == [("rejected", "text_size")]
    fine = compose(sender=conv.seller_email, to=conv.buyer_alias, subject=f"Order {ORDER_ID}",
                   body=own_text(2000))
    await send(app.server.port, conv.seller_email, [conv.buyer_alias], fine)
    await wait_until(lambda: sink.handler.to(conv.buyer_email))
