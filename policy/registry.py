"""Every policy rule, once, in the order they run.

The first `Refuse` stops the message; a `Transform` hands its message on
to the rules after it. The content rules of the marketplace's messaging
guide are added here as they are written; `relay.toml [policy]` will be
able to switch them off.
"""

from __future__ import annotations

from policy.rule import Rule


def default_rules() -> list[Rule]:
    return []
