"""The word lists, phrase lists and allow-lists the rules read.

Shipped as package data in `policy/data/`. `[policy] data_dir` names a
folder whose files replace the shipped ones of the same name (a file not
there falls back to the shipped one), so an operator can tune a list
without touching the code. Files are read once, when the rules are built.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


class DataFiles:
    def __init__(self, override_dir: Path | None = None):
        self.override_dir = override_dir

    def text(self, name: str) -> str:
        if self.override_dir is not None:
            candidate = self.override_dir / name
            if candidate.is_file():
                return candidate.read_text(encoding="utf-8")
        return resources.files("policy").joinpath("data", name).read_text(encoding="utf-8")

    def lines(self, name: str) -> list[str]:
        """Non-empty lines without `#` comments."""
        out = []
        for line in self.text(name).splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(line)
        return out
