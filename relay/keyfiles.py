"""Private key files: created 0600, refused when others may read or write them.

Every secret the relay keeps on disk (alias keys, storage keys, the DKIM
private key) lives in a file that only its owner may read or write. This
module is the one place that creates such files and checks them:

- `create_private(path, text)` writes a new file with mode 0600 (never
  replacing one that exists) and says whether it did;
- `replace_private(path, text)` swaps in a new version atomically (a
  reader sees the old file or the new one, never half of it);
- `read_private(path)` returns the text after `check_private`;
- `check_private(path)` raises `KeyFileError` when the group or others
  have any permission on the file;
- `parse_key_lines(path, text)` reads the `<key id> <64 hex digits>`
  format of the alias and storage key files.

Every problem is a `KeyFileError` with one line that names the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_KEY_ID = 32


class KeyFileError(Exception):
    """A key file cannot be used; the text names the file and what to do."""


def check_private(path: Path, st: os.stat_result | None = None) -> None:
    """Refuse a key file that the group or others may read, write or execute."""
    if st is None:
        try:
            st = path.stat()
        except FileNotFoundError:
            raise KeyFileError(f"key file {path} is missing (run 'relay init')") from None
        except OSError as exc:
            raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    mode = stat.S_IMODE(st.st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"key file {path} is open to others (mode {mode:04o}); "
                           f"run 'chmod 600 {path}'")


def create_private(path: Path, text: str) -> bool:
    """Create `path` (mode 0600) holding `text` unless it exists. True if created."""
    _make_folder(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False  # whoever loads it judges what is there
    except OSError as exc:
        raise KeyFileError(f"cannot create key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def replace_private(path: Path, text: str) -> None:
    """Write `text` to a new 0600 file beside `path`, then rename it over `path`."""
    _make_folder(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise KeyFileError(f"cannot write key file {path}: {exc.strerror}") from None


def read_private(path: Path) -> str:
    """The text of a key file that only its owner may use."""
    try:
        st = path.stat()
        check_private(path, st)
        return path.read_text("ascii")
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} is missing (run 'relay init')") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read key file {path}: {getattr(exc, 'strerror', None) or exc}") from None


def parse_key_lines(path: Path, text: str) -> list[tuple[str, bytes]]:
    """`(key id, 32-byte secret)` for each `<id> <64 hex digits>` line, in file order."""
    keys: list[tuple[str, bytes]] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[1]) != 64:
            raise KeyFileError(f"key file {path} line {n}: expected '<id> <64 hex digits>'")
        if len(parts[0]) > MAX_KEY_ID or not parts[0].isascii():
            raise KeyFileError(f"key file {path} line {n}: key id longer than {MAX_KEY_ID} characters")
        try:
            secret = bytes.fromhex(parts[1])
        except ValueError:
            raise KeyFileError(f"key file {path} line {n}: key is not hex") from None
        if parts[0] in (k for k, _ in keys):
            raise KeyFileError(f"key file {path} line {n}: key id {parts[0]} is used twice")
        keys.append((parts[0], secret))
    return keys


def _make_folder(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KeyFileError(f"cannot create the folder of key file {path}: {exc.strerror}") from None
