"""HTML to readable plain text, for buyers' HTML mail and sellers' missing alternatives.

`html_to_text(html)` keeps what a reader sees: paragraphs and headings as
paragraphs, line breaks, lists with bullets or numbers (nested lists
indented), quoted history as `> ` lines, preformatted text as it is, and
simple tables as one line per row with ` | ` between cells. It removes
what a reader does not see or should not follow: hyperlink targets (the
link text stays), images, scripts, styles, forms, embedded objects and
comments (Outlook's conditional comments too). Entities are decoded and
whitespace is collapsed as a browser would.

The markup is first read by nh3 (the HTML5 parsing algorithm, as a
browser reads it) down to the elements that shape text; a small loop
then writes the lines. It never raises on malformed markup.
"""

from __future__ import annotations

import html as html_lib
import re

import nh3

# What shapes the text; every other element goes, its text kept.
_STRUCTURE = frozenset({
    "p", "br", "div", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "menu", "li", "dl", "dt",
    "dd", "table", "caption", "thead", "tbody", "tfoot", "tr", "td", "th", "blockquote", "pre",
    "hr", "address", "section", "article", "header", "footer", "nav", "aside", "main", "center",
    "figure", "figcaption", "fieldset", "details", "summary",
})
# Elements that go with everything in them.
_DROPPED = frozenset({
    "script", "style", "title", "template", "noscript", "object", "embed", "applet", "iframe",
    "frame", "frameset", "form", "select", "textarea", "button", "svg", "math", "audio", "video",
    "canvas", "map", "xml",
})
_PARAGRAPH = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "dl", "address",
                        "figure", "fieldset", "hr"})
# The sanitizer's output: lower-case tags without attributes, text escaped.
_TOKEN = re.compile(r"<(/?)([a-z0-9]+)\s*/?>")


def html_to_text(html: str) -> str:
    simple = nh3.clean(html, tags=set(_STRUCTURE), attributes={}, clean_content_tags=set(_DROPPED),
                       strip_comments=True, link_rel=None)
    converter = _Converter()
    pos = 0
    for match in _TOKEN.finditer(simple):
        if match.start() > pos:
            converter.handle_data(html_lib.unescape(simple[pos:match.start()]))
        if match.group(1):
            converter.handle_endtag(match.group(2))
        else:
            converter.handle_starttag(match.group(2))
        pos = match.end()
    converter.handle_data(html_lib.unescape(simple[pos:]))
    return converter.text()


class _Converter:
    """Writes lines from a stream of tags and text, owing breaks until text comes."""

    def __init__(self):
        self.lines: list[str] = []     # finished lines
        self.line = ""                 # the line being written (without its prefix)
        self.line_prefix = ""          # the quote marks in force when it was begun
        self.pending = 0               # breaks owed before the next text: 1 newline, 2 blank line
        self.quote = 0                 # blockquote depth
        self.pre = 0
        self.lists: list[list] = []    # one [kind, counter] per open list
        self.cells: list[int] = []     # cells written in each open table row

    def handle_starttag(self, tag: str) -> None:
        if tag == "br":
            self._newline()
        elif tag in ("ul", "ol", "menu"):
            self._break(1 if self.lists else 2)
            self.lists.append([tag, 0])
        elif tag == "li":
            self._break(1)
            if self.lists:
                self.lists[-1][1] += 1
            self._write(self._bullet())
        elif tag in ("blockquote", "pre"):
            self._break(2)
            self.quote += tag == "blockquote"
            self.pre += tag == "pre"
        elif tag == "tr":
            self._break(1)
            self.cells.append(0)
        elif tag in ("td", "th"):
            if self.cells:
                if self.cells[-1]:
                    self._write(" | ")
                self.cells[-1] += 1
        elif tag == "hr":
            self._break(2)
            self._write("----")
            self._break(2)
        else:
            self._break(2 if tag in _PARAGRAPH else 1)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("ul", "ol", "menu"):
            if self.lists:
                self.lists.pop()
            self._break(1 if self.lists else 2)
        elif tag in ("blockquote", "pre"):
            self._break(2)
            if tag == "blockquote":
                self.quote = max(0, self.quote - 1)
            else:
                self.pre = max(0, self.pre - 1)
        elif tag == "tr":
            if self.cells:
                self.cells.pop()
            self._break(1)
        elif tag not in ("br", "td", "th"):
            self._break(2 if tag in _PARAGRAPH else 1)

    def handle_data(self, data):
        if not data:
            return
        if self.pre:
            for i, piece in enumerate(data.replace("\r\n", "\n").split("\n")):
                if i:
                    self._newline()
                if piece:
                    self._write(piece.replace("\u00a0", " "))
            return
        # str.split() knows every Unicode space, the no-break space included
        text = " ".join(data.split())
        if data[0].isspace():
            text = " " + text
        if data[-1].isspace() and text != " ":
            text += " "
        if not self.line or self.line.endswith(" ") or self.pending:
            text = text.lstrip(" ")
        if text:
            self._write(text)

    # --- output --------------------------------------------------------
    def _bullet(self) -> str:
        if not self.lists:
            return "* "
        kind, counter = self.lists[-1]
        indent = "  " * (len(self.lists) - 1)
        return f"{indent}{counter}. " if kind == "ol" else f"{indent}\u2022 "

    def _break(self, count: int) -> None:
        if self.line or self.lines:
            self.pending = max(self.pending, count)

    def _settle(self) -> None:
        """Start the line that the owed breaks call for."""
        if not self.pending:
            return
        self._flush()
        if self.pending == 2 and self.lines and self.lines[-1].strip(" >"):
            # a blank line between quote levels carries the marks both share
            shared = min(self.quote, len(self.line_prefix) // 2)
            self.lines.append(("> " * shared).rstrip())
        self.pending = 0

    def _newline(self) -> None:
        """A `<br>`: ends the line, or makes an empty one."""
        self._settle()
        if self.line:
            self._flush()
        else:
            self.lines.append(self._prefix().rstrip())

    def _flush(self) -> None:
        if self.line:
            line = self.line.rstrip()
            # "-- " opens a signature; mail programs know it by its space
            self.lines.append(self.line_prefix + ("-- " if line == "--" else line))
            self.line = ""

    def _write(self, text: str) -> None:
        self._settle()
        if not self.line:
            self.line_prefix = self._prefix()
        self.line += text

    def _prefix(self) -> str:
        return "> " * self.quote

    def text(self) -> str:
        self._flush()
        out: list[str] = []
        for line in self.lines:
            line = line if line.endswith("-- ") else line.rstrip()
            if not line.strip(" >") and (not out or not out[-1].strip(" >")):
                continue  # at most one blank line, none at the start
            out.append(line)
        while out and not out[-1].strip(" >"):
            out.pop()
        return "\n".join(out) + ("\n" if out else "")

