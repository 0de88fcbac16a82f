"""DKIM (RFC 6376): which domains signed this message, and do the signatures hold?

`DkimVerifier(dns).verify(raw)` returns one `DkimSignature` per
DKIM-Signature header (at most `MAX_SIGNATURES`, topmost first), each with
the signing domain (d=) and an RFC 8601 result: pass, fail (the body or
headers changed since signing, or the key does not verify it), permerror
(a malformed signature, or no usable key published), temperror (the key
lookup timed out).

The cryptography is dkimpy's. dkimpy looks keys up through a blocking
`dnsfunc`; so the key records are fetched first, concurrently, on the
asyncio resolver, and dkimpy is handed a `dnsfunc` that answers from what
was fetched. The RSA verification itself is cheap (about 0.4 ms per
signature with a 2048-bit key); canonicalizing and hashing the body costs
about 9 ms per MB, enough to hold up other sessions for a large message:
messages over `OFF_LOOP_BYTES` are verified in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value

from relay.auth.lookup import AuthDns, DnsTempError

MAX_SIGNATURES = 5
OFF_LOOP_BYTES = 256 * 1024
MIN_KEY_BITS = 1024
_SIGNATURE_FIELD = re.compile(rb"^dkim-signature[ \t]*:", re.IGNORECASE | re.MULTILINE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class DkimSignature:
    domain: str      # d=, lower case ("" when the signature cannot be read)
    selector: str
    result: str
    reason: str = ""


def aggregate(signatures: list[DkimSignature]) -> str:
    """One word for the message: pass if any signature passes, else the most telling failure."""
    if not signatures:
        return "none"
    for word in ("pass", "temperror", "fail", "permerror"):
        if any(s.result == word for s in signatures):
            return word
    return "permerror"


def _signature_tags(headers: list[tuple[bytes, bytes]]) -> list[dict[bytes, bytes] | None]:
    tags: list[dict[bytes, bytes] | None] = []
    for name, value in headers:
        if name.lower() != b"dkim-signature":
            continue
        try:
            tags.append(parse_tag_value(value))
        except InvalidTagValueList:
            tags.append(None)
    return tags[:MAX_SIGNATURES]


def _key_name(tags: dict[bytes, bytes] | None) -> str | None:
    if not tags or b"d" not in tags or b"s" not in tags:
        return None
    try:
        return f"{tags[b's'].decode('ascii')}._domainkey.{tags[b'd'].decode('ascii')}".lower()
    except UnicodeDecodeError:
        return None


class DkimVerifier:
    def __init__(self, dns: AuthDns, min_key_bits: int = MIN_KEY_BITS):
        self.dns = dns
        self.min_key_bits = min_key_bits
        # dkimpy logs each failed check at error level; our results carry them instead.
        self.quiet = logging.Logger("relay.auth.dkimpy", logging.CRITICAL)

    async def verify(self, raw: bytes) -> list[DkimSignature]:
        end = _HEADER_END.search(raw)
        if not _SIGNATURE_FIELD.search(raw, 0, end.start() if end else len(raw)):
            return []  # unsigned: dkimpy need not read the message at all
        try:
            message = dkim.DKIM(raw, logger=self.quiet, minkey=self.min_key_bits)
        except Exception as exc:  # headers dkimpy cannot split: the message is hostile or broken
            return [DkimSignature("", "", "permerror", f"unreadable message: {exc.__class__.__name__}")]
        tags = _signature_tags(message.headers)
        if not tags:
            return []
        names = {name for name in map(_key_name, tags) if name}
        fetched = await asyncio.gather(*(self._key(name) for name in names))
        keys = dict(zip(names, fetched))
        if len(raw) < OFF_LOOP_BYTES:
            return _verify_all(message, tags, keys)
        return await asyncio.to_thread(_verify_all, message, tags, keys)

    async def _key(self, name: str) -> bytes | DnsTempError:
        try:
            records = await self.dns.txt(name)
        except DnsTempError as exc:
            return exc
        return records[0].encode("utf-8") if records else b""


def _verify_all(message: dkim.DKIM, tags: list[dict[bytes, bytes] | None],
                keys: dict[str, bytes | DnsTempError]) -> list[DkimSignature]:
    def dnsfunc(name: bytes | str, timeout: float = 5) -> bytes:
        text = name.decode("ascii") if isinstance(name, bytes) else name
        value = keys.get(text.lower().rstrip("."), b"")
        return value if isinstance(value, bytes) else b""

    results = []
    for index, sig in enumerate(tags):
        name = _key_name(sig)
        domain = sig.get(b"d", b"").decode("ascii", "replace").lower() if sig else ""
        selector = sig.get(b"s", b"").decode("ascii", "replace") if sig else ""
        if name is None:
            results.append(DkimSignature(domain, selector, "permerror", "signature lacks d= or s="))
        elif isinstance(keys.get(name), DnsTempError):
            results.append(DkimSignature(domain, selector, "temperror", "key lookup failed"))
        elif b"p=" not in keys.get(name, b""):
            results.append(DkimSignature(domain, selector, "permerror", "no key published"))
        else:
            results.append(_verify_one(message, index, domain, selector, dnsfunc))
    return results


def _verify_one(message: dkim.DKIM, index: int, domain: str, selector: str, dnsfunc) -> DkimSignature:
    try:
        ok = message.verify(idx=index, dnsfunc=dnsfunc)
    except dkim.ValidationError as exc:  # body hash mismatch, expired, bad tags
        return DkimSignature(domain, selector, "fail", str(exc)[:200])
    except Exception as exc:  # malformed signature or key (dkimpy raises more than DKIMException)
        return DkimSignature(domain, selector, "permerror", f"{exc.__class__.__name__}: {exc}"[:200])
    return DkimSignature(domain, selector, "pass" if ok else "fail", "" if ok else "signature does not verify")
