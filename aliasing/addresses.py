"""Email address syntax: the one place that splits at `@`.

`parse_address(text)` accepts a bare address (`jane@example.com`, with or
without angle brackets) and returns an `Address` whose domain is lower-cased
and IDNA-checked; the local part keeps its case, but `Address.key` (all
lower case) is what the relay compares, as mailbox providers do. Anything
that is not a plain mailbox (display names, CR/LF, NUL, spaces, missing or
malformed domain, over-long parts) raises `AddressError` with a short reason.

`replace_addresses(text, mapping)` swaps every occurrence of the given
addresses, in any letter case, for their replacement: the privacy scrub
of headers and bodies uses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Any non-ASCII character but the lone surrogates that stand for undecodable
# bytes: no database driver could store them.
_LOCAL_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\ud7ff\ue000-\U0010FFFF]+$")
_AT_SIGNS = ("@", "%40", "&#64;")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class AddressError(ValueError):
    """Not a usable mailbox address."""


@dataclass(frozen=True)
class Address:
    local: str
    domain: str

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def key(self) -> str:
        """The form compared and indexed: case-insensitive."""
        return str(self).lower()


def parse_address(text: str) -> Address:
    if not isinstance(text, str):
        raise AddressError("address must be text")
    s = text.strip()
    if s.startswith("<") and s.endswith(">"):
        s = s[1:-1].strip()
    if not s:
        raise AddressError("empty address")
    if any(c in s for c in "\r\n\0\t <>(),;:\\\"[]"):
        raise AddressError(f"malformed address {_shown(text)}")
    if s.count("@") != 1:
        raise AddressError(f"malformed address {_shown(text)}: expected one '@'")
    local, domain = s.split("@")
    if not local or len(local) > 64:
        raise AddressError(f"malformed address {_shown(text)}: bad local part")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise AddressError(f"malformed address {_shown(text)}: bad dots in local part")
    if not all(_LOCAL_ATOM.match(atom) for atom in local.split(".")):
        raise AddressError(f"malformed address {_shown(text)}: bad local part")
    return Address(local, normalise_domain(domain, text))


def normalise_domain(domain: str, shown: str | None = None) -> str:
    d = domain.strip().rstrip(".").lower()
    try:
        ascii_d = d.encode("idna").decode("ascii") if not d.isascii() else d
    except UnicodeError:
        raise AddressError(f"malformed domain in {_shown(shown or domain)}") from None
    labels = ascii_d.split(".")
    if len(ascii_d) > 253 or len(labels) < 2 or not all(_LABEL.match(lb) for lb in labels):
        raise AddressError(f"malformed domain in {_shown(shown or domain)}")
    if labels[-1].isdigit():
        raise AddressError(f"malformed domain in {_shown(shown or domain)}")
    return d


def try_parse(text: str | None) -> Address | None:
    try:
        return parse_address(text or "")
    except AddressError:
        return None


def replace_addresses(text: str, mapping: dict[str, str]) -> str:
    """Replace each address key of `mapping` (any case) with its value."""
    if not mapping:
        return text
    # Cheap first look: a text with no "@" (in any spelling) names no address.
    if not any(m in text for m in _AT_SIGNS) and all(any(m in k for m in _AT_SIGNS) for k in mapping):
        return text
    lowered = text.lower()
    if not any(k in lowered for k in mapping):
        return text
    pattern = re.compile("|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True)),
                         re.IGNORECASE)
    return pattern.sub(lambda m: mapping[m.group(0).lower()], text)


def _shown(text: str) -> str:
    """Quote user input in an error without echoing control characters."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return repr(clean[:80])
