"""Word lists and allow-lists that an operator can replace.

`load_lines(name, folder)` reads `name` from `folder` when that folder
has a file of that name, else the copy shipped in `policy/data/`. Blank
lines and lines starting with `#` are skipped; the rest are stripped.
A missing packaged file is a bug and raises `FileNotFoundError`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def load_lines(name: str, folder: Path | None = None) -> list[str]:
    if folder is not None and (Path(folder) / name).is_file():
        text = (Path(folder) / name).read_text(encoding="utf-8")
    else:
        text = resources.files("policy").joinpath("data", name).read_text(encoding="utf-8")
    return [s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#")]
