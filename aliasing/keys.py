"""Alias key files: one key a line, `<key id> <64 hex digits>`, oldest first.

`ensure_key_file(path)` creates the file with a fresh 256-bit key, mode
0600, if it is missing (never overwriting); `load_key_ring(path)` reads it
back into a `KeyRing`; `add_key(path)` appends a new key (rotation), and
`ReloadingKeyRing(path)` follows such changes in a running relay. A
missing, malformed or group/world-accessible file, or one that cannot be
created, raises `KeyFileError` with a one-line reason (the checks are
those of every key file, in `relay.keyfiles`).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path

from aliasing.codec import Key, KeyRing
from relay.keyfiles import MAX_KEY_ID, KeyFileError, create_private, parse_key_lines, read_private

__all__ = ["KeyFileError", "MAX_KEY_ID", "add_key", "ensure_key_file", "load_key_ring"]
log = logging.getLogger(__name__)


def ensure_key_file(path: Path) -> bool:
    """Create `path` with one new key unless it exists. True if created."""
    return create_private(path, "# alias keys, oldest first; the last line encodes new aliases\n"
                          + _key_line("k1"))


def add_key(path: Path) -> str:
    """Append a new key (rotation); returns its id, one past the highest `k<n>`."""
    ring = load_key_ring(path)
    numbers = [int(k.key_id[1:]) for k in ring.keys if re.fullmatch(r"k\d+", k.key_id)]
    new_id = f"k{max(numbers, default=0) + 1}"  # not len(): the oldest keys may have been removed
    ends_open = not path.read_bytes().endswith(b"\n")
    with open(path, "a") as fh:
        fh.write(("\n" if ends_open else "") + _key_line(new_id))
        fh.flush()
        os.fsync(fh.fileno())
    return new_id


def load_key_ring(path: Path) -> KeyRing:
    keys = [Key(key_id, secret) for key_id, secret in parse_key_lines(path, read_private(path))]
    if not keys:
        raise KeyFileError(f"key file {path} holds no key")
    return KeyRing(keys)


def _key_line(key_id: str) -> str:
    return f"{key_id} {secrets.token_hex(32)}\n"


class ReloadingKeyRing(KeyRing):
    """The key ring of a file, read again when a decode misses and the file has changed.

    A running relay thus accepts aliases made under a key that
    `relay keys rotate alias` added after it started. The file is only
    looked at (one stat) when an alias does not decode.
    """

    def __init__(self, path: Path):
        self.path = path
        self._stamp = _stamp(path)
        super().__init__(list(load_key_ring(path).keys))

    def decode(self, local_part: str):
        found = super().decode(local_part)
        if found is None and self.refresh():
            found = super().decode(local_part)
        return found

    def refresh(self) -> bool:
        """Read the file again if it changed; True if the keys did."""
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            keys = load_key_ring(self.path).keys
        except KeyFileError as exc:
            log.error("%s; keeping the alias keys already loaded", exc)
            return False
        changed = keys != self.keys
        self.keys = keys
        return changed


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size
