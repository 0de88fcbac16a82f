"""Key files: one key a line, `<key id> <64 hex digits>`, oldest first.

`ensure_key_file(path)` creates the file with a fresh 256-bit key, mode
0600, if it is missing (never overwriting); `load_key_ring(path)` reads it
back into a `KeyRing`. A missing, malformed or world-readable file raises
`KeyFileError` with a one-line reason.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from aliasing.codec import Key, KeyRing


class KeyFileError(Exception):
    """The key file cannot be used."""


def ensure_key_file(path: Path) -> bool:
    """Create `path` with one new key unless it exists. True if created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write("# alias keys, oldest first; the last line encodes new aliases\n")
        fh.write(_key_line("k1"))
        fh.flush()
        os.fsync(fh.fileno())
    return True


def add_key(path: Path) -> str:
    """Append a new key (rotation); returns its id."""
    ring = load_key_ring(path)
    new_id = f"k{len(ring.keys) + 1}"
    with open(path, "a") as fh:
        fh.write(_key_line(new_id))
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
        try:
            keys.append(Key(parts[0], bytes.fromhex(parts[1])))
        except ValueError:
            raise KeyFileError(f"key file {path} line {n}: key is not hex") from None
    if not keys:
        raise KeyFileError(f"key file {path} holds no key")
    return KeyRing(keys)


def _key_line(key_id: str) -> str:
    return f"{key_id} {secrets.token_hex(32)}\n"
