"""What the authentication checks found for one message, as values.

`AuthResults` holds the SPF result, one result per DKIM signature, the
DMARC verdict and whether the header From claim is authenticated. It
renders two ways: `summary()`, the `{"spf": ..., "dkim": ..., "dmarc": ...}`
that the log keeps and `message list` shows, with the RFC 8601 result
words (pass, fail, softfail, neutral, none, temperror, permerror); and
`header(hostname)`, an RFC 8601 Authentication-Results field for the log
(never added to what is delivered).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from relay.auth.dkim_check import DkimSignature, aggregate
from relay.auth.dmarc import DmarcPolicy
from relay.auth.spf import SpfResult


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _token(text: str) -> str:
    """A domain or selector as it may stand in the header (they come from the message)."""
    return _UNSAFE.sub("?", text)[:253]


@dataclass(frozen=True)
class AuthResults:
    spf: SpfResult
    dkim_signatures: tuple[DkimSignature, ...]
    dmarc: str
    from_domain: str | None
    policy: DmarcPolicy | None = None
    authenticated: bool = False    # the header From claim is proven (see relay.auth.check)
    evaluated: bool = True         # False when `[auth] mode = "off"`

    @classmethod
    def not_checked(cls, from_domain: str | None) -> AuthResults:
        return cls(SpfResult("none", "", "checks off"), (), "none", from_domain, evaluated=False)

    @property
    def dkim(self) -> str:
        return aggregate(list(self.dkim_signatures))

    def summary(self) -> dict[str, str]:
        return {"spf": self.spf.result, "dkim": self.dkim, "dmarc": self.dmarc}

    def header(self, hostname: str) -> str:
        if not self.evaluated:
            return f"Authentication-Results: {hostname}; none"
        parts = [f"spf={self.spf.result}" + (f" smtp.mailfrom={_token(self.spf.domain)}" if self.spf.domain else "")]
        if self.dkim_signatures:
            parts += [f"dkim={s.result}" + (f" header.d={_token(s.domain)}" if s.domain else "")
                      + (f" header.s={_token(s.selector)}" if s.selector else "") for s in self.dkim_signatures]
        else:
            parts.append("dkim=none")
        dmarc = f"dmarc={self.dmarc}"
        if self.policy is not None:
            dmarc += f" (p={self.policy.applied(self.from_domain or '')})"
        if self.from_domain:
            dmarc += f" header.from={_token(self.from_domain)}"
        parts.append(dmarc)
        return f"Authentication-Results: {hostname}; " + "; ".join(parts)
