"""Every policy rule, once, in the order they run.

`default_rules(config)` builds the rules from `[policy]`: the ones not
switched off by `disabled_rules`, none at all with `enabled = false`.
Word and phrase lists are read and their patterns compiled here, once;
a rule object is then only called. The first `Refuse` stops the message;
a `Transform` hands its message on to the rules after it.

`RULE_NAMES` is the order (and the names `disabled_rules` accepts).

Attachments are judged first (both directions); phishing is judged on
the buyer's message as sent, before `plain_text` converts it; sellers'
HTML is sanitized last, after the rules that refuse.
"""

from __future__ import annotations

from collections.abc import Callable

from policy.datafiles import DataFiles
from policy.phrases import PhraseError
from policy.rule import Rule
from policy.rules.attachments import Attachments
from policy.rules.links import Links
from policy.rules.order_id import OrderId
from policy.rules.payment import payment
from policy.rules.phishing import Phishing
from policy.rules.plain_text import PlainText
from policy.rules.promotion import promotion
from policy.rules.reviews import reviews
from policy.rules.seller_html import SellerHtml
from policy.rules.text_size import TextSize
from relay.config import ConfigError, PolicyConfig

_BUILDERS: tuple[tuple[str, Callable[[PolicyConfig, DataFiles], Rule]], ...] = (
    ("attachments", lambda c, f: Attachments()),
    ("phishing", lambda c, f: Phishing(f)),
    ("plain_text", lambda c, f: PlainText()),
    ("text_size", lambda c, f: TextSize()),
    ("links", lambda c, f: Links(f, c.link_allow_domains)),
    ("promotion", lambda c, f: promotion(f, c.promotion_threshold)),
    ("reviews", lambda c, f: reviews(f, c.reviews_threshold)),
    ("payment", lambda c, f: payment(f, c.payment_threshold)),
    ("order_id", lambda c, f: OrderId()),
    ("seller_html", lambda c, f: SellerHtml(f)),
)

RULE_NAMES: tuple[str, ...] = tuple(name for name, _ in _BUILDERS)


def default_rules(config: PolicyConfig) -> list[Rule]:
    """The enabled rules in order; a list in `data_dir` that cannot be used is a `ConfigError`."""
    if not config.enabled:
        return []
    files = DataFiles(config.data_dir)
    try:
        return [build(config, files) for name, build in _BUILDERS if name not in config.disabled_rules]
    except PhraseError as exc:
        raise ConfigError(f"[policy] data_dir: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"[policy] data_dir: cannot read a list: {exc}") from None
