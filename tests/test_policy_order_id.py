"""Rule `order_id`: the seller names the thread's order in the subject or their own text.

Also checks that a refused message is logged and listed by `message list`
with status `rejected`, its rule, reason and excerpt.
"""

from __future__ import annotations

import json

import aiosmtplib
import pytest

from policy.rules.order_id import OrderId
from policy.verdicts import Pass, Refuse
from relay import replies
from tests.conftest import ORDER_ID, compose, open_conversation, run_cli, send, unsealed, wait_until
from tests.policy_helpers import SELLER_CTX, parsed


@pytest.mark.parametrize("subject, text", [
    (f"Order {ORDER_ID}", "Hi Jane, it shipped."),
    ("Your parcel", f"Hi Jane, order {ORDER_ID} shipped."),
    ("Your parcel", "Hi Jane, order 112 1234567 1234567 shipped."),
    ("Your parcel", "Hi Jane, order 112–1234567–1234567 shipped."),
])
def test_the_order_id_in_subject_or_own_text_passes(subject, text):
    assert OrderId().check(parsed(text, subject=subject), SELLER_CTX) == Pass()


@pytest.mark.parametrize("text", [
    "Hi Jane, it shipped.",
    f"Hi Jane, it shipped.\n\nOn Sun, 2 Mar 2025, Jane <a@b.example> wrote:\n> Where is order {ORDER_ID}?\n",
    f"Hi Jane, it shipped.\n\n-----Original Message-----\nFrom: Jane\nSent: Sunday\nSubject: order {ORDER_ID}\n",
    "Hi Jane, order 112-1234567-1234568 shipped.",  # another order
])
def test_missing_or_only_quoted_order_id_is_refused(text):
    verdict = OrderId().check(parsed(text, subject="Re: Where is my parcel?"), SELLER_CTX)
    assert isinstance(verdict, Refuse)
    assert verdict.reply == replies.R550_ORDER_ID


def test_only_quoted_in_html_is_refused_too():
    html = ('<div dir="ltr">It shipped.</div><div class="gmail_quote"><blockquote class="gmail_quote">'
            f'Where is order {ORDER_ID}?</blockquote></div>')
    verdict = OrderId().check(parsed("It shipped.", html=html, subject="Re: parcel"), SELLER_CTX)
    assert isinstance(verdict, Refuse)


async def test_a_refusal_is_logged_and_listed_as_rejected_with_its_rule(relay_factory, sink):
    app = await relay_factory(smarthost_port=sink.port)
    conv = open_conversation(app.config_path)
    data = compose(sender=conv.seller_email, to=conv.buyer_alias, subject="Your parcel",
                   body="Hi Jane,\n\nyour parcel left today.\n")
    with pytest.raises(aiosmtplib.SMTPDataError) as caught:
        await send(app.server.port, conv.seller_email, [conv.buyer_alias], data)
    assert (caught.value.code, caught.value.message) == (550, f"{replies.R550_ORDER_ID.status} "
                                                              f"{replies.R550_ORDER_ID.text}")
    code, out = run_cli(app.config_path, "message", "list", "--order", ORDER_ID)
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["status"], r["rule"]) for r in rows] == [("rejected", "order_id")]
    [reason] = unsealed(app.config_path, "messages.reason", "SELECT reason, key_id FROM messages")
    [excerpt] = unsealed(app.config_path, "messages.excerpt", "SELECT excerpt, key_id FROM messages")
    assert ORDER_ID in reason and excerpt == "Your parcel"

    fixed = compose(sender=conv.seller_email, to=conv.buyer_alias, subject=f"Your parcel ({ORDER_ID})",
                    body="Hi Jane,\n\nyour parcel left today.\n")
    await send(app.server.port, conv.seller_email, [conv.buyer_alias], fixed)
    await wait_until(lambda: sink.handler.to(conv.buyer_email))
    code, out = run_cli(app.config_path, "message", "list", "--order", ORDER_ID)
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 2 and [r["status"] == "rejected" for r in rows] == [False, True]  # newest first
    assert rows[0]["rule"] is None
