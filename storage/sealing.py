"""Secrets at rest: real addresses, names and message bytes sealed with AES-GCM.

A copy of the database alone must not reveal who wrote to whom or what
they wrote. Every column listed in `SEALED` holds, instead of its value,
an envelope

    version (1 byte, 1) | key id length (1 byte) | key id (ASCII) | nonce (12 bytes) | ciphertext + tag (16 bytes)

sealed with AES-256-GCM under the storage key it names. The envelope's
first bytes and the column's name (`table.column`) are authenticated
data, so a ciphertext cannot be moved to another column unnoticed.
Lookups by address use a blind index instead: `index(key)` is
HMAC-SHA256 of the lower-case address under a separate index key, in hex.

Each row records in its `key_id` column how its sealed columns were
written: a storage key id, `PLAIN` (stored as UTF-8 or raw bytes because
`[storage] encrypt = false`), or NULL (a row from before encryption:
plain values, and a plain lower-case address as index). Reads follow the
row's mark; the background pass in `storage/reseal.py` brings every row to
the newest key.

The storage key file (`[storage] encryption_key_file`, mode 0600) holds
`index <64 hex>` (the blind-index key, never rotated: the index stays valid
across rotations) and `s1 <64 hex>`, `s2 ...`: the last `s<n>` line seals
new data. `Sealer.refresh()` re-reads the file when it changed, so a
running relay takes up a new key without a restart. A missing, malformed
or open file is a `KeyFileError`; a ciphertext that does not open is a
`SealError`.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relay.keyfiles import KeyFileError, create_private, parse_key_lines, read_private, replace_private

log = logging.getLogger(__name__)

VERSION = 1
NONCE_BYTES = 12
INDEX_KEY_ID = "index"
PLAIN = "plain"  # the `key_id` of a row stored without encryption

# Every column that holds a real address, a name or what a participant
# wrote, by table; `INDEXED` names the blind index kept beside an address.
SEALED: dict[str, tuple[str, ...]] = {
    "sellers": ("email", "name"),
    "seller_addresses": ("email",),
    "threads": ("buyer_email", "buyer_name"),
    "messages": ("mail_from", "rcpt_to", "header_from", "subject", "reason", "excerpt"),
    "message_bodies": ("original", "delivered"),
    "attachments": ("filename",),
    "message_events": ("detail",),
    "queue": ("envelope_from", "recipient", "last_error"),
}
INDEXED: dict[str, tuple[str, str]] = {  # table: (index column, the sealed address it indexes)
    "sellers": ("email_key", "email"),
    "seller_addresses": ("email_key", "email"),
    "threads": ("buyer_email_key", "buyer_email"),
}


class SealError(Exception):
    """A sealed value cannot be opened: unknown key, damaged, or not an envelope."""


@dataclass(frozen=True)
class StorageKeys:
    """The storage keys of one reading of the key file."""

    index_key: bytes
    keys: dict[str, AESGCM]  # by id, in file order: the last one seals
    current: str


def ensure_storage_key_file(path: Path) -> bool:
    """Create the storage key file (an index key and `s1`) unless it exists."""
    text = ("# storage keys: 'index' keys the blind index of addresses and is never rotated;\n"
            "# the last s<n> line encrypts new data ('relay keys rotate storage' adds one)\n"
            f"{INDEX_KEY_ID} {secrets.token_hex(32)}\ns1 {secrets.token_hex(32)}\n")
    return create_private(path, text)


def load_storage_keys(path: Path) -> StorageKeys:
    lines = parse_key_lines(path, read_private(path))
    index = [secret for key_id, secret in lines if key_id == INDEX_KEY_ID]
    sealing = [(key_id, secret) for key_id, secret in lines if key_id != INDEX_KEY_ID]
    if len(index) != 1:
        raise KeyFileError(f"key file {path} needs one '{INDEX_KEY_ID}' line, the blind-index key")
    if not sealing:
        raise KeyFileError(f"key file {path} holds no storage key (a line 's1 <64 hex digits>')")
    if PLAIN in (key_id for key_id, _ in sealing):
        raise KeyFileError(f"key file {path}: '{PLAIN}' cannot be a key id")
    return StorageKeys(index[0], {key_id: AESGCM(secret) for key_id, secret in sealing}, sealing[-1][0])


def add_storage_key(path: Path) -> str:
    """Rotation: a new key, one past the highest `s<n>`, written atomically; returns its id."""
    load_storage_keys(path)  # refuse to extend a file that is not usable
    text = read_private(path)
    numbers = [int(m.group(1)) for m in re.finditer(r"(?m)^\s*s(\d+)\s", text)]
    new_id = f"s{max(numbers, default=0) + 1}"
    replace_private(path, text.rstrip("\n") + f"\n{new_id} {secrets.token_hex(32)}\n")
    return new_id


class Sealer:
    """Seals and opens column values, and computes blind-index entries.

    `encrypt` False writes plaintext (rows marked `PLAIN`): the benchmark's
    baseline, not for production. Keys and the index key are read anyway,
    so the index and old sealed rows work in both modes.
    """

    def __init__(self, path: Path, encrypt: bool = True):
        self.path = path
        self.encrypt = encrypt
        self._stamp = _stamp(path)
        self._keys = load_storage_keys(path)

    @property
    def current(self) -> str:
        """The mark new rows get: the newest key's id, or `PLAIN`."""
        return self._keys.current if self.encrypt else PLAIN

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys.keys)

    def refresh(self) -> bool:
        """Re-read the key file if it changed since the last reading; True if the keys changed."""
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return False
        try:
            keys = load_storage_keys(self.path)
        except KeyFileError as exc:  # e.g. a bad edit by hand: keep sealing with what worked
            log.error("%s; still using the storage keys read before", exc)
            self._stamp = stamp
            return False
        self._stamp = stamp
        changed = keys.current != self._keys.current or keys.keys.keys() != self._keys.keys.keys()
        if keys.index_key != self._keys.index_key:
            log.error("key file %s: the index key changed; lookups by address will miss "
                      "rows indexed before. Keeping the old index key", self.path)
            keys = StorageKeys(self._keys.index_key, keys.keys, keys.current)
        self._keys = keys
        if changed:
            log.info("storage keys reloaded; new data is sealed with %s", keys.current)
        return changed

    def index(self, address_key: str) -> str:
        """The blind-index entry of a lower-case address."""
        mac = hmac.HMAC(self._keys.index_key, hashes.SHA256())
        mac.update(address_key.encode("utf-8", "surrogateescape"))
        return mac.finalize().hex()

    def seal(self, column: str, value: str | bytes | None, mark: str | None = None) -> bytes | None:
        """`value` as stored in `column` for a row marked `mark` (default: `current`)."""
        if value is None:
            return None
        data = _to_bytes(value)
        mark = self.current if mark is None else mark
        if mark == PLAIN:
            return data
        keys = self._keys
        cipher = keys.keys.get(mark)
        if cipher is None:
            raise SealError(f"storage key {mark} is not in {self.path}")
        label = mark.encode("ascii")
        head = bytes((VERSION, len(label))) + label
        nonce = os.urandom(NONCE_BYTES)
        return head + nonce + cipher.encrypt(nonce, data, head + column.encode())

    def open(self, column: str, stored: bytes | None, mark: str | None) -> bytes | None:
        """The bytes sealed in `stored`, a value of `column` in a row marked `mark`."""
        if stored is None:
            return None
        if isinstance(stored, str):  # a row from before encryption, in an SQLite TEXT cell
            return _to_bytes(stored)
        stored = bytes(stored)  # PostgreSQL drivers hand out memoryview
        if mark is None or mark == PLAIN:
            return stored
        if len(stored) < 2 or stored[0] != VERSION:
            raise SealError(f"{column}: not a sealed value")
        end = 2 + stored[1]
        key_id = stored[2:end].decode("ascii", "replace")
        cipher = self._keys.keys.get(key_id)
        if cipher is None:
            raise SealError(f"{column}: sealed with storage key {key_id}, which is not in {self.path}")
        try:
            return cipher.decrypt(stored[end:end + NONCE_BYTES], stored[end + NONCE_BYTES:],
                                  stored[:end] + column.encode())
        except InvalidTag:
            raise SealError(f"{column}: the sealed value is damaged or not from this column") from None

    def text(self, column: str, stored: bytes | None, mark: str | None) -> str | None:
        data = self.open(column, stored, mark)
        return None if data is None else data.decode("utf-8", "surrogateescape")

    def seal_row(self, table: str, values: dict, mark: str | None = None) -> dict:
        """Seal the `SEALED` columns of `values` (in place) and set its `key_id`; returns it."""
        mark = self.current if mark is None else mark
        for column in SEALED[table]:
            value = values.get(column)
            if value is not None:
                values[column] = self.seal(f"{table}.{column}", value, mark)
        values["key_id"] = mark
        return values


def _to_bytes(value: str | bytes) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte
        return value.encode("utf-8", "replace")


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
