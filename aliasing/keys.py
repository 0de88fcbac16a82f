"""Key files: one key a line, `<key id> <64 hex digits>`, oldest first.

`ensure_key_file(path)` creates the file with a fresh 256-bit key, mode
0600, if it is missing (never overwriting); `load_key_ring(path)` reads it
back into a `KeyRing`; `add_key(path)` appends a new key (rotation), and
`ReloadingKeyRing(path)` follows such changes in a running relay. A
missing, malformed or group/world-readable file, or one that cannot be
created, raises `KeyFileError` with a one-line reason.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
from pathlib import Path

from aliasing.codec import Key, KeyRing

MAX_KEY_ID = 32
log = logging.getLogger(__name__)


class KeyFileError(Exception):
    """The key file cannot be used."""


def ensure_key_file(path: Path) -> bool:
    """Create `path` with one new key unless it exists. True if created."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KeyFileError(f"cannot create the folder of key file {path}: {exc.strerror}") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False  # load_key_ring judges what is there
    except OSError as exc:
        raise KeyFileError(f"cannot create key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as fh:
        fh.write("# alias keys, oldest first; the last line encodes new aliases\n")
        fh.write(_key_line("k1"))
        fh.flush()
        os.fsync(fh.fileno())
    return True


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
    try:
        st = path.stat()
        text = path.read_text("ascii")
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} is missing (run 'relay init')") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"key file {path} is readable by others; run 'chmod 600 {path}'")
    keys = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[1]) != 64:
            raise KeyFileError(f"key file {path} line {n}: expected '<id> <64 hex digits>'")
        if len(parts[0]) > MAX_KEY_ID:  # threads record the id in a column of that size
            raise KeyFileError(f"key file {path} line {n}: key id longer than {MAX_KEY_ID} characters")
        try:
            keys.append(Key(parts[0], bytes.fromhex(parts[1])))
        except ValueError:
            raise KeyFileError(f"key file {path} line {n}: key is not hex") from None
        if parts[0] in (k.key_id for k in keys[:-1]):
            raise KeyFileError(f"key file {path} line {n}: key id {parts[0]} is used twice")
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
