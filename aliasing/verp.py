"""VERP bounce addresses: `bounces+<token>@<alias domain>`, one per delivery.

The relay sends each conversation message with an envelope sender of its
own that names the queue entry it came from, so that a bounce arriving
days later tells which delivery failed. The token is 16 lowercase hex
characters: the queue entry id (32 bits) and 32 zero check bits, put
through the same keyed Feistel permutation as aliases (`aliasing.codec`),
under a key derived from each alias key (HMAC-SHA256 of the key and a
label, so a token and an alias never share a permutation). A token reveals
nothing of the entry id, and a made-up or altered one decodes to non-zero
check bits with probability 1 - 2**-32: it is refused without a database
read. Tokens made under an older alias key keep decoding while that key is
in the ring.

`is_bounce_local(local)` says whether a local part is in the bounce
namespace at all (`bounces` or `bounces+...`), `address(entry_id)` makes
the address and `decode(local)` gives the entry id back, or None.
"""

from __future__ import annotations

import re

from cryptography.hazmat.primitives import hashes, hmac

from aliasing.codec import Key, KeyRing, _permute, _unpermute

PREFIX = "bounces"
_LABEL = b"relay VERP token v1"
_TOKEN = re.compile(r"^[0-9a-f]{16}$")
_ID_BITS = 32
_CHECK_MASK = (1 << 32) - 1


class VerpCodec:
    def __init__(self, keyring: KeyRing, domain: str):
        self.keyring = keyring
        self.domain = domain
        self._derived: dict[bytes, bytes] = {}

    def _secret(self, key: Key) -> bytes:
        if key.secret not in self._derived:
            self._derived[key.secret] = _derive(key.secret)
        return self._derived[key.secret]

    def address(self, entry_id: int) -> str:
        if not 0 < entry_id < (1 << _ID_BITS):
            raise ValueError(f"queue entry id out of range: {entry_id}")
        token = _permute(self._secret(self.keyring.current), entry_id << 32)
        return f"{PREFIX}+{token:016x}@{self.domain}"

    def decode(self, local_part: str) -> int | None:
        """The queue entry id of a bounce address's local part, or None if forged."""
        prefix, plus, token = local_part.lower().partition("+")
        if prefix != PREFIX or not plus or not _TOKEN.match(token):
            return None
        found = self._decode(int(token, 16))
        refresh = getattr(self.keyring, "refresh", None)  # a ring that follows its key file
        if found is None and refresh is not None and refresh():
            found = self._decode(int(token, 16))
        return found

    def _decode(self, block: int) -> int | None:
        for key in reversed(self.keyring.keys):  # newest first, as aliases decode
            plain = _unpermute(self._secret(key), block)
            if plain & _CHECK_MASK == 0 and plain >> 32:
                return plain >> 32
        return None


def is_bounce_local(local_part: str) -> bool:
    """True for `bounces` and `bounces+anything`: the namespace VERP tokens live in."""
    prefix, _plus, _rest = local_part.lower().partition("+")
    return prefix == PREFIX


def _derive(secret: bytes) -> bytes:
    mac = hmac.HMAC(secret, hashes.SHA256())
    mac.update(_LABEL)
    return mac.finalize()
