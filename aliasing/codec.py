"""Alias codec: a keyed pseudorandom permutation over (thread, party, check).

An alias local part is 16 lowercase hex characters, the 64-bit output of a
Feistel network whose round function is HMAC-SHA256 under a secret key
(Luby-Rackoff: with four or more rounds of a pseudorandom function the
network is a strong pseudorandom permutation; we use eight). The 64-bit
plaintext is laid out as

    thread id (32 bits) | party (1 bit) | check (31 bits, all zero)

so an alias reveals nothing about its thread, the two aliases of one thread
look unrelated, and a made-up alias decodes to non-zero check bits with
probability 1 - 2**-31: it is refused without a database read.

Keys rotate: `KeyRing` encodes with its newest key and decodes with every
key it holds, newest first, so aliases handed out under an old key keep
working as long as that key stays in the ring.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, hmac

ROUNDS = 8
THREAD_BITS = 32
CHECK_BITS = 31
MAX_THREAD_ID = (1 << THREAD_BITS) - 1
_HEX16 = re.compile(r"^[0-9a-f]{16}$")


class Party(enum.IntEnum):
    """Whom an alias stands for."""

    BUYER = 0
    SELLER = 1


@dataclass(frozen=True)
class Key:
    key_id: str
    secret: bytes


@dataclass(frozen=True)
class Decoded:
    thread_id: int
    party: Party
    key_id: str


class KeyRing:
    """Alias keys, oldest first; the last one encodes."""

    def __init__(self, keys: list[Key]):
        if not keys:
            raise ValueError("a key ring needs at least one key")
        self.keys = tuple(keys)

    @property
    def current(self) -> Key:
        return self.keys[-1]

    def encode(self, thread_id: int, party: Party) -> str:
        if not 0 < thread_id <= MAX_THREAD_ID:
            raise ValueError(f"thread id out of range: {thread_id}")
        block = (thread_id << (CHECK_BITS + 1)) | (int(party) << CHECK_BITS)
        return f"{_permute(self.current.secret, block):016x}"

    def decode(self, local_part: str) -> Decoded | None:
        """The thread and party of an alias local part, or None if forged."""
        text = local_part.lower()
        if not _HEX16.match(text):
            return None
        block = int(text, 16)
        for key in reversed(self.keys):
            plain = _unpermute(key.secret, block)
            if plain & ((1 << CHECK_BITS) - 1):
                continue
            thread_id = plain >> (CHECK_BITS + 1)
            if thread_id == 0:
                continue
            party = Party((plain >> CHECK_BITS) & 1)
            return Decoded(thread_id, party, key.key_id)
        return None


def _round(secret: bytes, i: int, half: int) -> int:
    mac = hmac.HMAC(secret, hashes.SHA256())
    mac.update(bytes((i,)) + half.to_bytes(4, "big"))
    return int.from_bytes(mac.finalize()[:4], "big")


def _permute(secret: bytes, block: int) -> int:
    left, right = block >> 32, block & 0xFFFFFFFF
    for i in range(ROUNDS):
        left, right = right, left ^ _round(secret, i, right)
    return (left << 32) | right


def _unpermute(secret: bytes, block: int) -> int:
    left, right = block >> 32, block & 0xFFFFFFFF
    for i in reversed(range(ROUNDS)):
        left, right = right ^ _round(secret, i, left), left
    return (left << 32) | right
